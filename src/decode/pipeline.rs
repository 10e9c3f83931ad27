//! One results page received, inflated and decoded on its own task while the caller renders or
//! encodes the batches already decoded: a stream's read then keeps both cores busy (receiving,
//! inflating and splitting CSV on one; RECORD rendering or Parquet encoding on the other)
//! instead of taking turns on one.
//!
//! The two sides meet in a channel of a few chunks' worth of batches (batches are bounded in
//! bytes by the decoder), so the decoder runs at most that far ahead and memory stays flat.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{CsvPageDecoder, DecodeError};

/// Chunks decoded ahead of the caller at most (a quarter MB of CSV each). One is enough to
/// keep both sides busy; each one more lets an all-fields Parquet read (8,192-row batches of
/// 5 MB) hold one more batch.
const AHEAD: usize = 1;

/// What the decoding task hands over.
#[derive(Debug)]
pub enum PageEvent {
    /// One chunk of the body was decoded: its size in bytes and the batches it completed.
    Chunk {
        /// Bytes of CSV in the chunk.
        bytes: usize,
        /// Batches completed by the chunk (often none, sometimes several).
        batches: Vec<RecordBatch>,
    },
    /// The body ended and was decoded whole; the last batch was sent before this.
    End {
        /// Invalid UTF-8 sequences replaced in the page's text values.
        replaced_utf8: u64,
        /// NUL bytes removed from the page's values.
        removed_nul: u64,
    },
}

/// Why a page's decoding stopped.
#[derive(Debug)]
pub enum PageError<E> {
    /// Receiving the body failed (cut off, corrupt gzip...): the caller may fetch it again.
    Source(E),
    /// The body is not the CSV expected.
    Decode(DecodeError),
}

/// A page being decoded on its own task. Dropping it stops the task.
pub struct DecodedPage<E> {
    rx: mpsc::Receiver<Result<PageEvent, PageError<E>>>,
    task: JoinHandle<()>,
}

impl<E: Send + 'static> DecodedPage<E> {
    /// Starts decoding the body whose chunks `chunks` yields with `decoder`, on a task of the
    /// runtime; events arrive through [`DecodedPage::next`].
    pub fn spawn<S>(chunks: S, mut decoder: CsvPageDecoder) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(AHEAD);
        let task = tokio::spawn(async move {
            let mut chunks = std::pin::pin!(chunks);
            loop {
                let event = match chunks.next().await {
                    Some(Ok(chunk)) => decoder
                        .push(&chunk)
                        .map(|batches| PageEvent::Chunk {
                            bytes: chunk.len(),
                            batches,
                        })
                        .map_err(PageError::Decode),
                    None => break,
                    Some(Err(e)) => Err(PageError::Source(e)),
                };
                let failed = event.is_err();
                if tx.send(event).await.is_err() || failed {
                    return;
                }
            }
            let last = decoder.finish().map_err(PageError::Decode);
            let last = last.map(|batches| PageEvent::Chunk { bytes: 0, batches });
            let failed = last.is_err();
            if tx.send(last).await.is_err() || failed {
                return;
            }
            let end = PageEvent::End {
                replaced_utf8: decoder.replaced_utf8(),
                removed_nul: decoder.removed_nul(),
            };
            let _ = tx.send(Ok(end)).await;
        });
        DecodedPage { rx, task }
    }

    /// The next event; `None` after [`PageEvent::End`] or an error.
    pub async fn next(&mut self) -> Option<Result<PageEvent, PageError<E>>> {
        self.rx.recv().await
    }
}

impl<E> Drop for DecodedPage<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
