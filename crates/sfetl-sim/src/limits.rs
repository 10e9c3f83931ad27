//! The org's limits and the knobs that make the simulator as harsh as Salesforce by default:
//! concurrency caps, the Bulk daily job cap, query timeouts, REST cursor lifetime, the delete
//! log's retention and id cap, Bulk result chunking. Each has Salesforce's value as default (see
//! `crates/sfetl-sim/README.md` for the sources) and can be changed at run time through
//! `GET/POST /__sim/limits`, so a test can reach a limit without the volume or the wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Map, Value, json};

/// Every knob, with Salesforce's default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Concurrent API requests allowed (Salesforce: 25 long-running ones in production); more
    /// answer 403 `REQUEST_LIMIT_EXCEEDED` "ConcurrentRequests (Concurrent API Requests) Limit
    /// exceeded."
    pub concurrent_requests: u32,
    /// Requests other integrations of the org hold open: they count against
    /// `concurrent_requests` (a test sets them to provoke the limit deterministically).
    pub busy_requests: u32,
    /// Long transactions allowed at once: running Bulk jobs plus `busy_long_txn` (Salesforce's
    /// org default for long-running transactions is 10); a new one answers 403
    /// `REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn Limit exceeded."
    pub long_txn: u32,
    /// Long transactions other integrations hold.
    pub busy_long_txn: u32,
    /// Refuse the next N requests that start a long transaction as over the limit, then let them
    /// through (a short spike of other integrations' jobs).
    pub long_txn_spike: u32,
    /// Refuse the next N data requests as over the concurrent-requests limit (a short spike).
    pub requests_spike: u32,
    /// Bulk API 2.0 query jobs per rolling 24 hours (Salesforce: 10,000).
    pub bulk_query_jobs_per_day: u64,
    /// Bulk query jobs created in the current 24 hours (also set by tests).
    pub bulk_query_jobs_used: u64,
    /// Rows per automatic chunk of a Bulk query without ORDER BY / LIMIT (Salesforce chunks by
    /// 100,000 to 250,000 records); result pages never cross a chunk boundary, and chunks are
    /// delivered out of order.
    pub bulk_chunk_rows: usize,
    /// A Bulk query job with ORDER BY (which turns chunking off) over more matching rows than
    /// this ends `Failed` with a QUERY_TIMEOUT.
    pub bulk_unchunked_timeout_rows: usize,
    /// A REST query with ORDER BY over more matching rows than this answers 400 QUERY_TIMEOUT.
    pub rest_sorted_timeout_rows: usize,
    /// Any query (REST or Bulk) over more matching rows than this times out, with or without
    /// ORDER BY (unset by default: a test's "big window").
    pub query_timeout_rows: usize,
    /// A query selecting more fields than this answers QUERY_TOO_COMPLICATED.
    pub query_max_fields: usize,
    /// Rows a query of a sharing-checked object (Task: see `quirks::Quirk::SharingChecked`)
    /// may return before the check of an API user without "View All Data" gives up with
    /// OPERATION_TOO_LARGE (Salesforce: 100,000 distinct who/what's; unset: View All Data).
    pub sharing_check_rows: usize,
    /// Open REST query cursors per user; opening one more releases the oldest.
    pub cursors_per_user: usize,
    /// A REST query cursor unused for this long expires, in seconds (Salesforce: 15 minutes).
    pub cursor_idle_seconds: u64,
    /// Ids the `deleted` endpoint returns at most before answering `EXCEEDED_ID_LIMIT`.
    pub deleted_id_limit: usize,
    /// Days the delete log keeps entries (Salesforce: 15).
    pub delete_log_days: i64,
    /// Longest range the replication endpoints accept, in days (Salesforce: 30).
    pub replication_max_days: i64,
    /// When the org enabled replication (epoch ms): earlier starts are refused.
    pub replication_enabled_ms: i64,
    /// Bulk processing time, off by default (jobs complete at the next polls): a new query job
    /// waits this long in the queue (`UploadComplete`) before it starts.
    pub bulk_queue_ms: u64,
    /// Bulk processing time: a running query job handles this many matching rows per second
    /// before it is `JobComplete` (0: no processing time).
    pub bulk_rows_per_second: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrent_requests: 25,
            busy_requests: 0,
            long_txn: 10,
            busy_long_txn: 0,
            long_txn_spike: 0,
            requests_spike: 0,
            bulk_query_jobs_per_day: 10_000,
            bulk_query_jobs_used: 0,
            bulk_chunk_rows: 100_000,
            bulk_unchunked_timeout_rows: 500_000,
            rest_sorted_timeout_rows: 2_000_000,
            query_timeout_rows: usize::MAX,
            query_max_fields: 2_000,
            sharing_check_rows: 100_000,
            cursors_per_user: 10,
            cursor_idle_seconds: 15 * 60,
            deleted_id_limit: 600_000,
            delete_log_days: 15,
            replication_max_days: 30,
            // 2015-01-01T00:00:00Z: before every generated record.
            replication_enabled_ms: 1_420_070_400_000,
            bulk_queue_ms: 0,
            bulk_rows_per_second: 0,
        }
    }
}

