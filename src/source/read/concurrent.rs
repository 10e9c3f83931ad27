//! Windows of one object read at once (`max_concurrent_jobs`), each its own Bulk job, so
//! Salesforce's processing of several jobs overlaps, and so do their downloads, up to a few
//! batches ahead.
//!
//! Each window is read by a worker (its own [`ObjectReader`], with Bulk paging, cut pages,
//! Bulk -> REST fallbacks and halving as when read alone) that hands its batches, per-page
//! checkpoints and row estimates to this reader through a bounded channel of its own. The one
//! writer of the stream takes them window by window, in order: the first incomplete window's
//! events as they come, later windows' waiting in their channels (their workers pause when
//! theirs is full). So the output, every STATE and every Parquet file are exactly what reading
//! the windows one after the other gives; only the waiting overlaps. Each window's `deleted`
//! rows and checkpoint follow its last batch.

use arrow::array::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::FetchError;
use super::fetch::ObjectReader;
use crate::decode::Api;
use crate::output::{OutputError, StreamWriter};
use crate::source::soql::Window;

/// What a worker hands to the reader of its object.
pub(super) enum Event {
    /// Rows of the stream's schema, extracted at that time.
    Batch(RecordBatch, DateTime<Utc>),
    /// A results page is delivered: the window's rows below this cursor are all sent.
    Page(DateTime<Utc>),
    /// Rows a Bulk job of a window produced (for the stream's estimate).
    Estimate(u64),
}

/// The worker side of a window: its place and the channel to the object's reader.
#[derive(Clone)]
pub(super) struct Worker {
    /// The window's index.
    pub(super) index: usize,
    /// Where its events go.
    pub(super) tx: mpsc::Sender<Event>,
}

impl Worker {
    /// Sends an event; a closed channel means the read is over (it failed elsewhere).
    pub(super) async fn send(&self, e: Event) -> Result<(), FetchError> {
        self.tx.send(e).await.map_err(|_| FetchError::Stopped)
    }
}

/// The writer a worker writes to: its batches go to the object's reader.
struct ChannelWriter(Worker);

#[async_trait]
impl StreamWriter for ChannelWriter {
    async fn write(&mut self, b: &RecordBatch, at: DateTime<Utc>) -> Result<(), OutputError> {
        let e = Event::Batch(b.clone(), at);
        self.0
            .tx
            .send(e)
            .await
            .map_err(|_| OutputError::StdoutClosed)
    }
}

/// Batches a window may hold ready before its worker pauses (times `batch_rows` rows).
const AHEAD: usize = 8;

/// How a window's worker ended: the API it read with last, or why it stopped.
type Ended = Result<Api, FetchError>;

/// Awaits `work`, a call of the object's reader to Salesforce (a window's `deleted` rows), while
/// the workers go on. They run inside this task, polled only where it polls them: one of them
/// may hold the token provider's gate, mid-refresh after a 401, and `work`, refused too, waits
/// for that gate; without polling the worker here, neither moved again.
async fn alongside<T, W>(
    running: &mut FuturesUnordered<W>,
    ended: &mut [Option<Ended>],
    work: impl std::future::Future<Output = T>,
) -> T
where
    W: std::future::Future<Output = (usize, Ended)>,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some((index, read)) = running.next() => ended[index] = Some(read),
        }
    }
}

