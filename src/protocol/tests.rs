//! Exact JSON of every message sfetl sends, and tolerant parsing of what it receives.

use serde_json::{Value, json};

use super::*;

fn line(m: &AirbyteMessage) -> Value {
    let mut e = Emitter::new(Vec::new());
    e.emit(m).unwrap();
    let bytes = e.into_inner().unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'), "one message, one line");
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn connection_status_json() {
    assert_eq!(
        line(&AirbyteMessage::connection_status(
            ConnectionStatus::Failed,
            Some("no".into())
        )),
        json!({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "FAILED", "message": "no"}})
    );
}

#[test]
fn record_json_with_meta_changes() {
    let m = AirbyteMessage::record(AirbyteRecordMessage {
        namespace: None,
        stream: "Account".into(),
        data: json!({"Id": "001000000000001AAA", "Name": "Acme"}),
        emitted_at: 1_700_000_000_123,
        meta: Some(RecordMeta {
            changes: vec![RecordChange {
                field: "Description".into(),
                change: RecordChangeKind::Nulled,
                reason: RecordChangeReason::SourceSerializationError,
            }],
        }),
    });
    assert_eq!(
        line(&m),
        json!({"type": "RECORD", "record": {"stream": "Account",
            "data": {"Id": "001000000000001AAA", "Name": "Acme"}, "emitted_at": 1_700_000_000_123i64,
            "meta": {"changes": [{"field": "Description", "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}]}}})
    );
}

#[test]
fn stream_state_json_with_source_stats() {
    let m = AirbyteMessage::state(AirbyteStateMessage::stream(
        StreamDescriptor::named("Lead"),
        json!({"cursor": "2024-05-01T00:00:00.000Z"}),
        42.0,
    ));
    assert_eq!(
        line(&m),
        json!({"type": "STATE", "state": {"type": "STREAM",
            "stream": {"stream_descriptor": {"name": "Lead"}, "stream_state": {"cursor": "2024-05-01T00:00:00.000Z"}},
            "sourceStats": {"recordCount": 42.0}}})
    );
}

#[test]
fn global_state_and_destination_stats_round_trip() {
    let v = json!({"type": "GLOBAL", "global": {"shared_state": {"a": 1},
        "stream_states": [{"stream_descriptor": {"name": "Contact"}, "stream_state": {"c": 1}}]},
        "destinationStats": {"recordCount": 3.0}});
    let s: AirbyteStateMessage = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(s.kind, Some(AirbyteStateType::Global));
    assert_eq!(
        s.destination_stats.as_ref().unwrap().record_count,
        Some(3.0)
    );
    assert_eq!(serde_json::to_value(&s).unwrap(), v);
}

#[test]
fn trace_error_json() {
    let mut m = AirbyteMessage::error(FailureType::ConfigError, "bad");
    m.trace.as_mut().unwrap().emitted_at = 1.0;
    assert_eq!(
        line(&m),
        json!({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": 1.0,
            "error": {"message": "bad", "failure_type": "config_error"}}})
    );
}

#[test]
fn trace_estimate_and_stream_status_json() {
    let est = AirbyteMessage::trace(AirbyteTraceMessage {
        kind: TraceType::Estimate,
        emitted_at: 2.0,
        error: None,
        estimate: Some(AirbyteEstimateTraceMessage {
            name: "Account".into(),
            namespace: None,
            kind: EstimateType::Stream,
            row_estimate: Some(1000),
            byte_estimate: None,
        }),
        stream_status: None,
        analytics: None,
    });
    assert_eq!(
        line(&est),
        json!({"type": "TRACE", "trace": {"type": "ESTIMATE", "emitted_at": 2.0,
            "estimate": {"name": "Account", "type": "STREAM", "row_estimate": 1000}}})
    );
    let st = AirbyteMessage::trace(AirbyteTraceMessage {
        kind: TraceType::StreamStatus,
        emitted_at: 3.0,
        error: None,
        estimate: None,
        stream_status: Some(AirbyteStreamStatusTraceMessage {
            stream_descriptor: StreamDescriptor::named("Account"),
            status: AirbyteStreamStatus::Incomplete,
        }),
        analytics: None,
    });
    assert_eq!(
        line(&st),
        json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 3.0,
            "stream_status": {"stream_descriptor": {"name": "Account"}, "status": "INCOMPLETE"}}})
    );
}

#[test]
fn log_and_control_json() {
    assert_eq!(
        line(&AirbyteMessage::log(LogLevel::Warn, "careful")),
        json!({"type": "LOG", "log": {"level": "WARN", "message": "careful"}})
    );
    let mut c = AirbyteMessage::connector_config(json!({"client_id": "x", "refresh_token": "new"}));
    c.control.as_mut().unwrap().emitted_at = 5.0;
    assert_eq!(
        line(&c),
        json!({"type": "CONTROL", "control": {"type": "CONNECTOR_CONFIG", "emitted_at": 5.0,
            "connectorConfig": {"config": {"client_id": "x", "refresh_token": "new"}}}})
    );
}

#[test]
fn catalog_json() {
    let m = AirbyteMessage::catalog(AirbyteCatalog {
        streams: vec![AirbyteStream {
            name: "Account".into(),
            json_schema: json!({"type": "object", "properties": {}}),
            supported_sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
            source_defined_cursor: Some(true),
            default_cursor_field: Some(vec!["SystemModstamp".into()]),
            source_defined_primary_key: Some(vec![vec!["Id".into()]]),
            namespace: None,
            is_resumable: Some(true),
        }],
    });
    assert_eq!(
        line(&m),
        json!({"type": "CATALOG", "catalog": {"streams": [{"name": "Account",
            "json_schema": {"type": "object", "properties": {}},
            "supported_sync_modes": ["full_refresh", "incremental"],
            "source_defined_cursor": true, "default_cursor_field": ["SystemModstamp"],
            "source_defined_primary_key": [["Id"]], "is_resumable": true}]}})
    );
}

#[test]
fn configured_catalog_accepts_unknown_fields_and_every_destination_mode() {
    for mode in [
        "append",
        "overwrite",
        "append_dedup",
        "update",
        "soft_delete",
    ] {
        let v = json!({"streams": [{"stream": {"name": "Lead", "json_schema": {}, "supported_sync_modes": ["full_refresh"],
            "is_file_based": false, "future_field": 1},
            "sync_mode": "full_refresh", "destination_sync_mode": mode, "generation_id": 3,
            "minimum_generation_id": 0, "sync_id": 9, "something_new": {"x": 1}}], "extra": true});
        let c: ConfiguredAirbyteCatalog = serde_json::from_value(v).unwrap();
        assert_eq!(c.streams[0].stream.name, "Lead");
        assert_eq!(c.streams[0].generation_id, Some(3));
    }
}

#[test]
fn input_record_and_state_messages_parse_with_unknown_fields() {
    let r: AirbyteMessage = serde_json::from_str(
        r#"{"type":"RECORD","record":{"stream":"person_scores","data":{"score":1.5},"emitted_at":1,"new_thing":2},"other":1}"#,
    )
    .unwrap();
    assert_eq!(r.kind, MessageType::Record);
    assert_eq!(r.record.unwrap().data, json!({"score": 1.5}));
    let s: AirbyteMessage = serde_json::from_str(
        r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"person_scores"},"stream_state":{"n":1}},"id":7}}"#,
    )
    .unwrap();
    assert_eq!(
        s.state.unwrap().stream.unwrap().stream_descriptor.name,
        "person_scores"
    );
}

#[test]
fn records_are_buffered_and_other_messages_flushed() {
    struct Counting(std::rc::Rc<std::cell::Cell<usize>>);
    impl std::io::Write for Counting {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.set(self.0.get() + 1);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let writes = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut e = Emitter::new(Counting(writes.clone()));
    let rec = AirbyteMessage::record(AirbyteRecordMessage {
        namespace: None,
        stream: "A".into(),
        data: json!({}),
        emitted_at: 0,
        meta: None,
    });
    for _ in 0..100 {
        e.emit(&rec).unwrap();
    }
    assert_eq!(writes.get(), 0, "records stay in the buffer");
    e.emit(&AirbyteMessage::log(LogLevel::Info, "x")).unwrap();
    assert_eq!(writes.get(), 1, "a non-record message flushes once");
}
