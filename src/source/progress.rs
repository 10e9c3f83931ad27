//! Progress bars for people: one per stream (rows, MB, rows/s, ETA when the row count is
//! known), drawn on stderr only when stderr is a terminal, so logs and pipes stay clean.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// All bars of a read.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars on stderr if it is a terminal (and `SFETL_PROGRESS` is not `0`); none otherwise.
    pub fn for_stderr() -> Progress {
        let wanted = std::io::stderr().is_terminal()
            && std::env::var("SFETL_PROGRESS")
                .map(|v| v != "0")
                .unwrap_or(true);
        Progress {
            multi: wanted.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// No bars (tests, libraries).
    pub fn hidden() -> Progress {
        Progress { multi: None }
    }

    /// A bar for one stream.
    pub fn stream(&self, name: &str) -> StreamProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::no_length());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>14} {spinner} {human_pos:>10} rows {msg:>9} {rate:>14} {wide_bar} {eta}",
                )
                .expect("the template is valid")
                .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                }),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        StreamProgress {
            bar,
            bytes: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

/// One stream's bar.
pub struct StreamProgress {
    bar: Option<ProgressBar>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StreamProgress {
    /// The same bar, for another reader of the stream (windows read at once add to one bar).
    pub fn share(&self) -> StreamProgress {
        StreamProgress {
            bar: self.bar.clone(),
            bytes: self.bytes.clone(),
        }
    }

    /// The number of rows expected so far (from Bulk's job info).
    pub fn set_estimate(&self, rows: u64) {
        if let Some(b) = &self.bar {
            b.set_length(rows.max(b.position()));
        }
    }

    /// Rows delivered.
    pub fn add_rows(&self, rows: u64) {
        if let Some(b) = &self.bar {
            b.inc(rows);
        }
    }

    /// Bytes received.
    pub fn add_bytes(&self, bytes: u64) {
        let total = self
            .bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        if let Some(b) = &self.bar {
            b.set_message(format!("{:.1} MB", total as f64 / 1e6));
        }
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The stream is done.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
