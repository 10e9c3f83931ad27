//! What a row's own cursor cannot see, decided from the describe (pure, unit-tested).
//!
//! A read selects values that change while the row's `SystemModstamp` stays put:
//! - a parent's field (`Account.Name` in a mapping): renaming the Account moves only the
//!   Account's own `SystemModstamp`;
//! - a cross-object formula (`TEXT(Account.Industry)`): computed when read, from the parent;
//! - a time-based formula (`TODAY() - DATEVALUE(CreatedDate)`): different every day.
//!
//! - a mapping's `soql_where` on a parent's field (`Account.Industry = 'Banking'`): a row
//!   enters or leaves the filter when its parent changes.
//!
//! Those on a parent follow the parent's cursor (`super::parents`: the rows under parents
//! that changed in a window are read again, and for a filter the rows it no longer selects
//! there leave the stream); formulas of both kinds are also read again on the
//! `formula_refresh` schedule (`super::formulas`).
//!
//! A path of several relationships (`Account.Owner.Name`) is followed at every level: renaming
//! the User moves neither the Contact's nor the Account's `SystemModstamp`, so
//! `Account.Owner` gets a cursor of its own beside `Account`. Each level past the first needs
//! the describe of the object before it ([`Ancestors`]), to know where its relationship leads.

use std::collections::{HashMap, HashSet};

use crate::catalog::{FieldDescribe, SObjectDescribe, StreamSchema};

/// A parent relationship whose changes the read follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentDep {
    /// The relationship path as the describes spell it (`Account`, `Parent__r`,
    /// `Account.Owner`).
    pub relationship: String,
    /// The object at its end (`Account`; `User` for `Account.Owner`).
    pub object: String,
    /// The selected columns that depend on it (`Account.Name`, `Account_Name__c`).
    pub because: Vec<String>,
}

/// What [`ParentDep::because`] names for a mapping's `soql_where` on the parent's fields.
pub const FILTER: &str = "soql_where";

impl ParentDep {
    /// Whether the mapping's filter reads the parent's fields: rows under a changed parent
    /// may have left it.
    pub fn filters(&self) -> bool {
        self.because.iter().any(|b| b == FILTER)
    }

    /// The SOQL path of the parent's cursor (`Account.SystemModstamp`,
    /// `Account.Owner.SystemModstamp`): every object a lookup can point to has
    /// `SystemModstamp`.
    pub fn cursor_path(&self) -> String {
        format!("{}.SystemModstamp", self.relationship)
    }
}

/// The describes of the objects that relationship paths pass through (`Account` for
/// `Account.Owner.Name` from Contact), by object name, and the objects that could not be
/// described (with why), whose relationships are then not followed.
#[derive(Debug, Default)]
pub struct Ancestors {
    /// Describes fetched, by object name.
    pub describes: HashMap<String, SObjectDescribe>,
    /// Objects whose describe failed, with the reason.
    pub failed: HashMap<String, String>,
}

impl Ancestors {
    /// The object at the end of the relationship path `path` (`Account.Owner` → User) from
    /// `describe`, when every relationship on it leads to one object whose describe is known.
    pub fn reach<'a>(
        &'a self,
        describe: &'a SObjectDescribe,
        path: &str,
    ) -> Option<&'a SObjectDescribe> {
        let mut at = describe;
        for rel in path.split('.') {
            let [object] = relationship(at, rel)?.reference_to.as_slice() else {
                return None;
            };
            at = self.describes.get(object)?;
        }
        Some(at)
    }
}

/// The reference field of `describe` whose relationship is named `rel` (`Account`,
/// `Parent__r`), case-insensitively as SOQL reads it.
pub fn relationship<'d>(describe: &'d SObjectDescribe, rel: &str) -> Option<&'d FieldDescribe> {
    describe.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(rel))
    })
}

/// `formula <prefix><Name> = <definition>` ([`crate::state::FORMULA_ENTRY`]) for each formula
/// field of `describe` among `names`, in order, then for each formula they read in turn
/// (selected or not: an edit of that one changes theirs too); once each by `seen`, which
/// holds the lower-cased `<prefix><Name>` of the entries already made. `prefix` is empty for
/// the object's own formulas, a relationship path and a dot (`ReportsTo.`) for a parent's.
pub fn formula_definitions(
    describe: &SObjectDescribe,
    prefix: &str,
    names: Vec<String>,
    seen: &mut HashSet<String>,
) -> Vec<String> {
    own_formulas(describe, names)
        .into_iter()
        .filter(|(name, _)| seen.insert(format!("{prefix}{name}").to_ascii_lowercase()))
        .map(|(name, text)| format!("{}{prefix}{name} = {text}", crate::state::FORMULA_ENTRY))
        .collect()
}

