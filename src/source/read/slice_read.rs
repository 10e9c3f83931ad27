//! `read --slice`: one slice of `sfetl plan` read and committed on its own. The slice must fit
//! the catalog's stream (its object and cursor); a Parquet slice already committed is not read
//! again, and unfinished attempts of it are removed first (see `output::slices`). Its STATE
//! (the window, in date-range form) comes once, after the slice's files and marker are
//! complete.

use chrono::Utc;
use serde_json::Value;

use super::fetch::ObjectReader;
use super::plan::{ObjectPlan, StreamPlan};
use super::slice::SliceRun;
use super::{Ctx, FetchError, open_writer};
use crate::output::sync::SliceMark;
use crate::output::{Destination, SliceStart, prepare_slice};
use crate::protocol::{
    AirbyteMessage, AirbyteStateMessage, AirbyteStreamStatus, LogLevel, StreamDescriptor,
};
use crate::state::Freshness;

/// Reads the slice `run` of the planned stream `plan`.
pub(super) async fn read_slice(
    ctx: &Ctx,
    plan: &StreamPlan<'_>,
    run: &SliceRun,
) -> Result<u64, FetchError> {
    let object = fitting_object(plan, run)?;
    let slice = &run.slice;
    let name = &plan.name;
    if let Destination::Parquet { location, .. } = &ctx.destination {
        match prepare_slice(location, name, &slice.slice_id).await? {
            SliceStart::Committed(sync) => {
                let text = format!(
                    "{name}: slice {} is already committed (sync {sync}); nothing to read",
                    slice.slice_id
                );
                ctx.log(LogLevel::Info, text).await;
                emit_state(ctx, plan, object, run, 0).await?;
                ctx.status(name, AirbyteStreamStatus::Complete).await?;
                return Ok(0);
            }
            SliceStart::Fresh(removed) if !removed.is_empty() => {
                let text = format!(
                    "{name}: removed the unfinished attempts of slice {} (syncs {}); reading it again",
                    slice.slice_id,
                    removed.join(", ")
                );
                ctx.log(LogLevel::Info, text).await;
            }
            SliceStart::Fresh(_) => {}
        }
    }
    if let Destination::Delta(delta) = &ctx.destination
        && delta.slice_committed(name, &slice.slice_id).await?
    {
        let text = format!(
            "{name}: slice {} is already committed to the Delta table {}; nothing to read",
            slice.slice_id,
            delta.table_display(name)
        );
        ctx.log(LogLevel::Info, text).await;
        emit_state(ctx, plan, object, run, 0).await?;
        ctx.status(name, AirbyteStreamStatus::Complete).await?;
        return Ok(0);
    }
    let mark = SliceMark {
        id: slice.slice_id.clone(),
        sequence: slice.sequence,
    };
    let mut writer = open_writer(ctx, plan, Some(mark)).await?;
    ctx.status(name, AirbyteStreamStatus::Running).await?;
    let started = Utc::now();
    let window = slice
        .window()
        .map_err(|e| FetchError::BadSlice(run.error(e)))?;
    let mut reader = ObjectReader::new(ctx, plan, object, plan.saved.sources.clone());
    reader.slice_window = Some(window);
    // Deletions before its window are asked for only when the plan says so (its first slice
    // after a STATE checkpointed inside a window), whatever state the run was given.
    reader.deletions_done = slice
        .deletions_from()
        .map_err(|e| FetchError::BadSlice(run.error(e)))?;
    let rows = reader.read_all(writer.as_mut()).await?;
    super::warn_keyless(ctx, plan, &reader).await;
    let summary = reader.summary(rows, started);
    reader.into_sources();
    // Completing the sync (files, then the marker) is the slice's commit.
    writer.finish().await?;
    emit_state(ctx, plan, object, run, rows).await?;
    let text = format!(
        "{name}: slice {} ({} of {}): {summary}",
        slice.slice_id,
        slice.sequence + 1,
        slice.of
    );
    ctx.log(LogLevel::Info, text).await;
    ctx.status(name, AirbyteStreamStatus::Complete).await?;
    Ok(rows)
}

/// The object of the stream the slice reads, when the slice fits the stream's plan (the
/// object is read for it, with the same cursor).
fn fitting_object<'p>(
    plan: &'p StreamPlan<'p>,
    run: &SliceRun,
) -> Result<&'p ObjectPlan<'p>, FetchError> {
    let slice = &run.slice;
    let Some(object) = plan.objects.iter().find(|o| o.object == slice.object) else {
        let objects: Vec<&str> = plan.objects.iter().map(|o| o.object.as_str()).collect();
        return Err(FetchError::BadSlice(run.error(format!(
            "reads object {}, but the catalog's stream {} reads {}: plan again with this catalog and config",
            slice.object,
            plan.name,
            objects.join(", ")
        ))));
    };
    if object.cursor != slice.cursor_field.as_deref() {
        let what = |c: Option<&str>| {
            c.map_or("no cursor (read whole)".to_string(), |c| {
                format!("cursor {c}")
            })
        };
        return Err(FetchError::BadSlice(run.error(format!(
            "reads {} by {}, but the catalog's stream {} reads it by {}: plan again with this catalog",
            slice.object,
            what(slice.cursor_field.as_deref()),
            plan.name,
            what(object.cursor)
        ))));
    }
    Ok(object)
}

/// The slice's one STATE: its window, once its rows are committed, and (incremental) what
/// its rows were read with, as a plain read's STATE records it: merged with the other
/// slices' STATEs, the next plan backfills fields the rows were read without.
async fn emit_state(
    ctx: &Ctx,
    plan: &StreamPlan<'_>,
    object: &ObjectPlan<'_>,
    run: &SliceRun,
    rows: u64,
) -> Result<(), FetchError> {
    let mut blob = run.slice.state(plan.mapped);
    if plan.incremental && object.cursor.is_some() {
        let mut fresh = Freshness::default();
        fresh.record_read(&object.object, &object.fields_read, ctx.config.start_date);
        if let (Some(b), Ok(Value::Object(f))) =
            (blob.as_object_mut(), serde_json::to_value(&fresh))
        {
            b.extend(f);
        }
    }
    let msg = AirbyteStateMessage::stream(StreamDescriptor::named(&plan.name), blob, rows as f64);
    ctx.emit(AirbyteMessage::state(msg)).await
}
