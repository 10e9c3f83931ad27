//! One table schema over the files of a stream whose syncs wrote different columns.
//!
//! Why: a field added to Salesforce appears in the syncs after it, a field deleted or hidden
//! disappears from them, and after a type change (read once the catalog was discovered again)
//! a column holds another type. Querying the stream must union every sync by column name, with
//! nulls where a sync lacks a column, and never fail on it. Types that differ are widened when
//! one holds the other (integers, decimals, floats, text); any other pair is read as text in
//! every sync, with a note naming the column and both types.

use std::sync::Arc;

use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::QueryError;

/// The union of a stream's file schemas.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Unified {
    /// Every column of every sync, in first-seen order (oldest sync first).
    pub schema: SchemaRef,
    /// Whether the files differ at all (if not, DataFusion's own inference is kept).
    pub differs: bool,
    /// One sentence per column read as text because its type changed between syncs.
    pub notes: Vec<String>,
}

/// The type both `a` and `b` fit in without loss, if there is one: null with anything,
/// integers as Int64, integers and decimals as a decimal wide enough, floats with any number
/// as Float64, text as Utf8.
pub(super) fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    let as_decimal = |t: &DataType| match t {
        Int8 | Int16 | Int32 | UInt8 | UInt16 => Some((10u8, 0i8)),
        Int64 | UInt32 | UInt64 => Some((20, 0)),
        Decimal128(p, s) => Some((*p, *s)),
        _ => None,
    };
    let is_text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let is_float = |t: &DataType| matches!(t, Float16 | Float32 | Float64);
    Some(match (a, b) {
        _ if a == b => a.clone(),
        (Null, t) | (t, Null) => t.clone(),
        _ if a.is_integer() && b.is_integer() => Int64,
        _ if is_text(a) && is_text(b) => Utf8,
        _ if (is_float(a) && b.is_numeric()) || (is_float(b) && a.is_numeric()) => Float64,
        _ => {
            let (pa, sa) = as_decimal(a)?;
            let (pb, sb) = as_decimal(b)?;
            let scale = sa.max(sb);
            let int_digits = (pa as i16 - sa as i16).max(pb as i16 - sb as i16);
            Decimal128((int_digits + scale as i16).clamp(1, 38) as u8, scale)
        }
    })
}

/// Unifies the schemas of `files` ((sync id, schema), oldest first) of `stream`.
pub(super) fn unify(stream: &str, files: &[(String, SchemaRef)]) -> Result<Unified, QueryError> {
    let differs = files.windows(2).any(|w| w[0].1.fields() != w[1].1.fields());
    // (field, sync id that set its type)
    let mut columns: Vec<(Field, String)> = Vec::new();
    let mut notes = Vec::new();
    for (sync, schema) in files {
        for f in schema.fields() {
            let Some((have, since)) = columns.iter_mut().find(|(c, _)| c.name() == f.name()) else {
                columns.push((f.as_ref().clone(), sync.clone()));
                continue;
            };
            let nullable = have.is_nullable() || f.is_nullable();
            let merged = match widen(have.data_type(), f.data_type()) {
                Some(t) => t,
                None => {
                    let text = DataType::Utf8;
                    if !can_cast_types(have.data_type(), &text)
                        || !can_cast_types(f.data_type(), &text)
                    {
                        return Err(QueryError::TypeChanged {
                            column: format!("{stream}.{}", f.name()),
                            types: [
                                (since.clone(), have.data_type().to_string()),
                                (sync.clone(), f.data_type().to_string()),
                            ],
                        });
                    }
                    notes.push(format!(
                        "{stream}.{} is {} in sync {since} and {} in sync {sync}: it is read as text in every sync",
                        f.name(),
                        have.data_type(),
                        f.data_type()
                    ));
                    text
                }
            };
            *have = Field::new(f.name(), merged, nullable);
        }
    }
    // A column some sync lacks is null there.
    let fields: Vec<Field> = columns
        .into_iter()
        .map(|(f, _)| {
            let everywhere = files
                .iter()
                .all(|(_, s)| s.field_with_name(f.name()).is_ok());
            let nullable = f.is_nullable() || !everywhere;
            f.with_nullable(nullable)
        })
        .collect();
    let metadata = files
        .last()
        .map(|(_, s)| s.metadata().clone())
        .unwrap_or_default();
    Ok(Unified {
        schema: Arc::new(Schema::new_with_metadata(fields, metadata)),
        differs,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn added_and_dropped_columns_union_by_name_as_nullable() {
        let s1 = schema(&[
            ("Id", DataType::Utf8, false),
            ("Industry", DataType::Utf8, true),
            ("Score", DataType::Decimal128(18, 2), true),
        ]);
        let s2 = schema(&[
            ("Id", DataType::Utf8, false),
            ("Score", DataType::Decimal128(16, 4), true),
            ("Tier__c", DataType::Utf8, true),
        ]);
        let u = unify("Account", &[("a".into(), s1.clone()), ("b".into(), s2)]).unwrap();
        assert!(u.differs);
        assert_eq!(u.notes, Vec::<String>::new());
        assert_eq!(
            u.schema
                .fields()
                .iter()
                .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
                .collect::<Vec<_>>(),
            vec![
                ("Id", DataType::Utf8, false),
                ("Industry", DataType::Utf8, true),
                ("Score", DataType::Decimal128(20, 4), true),
                ("Tier__c", DataType::Utf8, true),
            ]
        );
        let same = unify("Account", &[("a".into(), s1.clone()), ("b".into(), s1)]).unwrap();
        assert!(!same.differs);
    }

    #[test]
    fn a_type_change_reads_as_text_with_a_note() {
        let s1 = schema(&[("Score__c", DataType::Decimal128(18, 2), true)]);
        let s2 = schema(&[("Score__c", DataType::Utf8, true)]);
        let u = unify("Contact", &[("s1".into(), s1), ("s2".into(), s2)]).unwrap();
        assert_eq!(u.schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            u.notes,
            vec![
                "Contact.Score__c is Decimal128(18, 2) in sync s1 and Utf8 in sync s2: it is read as text in every sync"
            ]
        );
        assert_eq!(
            widen(&DataType::Int32, &DataType::Int64),
            Some(DataType::Int64)
        );
        assert_eq!(
            widen(&DataType::Float64, &DataType::Decimal128(18, 2)),
            Some(DataType::Float64)
        );
        assert_eq!(
            widen(&DataType::Null, &DataType::Boolean),
            Some(DataType::Boolean)
        );
        assert_eq!(widen(&DataType::Boolean, &DataType::Utf8), None);
    }
}
