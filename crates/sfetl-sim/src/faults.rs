//! Fault injection: the knobs tests turn (through `/__sim/`) to prove a client's resilience.

use std::collections::HashMap;

/// A pending failure of the next requests of one kind.
#[derive(Debug, Clone)]
pub struct FailSpec {
    /// Requests left to fail.
    pub remaining: u32,
    /// HTTP status to answer.
    pub status: u16,
    /// Salesforce errorCode in the body.
    pub error_code: String,
    /// The message in the body (None: the code's usual one).
    pub message: Option<String>,
    /// Answer the HTML page an instance shows while down for maintenance instead of the
    /// API's JSON error.
    pub maintenance_page: bool,
}

/// All injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    /// Failures by request kind (`query`, `bulk_query`, ... or `any`).
    pub fail: HashMap<String, FailSpec>,
    /// Responses to cut off midway, by kind (`any` matches all).
    pub cut: HashMap<String, u32>,
    /// Added latency per request, in milliseconds, by kind (`any` matches all).
    pub latency_ms: HashMap<String, u64>,
    /// Bulk jobs still to fail (the next N created jobs end in `Failed`).
    pub fail_bulk_jobs: u32,
    /// Rows still to refuse one by one (Collections and Bulk ingest), as record lock
    /// contention does: the rest of the request succeeds.
    pub fail_rows: Option<RowFault>,
    /// Users' edits held until the next Bulk query job completes (`/__sim/update` with
    /// `"when": "next_bulk_query_completes"`): made after its results are fixed, before
    /// the client downloads them.
    pub edits_after_bulk_query: Vec<crate::changes::Edit>,
}

/// Per-row refusals still to give: the next `remaining` written rows fail with `code`.
#[derive(Debug, Clone)]
pub struct RowFault {
    /// Rows left to refuse.
    pub remaining: u32,
    /// Salesforce status code (`UNABLE_TO_LOCK_ROW` by default).
    pub code: String,
}

impl Faults {
    /// Takes one pending failure for a request kind, if any.
    pub fn take_failure(&mut self, kind: &str) -> Option<FailSpec> {
        for key in [kind, "any"] {
            if let Some(spec) = self.fail.get_mut(key)
                && spec.remaining > 0
            {
                spec.remaining -= 1;
                let out = spec.clone();
                if spec.remaining == 0 {
                    self.fail.remove(key);
                }
                return Some(out);
            }
        }
        None
    }

    /// Takes one pending row refusal: the status code and message for the record `id`.
    pub fn take_row_failure(&mut self, id: &str) -> Option<(String, String)> {
        let fault = self.fail_rows.as_mut()?;
        fault.remaining -= 1;
        let code = fault.code.clone();
        if fault.remaining == 0 {
            self.fail_rows = None;
        }
        let message = match code.as_str() {
            "UNABLE_TO_LOCK_ROW" => {
                format!("unable to obtain exclusive access to this record or 1 records: {id}")
            }
            _ => default_error(503).1.to_string(),
        };
        Some((code, message))
    }

    /// The latency to add to a request of a kind (its own setting, else `any`'s).
    pub fn latency(&self, kind: &str) -> u64 {
        self.latency_ms
            .get(kind)
            .or_else(|| self.latency_ms.get("any"))
            .copied()
            .unwrap_or(0)
    }

    /// Whether this response of a kind is to be cut off midway (consumes one).
    pub fn take_cut(&mut self, kind: &str) -> bool {
        for key in [kind, "any"] {
            if let Some(n) = self.cut.get_mut(key)
                && *n > 0
            {
                *n -= 1;
                return true;
            }
        }
        false
    }
}

/// The default errorCode / message of an injected status.
pub fn default_error(status: u16) -> (&'static str, &'static str) {
    match status {
        503 => (
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable, please retry.",
        ),
        429 => (
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        ),
        _ => (
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        ),
    }
}
