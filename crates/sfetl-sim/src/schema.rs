//! Live schema changes under `/__sim/schema/` (no auth): an admin adds a custom field, deletes
//! one, changes its type, edits a formula, or hides a field from the API user with field-level
//! security. Every
//! describe, REST query and Bulk job after the call answers as an org with that change does:
//! a deleted or hidden field is gone from the describe and `INVALID_FIELD` in SOQL (the message
//! Salesforce gives an unknown column), a new field reads null (a checkbox `false`), a retyped
//! field's values are converted and render in the new type, an edited formula's values follow
//! the new definition in every row while no row's timestamps move. Sources are in
//! `crates/sfetl-sim/README.md`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::control::{body_json, err, ok};
use super::describe::{Access, FType, FieldMeta, field_meta};
use super::server::Sim;
use super::store::{
    Store, Val, column_for, formula_column, parse_date, parse_stored_datetime, write_date,
    write_datetime, write_int, write_number, write_time,
};

/// The field types a custom field can be created with or changed to.
pub const FIELD_TYPES: [&str; 12] = [
    "string", "textarea", "email", "phone", "url", "picklist", "double", "currency", "percent",
    "boolean", "date", "datetime",
];

/// `POST /__sim/schema/add_field` `{"object","field","type","label"?}`: a new custom field,
/// null in every existing row (`false` for a checkbox).
pub async fn add_field(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    answer(add(&mut store, &v))
}

/// `POST /__sim/schema/remove_field` `{"object","field"}`: deletes a custom field (kept as
/// `Name_del__c`, out of the describe and of SOQL).
pub async fn remove_field(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    answer(remove(&mut store, &v))
}

/// `POST /__sim/schema/retype_field` `{"object","field","type"}`: changes a custom field's
/// type, converting its values (what cannot convert is lost, as Salesforce warns).
pub async fn retype_field(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    answer(retype(&mut store, &v))
}

/// `POST /__sim/schema/set_formula` `{"object","field","formula"}`: an admin edits a formula
/// field's definition. Formulas are computed when read, so every row's value follows the new
/// definition at once, and no row's LastModifiedDate or SystemModstamp moves.
pub async fn set_formula(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    answer(edit_formula(&mut store, &v))
}

/// `POST /__sim/schema/hide_field` `{"object","field","hidden":true}`: field-level security
/// hides the field from the API user (`"hidden": false` shows it again, data intact).
pub async fn hide_field(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    answer(hide(&mut store, &v))
}

fn answer(r: Result<Value, String>) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => err(StatusCode::BAD_REQUEST, &e),
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Visible => "visible",
        Access::Hidden => "hidden",
        Access::Deleted => "deleted",
    }
}

/// The answer of every schema call: the field as it now is.
fn summary(store: &Store, obj: usize, field: usize) -> Value {
    let f = &store.catalog.objects[obj].fields[field];
    json!({
        "object": store.catalog.objects[obj].name,
        "field": f.name,
        "type": f.sf_type,
        "access": access_name(f.access),
    })
}

/// The object named by the body's `object`.
fn object_of(store: &Store, v: &Value) -> Result<usize, String> {
    let name = v["object"].as_str().unwrap_or("");
    store
        .catalog
        .object(name)
        .ok_or_else(|| format!("unknown object '{name}'"))
}

/// The stored (not deleted) field named by the body's `field`.
fn field_of(store: &Store, obj: usize, v: &Value) -> Result<usize, String> {
    let name = v["field"].as_str().unwrap_or("");
    let meta = &store.catalog.objects[obj];
    meta.stored_field(name)
        .ok_or_else(|| format!("{} has no field '{name}'", meta.name))
}

/// A stored custom field (`__c`): only those can be deleted or retyped.
fn custom_field_of(store: &Store, obj: usize, v: &Value) -> Result<usize, String> {
    let i = field_of(store, obj, v)?;
    let meta = &store.catalog.objects[obj];
    let f = &meta.fields[i];
    if !f.name.ends_with("__c") {
        return Err(format!(
            "{}.{} is a standard field: only custom fields (__c) can be deleted or change type",
            meta.name, f.name
        ));
    }
    if let Some(user) = store.tables[obj].formula_reading(i) {
        return Err(format!(
            "{}.{} is referenced by the formula field {}: Salesforce refuses to delete or retype it",
            meta.name, f.name, meta.fields[user].name
        ));
    }
    Ok(i)
}