/// The names `/__sim/limits` accepts.
const KEYS: [&str; 22] = [
    "concurrent_requests",
    "busy_requests",
    "long_txn",
    "busy_long_txn",
    "long_txn_spike",
    "requests_spike",
    "bulk_query_jobs_per_day",
    "bulk_query_jobs_used",
    "bulk_chunk_rows",
    "bulk_unchunked_timeout_rows",
    "rest_sorted_timeout_rows",
    "query_timeout_rows",
    "query_max_fields",
    "sharing_check_rows",
    "cursors_per_user",
    "cursor_idle_seconds",
    "deleted_id_limit",
    "delete_log_days",
    "replication_max_days",
    "replication_enabled_date",
    "bulk_queue_ms",
    "bulk_rows_per_second",
];

impl Limits {
    /// The knobs as JSON (`replication_enabled_date` as Salesforce datetime text).
    pub fn to_json(&self) -> Map<String, Value> {
        let cap = |n: usize| {
            if n == usize::MAX {
                Value::Null
            } else {
                json!(n)
            }
        };
        let mut m = Map::new();
        m.insert(
            "concurrent_requests".into(),
            json!(self.concurrent_requests),
        );
        m.insert("busy_requests".into(), json!(self.busy_requests));
        m.insert("long_txn".into(), json!(self.long_txn));
        m.insert("busy_long_txn".into(), json!(self.busy_long_txn));
        m.insert("long_txn_spike".into(), json!(self.long_txn_spike));
        m.insert("requests_spike".into(), json!(self.requests_spike));
        m.insert(
            "bulk_query_jobs_per_day".into(),
            json!(self.bulk_query_jobs_per_day),
        );
        m.insert(
            "bulk_query_jobs_used".into(),
            json!(self.bulk_query_jobs_used),
        );
        m.insert("bulk_chunk_rows".into(), json!(self.bulk_chunk_rows));
        m.insert(
            "bulk_unchunked_timeout_rows".into(),
            cap(self.bulk_unchunked_timeout_rows),
        );
        m.insert(
            "rest_sorted_timeout_rows".into(),
            cap(self.rest_sorted_timeout_rows),
        );
        m.insert("query_timeout_rows".into(), cap(self.query_timeout_rows));
        m.insert("query_max_fields".into(), json!(self.query_max_fields));
        m.insert("sharing_check_rows".into(), cap(self.sharing_check_rows));
        m.insert("cursors_per_user".into(), json!(self.cursors_per_user));
        m.insert(
            "cursor_idle_seconds".into(),
            json!(self.cursor_idle_seconds),
        );
        m.insert("deleted_id_limit".into(), json!(self.deleted_id_limit));
        m.insert("delete_log_days".into(), json!(self.delete_log_days));
        m.insert(
            "replication_max_days".into(),
            json!(self.replication_max_days),
        );
        m.insert("bulk_queue_ms".into(), json!(self.bulk_queue_ms));
        m.insert(
            "bulk_rows_per_second".into(),
            json!(self.bulk_rows_per_second),
        );
        let mut date = Vec::new();
        super::wire::write_datetime(self.replication_enabled_ms, &mut date);
        m.insert(
            "replication_enabled_date".into(),
            json!(String::from_utf8_lossy(&date)),
        );
        m
    }

    /// Applies a partial update; an unknown key or a value of the wrong shape is an error that
    /// names it (nothing is changed then).
    pub fn update(&mut self, body: &Value) -> Result<(), String> {
        let Some(obj) = body.as_object() else {
            return Err("the body must be a JSON object of limits".into());
        };
        let mut next = self.clone();
        for (k, v) in obj {
            let n = || {
                v.as_u64()
                    .ok_or_else(|| format!("{k} must be a non-negative integer"))
            };
            // null lifts a row cap.
            let cap = || -> Result<usize, String> {
                if v.is_null() {
                    Ok(usize::MAX)
                } else {
                    Ok(n()? as usize)
                }
            };
            match k.as_str() {
                "concurrent_requests" => next.concurrent_requests = n()? as u32,
                "busy_requests" => next.busy_requests = n()? as u32,
                "long_txn" => next.long_txn = n()? as u32,
                "busy_long_txn" => next.busy_long_txn = n()? as u32,
                "long_txn_spike" => next.long_txn_spike = n()? as u32,
                "requests_spike" => next.requests_spike = n()? as u32,
                "bulk_query_jobs_per_day" => next.bulk_query_jobs_per_day = n()?,
                "bulk_query_jobs_used" => next.bulk_query_jobs_used = n()?,
                "bulk_chunk_rows" => next.bulk_chunk_rows = (n()? as usize).max(1),
                "bulk_unchunked_timeout_rows" => next.bulk_unchunked_timeout_rows = cap()?,
                "rest_sorted_timeout_rows" => next.rest_sorted_timeout_rows = cap()?,
                "query_timeout_rows" => next.query_timeout_rows = cap()?,
                "query_max_fields" => next.query_max_fields = n()? as usize,
                "sharing_check_rows" => next.sharing_check_rows = cap()?,
                "cursors_per_user" => next.cursors_per_user = (n()? as usize).max(1),
                "cursor_idle_seconds" => next.cursor_idle_seconds = n()?,
                "deleted_id_limit" => next.deleted_id_limit = n()? as usize,
                "delete_log_days" => next.delete_log_days = n()? as i64,
                "replication_max_days" => next.replication_max_days = n()? as i64,
                "bulk_queue_ms" => next.bulk_queue_ms = n()?,
                "bulk_rows_per_second" => next.bulk_rows_per_second = n()?,
                "replication_enabled_date" => {
                    let s = v
                        .as_str()
                        .ok_or("replication_enabled_date must be a datetime string")?;
                    next.replication_enabled_ms = super::wire::parse_datetime(s)
                        .ok_or_else(|| format!("replication_enabled_date: bad datetime '{s}'"))?;
                }
                other => {
                    return Err(format!(
                        "unknown limit '{other}'; known: {}",
                        KEYS.join(", ")
                    ));
                }
            }
        }
        *self = next;
        Ok(())
    }
}

