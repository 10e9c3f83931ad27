//! The simulated org's metadata: describeGlobal and per-object describes, loaded from the
//! embedded fixtures (or a `--data` folder) and indexed for the SOQL engine and the store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// The version the fixtures' URLs are written with; responses rewrite it to the requested one.
pub const FIXTURE_VERSION: &str = "v62.0";

/// Names of the objects the simulator stores rows for, in store order: the org's data objects,
/// then the objects that behave differently on Salesforce (History, Feed and Share objects,
/// objects that need a filter, that Bulk refuses, that have no queryMore, a big object).
pub const OBJECTS: [&str; 18] = [
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "User",
    "Task",
    "Attachment",
    "Score__c",
    "AccountHistory",
    "AccountFeed",
    "AccountShare",
    "UserRecordAccess",
    "ContentDocumentLink",
    "TaskStatus",
    "CaseStatus",
    "RecentlyViewed",
    "EntityDefinition",
    "Score_Reading__b",
];

/// Where the first object with Salesforce's structural quirks is in [`OBJECTS`].
pub const FIRST_QUIRKY: usize = 8;

const EMBEDDED: [(&str, &str); 19] = [
    (
        "describeGlobal.json",
        include_str!("../fixtures/describeGlobal.json"),
    ),
    (
        "describe_Account.json",
        include_str!("../fixtures/describe_Account.json"),
    ),
    (
        "describe_Contact.json",
        include_str!("../fixtures/describe_Contact.json"),
    ),
    (
        "describe_Lead.json",
        include_str!("../fixtures/describe_Lead.json"),
    ),
    (
        "describe_Opportunity.json",
        include_str!("../fixtures/describe_Opportunity.json"),
    ),
    (
        "describe_User.json",
        include_str!("../fixtures/describe_User.json"),
    ),
    (
        "describe_Task.json",
        include_str!("../fixtures/describe_Task.json"),
    ),
    (
        "describe_Attachment.json",
        include_str!("../fixtures/describe_Attachment.json"),
    ),
    (
        "describe_Score__c.json",
        include_str!("../fixtures/describe_Score__c.json"),
    ),
    (
        "describe_AccountHistory.json",
        include_str!("../fixtures/describe_AccountHistory.json"),
    ),
    (
        "describe_AccountFeed.json",
        include_str!("../fixtures/describe_AccountFeed.json"),
    ),
    (
        "describe_AccountShare.json",
        include_str!("../fixtures/describe_AccountShare.json"),
    ),
    (
        "describe_UserRecordAccess.json",
        include_str!("../fixtures/describe_UserRecordAccess.json"),
    ),
    (
        "describe_ContentDocumentLink.json",
        include_str!("../fixtures/describe_ContentDocumentLink.json"),
    ),
    (
        "describe_TaskStatus.json",
        include_str!("../fixtures/describe_TaskStatus.json"),
    ),
    (
        "describe_CaseStatus.json",
        include_str!("../fixtures/describe_CaseStatus.json"),
    ),
    (
        "describe_RecentlyViewed.json",
        include_str!("../fixtures/describe_RecentlyViewed.json"),
    ),
    (
        "describe_EntityDefinition.json",
        include_str!("../fixtures/describe_EntityDefinition.json"),
    ),
    (
        "describe_Score_Reading__b.json",
        include_str!("../fixtures/describe_Score_Reading__b.json"),
    ),
];

/// The key prefix of record ids of objects whose describe has none (`keyPrefix: null`):
/// History and Feed rows, picklist value objects (Salesforce gives every such object `01J`; the
/// simulator gives CaseStatus `01K` so ids stay unique), RecentlyViewed (the ids of the viewed
/// Accounts).
fn id_prefix(name: &str) -> Option<&'static str> {
    Some(match name {
        "AccountHistory" => "017",
        "AccountFeed" => "0D5",
        "TaskStatus" => "01J",
        "CaseStatus" => "01K",
        "RecentlyViewed" => "001",
        "UserRecordAccess" => "0Ud",
        _ => return None,
    })
}

