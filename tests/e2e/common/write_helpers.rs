//! Helpers of the write-back tests: a simulator whose config has the README's `writeback`
//! example (with overrides), a catalog of its two streams, `sfetl write` runs, and what the
//! org stored (`/__sim/record`) and the rejects files hold. Shared by `write.rs` and
//! `write_hardening.rs`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Org, assert_ok, refresh_config, sfetl, write_json};

/// A simulator, a temp folder, a config with a `writeback` section and a catalog.
pub struct WriteEnv {
    pub org: Org,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub catalog: PathBuf,
}

/// The README's writeback example: scores to Lead / Contact by `source_object`, enrichment
/// upserted into Account by `External_Id__c`.
pub fn example_writeback(rejects: &Path) -> Value {
    json!({
      "streams": {
        "person_scores": {
          "routes": [
            {"object": "Lead", "when": "source_object = 'Lead'", "operation": "update",
             "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}},
            {"object": "Contact", "when": "source_object = 'Contact'", "operation": "update",
             "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}}
          ]
        },
        "account_enrichment": {
          "routes": [{"object": "Account", "operation": "upsert", "external_id": "External_Id__c",
                      "fields": {"External_Id__c": "ext_id", "Description": "summary"}}]
        }
      },
      "rejects_path": rejects.display().to_string()
    })
}

/// A simulator (scale 20) with the example writeback, `extra` merged into it (`streams`
/// entries replace streams; other keys replace settings); request counts reset.
pub async fn write_env(extra: Value) -> WriteEnv {
    let org = Org::start(20).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = refresh_config(&org.sim);
    let mut wb = example_writeback(&dir.path().join("rejects"));
    for (k, v) in extra.as_object().unwrap() {
        if k == "streams" {
            for (stream, routes) in v.as_object().unwrap() {
                wb["streams"][stream] = routes.clone();
            }
        } else {
            wb[k] = v.clone();
        }
    }
    cfg["writeback"] = wb;
    let config = write_json(dir.path(), "config.json", &cfg);
    let catalog = write_json(
        dir.path(),
        "catalog.json",
        &json!({"streams": [
            {"stream": {"name": "person_scores", "supported_sync_modes": ["full_refresh"],
                        "json_schema": {"type": "object", "properties": {
                            "source_object": {"type": "string"}, "source_id": {"type": "string"},
                            "score": {"type": ["null", "number"]}, "reason": {"type": ["null", "string"]}}}},
             "sync_mode": "full_refresh", "destination_sync_mode": "append"},
            {"stream": {"name": "account_enrichment", "supported_sync_modes": ["full_refresh"],
                        "json_schema": {"type": "object", "properties": {
                            "ext_id": {"type": "string"}, "summary": {"type": "string"}}}},
             "sync_mode": "full_refresh", "destination_sync_mode": "append"}
        ]}),
    );
    org.control("stats/reset", &json!({})).await;
    WriteEnv {
        org,
        dir,
        config,
        catalog,
    }
}

impl WriteEnv {
    /// Runs `sfetl write --catalog` with `lines` on stdin.
    pub async fn write(&self, lines: &[Value]) -> Output {
        self.write_with(lines, &[]).await
    }

    /// Runs `sfetl write --catalog` with `lines` on stdin and `extra` arguments after.
    pub async fn write_with(&self, lines: &[Value], extra: &[&str]) -> Output {
        let mut child = sfetl()
            .args([
                "write",
                "--config",
                self.config.to_str().unwrap(),
                "--catalog",
                self.catalog.to_str().unwrap(),
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut text = String::new();
        for l in lines {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        stdin.write_all(text.as_bytes()).await.unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    /// Runs `sfetl write` like [`WriteEnv::write_with`] and asserts it succeeded.
    pub async fn write_ok(&self, lines: &[Value], extra: &[&str]) -> Output {
        let out = self.write_with(lines, extra).await;
        assert_ok(&out);
        out
    }

    /// Runs `sfetl write --input FILE --stream STREAM`.
    pub async fn write_file(&self, input: &Path, stream: &str) -> Output {
        sfetl()
            .args([
                "write",
                "--config",
                self.config.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--stream",
                stream,
            ])
            .output()
            .await
            .unwrap()
    }

    /// The first `n` live ids of `object`, by Id.
    pub async fn ids(&self, object: &str, n: usize) -> Vec<String> {
        let (_, v) = self
            .org
            .query(&format!("SELECT Id FROM {object} ORDER BY Id LIMIT {n}"))
            .await;
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect()
    }

    /// The stored `Score__c` of a record.
    pub async fn score_of(&self, object: &str, id: &str) -> Option<f64> {
        self.stored(object, id).await["Score__c"].as_f64()
    }

    /// The record as the simulator stores it.
    pub async fn stored(&self, object: &str, id: &str) -> Value {
        self.org
            .http
            .get(self.org.url(&format!("/__sim/record/{object}/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// (sObject Collections calls, Bulk ingest calls) since the counts were reset.
    pub async fn calls(&self) -> (u64, u64) {
        let v = self.org.stats().await;
        (
            v["by_kind"]["collections"].as_u64().unwrap_or(0),
            v["by_kind"]["bulk_ingest"].as_u64().unwrap_or(0),
        )
    }

    /// Every row of the rejects Parquet files of `stream`, in one batch per file.
    pub fn rejects(&self, stream: &str) -> Vec<RecordBatch> {
        let root = self.dir.path().join("rejects").join(stream);
        let mut out = Vec::new();
        let Ok(syncs) = std::fs::read_dir(&root) else {
            return out;
        };
        for sync in syncs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(sync.unwrap().path())
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect();
            files.sort();
            for f in files {
                let file = std::fs::File::open(f).unwrap();
                let r =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap()
                        .build()
                        .unwrap();
                out.extend(r.map(|b| b.unwrap()));
            }
        }
        out
    }
}

/// A RECORD message.
pub fn record(stream: &str, data: Value) -> Value {
    json!({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 0}})
}

/// A per-stream STATE message carrying `n`.
pub fn state(stream: &str, n: u64) -> Value {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": stream}, "stream_state": {"n": n}}}})
}

/// A `person_scores` RECORD.
pub fn score(object: &str, id: &str, score: f64, reason: &str) -> Value {
    record(
        "person_scores",
        json!({"source_object": object, "source_id": id, "score": score, "reason": reason}),
    )
}

/// A column's values as text, `NULL` for null.
pub fn text(b: &RecordBatch, col: &str) -> Vec<String> {
    let a = b.column_by_name(col).unwrap();
    let a = arrow::compute::cast(a, &DataType::Utf8).unwrap();
    let s = a.as_string::<i32>();
    (0..s.len())
        .map(|i| {
            if s.is_null(i) {
                "NULL".into()
            } else {
                s.value(i).to_string()
            }
        })
        .collect()
}

/// The n of every STATE echoed on stdout, in order.
pub fn states(msgs: &[Value]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["stream"]["stream_state"]["n"].clone())
        .collect()
}

/// The TRACE error's (failure_type, message), if one was printed.
pub fn trace_error(msgs: &[Value]) -> Option<(String, String)> {
    let t = msgs.iter().find(|m| m["type"] == "TRACE")?;
    let e = &t["trace"]["error"];
    Some((
        e["failure_type"].as_str()?.to_string(),
        e["message"].as_str()?.to_string(),
    ))
}
