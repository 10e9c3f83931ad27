//! The `writeback` section of the config, typed and validated: which incoming stream goes to
//! which object, with which operation, and how columns become fields. Every problem is reported
//! at once with its JSON path, so an admin fixes the config in one pass.

use serde_json::Value;

pub use super::payload::Operation;
use crate::catalog::SObjectDescribe;
use crate::expr;

/// One route: rows of a stream that match `when` are written to `object`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Target object API name.
    pub object: String,
    /// SQL condition over the incoming columns; `None` takes every row not taken before.
    pub when: Option<String>,
    /// What to do.
    pub operation: Operation,
    /// External id field for upsert.
    pub external_id: Option<String>,
    /// (Salesforce field, SQL expression over the incoming columns), in config order.
    pub fields: Vec<(String, String)>,
}

/// The routes of one incoming stream, tried in order (the first matching route takes a row).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRoutes {
    /// Incoming stream name.
    pub name: String,
    /// Routes in config order.
    pub routes: Vec<Route>,
}

/// The whole `writeback` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Writeback {
    /// Streams in config order.
    pub streams: Vec<StreamRoutes>,
    /// Where rows Salesforce refused are written (folder or object-store URL).
    pub rejects_path: String,
    /// Batches of more rows than this go through Bulk API 2.0; smaller ones through sObject
    /// Collections (200 per call). The default, 1000, is where Bulk's fixed ~5 calls per job
    /// become cheaper than Collections' one call per 200 rows.
    pub bulk_threshold: usize,
    /// Rows buffered per stream before they are applied without waiting for a STATE.
    pub batch_rows: usize,
    /// Largest CSV upload per Bulk job (bytes); Salesforce allows 150 MB after base64, about
    /// 100 MB of raw CSV.
    pub max_upload_bytes: usize,
}

/// Default of [`Writeback::bulk_threshold`].
pub const DEFAULT_BULK_THRESHOLD: usize = 1000;
/// Default of [`Writeback::batch_rows`].
pub const DEFAULT_BATCH_ROWS: usize = 200_000;
/// Default of [`Writeback::max_upload_bytes`]: 100 MB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 100 * 1000 * 1000;

impl Writeback {
    /// The routes of `stream`, if the config has them.
    pub fn stream(&self, stream: &str) -> Option<&StreamRoutes> {
        self.streams.iter().find(|s| s.name == stream)
    }

