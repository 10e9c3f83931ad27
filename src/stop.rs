//! [`StopSignal`]: a request to stop starting new work, shared by signal handlers, the quota
//! check and every loop that waits on Salesforce (Bulk polls, pages), so one SIGTERM or one
//! exhausted quota winds down every stream at its next safe point.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Asks a read (or a write-back) to stop starting new work. Streams finish the page in hand,
/// keep the state they already emitted, and end INCOMPLETE.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
