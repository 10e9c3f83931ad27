//! The planner's decisions for exact inputs: fields, API, cursor, bounds, windows, saved state.

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::protocol::ConfiguredAirbyteCatalog;

fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn config(extra: Value) -> Config {
    let mut v = json!({"client_id": "x", "refresh_token": "r"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    Config::from_value(v).unwrap()
}

fn describe() -> SObjectDescribe {
    serde_json::from_value(json!({
        "name": "Document", "queryable": true, "replicateable": true,
        "fields": [
            {"name": "Id", "type": "id", "nillable": false},
            {"name": "Name", "type": "string", "length": 80},
            {"name": "Body", "type": "base64"},
            {"name": "SystemModstamp", "type": "datetime", "nillable": false},
            {"name": "IsDeleted", "type": "boolean", "nillable": false}
        ]
    }))
    .unwrap()
}

fn stream(mode: &str, fields: &[&str]) -> ConfiguredAirbyteStream {
    let props: serde_json::Map<String, Value> =
        fields.iter().map(|f| (f.to_string(), json!({}))).collect();
    let catalog: ConfiguredAirbyteCatalog = serde_json::from_value(json!({"streams": [{
        "stream": {"name": "Document", "json_schema": {"properties": props},
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": mode, "destination_sync_mode": "append"}]}))
    .unwrap();
    catalog.streams.into_iter().next().unwrap()
}

#[test]
fn base64_fields_choose_rest_unless_bulk_is_forced() {
    let cs = stream("incremental", &["Id", "Name", "Body"]);
    let p = plan_object_stream(&cs, &describe(), &config(json!({})), None).unwrap();
    let o = &p.objects[0];
    assert_eq!(o.api, Api::Rest);
    assert_eq!(o.cursor, Some("SystemModstamp"));
    assert!(p.incremental);
    assert_eq!(p.out_schema.fields().last().unwrap().name(), DELETED_AT);
    assert_eq!(
        p.notes,
        vec![(
            LogLevel::Info,
            "Document: reading with the REST API because base64 fields are selected (Bulk API cannot read them)".to_string()
        )]
    );

    let forced = config(json!({"force_use_bulk_api": true}));
    let p = plan_object_stream(&cs, &describe(), &forced, None).unwrap();
    assert_eq!(p.objects[0].api, Api::Bulk);
    assert!(p.objects[0].bulk.select.iter().all(|f| f != "Body"));
    assert_eq!(p.notes[0].0, LogLevel::Warn);
}

#[test]
fn unknown_selected_fields_are_left_out() {
    // Whether the stream may be read without them is `drift`'s call, made before planning.
    let cs = stream("full_refresh", &["Id", "Nope__c"]);
    let p = plan_object_stream(&cs, &describe(), &config(json!({})), None).unwrap();
    assert!(!p.incremental);
    assert_eq!(p.notes, vec![]);
    assert_eq!(p.objects[0].bulk.select, vec!["Id", "SystemModstamp"]);
}

#[test]
fn saved_state_sets_the_cursor_and_bad_state_is_named() {
    let cs = stream("incremental", &["Id", "Name"]);
    let saved = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
                       "output": {"sync_id": "s1", "parts": 2}});
    let p = plan_object_stream(&cs, &describe(), &config(json!({})), Some(&saved)).unwrap();
    assert_eq!(p.objects[0].saved_at, Some(t(2024, 3, 1, 0)));
    assert_eq!(p.saved.output.as_ref().unwrap().parts, 2);
    assert!(p.has_state);

    let full = stream("full_refresh", &["Id"]);
    let p = plan_object_stream(&full, &describe(), &config(json!({})), Some(&saved)).unwrap();
    assert_eq!(
        p.objects[0].saved_at, None,
        "a full refresh ignores the cursor"
    );

    let bad = json!({"cursor": "yesterday"});
    let e = plan_object_stream(&cs, &describe(), &config(json!({})), Some(&bad)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the saved state of stream Document is not usable: \"yesterday\" is not a datetime. Pass the `state` of the last STATE message sfetl printed for it, or leave the stream out of --state to start it afresh"
    );
}

#[test]
fn deletions_lagging_the_saved_cursor_are_planned_for_incremental_reads_only() {
    let cs = stream("incremental", &["Id", "Name"]);
    let saved = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
                       "deletions_to": "2024-02-20T00:00:00.000Z"});
    let p = plan_object_stream(&cs, &describe(), &config(json!({})), Some(&saved)).unwrap();
    assert_eq!(p.objects[0].saved_at, Some(t(2024, 3, 1, 0)));
    assert_eq!(p.objects[0].deletions_to, Some(t(2024, 2, 20, 0)));
    let old = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z"});
    let p = plan_object_stream(&cs, &describe(), &config(json!({})), Some(&old)).unwrap();
    assert_eq!(p.objects[0].deletions_to, None);
    let full = stream("full_refresh", &["Id"]);
    let p = plan_object_stream(&full, &describe(), &config(json!({})), Some(&saved)).unwrap();
    assert_eq!(p.objects[0].deletions_to, None, "a full refresh has none");
}

#[test]
fn a_field_the_cursor_was_read_without_reads_the_object_again_unless_ignored() {
    let cs = stream("incremental", &["Id", "Name"]);
    let saved = |fields: Value| {
        json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
               "fields_read": {"Document": fields}})
    };
    let planned = |c: &Config, state: &Value| {
        let mut p = plan_object_stream(&cs, &describe(), c, Some(state)).unwrap();
        plan_backfills(&mut p, c);
        p
    };
    let backfill = config(json!({"start_date": "2020-01-01"}));
    // Read before with Id and the cursor only: Name is new (compared case-insensitively).
    let p = planned(&backfill, &saved(json!(["id", "SystemModstamp"])));
    assert_eq!(p.objects[0].saved_at, None);
    let b = p.objects[0].backfill.as_ref().unwrap();
    assert_eq!(
        (b.cursor, b.fields.clone(), b.note),
        (t(2024, 3, 1, 0), vec!["Name".to_string()], 0)
    );
    assert_eq!(
        p.notes,
        vec![(LogLevel::Warn, "Document: the read now includes a field (Name) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security): reading every row again from start_date (2020-01-01T00:00:00.000Z), so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)".to_string())]
    );
    let ignore = config(json!({"new_fields": "ignore"}));
    let p = planned(&ignore, &saved(json!(["Id", "SystemModstamp"])));
    assert_eq!(p.objects[0].saved_at, Some(t(2024, 3, 1, 0)));
    assert_eq!(p.notes[0].0, LogLevel::Info);
    // Fewer fields than before, the same ones, or none recorded (an older sfetl's state):
    // nothing to backfill.
    for fields in [
        json!(["Id", "Name", "Body", "SystemModstamp"]),
        json!(["Id", "Name", "SystemModstamp"]),
    ] {
        let p = planned(&backfill, &saved(fields));
        assert_eq!(p.objects[0].saved_at, Some(t(2024, 3, 1, 0)));
        assert_eq!(p.notes, vec![]);
    }
    let older = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z"});
    assert_eq!(
        planned(&backfill, &older).objects[0].saved_at,
        Some(t(2024, 3, 1, 0))
    );
    let bad = saved(json!("Id"));
    let e = plan_object_stream(&cs, &describe(), &backfill, Some(&bad)).unwrap_err();
    assert!(
        e.reason
            .starts_with("`fields_read` must map each object to the list of its field names"),
        "{e}"
    );
}

#[test]
fn a_start_date_earlier_than_the_saved_one_reads_the_object_again() {
    let cs = stream("incremental", &["Id", "Name"]);
    let saved = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
                       "start_date": {"Document": "2023-01-01T00:00:00.000Z"}});
    let planned = |extra: Value| {
        let c = config(extra);
        let mut p = plan_object_stream(&cs, &describe(), &c, Some(&saved)).unwrap();
        plan_backfills(&mut p, &c);
        p
    };
    for (extra, again) in [
        (json!({"start_date": "2022-06-01"}), true),
        (json!({}), true),
        (json!({"start_date": "2023-01-01"}), false),
        (json!({"start_date": "2023-06-01"}), false),
    ] {
        let p = planned(extra.clone());
        assert_eq!(p.objects[0].saved_at.is_none(), again, "{extra}");
        assert_eq!(p.notes.len(), usize::from(again), "{extra}");
    }
    assert_eq!(
        planned(json!({})).notes[0].1,
        "Document: start_date is earlier than the 2023-01-01T00:00:00.000Z the saved cursor's reads began at: reading every row again from the beginning, so the rows before 2023-01-01T00:00:00.000Z are read too"
    );
}

