//! Windows of one object read at once (`max_concurrent_jobs`), each its own Bulk job, so
//! Salesforce's processing of several jobs and their downloads overlap.
//!
//! Each window is read by a worker (its own [`ObjectReader`], with Bulk paging, cut pages,
//! Bulk -> REST fallbacks and halving as when read alone) that hands its batches, per-page
//! checkpoints and row estimates to this reader through one bounded channel: the one writer
//! of the stream writes batches as they come, and STATE stays exact because it is emitted only
//! for a prefix of windows that all completed (plus pages of the first window not yet
//! complete, whose rows arrive in cursor order). The `deleted` endpoint is asked for each
//! window, in order, when the prefix reaches it.

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
use crate::state::OutputCommit;

/// What a worker hands to the reader of its object.
pub(super) enum Event {
    /// Rows of the stream's schema, extracted at that time.
    Batch(RecordBatch, DateTime<Utc>),
    /// A results page of window `.0` is delivered: its rows up to cursor `.1` are all sent.
    Page(usize, DateTime<Utc>),
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

    async fn commit(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn position(&self) -> Option<OutputCommit> {
        None
    }

    async fn finish(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Where the prefix of completed windows stands.
struct Prefix {
    /// Windows before this one are complete and checkpointed.
    next: usize,
    /// Which windows completed.
    done: Vec<bool>,
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
        let (tx, mut rx) = mpsc::channel::<Event>(4 * limit);
        let mut running = FuturesUnordered::new();
        let mut prefix = Prefix {
            next: 0,
            done: vec![false; windows.len()],
        };
        let (mut started, mut total) = (0, 0u64);
        while prefix.next < windows.len() {
            while running.len() < limit && started < windows.len() {
                self.ctx.check_stop()?;
                self.check_quota().await?;
                let worker = Worker {
                    index: started,
                    tx: tx.clone(),
                };
                running.push(self.window_worker(worker, windows[started]));
                started += 1;
            }
            tokio::select! {
                biased;
                Some(e) = rx.recv() => total += self.on_event(e, &prefix, writer).await?,
                Some((index, read)) = running.next() => {
                    let api = read?;
                    // Everything the worker sent is queued by now: write it first.
                    while let Ok(e) = rx.try_recv() {
                        total += self.on_event(e, &prefix, writer).await?;
                    }
                    if api == Api::Rest {
                        self.api = Api::Rest;
                    }
                    prefix.done[index] = true;
                    total += self.advance(&mut prefix, windows, writer).await?;
                }
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
        let mut reader =
            ObjectReader::with_progress(self.ctx, self.plan, self.object, Default::default(), progress);
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

    /// Writes a worker's batch, or checkpoints a page of the first incomplete window; returns
    /// the rows written.
    async fn on_event(
        &mut self,
        e: Event,
        prefix: &Prefix,
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
            Event::Page(index, at) if index == prefix.next => {
                self.checkpoint(writer, at).await?;
                Ok(0)
            }
            Event::Page(..) => Ok(0),
            Event::Estimate(n) => {
                self.estimate(n).await?;
                Ok(0)
            }
        }
    }

    /// Checkpoints every window of the completed prefix, after its `deleted` rows.
    async fn advance(
        &mut self,
        prefix: &mut Prefix,
        windows: &[Window],
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let mut total = 0;
        while prefix.next < windows.len() && prefix.done[prefix.next] {
            let w = windows[prefix.next];
            let (n, at) = self.window_end(w, writer).await?;
            total += n;
            self.checkpoint(writer, at).await?;
            prefix.next += 1;
        }
        Ok(total)
    }
}