fn add(store: &mut Store, v: &Value) -> Result<Value, String> {
    let obj = object_of(store, v)?;
    let name = v["field"].as_str().unwrap_or("");
    let meta = &store.catalog.objects[obj];
    let valid = name.len() > 3
        && name.ends_with("__c")
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "'{name}' is not a custom field name: give an API name ending in __c, e.g. Tier__c"
        ));
    }
    if meta.stored_field(name).is_some() {
        return Err(format!("{} already has a field named {name}", meta.name));
    }
    let label = v["label"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| name.trim_end_matches("__c").replace('_', " "));
    let mut entry = new_entry(&meta.describe["fields"][0], name, &label);
    set_type(&mut entry, v["type"].as_str().unwrap_or("string"))?;
    let f = field_meta(&entry)?;
    let col = column_for(meta, &f);
    let fill = if f.ftype == FType::Boolean {
        Val::Bool(false)
    } else {
        Val::Null
    };
    let m = &mut store.catalog.objects[obj];
    if let Some(list) = m.describe["fields"].as_array_mut() {
        list.push(entry);
    }
    m.fields.push(f);
    m.reindex();
    store.tables[obj].add_column(col, &fill);
    Ok(summary(
        store,
        obj,
        store.catalog.objects[obj].fields.len() - 1,
    ))
}

fn remove(store: &mut Store, v: &Value) -> Result<Value, String> {
    let obj = object_of(store, v)?;
    let i = custom_field_of(store, obj, v)?;
    let m = &mut store.catalog.objects[obj];
    let deleted_as = format!("{}_del__c", m.fields[i].name.trim_end_matches("__c"));
    m.describe["fields"][i]["name"] = json!(deleted_as);
    m.fields[i].name = deleted_as;
    m.fields[i].access = Access::Deleted;
    m.reindex();
    Ok(summary(store, obj, i))
}

fn retype(store: &mut Store, v: &Value) -> Result<Value, String> {
    let obj = object_of(store, v)?;
    let i = custom_field_of(store, obj, v)?;
    let old = &store.catalog.objects[obj].fields[i];
    if old.calculated
        || matches!(
            old.ftype,
            FType::Id | FType::Reference | FType::Address | FType::Location | FType::Base64
        )
    {
        return Err(format!(
            "{} is a {} field{}: the simulator changes the type of plain custom fields only",
            old.name,
            old.sf_type,
            if old.calculated { " (a formula)" } else { "" }
        ));
    }
    let access = old.access;
    let mut entry = store.catalog.objects[obj].describe["fields"][i].clone();
    set_type(&mut entry, v["type"].as_str().unwrap_or(""))?;
    let mut f = field_meta(&entry)?;
    f.access = access;
    let table = &store.tables[obj];
    let vals: Vec<Val<'static>> = (0..table.len())
        .map(|r| convert(table.get(r, i), f.ftype))
        .collect();
    let col = column_for(&store.catalog.objects[obj], &f);
    store.tables[obj].replace_column(i, col, &vals);
    let m = &mut store.catalog.objects[obj];
    m.describe["fields"][i] = entry;
    m.fields[i] = f;
    m.reindex();
    Ok(summary(store, obj, i))
}

fn edit_formula(store: &mut Store, v: &Value) -> Result<Value, String> {
    let obj = object_of(store, v)?;
    let i = field_of(store, obj, v)?;
    let meta = &store.catalog.objects[obj];
    let f = &meta.fields[i];
    if !f.calculated {
        return Err(format!(
            "{}.{} is not a formula field: only a formula's definition can be edited",
            meta.name, f.name
        ));
    }
    let Some(text) = v["formula"].as_str() else {
        return Err("give the new definition as \"formula\" (text)".to_string());
    };
    let Some(col) = formula_column(meta, f, text) else {
        return Err(format!(
            "the simulator cannot compute {text:?}: it computes A & \"text\" & B, A * B / 100, Parent.Field, TEXT(Parent.Field) and TODAY() - DATEVALUE(Field) over the object's fields"
        ));
    };
    store.tables[obj].replace_column(i, col, &[]);
    store.catalog.objects[obj].describe["fields"][i]["calculatedFormula"] = json!(text);
    let mut out = summary(store, obj, i);
    out["formula"] = json!(text);
    Ok(out)
}