impl<'a> ObjectReader<'a> {
    /// Reads `windows` with up to `limit` at once; returns the rows delivered. Each window
    /// ends with the `deleted` rows of its span and a checkpoint, in window order.
    pub(super) async fn read_concurrently(
        &mut self,
        windows: &[Window],
        limit: usize,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let mut channels: Vec<mpsc::Receiver<Event>> = Vec::with_capacity(windows.len());
        let mut running = FuturesUnordered::new();
        // How each window's worker ended (and on which API), kept until the windows before it
        // are written: a stop (or an error) seen ahead must not cut the window in hand between
        // its rows and its checkpoint.
        let mut ended: Vec<Option<Ended>> = windows.iter().map(|_| None).collect();
        let mut stopping = false;
        let (mut next, mut total) = (0, 0u64);
        while next < windows.len() {
            stopping |= ended.iter().any(|e| matches!(e, Some(Err(_))));
            while !stopping && running.len() < limit && channels.len() < windows.len() {
                if self.ctx.check_stop().is_err() {
                    stopping = true;
                    break;
                }
                self.check_quota().await?;
                let (tx, rx) = mpsc::channel(AHEAD);
                let index = channels.len();
                channels.push(rx);
                running.push(self.window_worker(Worker { index, tx }, windows[index]));
            }
            if next == channels.len() {
                // Stopped with every window started so far written and checkpointed.
                return Err(FetchError::Stopped);
            }
            tokio::select! {
                biased;
                Some(e) = channels[next].recv() => total += self.on_event(e, writer).await?,
                Some((index, read)) = running.next() => {
                    if read.as_ref().is_ok_and(|api| *api == Api::Rest) {
                        self.api = Api::Rest;
                    }
                    ended[index] = Some(read);
                }
            }
            while let Some(end) = ended.get_mut(next).and_then(Option::take) {
                if end.as_ref().is_ok_and(|api| *api == Api::Rest) {
                    self.api = Api::Rest;
                }
                // The worker is gone: what it sent is all queued. A stopped worker stopped
                // between pages, after its last page's checkpoint, so that is written too and
                // every row goes out before a STATE; other errors end the read at once.
                if end.as_ref().is_ok() || matches!(end, Err(FetchError::Stopped)) {
                    while let Some(e) = channels[next].recv().await {
                        total += self.on_event(e, writer).await?;
                    }
                }
                end?;
                // The `deleted` call goes to Salesforce: the workers are polled meanwhile.
                let window_end = self.window_end(windows[next], writer);
                let (n, at) = alongside(&mut running, &mut ended, window_end).await?;
                total += n;
                self.checkpoint(writer, at).await?;
                next += 1;
            }
        }
        Ok(total)
    }

    /// A worker reading window `w`: returns its index and the API it ended on.
    fn window_worker(
        &self,
        worker: Worker,
        w: Window,
    ) -> impl std::future::Future<Output = (usize, Result<Api, FetchError>)> + use<'a> {
        let progress = self.progress.share();
        let mut reader = ObjectReader::with_progress(
            self.ctx,
            self.plan,
            self.object,
            Default::default(),
            progress,
        );
        reader.api = self.api;
        reader.id_ranges = self.id_ranges;
        reader.worker = Some(worker.clone());
        let index = worker.index;
        async move {
            let mut out = ChannelWriter(worker);
            let read = reader.read_window(Some(w), &mut out).await;
            (index, read.map(|_| reader.api))
        }
    }

    /// Writes a batch of the window being written, or checkpoints one of its pages; returns
    /// the rows written.
    async fn on_event(
        &mut self,
        e: Event,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        match e {
            Event::Batch(b, at) => {
                self.count_keyless(&b);
                let n = b.num_rows() as u64;
                writer.write(&b, at).await?;
                self.pending += n;
                self.delivered += n;
                Ok(n)
            }
            Event::Page(at) => {
                self.checkpoint(writer, at).await?;
                Ok(0)
            }
            Event::Estimate(n) => {
                self.estimate(n).await?;
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn workers_go_on_while_the_reader_waits_for_what_one_of_them_holds() {
        // A worker takes the gate (a token refresh after a 401) and needs polling again to let
        // go of it (its token answer has arrived); the reader's own call waits for the gate.
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let held = gate.clone();
        let worker = async move {
            let _refreshing = held.lock().await;
            let _ = answered.await;
            (0usize, Ok(Api::Bulk))
        };
        let mut running = FuturesUnordered::new();
        running.push(worker);
        assert!(
            futures::poll!(running.next()).is_pending(),
            "the worker holds the gate"
        );
        answer.send(()).unwrap();
        let mut ended: Vec<Option<Ended>> = vec![None];
        let call = async {
            let _gate = gate.lock().await;
            "deleted rows"
        };
        // Awaited alone, `call` never ends: the worker is polled nowhere else.
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            alongside(&mut running, &mut ended, call),
        )
        .await;
        assert_eq!(out.ok(), Some("deleted rows"));
        assert!(matches!(ended[0], Some(Ok(Api::Bulk))));
    }
}