/// The formula fields of `describe` among `names`, in order, then the formulas they read in
/// turn, once each: `(name as described, definition)`. An edit of any of them changes the
/// first ones' values, and so does whatever changes unseen in any of them.
fn own_formulas(describe: &SObjectDescribe, names: Vec<String>) -> Vec<(&str, &str)> {
    let mut queue = names;
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut i = 0;
    while let Some(name) = queue.get(i) {
        i += 1;
        let Some(field) = describe.field(name) else {
            continue;
        };
        let Some(text) = formula_of(describe, &field.name) else {
            continue;
        };
        if out.iter().any(|(n, _)| *n == field.name) {
            continue;
        }
        out.push((&field.name, text));
        queue.extend(
            formula_reads(describe, text)
                .into_iter()
                .map(str::to_string),
        );
    }
    out
}

/// What keeps one object's values fresh beyond its own cursor.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    /// Parents to follow, in the order their columns are selected.
    pub parents: Vec<ParentDep>,
    /// Selected formula fields whose value changes without the row changing (time-based or
    /// cross-object), read again on the `formula_refresh` schedule.
    pub formulas: Vec<String>,
    /// For a stream of the object itself (not a mapping): `Id`, the cursor and
    /// [`Freshness::formulas`], the narrow read of a refresh.
    pub formula_schema: Option<StreamSchema>,
    /// What is not followed, and why (logged once per read).
    pub notes: Vec<String>,
    /// Objects whose describes the analysis needs to follow a path further (the caller
    /// fetches them into [`Ancestors`] and analyses again).
    pub missing: Vec<String>,
    /// What makes a mapping's `soql_where` select other rows while no cursor moves: its
    /// relative date literals (`LAST_N_DAYS:90`), then the formula fields it reads whose values
    /// change while their rows do not (`Days_Since_Created__c`, `Account.Days_Open__c`). Every
    /// row it selects is read again on the `formula_refresh` schedule, and the rows that left
    /// it are looked for then.
    pub filter_moves: Vec<String>,
    /// What the read cannot keep exact, and what to do (logged once per read, as WARN).
    pub warnings: Vec<String>,
}

impl Freshness {
    /// Whether the object needs nothing beyond its own cursor.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty() && !self.refreshes()
    }

    /// Whether anything is read again on the `formula_refresh` schedule: formula fields, or
    /// the rows a filter that changes with time selects.
    pub fn refreshes(&self) -> bool {
        !(self.formulas.is_empty() && self.filter_moves.is_empty())
    }
}

/// What `selected` (the SOQL paths a read selects: `Email`, `Account.Name`, formula names)
/// depends on beyond the row's own cursor. `narrow` asks for [`Freshness::formula_schema`].
/// Paths through objects `ancestors` lacks are followed as far as it goes, and those objects
/// are listed in [`Freshness::missing`].
pub fn analyse(
    describe: &SObjectDescribe,
    selected: &[String],
    narrow: bool,
    ancestors: &Ancestors,
) -> Freshness {
    let mut out = Freshness::default();
    for name in selected {
        // A parent's own formula (`Account.Days_Open__c`) changes as unseen as one of the
        // row's: the parent's cursor does not move either.
        let refs = match name.rsplit_once('.') {
            Some((path, field)) => {
                follow_parent_field(&mut out, describe, ancestors, path, field, name)
            }
            None => follow_own_formula(&mut out, describe, ancestors, name, name),
        };
        if refs.is_some_and(|r| r.changes_unseen()) {
            out.formulas.push(name.clone());
        }
    }
    if narrow && !out.formulas.is_empty() {
        out.formula_schema = Some(StreamSchema::from_describe(describe, Some(&out.formulas)));
    }
    out
}

/// [`analyse`] of a read of `selected`, then [`follow_filter`] of its mapping's `filter`.
pub fn analyse_read(
    describe: &SObjectDescribe,
    selected: &[String],
    filter: Option<&str>,
    narrow: bool,
    ancestors: &Ancestors,
) -> Freshness {
    let mut fresh = analyse(describe, selected, narrow, ancestors);
    if let Some(filter) = filter {
        follow_filter(&mut fresh, describe, filter, ancestors);
    }
    fresh
}