fn hide(store: &mut Store, v: &Value) -> Result<Value, String> {
    let obj = object_of(store, v)?;
    let i = field_of(store, obj, v)?;
    let hidden = v["hidden"].as_bool().unwrap_or(true);
    let m = &mut store.catalog.objects[obj];
    let f: &FieldMeta = &m.fields[i];
    if hidden && !f.nillable && f.ftype != FType::Boolean {
        return Err(format!(
            "{}.{} is required (nillable: false): field-level security cannot hide required or system fields",
            m.name, f.name
        ));
    }
    if hidden && (f.compound.is_some() || matches!(f.ftype, FType::Address | FType::Location)) {
        return Err(format!(
            "{}.{} is part of a compound field: the simulator hides plain fields only",
            m.name, f.name
        ));
    }
    m.fields[i].access = if hidden {
        Access::Hidden
    } else {
        Access::Visible
    };
    m.reindex();
    Ok(summary(store, obj, i))
}

/// A new custom field's describe entry, with every key of `base` (the object's first field):
/// createable, updateable, nillable, filterable, not unique, no default.
fn new_entry(base: &Value, name: &str, label: &str) -> Value {
    let mut e = base.clone();
    let set = |e: &mut Value, k: &str, v: Value| {
        if let Some(o) = e.as_object_mut() {
            o.insert(k.to_string(), v);
        }
    };
    for (k, val) in [
        ("name", json!(name)),
        ("label", json!(label)),
        ("custom", json!(true)),
        ("createable", json!(true)),
        ("updateable", json!(true)),
        ("nillable", json!(true)),
        ("permissionable", json!(true)),
        ("idLookup", json!(false)),
        ("externalId", json!(false)),
        ("unique", json!(false)),
        ("nameField", json!(false)),
        ("calculated", json!(false)),
        ("calculatedFormula", Value::Null),
        ("compoundFieldName", Value::Null),
        ("referenceTo", json!([])),
        ("relationshipName", Value::Null),
        ("polymorphicForeignKey", json!(false)),
        ("picklistValues", json!([])),
        ("restrictedPicklist", json!(false)),
        ("defaultValue", Value::Null),
        ("defaultedOnCreate", json!(false)),
    ] {
        set(&mut e, k, val);
    }
    e
}

/// Writes the type-dependent keys of a describe entry for `sf_type` (one of [`FIELD_TYPES`]),
/// as Salesforce describes a custom field of that type.
fn set_type(e: &mut Value, sf_type: &str) -> Result<(), String> {
    let (soap, length, numeric) = match sf_type {
        "string" | "url" | "picklist" => ("xsd:string", 255, false),
        "textarea" => ("xsd:string", 32768, false),
        "email" => ("xsd:string", 80, false),
        "phone" => ("xsd:string", 40, false),
        "double" | "currency" | "percent" => ("xsd:double", 0, true),
        "boolean" => ("xsd:boolean", 0, false),
        "date" => ("xsd:date", 0, false),
        "datetime" => ("xsd:dateTime", 0, false),
        other => {
            return Err(format!(
                "type '{other}' is not one the simulator creates: use one of {}",
                FIELD_TYPES.join(", ")
            ));
        }
    };
    let long_text = sf_type == "textarea";
    let checkbox = sf_type == "boolean";
    let Some(o) = e.as_object_mut() else {
        return Err("malformed describe entry".into());
    };
    for (k, val) in [
        ("type", json!(sf_type)),
        ("soapType", json!(soap)),
        ("length", json!(length)),
        ("byteLength", json!(length * 3)),
        ("precision", json!(if numeric { 18 } else { 0 })),
        ("scale", json!(if numeric { 2 } else { 0 })),
        ("digits", json!(0)),
        ("filterable", json!(!long_text)),
        ("sortable", json!(!long_text)),
        ("groupable", json!(!long_text && !numeric)),
        (
            "extraTypeInfo",
            if long_text {
                json!("plaintextarea")
            } else {
                Value::Null
            },
        ),
        ("nillable", json!(!checkbox)),
        ("defaultedOnCreate", json!(checkbox)),
        (
            "defaultValue",
            if checkbox { json!(false) } else { Value::Null },
        ),
    ] {
        o.insert(k.to_string(), val);
    }
    Ok(())
}