    /// Parses and checks the section on its own (no org needed); every problem is listed as
    /// `path: what is wrong and what to write instead`.
    pub fn parse(raw: Option<&Value>) -> Result<Writeback, Vec<String>> {
        let mut problems = Vec::new();
        let Some(raw) = raw else {
            return Err(vec![
                "writeback: missing. `sfetl write` needs a \"writeback\" object in the config with \"streams\" (see README, \"Writing back to Salesforce\")".into(),
            ]);
        };
        let Some(obj) = raw.as_object() else {
            return Err(vec![
                "writeback: must be an object with \"streams\" and \"rejects_path\"".into(),
            ]);
        };
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "streams" | "rejects_path" | "bulk_threshold" | "batch_rows" | "max_upload_bytes"
            ) {
                problems.push(format!(
                    "writeback.{key}: unknown setting; allowed: streams, rejects_path, bulk_threshold, batch_rows, max_upload_bytes"
                ));
            }
        }
        let rejects_path = match obj.get("rejects_path") {
            None => "./rejects".to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                problems.push(
                    "writeback.rejects_path: must be a folder or URL (e.g. \"./rejects\" or \"s3://bucket/rejects\")".into(),
                );
                String::new()
            }
        };
        let mut number = |key: &str, default: usize, min: usize| match obj.get(key) {
            None => default,
            Some(v) => match v.as_u64() {
                Some(n) if n as usize >= min => n as usize,
                _ => {
                    problems.push(format!(
                        "writeback.{key}: must be a whole number of at least {min} (default {default})"
                    ));
                    default
                }
            },
        };
        let bulk_threshold = number("bulk_threshold", DEFAULT_BULK_THRESHOLD, 0);
        let batch_rows = number("batch_rows", DEFAULT_BATCH_ROWS, 1);
        let max_upload_bytes = number("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES, 1024);
        let mut streams = Vec::new();
        match obj.get("streams").and_then(Value::as_object) {
            Some(map) if !map.is_empty() => {
                for (name, s) in map {
                    if let Some(s) = parse_stream(name, s, &mut problems) {
                        streams.push(s);
                    }
                }
            }
            _ => problems.push(
                "writeback.streams: must be an object naming at least one incoming stream, e.g. {\"person_scores\": {\"routes\": [...]}}".into(),
            ),
        }
        if problems.is_empty() {
            Ok(Writeback {
                streams,
                rejects_path,
                bulk_threshold,
                batch_rows,
                max_upload_bytes,
            })
        } else {
            Err(problems)
        }
    }

    /// Checks the routes against the org's describes (keyed by object name; a missing key
    /// means the object does not exist): fields exist and can be written as the operation
    /// needs, the external id field is one.
    pub fn check_describes(
        &self,
        describe: impl Fn(&str) -> Option<SObjectDescribe>,
    ) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for s in &self.streams {
            for (i, r) in s.routes.iter().enumerate() {
                let at = format!("writeback.streams.{}.routes[{i}]", s.name);
                match describe(&r.object) {
                    None => problems.push(format!(
                        "{at}.object: the org has no object {:?} visible to this user; check the API name (custom objects end in __c) and the user's object permissions",
                        r.object
                    )),
                    Some(d) => check_route(&at, r, &d, &mut problems),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn check_route(at: &str, r: &Route, d: &SObjectDescribe, problems: &mut Vec<String>) {
    let op = r.operation;
    let allowed = match op {
        Operation::Insert => d.createable,
        Operation::Update => d.updateable,
        Operation::Upsert => d.createable && d.updateable,
        Operation::Delete => d.deletable,
    };
    if !allowed {
        problems.push(format!(
            "{at}.operation: {} does not allow {} for this user; grant the object permission in a permission set or pick another operation",
            d.name,
            op.as_str()
        ));
    }
    if let (Operation::Upsert, Some(ext)) = (op, &r.external_id) {
        match d.field(ext) {
            None => problems.push(format!(
                "{at}.external_id: {} has no field {ext:?}",
                d.name
            )),
            Some(f) if !f.external_id && f.kind != "id" => problems.push(format!(
                "{at}.external_id: {}.{} is not an External ID field; mark it \"External ID\" in Setup > Object Manager > {} > Fields, or name one that is",
                d.name, f.name, d.name
            )),
            Some(_) => {}
        }
    }
    if op == Operation::Insert {
        check_required(at, r, d, problems);
    }
    for (field, _) in &r.fields {
        let Some(f) = d.field(field) else {
            problems.push(format!(
                "{at}.fields.{field}: {} has no field {field:?} (or this user cannot see it: check field-level security)",
                d.name
            ));
            continue;
        };
        if f.kind == "id" {
            continue;
        }
        let is_ext = r
            .external_id
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&f.name));
        let writable = match op {
            Operation::Insert => f.createable,
            Operation::Update => f.updateable,
            Operation::Upsert => f.createable && (f.updateable || is_ext),
            Operation::Delete => true,
        };
        if !writable {
            problems.push(format!(
                "{at}.fields.{field}: {}.{} cannot be set by {} ({}); remove it from the route or make it editable for this user",
                d.name,
                f.name,
                op.as_str(),
                if f.calculated {
                    "it is a formula or roll-up"
                } else {
                    "not createable/updateable"
                }
            ));
        }
    }
}

/// An insert route must set every field a record cannot be created without (not nillable,
/// not filled by Salesforce): without one, Salesforce refuses every row with
/// `REQUIRED_FIELD_MISSING`, which `check` can say before any row is sent.
fn check_required(at: &str, r: &Route, d: &SObjectDescribe, problems: &mut Vec<String>) {
    let required = d.fields.iter().filter(|f| {
        !f.nillable
            && f.createable
            && !f.defaulted_on_create
            && !f.calculated
            && f.kind != "boolean"
    });
    for f in required {
        if !r
            .fields
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&f.name))
        {
            problems.push(format!(
                "{at}.fields: {}.{} is required to create a record and the route does not set it; add \"{}\": <an expression over the incoming columns>",
                d.name, f.name, f.name
            ));
        }
    }
}

