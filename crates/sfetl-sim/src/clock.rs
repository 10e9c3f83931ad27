//! The org's clock: this machine's, moved by the offset `/__sim/clock`'s `offset_seconds` sets
//! (standing for a client machine whose clock is wrong). Record timestamps, every answer's
//! `Date` header, the org's day and the token endpoint's JWT checks all read it, so they share
//! one offset.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// One org's clock; its clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct OrgClock {
    offset_ms: Arc<AtomicI64>,
}

impl OrgClock {
    /// The org's time in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.offset_ms()
    }

    /// How far the org's clock is from this machine's, in milliseconds (negative: behind).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }

    /// Sets the org's clock `ms` milliseconds from this machine's.
    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::SeqCst);
    }
}