#[test]
fn bounds_from_state_start_date_end_date_and_lag() {
    let now = t(2024, 6, 1, 12);
    let c = config(
        json!({"start_date": "2024-01-01", "lookback_window": "PT1H", "cursor_lag": "PT2M"}),
    );
    let b = bounds(&c, None, now);
    assert_eq!(b.lower, Some(t(2024, 1, 1, 0)));
    assert_eq!(b.upper, now - chrono::Duration::minutes(2));
    let b = bounds(&c, Some(t(2024, 5, 1, 10)), now);
    assert_eq!(
        b.lower,
        Some(t(2024, 5, 1, 9)),
        "saved cursor minus the lookback"
    );
    let ended = config(json!({"end_date": "2024-02-01"}));
    assert_eq!(bounds(&ended, None, now).upper, t(2024, 2, 1, 0));
    // An end_date still to come bounds nothing yet: the read (and its saved cursor) stops at
    // now minus cursor_lag, so changes made before the end_date are read by the next run.
    let later = config(json!({"end_date": "2100-01-01", "cursor_lag": "PT2M"}));
    let b = bounds(&later, None, now);
    assert_eq!(b.upper, now - chrono::Duration::minutes(2));
    assert_eq!(
        query_bounds(&later, false, b, now).upper,
        now + chrono::Duration::seconds(1),
        "a full refresh reads up to the next whole second"
    );
    assert_eq!(query_bounds(&later, true, b, now).upper, b.upper);
    let b = bounds(&ended, None, now);
    assert_eq!(query_bounds(&ended, false, b, now).upper, t(2024, 2, 1, 0));
}