/// Requests being served right now (for the concurrent-requests limit).
#[derive(Debug, Default)]
pub struct InFlight(Arc<AtomicU32>);

impl InFlight {
    /// Takes a slot unless `limit` (minus `busy` slots held elsewhere) is reached.
    pub fn try_enter(&self, limit: u32, busy: u32) -> Option<Slot> {
        let mut cur = self.0.load(Ordering::SeqCst);
        loop {
            if cur.saturating_add(busy) >= limit {
                return None;
            }
            match self
                .0
                .compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(Slot(self.0.clone())),
                Err(c) => cur = c,
            }
        }
    }

    /// Requests in flight now.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One request's place among the concurrent requests; freed when dropped (a streamed body
/// keeps it until the last byte is sent).
#[derive(Debug)]
pub struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    /// Whether a REST query matching `matched` rows (sorted or not) runs out of time.
    pub fn rest_times_out(&self, matched: usize, sorted: bool) -> bool {
        matched > self.query_timeout_rows || sorted && matched > self.rest_sorted_timeout_rows
    }

    /// Whether a Bulk query job matching `matched` rows runs out of time: ORDER BY (and
    /// LIMIT) turn Salesforce's automatic chunking off, so a big sorted job is one long query.
    pub fn bulk_times_out(&self, matched: usize, unchunked: bool) -> bool {
        matched > self.query_timeout_rows || unchunked && matched > self.bulk_unchunked_timeout_rows
    }
}

/// Salesforce's `QUERY_TIMEOUT` message.
pub const QUERY_TIMEOUT: &str = "Your query request was running for too long.";
/// Salesforce's `QUERY_TOO_COMPLICATED` message.
pub const QUERY_TOO_COMPLICATED: &str =
    "Query is either selecting too many fields or the filter conditions are too complicated.";

/// Salesforce's answer when too many API requests run at once.
pub const CONCURRENT_REQUESTS: &str =
    "ConcurrentRequests (Concurrent API Requests) Limit exceeded.";
/// Salesforce's answer when too many long transactions run at once.
pub const CONCURRENT_LONG_TXN: &str = "ConcurrentPerOrgLongTxn Limit exceeded.";
/// Salesforce's answer once the daily API quota is spent.
pub const TOTAL_REQUESTS: &str = "TotalRequests Limit exceeded.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_is_all_or_nothing_and_names_bad_keys() {
        let mut l = Limits::default();
        let err = l
            .update(&json!({"long_txn": 2, "nope": 1}))
            .expect_err("unknown key");
        assert!(
            err.starts_with("unknown limit 'nope'; known: concurrent_requests"),
            "{err}"
        );
        assert_eq!(l.long_txn, 10, "nothing applied");
        l.update(&json!({"long_txn": 2, "query_timeout_rows": 5, "replication_enabled_date": "2024-01-01T00:00:00Z"}))
            .expect("valid");
        assert_eq!((l.long_txn, l.query_timeout_rows), (2, 5));
        assert_eq!(
            l.to_json()["replication_enabled_date"],
            "2024-01-01T00:00:00.000+0000"
        );
        l.update(&json!({"query_timeout_rows": null}))
            .expect("lift");
        assert_eq!(l.to_json()["query_timeout_rows"], Value::Null);
    }

    #[test]
    fn in_flight_slots_respect_the_limit_and_busy_slots() {
        let f = InFlight::default();
        let a = f.try_enter(2, 0).expect("first");
        assert!(f.try_enter(2, 1).is_none(), "one busy elsewhere + one here");
        let b = f.try_enter(2, 0).expect("second");
        assert!(f.try_enter(2, 0).is_none());
        drop(a);
        assert_eq!(f.count(), 1);
        drop(b);
        assert_eq!(f.count(), 0);
    }
}