/// Salesforce field types the simulator understands (the describe's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FType {
    /// `id`: the record id, derived from the row number.
    Id,
    /// `reference`: an id of another record.
    Reference,
    /// Every text-like type (string, textarea, picklist, multipicklist, combobox, email, phone,
    /// url, encryptedstring, anyType) kept as text.
    Text,
    /// `base64`: text holding base64 (refused by Bulk queries).
    Base64,
    /// `boolean`.
    Boolean,
    /// `int`.
    Int,
    /// `long`.
    Long,
    /// `double`, `currency`, `percent`.
    Double,
    /// `date`.
    Date,
    /// `datetime`.
    DateTime,
    /// `time`.
    Time,
    /// `address` compound field (read-only, built from its components).
    Address,
    /// `location` compound field (read-only, built from its components).
    Location,
}

impl FType {
    fn parse(t: &str) -> FType {
        match t {
            "id" => FType::Id,
            "reference" => FType::Reference,
            "base64" => FType::Base64,
            "boolean" => FType::Boolean,
            "int" => FType::Int,
            "long" => FType::Long,
            "double" | "currency" | "percent" => FType::Double,
            "date" => FType::Date,
            "datetime" => FType::DateTime,
            "time" => FType::Time,
            "address" => FType::Address,
            "location" => FType::Location,
            _ => FType::Text,
        }
    }
}

/// Whether the API user sees a field (changed live by `/__sim/schema/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Described and queryable.
    Visible,
    /// Hidden from the API user by field-level security: absent from the describe, and
    /// `INVALID_FIELD` in queries, as Salesforce answers a field it cannot see. Data kept.
    Hidden,
    /// Deleted by an admin: renamed `Name_del__c` and kept (with its data) as Salesforce keeps
    /// deleted custom fields for 15 days, but described and queryable no more.
    Deleted,
}

/// What the engine needs to know about one field, extracted from its describe entry.
#[derive(Debug, Clone)]
pub struct FieldMeta {
    /// API name as the describe spells it.
    pub name: String,
    /// The describe's raw `type`.
    pub sf_type: String,
    /// Storage / rendering class.
    pub ftype: FType,
    /// `length` (text types).
    pub length: usize,
    /// `precision` (numbers).
    pub precision: u32,
    /// `scale` (numbers).
    pub scale: u32,
    /// `calculated` (formula) fields are computed at read time.
    pub calculated: bool,
    /// Compound parent (`BillingAddress` for `BillingCity`).
    pub compound: Option<String>,
    /// Target objects of a reference.
    pub reference_to: Vec<String>,
    /// Relationship name of a reference (`Account` for `AccountId`).
    pub relationship: Option<String>,
    /// Whether a reference is polymorphic (several targets).
    pub polymorphic: bool,
    /// `createable`.
    pub createable: bool,
    /// `updateable`.
    pub updateable: bool,
    /// `nillable`.
    pub nillable: bool,
    /// `externalId` (usable for upserts).
    pub external_id: bool,
    /// `idLookup`.
    pub id_lookup: bool,
    /// `defaultedOnCreate`: not required on create even when not nillable.
    pub defaulted: bool,
    /// `label`, used in validation messages.
    pub label: String,
    /// Restricted picklist values (ingest validation), empty when unrestricted.
    pub restricted_values: Vec<String>,
    /// `filterable`: may appear in WHERE (long text areas, a big object's non-index fields
    /// may not).
    pub filterable: bool,
    /// `sortable`: may appear in ORDER BY.
    pub sortable: bool,
    /// Whether the API user sees it (schema changes of `/__sim/schema/...`).
    pub access: Access,
}

/// One object's metadata.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// API name.
    pub name: String,
    /// Three-character key prefix of its ids.
    pub prefix: String,
    /// The full describe, served as is (with the version rewritten).
    pub describe: Value,
    /// The fields in describe order.
    pub fields: Vec<FieldMeta>,
    by_lower: HashMap<String, usize>,
    rel_lower: HashMap<String, usize>,
}