#[test]
fn windows_per_mode() {
    let step = IsoDuration::parse("P10D").unwrap();
    let b = Bounds {
        lower: Some(t(2024, 1, 1, 0)),
        upper: t(2024, 1, 25, 0),
    };
    assert_eq!(windows(None, true, b), Windows::Whole);
    assert_eq!(
        windows(Some("SystemModstamp"), false, b),
        Windows::Listed(vec![Window {
            lower: b.lower,
            upper: b.upper
        }]),
        "a full refresh is one window"
    );
    assert_eq!(windows(Some("SystemModstamp"), true, b), Windows::Sized(b));
    // Without counts: windows of the step from the saved cursor, or one window.
    match calendar_windows(Some(t(2024, 1, 1, 0)), b, Some(&step)) {
        Windows::Listed(w) => assert_eq!(w.len(), 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        calendar_windows(Some(t(2024, 1, 1, 0)), b, None),
        Windows::Listed(vec![Window {
            lower: b.lower,
            upper: b.upper
        }])
    );
    assert_eq!(
        calendar_windows(None, b, Some(&step)),
        Windows::FromFirstRow(b)
    );
    // A first sync starts on the day of the first row, not at the start date.
    let w = windows_from_first_row(b, Some(t(2024, 1, 20, 15)), Some(&step));
    assert_eq!(
        w,
        vec![Window {
            lower: Some(t(2024, 1, 20, 0)),
            upper: t(2024, 1, 25, 0)
        }]
    );
    assert_eq!(
        windows_from_first_row(b, Some(t(2024, 1, 2, 15)), None),
        vec![Window {
            lower: Some(t(2024, 1, 2, 0)),
            upper: t(2024, 1, 25, 0)
        }],
        "one window without a step"
    );
    assert!(windows_from_first_row(b, None, Some(&step)).is_empty());
}

#[test]
fn future_cursors_are_named() {
    let now = t(2024, 6, 1, 12);
    let c = config(json!({}));
    let b = bounds(&c, Some(t(2099, 1, 1, 0)), now);
    let text = future_cursor("Account", Some(t(2099, 1, 1, 0)), &c, b, now).unwrap();
    assert_eq!(
        text,
        "Account: the saved cursor 2099-01-01T00:00:00.000Z is in the future (the read stops at 2024-06-01T11:58:00.000Z, now minus cursor_lag): nothing can be read past it, so this run reads no row and saves 2024-06-01T11:58:00.000Z as the cursor. Check the state passed with --state, or start_date"
    );
    let late_start = config(json!({"start_date": "2099-01-01"}));
    let b = bounds(&late_start, None, now);
    assert!(
        future_cursor("Account", None, &late_start, b, now)
            .unwrap()
            .contains("the start_date 2099-01-01T00:00:00.000Z is in the future")
    );
    let b = bounds(&c, Some(t(2024, 5, 1, 0)), now);
    assert_eq!(
        future_cursor("Account", Some(t(2024, 5, 1, 0)), &c, b, now),
        None
    );
}

#[test]
fn a_full_refresh_reads_its_last_window_to_the_end_unless_end_date_ends_it() {
    let w = |lower, upper| Window {
        lower: Some(lower),
        upper,
    };
    let read = |end_date: Option<&str>, incremental: bool| {
        let c = match end_date {
            Some(d) => config(json!({ "end_date": d })),
            None => config(json!({})),
        };
        let mut ws = vec![
            w(t(2024, 1, 1, 0), t(2024, 2, 1, 0)),
            w(t(2024, 2, 1, 0), t(2024, 3, 1, 0)),
        ];
        open_full_refresh_end(&c, incremental, &mut ws, t(2024, 3, 15, 0));
        ws.iter().map(Window::is_open).collect::<Vec<_>>()
    };
    assert_eq!(read(None, false), [false, true]);
    assert_eq!(read(Some("2030-01-01T00:00:00Z"), false), [false, true]);
    // `end_date` has passed: it ends the read, and the window keeps its bound.
    assert_eq!(read(Some("2024-03-01T00:00:00Z"), false), [false, false]);
    // An incremental read stays bounded: its STATE says it read up to the bound.
    assert_eq!(read(None, true), [false, false]);
}

#[test]
fn windows_salesforce_gave_up_on_are_halved_at_whole_seconds_down_to_one_second() {
    let w = |lower: Option<DateTime<Utc>>, upper| Window { lower, upper };
    let halves = |w| halves(w, t(2030, 1, 1, 0));
    let (a, b) = halves(w(Some(t(2025, 1, 1, 0)), t(2025, 1, 3, 0))).unwrap();
    assert_eq!(a, w(Some(t(2025, 1, 1, 0)), t(2025, 1, 2, 0)));
    assert_eq!(b, w(Some(t(2025, 1, 2, 0)), t(2025, 1, 3, 0)));
    let ms = |n: i64| DateTime::<Utc>::from_timestamp_millis(n).unwrap();
    // Three seconds: split at the whole second inside.
    let (a, b) = halves(w(Some(ms(1_000)), ms(4_000))).unwrap();
    assert_eq!((a.upper, b.lower), (ms(2_000), Some(ms(2_000))));
    // Just over a second with no whole second strictly inside: split at the middle.
    let (a, _) = halves(w(Some(ms(0)), ms(1_002))).unwrap();
    assert_eq!(a.upper, ms(501));
    assert_eq!(halves(w(Some(ms(0)), ms(1_000))), None);
    assert_eq!(halves(w(None, ms(100_000))), None);
    // An open window (a full refresh's last) is split as if it ended now; its later half stays
    // open.
    let open = w(Some(t(2025, 1, 1, 0)), Window::OPEN);
    let (a, b) = super::halves(open, t(2025, 1, 3, 0)).unwrap();
    assert_eq!(a, w(Some(t(2025, 1, 1, 0)), t(2025, 1, 2, 0)));
    assert_eq!(b, w(Some(t(2025, 1, 2, 0)), Window::OPEN));
    assert!(b.is_open() && !a.is_open());
}

#[test]
fn formulas_read_are_recorded_with_the_formulas_they_read() {
    let d: SObjectDescribe = serde_json::from_value(json!({
        "name": "Document", "queryable": true, "replicateable": true,
        "fields": [
            {"name": "Id", "type": "id", "nillable": false},
            {"name": "Name", "type": "string"},
            {"name": "Size__c", "type": "double", "calculated": true,
             "calculatedFormula": "LEN(Name) * Weight__c"},
            {"name": "Weight__c", "type": "double", "calculated": true,
             "calculatedFormula": "IF(ISBLANK(Name), 0, Base__c)"},
            {"name": "Base__c", "type": "double"},
            {"name": "Label__c", "type": "string", "calculated": true,
             "calculatedFormula": "\"Size__c\" & Name"},
            {"name": "SystemModstamp", "type": "datetime", "nillable": false}
        ]
    }))
    .unwrap();
    let p = plan_object_stream(
        &stream(
            "incremental",
            &["Id", "Size__c", "Label__c", "SystemModstamp"],
        ),
        &d,
        &config(json!({})),
        None,
    )
    .unwrap();
    // Weight__c is not selected, but Size__c changes with its definition; a field named in a
    // string literal is not read.
    assert_eq!(
        p.objects[0]
            .fields_read
            .iter()
            .filter(|f| f.starts_with("formula "))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            "formula Size__c = LEN(Name) * Weight__c".to_string(),
            "formula Label__c = \"Size__c\" & Name".to_string(),
            "formula Weight__c = IF(ISBLANK(Name), 0, Base__c)".to_string(),
        ]
    );
}