fn parse_stream(name: &str, v: &Value, problems: &mut Vec<String>) -> Option<StreamRoutes> {
    let at = format!("writeback.streams.{name}");
    let Some(routes) = v.get("routes").and_then(Value::as_array) else {
        problems.push(format!(
            "{at}.routes: must be a list of routes, e.g. [{{\"object\": \"Lead\", \"operation\": \"update\", \"fields\": {{\"Id\": \"source_id\"}}}}]"
        ));
        return None;
    };
    if routes.is_empty() {
        problems.push(format!("{at}.routes: give at least one route"));
    }
    let routes: Vec<Route> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| parse_route(&format!("{at}.routes[{i}]"), r, problems))
        .collect();
    Some(StreamRoutes {
        name: name.to_string(),
        routes,
    })
}

fn parse_route(at: &str, v: &Value, problems: &mut Vec<String>) -> Option<Route> {
    let before = problems.len();
    let Some(obj) = v.as_object() else {
        problems.push(format!("{at}: must be an object"));
        return None;
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "object" | "when" | "operation" | "external_id" | "fields"
        ) {
            problems.push(format!(
                "{at}.{key}: unknown setting; allowed: object, when, operation, external_id, fields"
            ));
        }
    }
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let object = text("object").unwrap_or_else(|| {
        problems.push(format!(
            "{at}.object: give the Salesforce object's API name, e.g. \"Lead\""
        ));
        String::new()
    });
    let when = match obj.get("when") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if let Err(e) = expr::parse(s) {
                problems.push(format!("{at}.when: {s:?} is not a SQL condition: {e}"));
            }
            Some(s.clone())
        }
        Some(_) => {
            problems.push(format!(
                "{at}.when: must be a SQL condition as text, e.g. \"source_object = 'Lead'\""
            ));
            None
        }
    };
    let operation = match text("operation").as_deref().map(Operation::parse) {
        Some(Some(op)) => op,
        _ => {
            problems.push(format!(
                "{at}.operation: must be one of insert, update, upsert, delete"
            ));
            Operation::Update
        }
    };
    let external_id = text("external_id");
    let fields = parse_fields(at, obj.get("fields"), problems);
    check_keys(at, operation, external_id.as_deref(), &fields, problems);
    (problems.len() == before).then_some(Route {
        object,
        when,
        operation,
        external_id,
        fields,
    })
}

/// A route's `fields`: Salesforce field → SQL expression over the incoming columns.
fn parse_fields(at: &str, v: Option<&Value>, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    match v.and_then(Value::as_object) {
        Some(map) if !map.is_empty() => {
            for (field, expr) in map {
                match expr.as_str() {
                    Some(e) => {
                        if let Err(reason) = expr::parse(e) {
                            problems.push(format!(
                                "{at}.fields.{field}: {e:?} is not a SQL expression: {reason}"
                            ));
                        }
                        fields.push((field.clone(), e.to_string()));
                    }
                    None => problems.push(format!(
                        "{at}.fields.{field}: must be a SQL expression as text, e.g. \"score\" or \"round(score, 2)\""
                    )),
                }
            }
        }
        _ => problems.push(format!(
            "{at}.fields: must map Salesforce fields to SQL expressions over the incoming columns, e.g. {{\"Id\": \"source_id\", \"Score__c\": \"score\"}}"
        )),
    }
    fields
}

/// The keys an operation matches records on: `Id` for update and delete, the external id
/// for upsert, none for insert.
fn check_keys(
    at: &str,
    operation: Operation,
    external_id: Option<&str>,
    fields: &[(String, String)],
    problems: &mut Vec<String>,
) {
    let has = |name: &str| fields.iter().any(|(f, _)| f.eq_ignore_ascii_case(name));
    match operation {
        Operation::Update | Operation::Delete if !fields.is_empty() && !has("Id") => {
            problems.push(format!(
                "{at}.fields: {} matches records by Id: map \"Id\" to the column holding the 15- or 18-character record id",
                operation.as_str()
            ))
        }
        Operation::Insert if has("Id") => problems.push(format!(
            "{at}.fields.Id: insert creates records, so it cannot set Id; use \"update\" or \"upsert\""
        )),
        Operation::Upsert => match external_id {
            None => problems.push(format!(
                "{at}.external_id: upsert needs the external id field that matches records, e.g. \"External_Id__c\""
            )),
            Some(ext) if !fields.is_empty() && !has(ext) => problems.push(format!(
                "{at}.fields: upsert matches on {ext}: map \"{ext}\" to the column holding the key"
            )),
            _ => {}
        },
        _ => {}
    }
    if external_id.is_some() && operation != Operation::Upsert {
        problems.push(format!(
            "{at}.external_id: only upsert uses an external id; remove it or use \"operation\": \"upsert\""
        ));
    }
}