/// Adds what a mapping's `filter` (a `soql_where`) reads beyond the row's own cursor:
/// - the parents whose fields it reads (`Account.Industry = 'Banking'`), directly or through
///   a cross-object formula (`Account_Industry__c = 'Banking'`, that formula being
///   `TEXT(Account.Industry)`), as [`FILTER`]: a row enters or leaves the filter when its
///   parent changes, while its own cursor stays put;
/// - relative date literals and formula fields whose values change unseen
///   ([`Freshness::filter_moves`]): rows enter and leave the filter as days pass or parents
///   change, so every row it selects is read again on the refresh schedule, and the rows that
///   left are looked for then; a formula of the date gets a WARN saying what that needs.
pub fn follow_filter(
    out: &mut Freshness,
    describe: &SObjectDescribe,
    filter: &str,
    ancestors: &Ancestors,
) {
    out.filter_moves = crate::mapping::filter::relative_dates(filter);
    for name in crate::mapping::filter::field_paths(filter) {
        let refs = match name.rsplit_once('.') {
            Some((path, field)) => {
                follow_parent_field(out, describe, ancestors, path, field, FILTER)
            }
            None => follow_own_formula(out, describe, ancestors, &name, FILTER),
        };
        let Some(refs) = refs else {
            continue;
        };
        // The row's own field as the describe spells it; a parent's as written.
        let name = if name.contains('.') {
            name
        } else {
            canonical(describe, &name)
        };
        if refs.changes_unseen() && !out.filter_moves.contains(&name) {
            out.filter_moves.push(name.clone());
        }
        if refs.time_based {
            out.warnings.push(format!(
                "{}: the mapping's soql_where reads {name}, a formula computed from today's date, so rows enter and leave it as days pass while their SystemModstamp stays put. {MOVES_WITH_TIME}",
                describe.name
            ));
        }
    }
}

/// What an incremental read does about a filter that selects other rows as days pass (the
/// WARN's second half, for relative dates and formulas of the date alike).
pub const MOVES_WITH_TIME: &str = "An incremental read reads every row it selects again on the formula_refresh schedule (unless that is off), so rows entering it come; on the same schedule, rows leaving it are found by comparing the export's Ids with the rows it selects and leave as deletions (Parquet or Delta output with a column mapped from Id), else they stay in the stream until a full refresh";

/// Follows, for `column`, the parent at `path` that a read of its `field` goes through, and,
/// when `field` is a formula of that parent, the parents that formula reads in turn; returns
/// what the formula reads (None: not a formula, or the parent's describe not fetched yet).
fn follow_parent_field(
    out: &mut Freshness,
    describe: &SObjectDescribe,
    ancestors: &Ancestors,
    path: &str,
    field: &str,
    column: &str,
) -> Option<FormulaRefs> {
    let parent = add_path(out, describe, ancestors, path, column, true)?;
    let refs = formula_closure(parent, field)?;
    follow_further(out, describe, ancestors, path, &refs, column);
    Some(refs)
}

/// Follows, for `column`, the parents the row's own formula `name` reads, and those their
/// formulas read in turn; returns what the formula reads (None: `name` is no formula field).
fn follow_own_formula(
    out: &mut Freshness,
    describe: &SObjectDescribe,
    ancestors: &Ancestors,
    name: &str,
    column: &str,
) -> Option<FormulaRefs> {
    let refs = formula_closure(describe, name)?;
    for path in refs.relationships() {
        add_path(out, describe, ancestors, path, column, false);
    }
    follow_parent_formulas(out, describe, ancestors, &refs, column);
    Some(refs)
}

/// Relationship levels SOQL follows from one object (SOQL and SOSL Reference, Relationship
/// Query Limits): a parent's cursor further up cannot be queried.
const MAX_LEVELS: usize = 5;

/// Follows, for `column`, the parents that a cross-object formula of the parent at `path` reads
/// (`Owner.Email` in Account's `Owner_Email__c`, read as `Account.Owner_Email__c`: the path
/// `Account.Owner`): renaming that User moves neither the Account's nor the row's cursor.
/// Paths past SOQL's five levels are noted instead.
fn follow_further(
    out: &mut Freshness,
    describe: &SObjectDescribe,
    ancestors: &Ancestors,
    path: &str,
    refs: &FormulaRefs,
    column: &str,
) {
    for rel in refs.relationships() {
        let further = format!("{path}.{rel}");
        if further.split('.').count() > MAX_LEVELS {
            let note = format!(
                "{}: {column} is not refreshed when {further} changes: SOQL follows at most {MAX_LEVELS} relationship levels",
                describe.name
            );
            note_once(out, note);
            continue;
        }
        add_path(out, describe, ancestors, &further, column, false);
    }
}

/// For each parent field a formula of the row's own reads (`Account.Owner_Email__c` in
/// `TEXT(Account.Owner_Email__c)`) that is itself a cross-object formula of that parent,
/// follows the parents it reads in turn ([`follow_further`]), once the parent's describe is
/// known (the read fetches it to record the parent's formula definitions).
fn follow_parent_formulas(
    out: &mut Freshness,
    describe: &SObjectDescribe,
    ancestors: &Ancestors,
    refs: &FormulaRefs,
    column: &str,
) {
    for read in &refs.parent_fields {
        let Some((path, field)) = read.rsplit_once('.') else {
            continue;
        };
        let further = ancestors
            .reach(describe, path)
            .and_then(|parent| formula_closure(parent, field));
        if let Some(further) = further {
            follow_further(out, describe, ancestors, path, &further, column);
        }
    }
}

