//! The stdout writer task of the protocol verbs: the only writer of stdout while data flows.
//! It is part of the output layer because RECORD lines and Arrow IPC bytes are outputs like
//! Parquet files; the commands start it and the read and write paths feed it.
//!
//! Data (RECORD lines, STATE, traces) arrives over a bounded channel, so readers slow down when
//! stdout does. The channel holds a few messages; the bulk of the data (rendered RECORD lines,
//! Arrow IPC bytes) is bounded in bytes too: each piece holds permits of `IN_FLIGHT`, one per
//! KiB, until it is written, so memory stays low when stdout is slower than the reads. CONTROL
//! messages (a rotated refresh token) have their own unbounded lane, taken first, because they
//! come from synchronous callbacks that must never block or drop them.

use std::io::Write;

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tokio::task::JoinHandle;

use crate::protocol::{AirbyteMessage, Emitter};

/// KiB of rendered output that may wait for stdout at once, over all streams of the process:
/// enough to keep the pipe busy, small next to the batches being decoded.
const IN_FLIGHT_KIB: usize = 1024;

/// The byte budget of rendered output between the writers and stdout. It is one per process
/// because the process has one stdout.
static IN_FLIGHT: Semaphore = Semaphore::const_new(IN_FLIGHT_KIB);

/// Buffers of pieces already written, kept for the next pieces: allocating and freeing a
/// buffer per piece made the allocator hand memory back to the system and fault it in again
/// for every piece (a third more system time in a wide RECORD read).
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Spare buffers kept at most.
const SPARE_MAX: usize = 4;

/// Spare buffers larger than this (a piece that held one huge row) are freed, not kept.
const SPARE_MAX_BYTES: usize = 1 << 20;

/// An empty buffer of at least `capacity` bytes for a piece of output, reused when one is
/// spare.
pub fn piece_buffer(capacity: usize) -> Vec<u8> {
    let spare = SPARE.lock().ok().and_then(|mut s| s.pop());
    match spare {
        Some(mut buf) => {
            buf.clear();
            buf.reserve(capacity);
            buf
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Rendered bytes holding their share of the in-flight budget until stdout's writer drops them.
#[derive(Debug)]
pub struct Budgeted {
    bytes: Vec<u8>,
    _permit: SemaphorePermit<'static>,
}

impl Budgeted {
    /// Waits until `bytes` fit in the budget (a piece larger than all of it waits for all of
    /// it).
    pub async fn new(bytes: Vec<u8>) -> Budgeted {
        let kib = bytes.len().div_ceil(1024).clamp(1, IN_FLIGHT_KIB) as u32;
        let permit = IN_FLIGHT
            .acquire_many(kib)
            .await
            .expect("the in-flight budget is never closed");
        Budgeted {
            bytes,
            _permit: permit,
        }
    }
}

impl Drop for Budgeted {
    /// Keeps the written buffer for a later piece (see `SPARE`).
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.bytes);
        if buf.capacity() > SPARE_MAX_BYTES {
            return;
        }
        if let Ok(mut spare) = SPARE.lock()
            && spare.len() < SPARE_MAX
        {
            spare.push(buf);
        }
    }
}

/// What readers and the write-back send to the stdout writer.
#[derive(Debug)]
pub enum Out {
    /// One protocol message.
    Message(Box<AirbyteMessage>),
    /// Pre-rendered RECORD lines (small ones: a line of the write-back's results).
    Lines(Vec<u8>),
    /// Pre-rendered RECORD lines of a read, counted against the in-flight budget.
    Records(Budgeted),
    /// Bytes of an Arrow IPC stream, counted against the in-flight budget.
    Ipc(Budgeted),
}

/// Handle to the writer task.
pub struct StdoutTask {
    /// Data lane.
    pub tx: mpsc::Sender<Out>,
    /// CONTROL lane.
    pub control: mpsc::UnboundedSender<AirbyteMessage>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl StdoutTask {
    /// Starts the writer on the process's stdout.
    pub fn spawn() -> StdoutTask {
        Self::spawn_with(false)
    }

    /// Starts the writer; with `arrow_ipc`, stdout carries the Arrow IPC stream and the protocol
    /// messages (STATE, TRACE, LOG, CONTROL) go to stderr as JSON lines instead.
    pub fn spawn_with(arrow_ipc: bool) -> StdoutTask {
        widen_stdout_pipe();
        let (tx, rx) = mpsc::channel::<Out>(64);
        let (control, control_rx) = mpsc::unbounded_channel::<AirbyteMessage>();
        let handle = tokio::spawn(async move {
            let (mut rx, mut control_rx) = (rx, control_rx);
            let written = pump(arrow_ipc, &mut rx, &mut control_rx).await;
            // The lanes stay open until the process has exited: closed first, a stream's next
            // send would fail, and the read would report that failure on stderr before the
            // exit, where a closed stdout must end it quietly.
            if let Err(e) = &written {
                exit_if_closed(e);
            }
            drop((rx, control_rx));
            written
        });
        StdoutTask {
            tx,
            control,
            handle,
        }
    }

    /// A LOG WARN message for the orchestrator, and the same text on stderr through tracing:
    /// something the user should act on that does not stop the command.
    pub async fn warn(&self, text: String) {
        tracing::warn!("{text}");
        let log = AirbyteMessage::log(crate::protocol::LogLevel::Warn, text);
        let _ = self.tx.send(Out::Message(Box::new(log))).await;
    }

    /// Closes the lanes and waits until everything is written.
    pub async fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        drop(self.control);
        self.handle.await.map_err(std::io::Error::other)?
    }
}

/// Bytes of pipe buffer asked for when stdout is a pipe: Linux's default `pipe-max-size`, so
/// an unprivileged process gets it.
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Grows stdout's pipe buffer from Linux's default 64 KiB to [`PIPE_BYTES`] when stdout is a
/// pipe (as it is under every orchestrator).
///
/// A wide RECORD read writes about 1 GB per million rows; with 64 KiB between it and its
/// reader, the writer blocked and was woken again every 64 KiB, and both processes paid for
/// the switches: 7,700 voluntary context switches in a 200k-row all-fields read, 2,200 with
/// 1 MiB. The pages are the kernel's, filled only as far as the reader lags, and never shrunk
/// here: a pipe the orchestrator already made larger stays as it is. Errors (not a pipe, a
/// per-user pipe quota reached) leave the pipe as it was.
fn widen_stdout_pipe() {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = std::io::stdout().as_raw_fd();
        // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ take an int argument and touch no memory of
        // this process; on a descriptor that is not a pipe they fail with EBADF and change
        // nothing.
        unsafe {
            let now = libc::fcntl(fd, libc::F_GETPIPE_SZ);
            if now > 0 && now < PIPE_BYTES {
                libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
            }
        }
    }
}

