//! Checkpoints: make what was delivered durable at the output, then emit the STATE that says
//! so. Only here is a STATE built, so "state never runs ahead of data" is one function's rule.

use chrono::{DateTime, Utc};

use super::FetchError;
use super::fetch::ObjectReader;
use crate::output::StreamWriter;
use crate::protocol::{AirbyteMessage, AirbyteStateMessage, StreamDescriptor};
use crate::state::{Cursor, StreamState};

impl ObjectReader<'_> {
    /// Commits the writer, then emits the STATE saying the object is covered up to `cursor`.
    /// When the output would rather wait (a Parquet file still small), the STATE waits with
    /// it: it is emitted at the next commit, by a later checkpoint or [`Self::flush_checkpoint`].
    pub(super) async fn checkpoint(
        &mut self,
        writer: &mut dyn StreamWriter,
        cursor: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        if self.slice_window.is_some() {
            return self.slice_checkpoint(writer).await;
        }
        if let Some(w) = &self.worker {
            // A window read for another reader: that reader decides when a STATE is true.
            self.max_cursor_us = None;
            let page = super::concurrent::Event::Page(cursor);
            return w.send(page).await;
        }
        self.carry.own_at = Some(cursor);
        // The fields and start_date the rows below this cursor were read with: a later run
        // reading more fields, or from earlier, reads the object again
        // ([`super::plan::plan_backfills`]).
        if self.plan.incremental {
            let (object, start) = (self.object, self.ctx.config.start_date);
            self.carry
                .fresh
                .record_read(&object.object, &object.fields_read, start);
        }
        // A checkpoint after a page of a window comes before the window's deletions: the
        // STATE says where they were delivered up to, for the next run to ask from there.
        let deletions_to = self.deletions_done.filter(|_| self.plan.incremental);
        let field = self.object.cursor.unwrap_or("SystemModstamp");
        let at = Cursor::new(field, cursor, deletions_to);
        let state = if self.plan.mapped {
            self.sources.insert(&self.object.object, at);
            StreamState {
                sources: self.sources.clone(),
                ..StreamState::default()
            }
        } else {
            StreamState {
                cursor: Some(at),
                ..StreamState::default()
            }
        };
        self.max_cursor_us = None;
        if !writer.wants_commit() {
            self.deferred = Some(state);
            return Ok(());
        }
        self.deferred = None;
        self.commit_state(writer, state).await
    }

    /// Commits the output with the STATE it makes true (an output that keeps it, Delta,
    /// records it in the same commit), then emits that STATE.
    async fn commit_state(
        &mut self,
        writer: &mut dyn StreamWriter,
        mut state: StreamState,
    ) -> Result<(), FetchError> {
        state.fresh = self.carry.fresh.clone();
        writer.stage_state(&state);
        writer.commit().await?;
        self.emit_state(writer, state).await
    }

    /// Commits the output and emits the STATE a checkpoint deferred, if any: at the end of an
    /// object, and when a read stops or fails, so what was delivered keeps its STATE.
    pub(super) async fn flush_checkpoint(
        &mut self,
        writer: &mut dyn StreamWriter,
    ) -> Result<(), FetchError> {
        let Some(state) = self.deferred.take() else {
            return Ok(());
        };
        self.commit_state(writer, state).await
    }

    /// After the one read of an object without a cursor: commits, and emits an empty STATE
    /// (there is nothing to resume from; it tells the orchestrator the rows are durable).
    pub(super) async fn checkpoint_whole(
        &mut self,
        writer: &mut dyn StreamWriter,
        total: u64,
    ) -> Result<(), FetchError> {
        if self.slice_window.is_some() {
            return self.slice_checkpoint(writer).await;
        }
        writer.stage_state(&StreamState::default());
        writer.commit().await?;
        self.pending = 0;
        self.ctx
            .emit(AirbyteMessage::state(AirbyteStateMessage::stream(
                StreamDescriptor::named(&self.plan.name),
                StreamState {
                    table: writer.table_position(),
                    ..StreamState::default()
                }
                .to_value(),
                total as f64,
            )))
            .await
    }

    /// A checkpoint of a slice read: a file of a useful size is completed, no STATE (the
    /// slice has one, once committed whole).
    async fn slice_checkpoint(&mut self, writer: &mut dyn StreamWriter) -> Result<(), FetchError> {
        self.max_cursor_us = None;
        if !writer.wants_commit() {
            return Ok(());
        }
        let before = writer.position().map(|p| p.parts);
        writer.commit().await?;
        if let Some(p) = writer.position().filter(|p| Some(p.parts) != before) {
            let text = format!(
                "{}: {} file(s) of this slice written in sync {} (the slice is committed when its marker is complete)",
                self.plan.name, p.parts, p.sync_id
            );
            self.ctx.log(crate::protocol::LogLevel::Info, text).await;
        }
        Ok(())
    }

    async fn emit_state(
        &mut self,
        writer: &dyn StreamWriter,
        mut state: StreamState,
    ) -> Result<(), FetchError> {
        state.output = writer.position();
        state.table = writer.table_position();
        state.fresh = self.carry.fresh.clone();
        self.carry.saved = state.fresh.clone();
        let msg = AirbyteStateMessage::stream(
            StreamDescriptor::named(&self.plan.name),
            state.to_value(),
            self.pending as f64,
        );
        self.pending = 0;
        self.ctx.emit(AirbyteMessage::state(msg)).await
    }
}
