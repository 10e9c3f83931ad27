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
        // How each window's worker ended, kept until the windows before it are written: a stop
        // (or an error) seen ahead must not cut the window in hand between its rows and its
        // checkpoint.
        let mut ended: Vec<Option<Result<(), FetchError>>> = windows.iter().map(|_| None).collect();
        let mut stopping = false;
        let (mut next, mut total) = (0, 0u64);
        while next < windows.len() {
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
                    stopping |= read.is_err();
                    ended[index] = Some(read.map(|_| ()));
                }
            }
            while let Some(end) = ended.get_mut(next).and_then(Option::take) {
                // The worker is gone: what it sent is all queued. A stopped worker stopped
                // between pages, after its last page's checkpoint, so that is written too and
                // every row goes out before a STATE; other errors end the read at once.
                if end.as_ref().is_ok() || matches!(end, Err(FetchError::Stopped)) {
                    while let Some(e) = channels[next].recv().await {
                        total += self.on_event(e, writer).await?;
                    }
                }
                end?;
                let (n, at) = self.window_end(windows[next], writer).await?;
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