/// True for the error a write gets once the reader of stdout is gone (`sfetl ... | head`, or
/// an orchestrator that stopped reading).
pub fn is_closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Ends the process at once, quietly and with exit code 0, when `e` says stdout's reader is
/// gone: nobody is left to read what sfetl would say, and a CLI piped into `head` should not
/// print an error. What was already durable stays so; the next run resumes from the last STATE
/// the reader saw.
pub fn exit_if_closed(e: &std::io::Error) {
    if is_closed_pipe(e) {
        std::process::exit(0);
    }
}

/// Moves messages to stdout until both lanes close.
async fn pump(
    arrow_ipc: bool,
    rx: &mut mpsc::Receiver<Out>,
    control_rx: &mut mpsc::UnboundedReceiver<AirbyteMessage>,
) -> std::io::Result<()> {
    let mut messages: Emitter<Box<dyn Write + Send>> = if arrow_ipc {
        Emitter::new(Box::new(std::io::stderr()))
    } else {
        Emitter::new(Box::new(std::io::stdout()))
    };
    let mut ipc = std::io::BufWriter::new(std::io::stdout());
    let mut control_open = true;
    loop {
        tokio::select! {
            biased;
            m = control_rx.recv(), if control_open => match m {
                Some(m) => messages.emit(&m)?,
                None => control_open = false,
            },
            o = rx.recv() => match o {
                Some(Out::Message(m)) => messages.emit(&m)?,
                Some(Out::Lines(bytes)) => messages.emit_raw(&bytes)?,
                Some(Out::Records(b)) => messages.emit_raw(&b.bytes)?,
                Some(Out::Ipc(b)) => ipc.write_all(&b.bytes)?,
                None => break,
            },
        }
    }
    while let Ok(m) = control_rx.try_recv() {
        messages.emit(&m)?;
    }
    ipc.flush()?;
    messages.flush()
}