#[test]
fn formulas_a_filter_reads_are_recorded_and_kept_apart() {
    let d: SObjectDescribe = serde_json::from_value(json!({
        "name": "Document", "queryable": true, "replicateable": true,
        "fields": [
            {"name": "Name", "type": "string"},
            {"name": "Size__c", "type": "double", "calculated": true,
             "calculatedFormula": "LEN(Name) * Weight__c"},
            {"name": "Weight__c", "type": "double", "calculated": true,
             "calculatedFormula": "IF(ISBLANK(Name), 0, Base__c)"},
            {"name": "Base__c", "type": "double"}
        ]
    }))
    .unwrap();
    let size = "formula Size__c = LEN(Name) * Weight__c".to_string();
    let weight = "formula Weight__c = IF(ISBLANK(Name), 0, Base__c)".to_string();
    // The formula read through another is the filter's too; a parent's path and a plain
    // field add nothing here (a parent's definitions need its describe).
    assert_eq!(
        filter_formulas(
            Some(&d),
            Some("size__c > 3 AND Base__c = 1 AND Account.Size__c > 0")
        ),
        vec![size.clone(), weight.clone()]
    );
    assert!(filter_formulas(Some(&d), Some("Name = 'Size__c'")).is_empty());
    assert!(filter_formulas(None, Some("Size__c > 3")).is_empty());
    let mut read = vec!["Id".to_string(), size.clone()];
    add_entries(&mut read, &[size.clone(), weight.clone()]);
    assert_eq!(read, vec!["Id".to_string(), size, weight]);
}
