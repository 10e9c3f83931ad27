//! The one writer of protocol messages: JSON lines on a buffered stdout.
//!
//! In the protocol verbs stdout belongs to the protocol; everything else goes to stderr. Keeping
//! one writer makes that rule easy to hold and lets tests capture output in memory.

use std::io::{self, Write};

use super::messages::{AirbyteMessage, MessageType};

/// Writes Airbyte messages as JSON lines.
///
/// Records are buffered for throughput; every other message is flushed at once because it tells
/// the orchestrator something it must see in time (a state, an error, a status).
pub struct Emitter<W: Write> {
    out: io::BufWriter<W>,
}

impl Emitter<io::Stdout> {
    /// An emitter on the process's stdout.
    pub fn stdout() -> Self {
        Emitter::new(io::stdout())
    }
}

impl<W: Write> Emitter<W> {
    /// An emitter on any writer (tests use a `Vec<u8>`).
    pub fn new(writer: W) -> Self {
        Emitter {
            out: io::BufWriter::with_capacity(1 << 16, writer),
        }
    }

    /// Writes one message as one line.
    pub fn emit(&mut self, message: &AirbyteMessage) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, message)?;
        self.out.write_all(b"\n")?;
        if message.kind != MessageType::Record {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes pre-rendered RECORD lines (each ending in a newline) as they are: the records fast
    /// path renders JSON straight from Arrow without building a `serde_json::Value`.
    pub fn emit_raw(&mut self, lines: &[u8]) -> io::Result<()> {
        self.out.write_all(lines)
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}