/// `name` as `describe` spells its field (SOQL reads names case-insensitively).
fn canonical(describe: &SObjectDescribe, name: &str) -> String {
    describe
        .field(name)
        .map_or_else(|| name.to_string(), |f| f.name.clone())
}

/// What the formula field `name` of `describe` reads, together with the formulas of its own
/// object that it reads in turn (a formula over `Days_Open__c`, itself over `TODAY()`, changes
/// every day too); None when `name` is not a formula field.
fn formula_closure(describe: &SObjectDescribe, name: &str) -> Option<FormulaRefs> {
    let formulas = own_formulas(describe, vec![name.to_string()]);
    if formulas.is_empty() {
        return None;
    }
    let mut out = FormulaRefs::default();
    for (_, text) in formulas {
        let refs = formula_refs(text);
        out.time_based |= refs.time_based;
        for f in refs.parent_fields {
            if !out.parent_fields.iter().any(|p| p.eq_ignore_ascii_case(&f)) {
                out.parent_fields.push(f);
            }
        }
    }
    Some(out)
}

/// The formula of `describe`'s field `name`, when it is a formula field.
pub fn formula_of<'d>(describe: &'d SObjectDescribe, name: &str) -> Option<&'d str> {
    let field = describe.field(name)?;
    field
        .calculated_formula
        .as_deref()
        .filter(|_| field.calculated)
}

/// Records that `column` depends on each parent along the relationship path `path`
/// (`Account.Owner`: the Account, then its Owner), level by level while each relationship
/// leads to one object (a polymorphic one, such as `Owner` or `What`, cannot be filtered on
/// its `SystemModstamp`: noted instead) whose describe is known for the next level. With
/// `last`, returns the describe of the object at the path's end (None when unknown yet).
fn add_path<'a>(
    out: &mut Freshness,
    describe: &'a SObjectDescribe,
    ancestors: &'a Ancestors,
    path: &str,
    column: &str,
    last: bool,
) -> Option<&'a SObjectDescribe> {
    let mut from = describe;
    let mut followed = String::new();
    let mut rels = path.split('.').peekable();
    while let Some(rel) = rels.next() {
        let field = relationship(from, rel)?;
        if !followed.is_empty() {
            followed.push('.');
        }
        followed.push_str(field.relationship_name.as_deref().unwrap_or(rel));
        let [object] = field.reference_to.as_slice() else {
            let note = format!(
                "{}: {column} is not refreshed when {followed} changes: {followed} can point to several objects ({}), and queries cannot filter on its SystemModstamp",
                describe.name,
                field.reference_to.join(", ")
            );
            note_once(out, note);
            return None;
        };
        add_parent(out, &followed, object, column);
        if rels.peek().is_none() && !last {
            return None;
        }
        from = match ancestors.describes.get(object) {
            Some(d) => d,
            None => {
                match ancestors.failed.get(object) {
                    Some(why) => note_once(
                        out,
                        format!(
                            "{}: {column} is kept fresh up to {followed} only: the describe of {object} failed ({why})",
                            describe.name
                        ),
                    ),
                    None if !out.missing.contains(object) => out.missing.push(object.clone()),
                    None => {}
                }
                return None;
            }
        };
    }
    Some(from)
}

/// Adds `column` to the columns that depend on the parent at `relationship`, a path to one
/// `object`.
fn add_parent(out: &mut Freshness, relationship: &str, object: &str, column: &str) {
    match out
        .parents
        .iter_mut()
        .find(|p| p.relationship == relationship)
    {
        Some(p) if !p.because.iter().any(|c| c == column) => p.because.push(column.to_string()),
        Some(_) => {}
        None => out.parents.push(ParentDep {
            relationship: relationship.to_string(),
            object: object.to_string(),
            because: vec![column.to_string()],
        }),
    }
}

fn note_once(out: &mut Freshness, note: String) {
    if !out.notes.contains(&note) {
        out.notes.push(note);
    }
}

/// What a formula's text refers to.
#[derive(Debug, Default, PartialEq, Eq)]
struct FormulaRefs {
    /// It calls `TODAY()`, `NOW()` or `TIMENOW()`.
    time_based: bool,
    /// The plain names it reads (fields of its own object, and function names), in order,
    /// once each.
    names: Vec<String>,
    /// The other objects' fields it reads (`Account.Owner.Name`), in order, once each.
    parent_fields: Vec<String>,
}

