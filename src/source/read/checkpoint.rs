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
    pub(super) async fn checkpoint(
        &mut self,
        writer: &mut dyn StreamWriter,
        cursor: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        let at = Cursor {
            cursor_field: self.object.cursor.unwrap_or("SystemModstamp").to_string(),
            cursor,
        };
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
        writer.stage_state(&state);
        writer.commit().await?;
        self.emit_state(writer, state).await
    }

    /// After the one read of an object without a cursor: commits, and emits an empty STATE
    /// (there is nothing to resume from; it tells the orchestrator the rows are durable).
    pub(super) async fn checkpoint_whole(
        &mut self,
        writer: &mut dyn StreamWriter,
        total: u64,
    ) -> Result<(), FetchError> {
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

    async fn emit_state(
        &mut self,
        writer: &dyn StreamWriter,
        mut state: StreamState,
    ) -> Result<(), FetchError> {
        state.output = writer.position();
        state.table = writer.table_position();
        let msg = AirbyteStateMessage::stream(
            StreamDescriptor::named(&self.plan.name),
            state.to_value(),
            self.pending as f64,
        );
        self.pending = 0;
        self.ctx.emit(AirbyteMessage::state(msg)).await
    }
}