/// A value converted to a field's new type, as far as it converts: numbers and dates become
/// their text, text that parses becomes a number or a date, dates and datetimes convert into
/// each other; anything else is lost (null; a checkbox `false`), as Salesforce warns when a
/// field's type changes.
pub fn convert(v: Val<'_>, to: FType) -> Val<'static> {
    let text = |write: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        write(&mut out);
        Val::Str(String::from_utf8_lossy(&out).into_owned().into())
    };
    match (v, to) {
        (Val::Str(s), FType::Text) => Val::Str(s.into_owned().into()),
        (Val::Num(n), FType::Text) => text(&|o| write_number(n, o)),
        (Val::Int(n), FType::Text) => text(&|o| write_int(n, o)),
        (Val::Date(d), FType::Text) => text(&|o| write_date(d, o)),
        (Val::DateTime(ms), FType::Text) => text(&|o| write_datetime(ms, o)),
        (Val::Time(t), FType::Text) => text(&|o| write_time(t, o)),
        (Val::Num(n), FType::Double) => Val::Num(n),
        (Val::Int(n), FType::Double) => Val::Num(n as f64),
        (Val::Str(s), FType::Double) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map_or(Val::Null, Val::Num),
        (Val::Bool(b), FType::Boolean) => Val::Bool(b),
        (Val::Str(s), FType::Boolean) => Val::Bool(s.trim().eq_ignore_ascii_case("true")),
        (_, FType::Boolean) => Val::Bool(false),
        (Val::Date(d), FType::Date) => Val::Date(d),
        (Val::DateTime(ms), FType::Date) => Val::Date(ms.div_euclid(86_400_000) as i32),
        (Val::Str(s), FType::Date) => parse_date(s.trim()).map_or(Val::Null, Val::Date),
        (Val::DateTime(ms), FType::DateTime) => Val::DateTime(ms),
        (Val::Date(d), FType::DateTime) => Val::DateTime(i64::from(d) * 86_400_000),
        (Val::Str(s), FType::DateTime) => {
            parse_stored_datetime(s.trim()).map_or(Val::Null, Val::DateTime)
        }
        _ => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Val<'static> {
        Val::Str(v.to_string().into())
    }

    #[test]
    fn values_convert_as_far_as_they_can() {
        assert_eq!(convert(Val::Num(12.5), FType::Text), s("12.5"));
        assert_eq!(convert(Val::Num(3.0), FType::Text), s("3"));
        assert_eq!(convert(Val::Date(0), FType::Text), s("1970-01-01"));
        assert_eq!(
            convert(Val::DateTime(1_000), FType::Text),
            s("1970-01-01T00:00:01.000+0000")
        );
        assert_eq!(convert(s(" 42.25 "), FType::Double), Val::Num(42.25));
        assert_eq!(convert(s("forty"), FType::Double), Val::Null);
        assert_eq!(convert(Val::Bool(true), FType::Text), Val::Null);
        assert_eq!(convert(s("TRUE"), FType::Boolean), Val::Bool(true));
        assert_eq!(convert(Val::Null, FType::Boolean), Val::Bool(false));
        assert_eq!(
            convert(Val::DateTime(86_400_000 * 3 + 5), FType::Date),
            Val::Date(3)
        );
        assert_eq!(
            convert(Val::Date(2), FType::DateTime),
            Val::DateTime(172_800_000)
        );
        assert_eq!(
            convert(s("2024-01-02"), FType::Date),
            parse_date("2024-01-02").map_or(Val::Null, Val::Date)
        );
        assert_eq!(convert(Val::Null, FType::Text), Val::Null);
    }
}