impl FormulaRefs {
    /// Whether the formula's value changes while its row does not: it reads the clock or
    /// another object.
    fn changes_unseen(&self) -> bool {
        self.time_based || !self.parent_fields.is_empty()
    }

    /// The relationship path of each cross-object reference (`Account.Owner` of
    /// `Account.Owner.Name`), in order, once each.
    fn relationships(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for field in &self.parent_fields {
            let path = field.rsplit_once('.').map_or(field.as_str(), |(p, _)| p);
            if !out.iter().any(|r| r.eq_ignore_ascii_case(path)) {
                out.push(path);
            }
        }
        out
    }
}

/// The other objects' fields that `formula` reads, as paths (`Account.Owner.Name`), outside
/// string literals and global variables.
pub fn formula_parent_fields(formula: &str) -> Vec<String> {
    formula_refs(formula).parent_fields
}

/// The fields of the object's own that `formula` reads (names the describe has, found in its
/// text outside string literals): a formula reading another formula changes when that one's
/// definition does.
pub fn formula_reads<'d>(describe: &'d SObjectDescribe, formula: &str) -> Vec<&'d str> {
    formula_refs(formula)
        .names
        .iter()
        .filter_map(|n| describe.field(n).map(|f| f.name.as_str()))
        .collect()
}