impl ObjectMeta {
    /// Index of a field the API user sees, by case-insensitive API name, as SOQL resolves
    /// names (hidden and deleted fields are not found, as on Salesforce).
    pub fn field(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }
    /// Index of any field still stored under this name, hidden ones included (deleted fields
    /// carry their `_del__c` name): what the schema controls act on.
    pub fn stored_field(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.access != Access::Deleted && f.name.eq_ignore_ascii_case(name))
    }
    /// Rebuilds the name indexes after a schema change: only visible fields resolve.
    pub fn reindex(&mut self) {
        let visible = || {
            self.fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.access == Access::Visible)
        };
        self.by_lower = visible()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        self.rel_lower = visible()
            .filter(|(_, f)| f.ftype == FType::Reference)
            .filter_map(|(i, f)| f.relationship.as_ref().map(|r| (r.to_ascii_lowercase(), i)))
            .collect();
    }
    /// The describe as the API user gets it: without hidden and deleted fields (the stored
    /// `describe["fields"]` stays index-aligned with [`ObjectMeta::fields`]).
    pub fn served_describe(&self) -> Cow<'_, Value> {
        if self.fields.iter().all(|f| f.access == Access::Visible) {
            return Cow::Borrowed(&self.describe);
        }
        let mut d = self.describe.clone();
        if let Some(list) = d["fields"].as_array_mut() {
            let mut i = 0;
            list.retain(|_| {
                let keep = self
                    .fields
                    .get(i)
                    .is_none_or(|f| f.access == Access::Visible);
                i += 1;
                keep
            });
        }
        Cow::Owned(d)
    }
    /// Reference-field index by case-insensitive relationship name (`Account` -> `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<usize> {
        self.rel_lower.get(&name.to_ascii_lowercase()).copied()
    }
}

/// The whole metadata catalogue.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// describeGlobal as served.
    pub global: Value,
    /// Stored objects, in [`OBJECTS`] order.
    pub objects: Vec<ObjectMeta>,
    /// Metadata-only custom objects (`Extra_0001__c` ...): listed and described, no rows.
    pub extra_objects: u32,
}

/// Name of the `i`th (1-based) metadata-only object.
fn extra_name(i: u32) -> String {
    format!("Extra_{i:04}__c")
}

/// Key prefix of the `i`th metadata-only object: `m` and two base-36 digits (1,296 objects).
fn extra_prefix(i: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let i = i as usize % (36 * 36);
    format!("m{}{}", DIGITS[i / 36] as char, DIGITS[i % 36] as char)
}

/// A fixture could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("fixture {file}: {reason}")]
pub struct FixtureError {
    /// Which file.
    pub file: String,
    /// What went wrong.
    pub reason: String,
}

impl Catalog {
    /// Loads the embedded fixtures, each overridable by a same-named file in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Catalog, FixtureError> {
        let read = |file: &str| -> Result<Value, FixtureError> {
            let text = match dir.map(|d| d.join(file)).filter(|p| p.exists()) {
                Some(p) => std::fs::read_to_string(&p).map_err(|e| FixtureError {
                    file: p.display().to_string(),
                    reason: e.to_string(),
                })?,
                None => EMBEDDED
                    .iter()
                    .find(|(n, _)| *n == file)
                    .map(|(_, t)| t.to_string())
                    .ok_or_else(|| FixtureError {
                        file: file.into(),
                        reason: "no such fixture".into(),
                    })?,
            };
            serde_json::from_str(&text).map_err(|e| FixtureError {
                file: file.into(),
                reason: e.to_string(),
            })
        };
        let global = read("describeGlobal.json")?;
        let mut objects = Vec::new();
        for name in OBJECTS {
            let file = format!("describe_{name}.json");
            let describe = read(&file)?;
            objects.push(object_meta(describe).map_err(|reason| FixtureError { file, reason })?);
        }
        Ok(Catalog {
            global,
            objects,
            extra_objects: 0,
        })
    }

    /// Lists `n` metadata-only custom objects in describeGlobal (up to 1,296), shaped like
    /// `Score__c`.
    pub fn add_extra_objects(&mut self, n: u32) {
        let n = n.min(36 * 36);
        let Some(template) = self.global_entry("Score__c").cloned() else {
            return;
        };
        let mut added = Vec::new();
        for i in 1..=n {
            let name = extra_name(i);
            let text = template.to_string().replace("Score__c", &name);
            let Ok(mut entry) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            entry["keyPrefix"] = Value::String(extra_prefix(i));
            entry["label"] = Value::String(format!("Extra {i:04}"));
            entry["labelPlural"] = Value::String(format!("Extras {i:04}"));
            added.push(entry);
        }
        if let Some(list) = self.global["sobjects"].as_array_mut() {
            list.extend(added);
        }
        self.extra_objects = n;
    }

    /// The describe of a metadata-only object: `Score__c`'s fields under its name.
    pub fn extra_describe(&self, name: &str) -> Option<Value> {
        let i: u32 = name
            .strip_prefix("Extra_")?
            .strip_suffix("__c")?
            .parse()
            .ok()?;
        if i == 0 || i > self.extra_objects || !name.eq_ignore_ascii_case(&extra_name(i)) {
            return None;
        }
        let template = self.objects[self.object("Score__c")?].served_describe();
        let mut d: Value =
            serde_json::from_str(&template.to_string().replace("Score__c", &extra_name(i))).ok()?;
        d["keyPrefix"] = Value::String(extra_prefix(i));
        d["label"] = Value::String(format!("Extra {i:04}"));
        d["labelPlural"] = Value::String(format!("Extras {i:04}"));
        Some(d)
    }

    /// Index of a stored object by case-insensitive name.
    pub fn object(&self, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// Index of the object owning an id's key prefix.
    pub fn object_by_prefix(&self, prefix: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.prefix == prefix)
    }

    /// The describeGlobal entry of a name (also for objects listed but not stored).
    pub fn global_entry(&self, name: &str) -> Option<&Value> {
        self.global["sobjects"].as_array()?.iter().find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }
}

