//! Audit export: raw envelopes as JSON lines, streamed page by page so memory stays constant
//! whatever the size of the log.

use crate::AuditError;
use chrono::{DateTime, Utc};
use fulfillment_core::SubscriptionId;
use fulfillment_log::{EventLog, StoredEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use std::io::Write;

/// Events read per page.
const PAGE: usize = 5_000;

/// Which events to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
    /// Only this subscription.
    pub subscription: Option<SubscriptionId>,
}

impl ExportFilter {
    fn accepts(&self, e: &StoredEvent) -> bool {
        let at = e.envelope.recorded_at;
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at < u)
    }
}

/// One exported line: the envelope exactly as stored, with where it sits in the log and its
/// hash chain links, so an auditor can check the chain from the export alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    position: u64,
    stream_version: u64,
    previous_hash: &'a str,
    hash: &'a str,
    envelope: &'a RawValue,
}

fn write_line(out: &mut dyn Write, e: &StoredEvent) -> Result<(), AuditError> {
    let envelope: Box<RawValue> = RawValue::from_string(e.raw.clone())
        .map_err(|err| AuditError::Usage(format!("stored event at position {} is not JSON: {err}", e.position)))?;
    let line = Line {
        position: e.position,
        stream_version: e.stream_version,
        previous_hash: &e.previous_hash,
        hash: &e.hash,
        envelope: &envelope,
    };
    serde_json::to_writer(&mut *out, &line).map_err(|err| AuditError::Io(err.into()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the matching events to `out`, one JSON object per line; returns how many.
pub async fn export_jsonl(log: &dyn EventLog, filter: &ExportFilter, out: &mut dyn Write) -> Result<u64, AuditError> {
    let mut written = 0;
    if let Some(id) = filter.subscription {
        for e in log.read_stream(id).await?.iter().filter(|e| filter.accepts(e)) {
            write_line(out, e)?;
            written += 1;
        }
        out.flush()?;
        return Ok(written);
    }
    let mut position = 0;
    loop {
        let page = log.read_after(position, PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        for e in page.iter().filter(|e| filter.accepts(e)) {
            write_line(out, e)?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}