/// Scans a formula's identifiers, skipping string literals and global variables (`$User.Id`).
fn formula_refs(text: &str) -> FormulaRefs {
    let mut out = FormulaRefs::default();
    let mut chars = text.chars();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut FormulaRefs| {
        let t = std::mem::take(token);
        if t.starts_with('$') || t.is_empty() {
            return;
        }
        if ["TODAY", "NOW", "TIMENOW"]
            .iter()
            .any(|f| t.eq_ignore_ascii_case(f))
        {
            out.time_based = true;
        } else if let Some((rel, _)) = t.rsplit_once('.') {
            if rel.starts_with(|c: char| c.is_alphabetic())
                && !out.parent_fields.iter().any(|f| f.eq_ignore_ascii_case(&t))
            {
                out.parent_fields.push(t);
            }
        } else if t.starts_with(|c: char| c.is_alphabetic()) && !out.names.contains(&t) {
            out.names.push(t);
        }
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            flush(&mut token, &mut out);
            while let Some(d) = chars.next() {
                match d {
                    '\\' => {
                        chars.next();
                    }
                    d if d == c => break,
                    _ => {}
                }
            }
        } else if c.is_alphanumeric() || matches!(c, '_' | '.' | '$') {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe() -> SObjectDescribe {
        let field = |name: &str, kind: &str, extra: serde_json::Value| {
            let mut f = json!({"name": name, "type": kind});
            for (k, v) in extra.as_object().unwrap() {
                f[k] = v.clone();
            }
            f
        };
        serde_json::from_value(json!({"name": "Opportunity", "fields": [
            field("Id", "id", json!({})),
            field("Name", "string", json!({})),
            field("SystemModstamp", "datetime", json!({})),
            field("AccountId", "reference", json!({"relationshipName": "Account", "referenceTo": ["Account"]})),
            field("OwnerId", "reference", json!({"relationshipName": "Owner", "referenceTo": ["User", "Group"]})),
            field("Account_Industry__c", "string", json!({"calculated": true, "calculatedFormula": "TEXT(Account.Industry)"})),
            field("Days_Since_Created__c", "double", json!({"calculated": true, "calculatedFormula": "TODAY() - DATEVALUE(CreatedDate)"})),
            field("Weighted__c", "double", json!({"calculated": true, "calculatedFormula": "Amount * Probability / 100"})),
            field("Label__c", "string", json!({"calculated": true, "calculatedFormula": "\"Account.Name TODAY()\" & $User.Id & Name"})),
            field("Owner_Name__c", "string", json!({"calculated": true, "calculatedFormula": "Owner.Name"})),
        ]}))
        .unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_filter_on_parent_fields_follows_those_parents() {
        let d = describe();
        let mut f = analyse(
            &d,
            &names(&["Id", "Account.Name"]),
            false,
            &Ancestors::default(),
        );
        follow_filter(
            &mut f,
            &d,
            "account.Industry = 'Banking' AND Name != 'Owner.Name' AND Amount > 1.5",
            &Ancestors::default(),
        );
        assert_eq!(
            f.parents,
            vec![ParentDep {
                relationship: "Account".into(),
                object: "Account".into(),
                because: names(&["Account.Name", FILTER]),
            }]
        );
        assert!(f.parents[0].filters());
        assert!(f.filter_moves.is_empty());
        let mut plain = Freshness::default();
        follow_filter(&mut plain, &d, "IsConverted = false", &Ancestors::default());
        assert!(plain.is_empty());
        // Days passing move rows in and out: every row it selects is read on schedule.
        let mut days = Freshness::default();
        let filter = "CreatedDate = LAST_N_DAYS:30 AND Name != 'TODAY'";
        follow_filter(&mut days, &d, filter, &Ancestors::default());
        assert_eq!(days.filter_moves, names(&["LAST_N_DAYS:30"]));
        assert!(!days.is_empty());
    }

    #[test]
    fn formulas_that_change_without_their_row_are_found_and_their_parents_followed() {
        let d = describe();
        let f = analyse(
            &d,
            &names(&[
                "Id",
                "Name",
                "Account_Industry__c",
                "Days_Since_Created__c",
                "Weighted__c",
                "Label__c",
            ]),
            true,
            &Ancestors::default(),
        );
        assert_eq!(
            f.formulas,
            names(&["Account_Industry__c", "Days_Since_Created__c"])
        );
        assert_eq!(
            f.parents,
            vec![ParentDep {
                relationship: "Account".into(),
                object: "Account".into(),
                because: names(&["Account_Industry__c"]),
            }]
        );
        assert_eq!(f.parents[0].cursor_path(), "Account.SystemModstamp");
        let narrow: Vec<&str> = f
            .formula_schema
            .as_ref()
            .unwrap()
            .fields
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            narrow,
            [
                "Id",
                "SystemModstamp",
                "Account_Industry__c",
                "Days_Since_Created__c"
            ]
        );
        assert!(f.notes.is_empty());
    }

    /// An Account describe whose `Owner` leads to User only and `Parent` to Account, and
    /// whose `Delegate` may be a User or a Group.
    fn account() -> SObjectDescribe {
        serde_json::from_value(json!({"name": "Account", "fields": [
            {"name": "Id", "type": "id"},
            {"name": "OwnerId", "type": "reference", "relationshipName": "Owner", "referenceTo": ["User"]},
            {"name": "ParentId", "type": "reference", "relationshipName": "Parent", "referenceTo": ["Account"]},
            {"name": "DelegateId", "type": "reference", "relationshipName": "Delegate", "referenceTo": ["User", "Group"]},
            {"name": "Days_Open__c", "type": "double", "calculated": true, "calculatedFormula": "TODAY() - DATEVALUE(CreatedDate)"},
            {"name": "Label__c", "type": "string", "calculated": true, "calculatedFormula": "Name & Type"},
        ]}))
        .unwrap()
    }

    fn user() -> SObjectDescribe {
        serde_json::from_value(json!({"name": "User", "fields": [
            {"name": "Id", "type": "id"},
            {"name": "Email", "type": "email"},
        ]}))
        .unwrap()
    }

    fn dep(relationship: &str, object: &str, because: &[&str]) -> ParentDep {
        ParentDep {
            relationship: relationship.into(),
            object: object.into(),
            because: names(because),
        }
    }

    #[test]
    fn mapped_parent_paths_are_followed_and_what_cannot_be_is_said() {
        let d = describe();
        let selected = names(&[
            "Id",
            "account.Name",
            "Account.Owner.Name",
            "Owner.Name",
            "Name",
        ]);
        let f = analyse(&d, &selected, false, &Ancestors::default());
        // The Account is followed; its Owner needs the Account's describe first.
        assert_eq!(
            f.parents,
            vec![dep(
                "Account",
                "Account",
                &["account.Name", "Account.Owner.Name"]
            )]
        );
        assert_eq!(f.missing, names(&["Account"]));
        assert!(f.formulas.is_empty() && f.formula_schema.is_none());
        assert_eq!(
            f.notes,
            names(&[
                "Opportunity: Owner.Name is not refreshed when Owner changes: Owner can point to several objects (User, Group), and queries cannot filter on its SystemModstamp",
            ])
        );
        assert!(
            analyse(
                &d,
                &names(&["Id", "Weighted__c"]),
                true,
                &Ancestors::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn every_level_of_a_longer_path_is_followed_once_its_describes_are_known() {
        let d = describe();
        let mut ancestors = Ancestors::default();
        ancestors.describes.insert("Account".into(), account());
        ancestors.describes.insert("User".into(), user());
        let selected = names(&[
            "Account.Owner.Name",
            "Account.Parent.Owner.Email",
            "Account.Delegate.Name",
        ]);
        let f = analyse(&d, &selected, false, &ancestors);
        assert_eq!(
            f.parents,
            vec![
                dep(
                    "Account",
                    "Account",
                    &[
                        "Account.Owner.Name",
                        "Account.Parent.Owner.Email",
                        "Account.Delegate.Name"
                    ]
                ),
                dep("Account.Owner", "User", &["Account.Owner.Name"]),
                dep("Account.Parent", "Account", &["Account.Parent.Owner.Email"]),
                dep(
                    "Account.Parent.Owner",
                    "User",
                    &["Account.Parent.Owner.Email"]
                ),
            ]
        );
        assert_eq!(f.parents[1].cursor_path(), "Account.Owner.SystemModstamp");
        assert!(f.missing.is_empty(), "{:?}", f.missing);
        assert_eq!(
            f.notes,
            names(&[
                "Opportunity: Account.Delegate.Name is not refreshed when Account.Delegate changes: Account.Delegate can point to several objects (User, Group), and queries cannot filter on its SystemModstamp",
            ])
        );
        // A cross-object formula and a filter reading two levels up follow both levels too.
        let mut formula = describe();
        formula.fields[5].calculated_formula = Some("TEXT(Account.Owner.Title)".into());
        let mut f = analyse(
            &formula,
            &names(&["Account_Industry__c"]),
            false,
            &ancestors,
        );
        follow_filter(
            &mut f,
            &d,
            "Account.Parent.Industry = 'Banking'",
            &ancestors,
        );
        let rels: Vec<&str> = f.parents.iter().map(|p| p.relationship.as_str()).collect();
        assert_eq!(rels, ["Account", "Account.Owner", "Account.Parent"]);
        assert!(f.parents[2].filters());
    }

    #[test]
    fn a_parents_formula_that_changes_unseen_is_refreshed_like_the_rows_own() {
        let d = describe();
        let selected = names(&["Id", "Account.Days_Open__c", "Account.Label__c"]);
        let f = analyse(&d, &selected, false, &Ancestors::default());
        // Whether they are formulas takes the Account's describe.
        assert!(f.formulas.is_empty());
        assert_eq!(f.missing, names(&["Account"]));
        let mut ancestors = Ancestors::default();
        ancestors.describes.insert("Account".into(), account());
        let f = analyse(&d, &selected, false, &ancestors);
        // The time-based one is refreshed on schedule; the one of the Account's own fields
        // moves with the Account's cursor, which is followed.
        assert_eq!(f.formulas, names(&["Account.Days_Open__c"]));
        assert_eq!(
            f.parents,
            vec![dep(
                "Account",
                "Account",
                &["Account.Days_Open__c", "Account.Label__c"]
            )]
        );
        assert!(f.missing.is_empty() && f.notes.is_empty());
    }

    #[test]
    fn a_filter_on_formulas_that_change_unseen_follows_their_parents_and_is_refreshed() {
        let mut d = describe();
        // A formula over a time-based one changes every day too.
        d.fields.push(
            serde_json::from_value(json!({"name": "Age_Bucket__c", "type": "string",
                "calculated": true,
                "calculatedFormula": "IF(Days_Since_Created__c > 30, \"old\", \"new\")"}))
            .unwrap(),
        );
        let mut ancestors = Ancestors::default();
        ancestors.describes.insert("Account".into(), account());
        let mut f = Freshness::default();
        let filter = "account_industry__c = 'Banking' AND Weighted__c > 5 AND Age_Bucket__c = 'old' AND Account.Days_Open__c < 90 AND Account.Label__c != null";
        follow_filter(&mut f, &d, filter, &ancestors);
        // The cross-object formula's parent is followed as the filter's: rows enter and
        // leave with it. Fields of the Account (formulas or not) follow it too.
        assert_eq!(f.parents, vec![dep("Account", "Account", &[FILTER])]);
        assert!(f.parents[0].filters());
        // Spelled as the describe does; Weighted__c reads only the row's own fields.
        assert_eq!(
            f.filter_moves,
            names(&[
                "Account_Industry__c",
                "Age_Bucket__c",
                "Account.Days_Open__c"
            ])
        );
        assert!(f.refreshes() && f.formulas.is_empty() && f.missing.is_empty());
        let warn = |name: &str, object: &str| {
            format!(
                "{object}: the mapping's soql_where reads {name}, a formula computed from today's date, so rows enter and leave it as days pass while their SystemModstamp stays put. An incremental read reads every row it selects again on the formula_refresh schedule (unless that is off), so rows entering it come; on the same schedule, rows leaving it are found by comparing the export's Ids with the rows it selects and leave as deletions (Parquet or Delta output with a column mapped from Id), else they stay in the stream until a full refresh"
            )
        };
        assert_eq!(
            f.warnings,
            vec![
                warn("Age_Bucket__c", "Opportunity"),
                warn("Account.Days_Open__c", "Opportunity")
            ]
        );
        // Without the Account's describe, whether its fields are formulas is not known yet.
        let mut g = Freshness::default();
        follow_filter(&mut g, &d, filter, &Ancestors::default());
        assert_eq!(g.missing, names(&["Account"]));
        assert_eq!(
            g.filter_moves,
            names(&["Account_Industry__c", "Age_Bucket__c"])
        );
        // A filter on plain fields needs nothing.
        let mut plain = Freshness::default();
        follow_filter(
            &mut plain,
            &d,
            "Weighted__c > 5 AND Name = 'Days_Since_Created__c'",
            &ancestors,
        );
        assert!(plain.is_empty() && plain.warnings.is_empty());
    }

    #[test]
    fn a_parents_cross_object_formula_follows_the_parents_it_reads_in_turn() {
        let d = describe();
        let mut account = account();
        account.fields.push(
            serde_json::from_value(json!({"name": "Owner_Email__c", "type": "email",
                "calculated": true, "calculatedFormula": "Owner.Email"}))
            .unwrap(),
        );
        let mut ancestors = Ancestors::default();
        ancestors.describes.insert("Account".into(), account);
        let column = "Account.Owner_Email__c";
        let f = analyse(&d, &names(&["Id", column]), false, &ancestors);
        // The Account's cursor moves with the Account; its Owner's with the User.
        assert_eq!(
            f.parents,
            vec![
                dep("Account", "Account", &[column]),
                dep("Account.Owner", "User", &[column])
            ]
        );
        assert_eq!(f.formulas, names(&[column]));
        assert!(f.missing.is_empty() && f.notes.is_empty());
        // The same formula read by a filter follows the User for the filter.
        let mut g = Freshness::default();
        follow_filter(&mut g, &d, "Account.Owner_Email__c != null", &ancestors);
        assert_eq!(
            g.parents,
            vec![
                dep("Account", "Account", &[FILTER]),
                dep("Account.Owner", "User", &[FILTER])
            ]
        );
        // An own formula reading that formula follows the User too.
        let mut own = d.clone();
        own.fields.push(
            serde_json::from_value(json!({"name": "Owner_Contact__c", "type": "string",
                "calculated": true, "calculatedFormula": "\"By \" & Account.Owner_Email__c"}))
            .unwrap(),
        );
        let o = analyse(&own, &names(&["Owner_Contact__c"]), false, &ancestors);
        assert_eq!(
            o.parents,
            vec![
                dep("Account", "Account", &["Owner_Contact__c"]),
                dep("Account.Owner", "User", &["Owner_Contact__c"])
            ]
        );
        // Past five levels, SOQL cannot filter on the cursor: noted.
        let mut refs = FormulaRefs::default();
        refs.parent_fields.push("Owner.Email".into());
        let mut h = Freshness::default();
        follow_further(&mut h, &d, &ancestors, "A.B.C.D.E", &refs, "A.B.C.D.E.X__c");
        assert!(h.parents.is_empty());
        assert_eq!(
            h.notes,
            names(&[
                "Opportunity: A.B.C.D.E.X__c is not refreshed when A.B.C.D.E.Owner changes: SOQL follows at most 5 relationship levels"
            ])
        );
    }

    #[test]
    fn a_parent_that_cannot_be_described_stops_its_path_with_a_note() {
        let d = describe();
        let mut ancestors = Ancestors::default();
        ancestors
            .failed
            .insert("Account".into(), "HTTP 404 NOT_FOUND: gone".into());
        let f = analyse(&d, &names(&["Account.Owner.Name"]), false, &ancestors);
        assert_eq!(
            f.parents,
            vec![dep("Account", "Account", &["Account.Owner.Name"])]
        );
        assert!(f.missing.is_empty());
        assert_eq!(
            f.notes,
            names(&[
                "Opportunity: Account.Owner.Name is kept fresh up to Account only: the describe of Account failed (HTTP 404 NOT_FOUND: gone)",
            ])
        );
    }

    #[test]
    fn formula_text_scan_skips_literals_and_globals() {
        let refs = formula_refs(
            "IF(ISPICKVAL(Account.Type, 'A.B'), NOW(), $User.Manager.Name) & Parent__r.Name & account.x & Account.Owner.Name",
        );
        assert_eq!(
            refs.relationships(),
            ["Account", "Parent__r", "Account.Owner"]
        );
        assert_eq!(
            refs,
            FormulaRefs {
                time_based: true,
                parent_fields: names(&[
                    "Account.Type",
                    "Parent__r.Name",
                    "account.x",
                    "Account.Owner.Name"
                ]),
                names: names(&["IF", "ISPICKVAL"]),
            }
        );
        assert_eq!(
            formula_refs("\"TODAY()\" & Name * 1.5"),
            FormulaRefs {
                names: names(&["Name"]),
                ..FormulaRefs::default()
            }
        );
    }
}
