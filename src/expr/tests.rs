//! Unit tests of the shared expression steps: parse, rename, plan, evaluate.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::{Planner, find_column, is_column, parse, rewrite_names};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("Score", DataType::Float64, true),
        Field::new("Account.Name", DataType::Utf8, true),
    ]))
}

#[test]
fn parse_takes_exactly_one_expression() {
    assert!(parse("round(score, 2) * 10").is_ok());
    assert_eq!(
        parse("score 42").unwrap_err(),
        "unexpected 42 after the expression"
    );
    assert_eq!(
        parse("score +").unwrap_err(),
        "sql parser error: Expected: an expression, found: EOF"
    );
}

#[test]
fn names_are_rewritten_to_the_resolved_columns() {
    let mut e = parse("upper(Account.Name) || ' ' || \"x.y\"").unwrap();
    let mut seen = Vec::new();
    let flow = rewrite_names(&mut e, |parts| {
        seen.push(parts.to_vec());
        Ok::<_, ()>(parts.join("/"))
    });
    assert_eq!(flow, ControlFlow::Continue(()));
    assert_eq!(seen, vec![vec!["Account", "Name"], vec!["x", "y"]]);
    assert_eq!(e.to_string(), "upper(\"Account/Name\") || ' ' || \"x/y\"");
    let mut e = parse("a + b").unwrap();
    let flow = rewrite_names(&mut e, |parts| Err::<String, _>(parts[0].clone()));
    assert_eq!(flow, ControlFlow::Break("a".to_string()));
    assert!(is_column(&parse("Id").unwrap(), "Id"));
    assert!(!is_column(&parse("Id || ''").unwrap(), "Id"));
}

#[test]
fn columns_are_found_exactly_then_ignoring_case() {
    let s = Schema::new(vec![
        Field::new("score", DataType::Float64, true),
        Field::new("Score", DataType::Float64, true),
        Field::new("Reason", DataType::Utf8, true),
    ]);
    assert_eq!(find_column(&s, "Score"), Some("Score"));
    assert_eq!(find_column(&s, "SCORE"), Some("score"));
    assert_eq!(find_column(&s, "reason"), Some("Reason"));
    assert_eq!(find_column(&s, "nope"), None);
}

#[test]
fn planned_expressions_know_their_type_and_evaluate_per_batch() {
    let schema = schema();
    let planner = Planner::new();
    let mut e = parse("round(score * 2, 1)").unwrap();
    let _ = rewrite_names(&mut e, |parts| {
        Ok::<_, ()>(find_column(&schema, &parts.join(".")).unwrap().to_string())
    });
    let plan = planner.plan(e, &schema).unwrap();
    assert_eq!(plan.data_type(), &DataType::Float64);
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![Some(1.26), None])),
            Arc::new(StringArray::from(vec![Some("Acme"), None])),
        ],
    )
    .unwrap();
    let values = plan.evaluate(&batch).unwrap();
    let values = values.as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!((values.value(0), values.is_null(1)), (2.5, true));
    // A constant is expanded to the batch's length.
    let constant = planner.plan(parse("'x'").unwrap(), &schema).unwrap();
    assert_eq!(constant.evaluate(&batch).unwrap().len(), 2);
    assert_eq!(
        planner
            .plan(parse("lowr(\"Account.Name\")").unwrap(), &schema)
            .unwrap_err(),
        "Error during planning: Invalid function 'lowr'.\nDid you mean 'lower'?"
    );
}