fn object_meta(describe: Value) -> Result<ObjectMeta, String> {
    let name = describe["name"].as_str().ok_or("no name")?.to_string();
    let prefix = describe["keyPrefix"]
        .as_str()
        .or_else(|| id_prefix(&name))
        .ok_or("no keyPrefix")?
        .to_string();
    let fields = describe["fields"]
        .as_array()
        .ok_or("no fields")?
        .iter()
        .map(field_meta)
        .collect::<Result<Vec<_>, _>>()?;
    let mut meta = ObjectMeta {
        name,
        prefix,
        describe,
        fields,
        by_lower: HashMap::new(),
        rel_lower: HashMap::new(),
    };
    meta.reindex();
    Ok(meta)
}

/// One field's metadata from its describe entry (visible).
pub fn field_meta(f: &Value) -> Result<FieldMeta, String> {
    let s = |v: &Value, k: &str| v[k].as_str().map(str::to_string);
    let b = |v: &Value, k: &str| v[k].as_bool().unwrap_or(false);
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let sf_type = s(f, "type").ok_or("field without type")?;
    let reference_to: Vec<String> = f["referenceTo"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let restricted_values = if b(f, "restrictedPicklist") {
        f["picklistValues"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| s(p, "value")).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(FieldMeta {
        name: s(f, "name").ok_or("field without name")?,
        ftype: FType::parse(&sf_type),
        sf_type,
        length: u(f, "length") as usize,
        precision: u(f, "precision") as u32,
        scale: u(f, "scale") as u32,
        calculated: b(f, "calculated"),
        compound: s(f, "compoundFieldName"),
        polymorphic: reference_to.len() > 1,
        reference_to,
        relationship: s(f, "relationshipName"),
        createable: b(f, "createable"),
        updateable: b(f, "updateable"),
        nillable: b(f, "nillable"),
        external_id: b(f, "externalId"),
        id_lookup: b(f, "idLookup"),
        restricted_values,
        defaulted: b(f, "defaultedOnCreate"),
        label: s(f, "label").unwrap_or_default(),
        filterable: f["filterable"].as_bool().unwrap_or(true),
        sortable: f["sortable"].as_bool().unwrap_or(true),
        access: Access::Visible,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fixtures_load_and_data_dir_overrides_one_file() {
        let c = Catalog::load(None).expect("embedded fixtures");
        assert_eq!(c.objects.len(), OBJECTS.len());
        let lead = &c.objects[c.object("lead").expect("Lead")];
        assert_eq!(lead.prefix, "00Q");
        assert!(lead.field("score__c").is_some());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = lead.describe.clone();
        d["label"] = Value::from("Prospect");
        std::fs::write(dir.path().join("describe_Lead.json"), d.to_string()).expect("write");
        let c2 = Catalog::load(Some(dir.path())).expect("override");
        assert_eq!(c2.objects[2].describe["label"], "Prospect");
        assert_eq!(c2.objects[0].name, "Account", "other files still embedded");
        std::fs::write(dir.path().join("describe_Lead.json"), "{not json").expect("write");
        let err = Catalog::load(Some(dir.path())).expect_err("bad fixture");
        assert!(err.to_string().contains("describe_Lead.json"));
    }
}
