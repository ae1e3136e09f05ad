//! Rebuilding read models from the log.

use crate::{AuditError, Progress};
use chrono::{DateTime, Utc};
use fulfillment_log::EventLog;
use fulfillment_read_model::Projection;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How far to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Everything in the log now.
    Head,
    /// Events up to and including this log position.
    Position(u64),
    /// The log prefix recorded at or before this instant: what `fulfillment` knew then.
    RecordedAt(DateTime<Utc>),
}

impl FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(position) = s.parse::<u64>() {
            return Ok(Until::Position(position));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Until::RecordedAt(t.with_timezone(&Utc)))
            .map_err(|_| format!("{s:?} is neither a log position (integer) nor an RFC 3339 time"))
    }
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events folded.
    pub events: u64,
    /// Log position the target is at now.
    pub position: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ReplayReport {
    /// Events folded per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Folds the log into `target`, from its position (0 for a fresh store) until `until`,
/// `batch` events per transaction.
pub async fn rebuild(
    log: &dyn EventLog,
    target: &dyn Projection,
    until: Until,
    batch: usize,
    progress: &mut dyn Progress,
) -> Result<ReplayReport, AuditError> {
    if batch == 0 {
        return Err(AuditError::Usage("the batch size must be at least 1".into()));
    }
    let started = Instant::now();
    let head = *log.head().borrow();
    let total = match until {
        Until::Position(p) => p.min(head),
        _ => head,
    };
    let mut position = target.position().await?;
    let mut events = 0;
    // The next page is read (and decoded) while the current one is folded and written: the log
    // and the target are separate databases, so the two overlap on separate cores.
    let mut page = log.read_after(position, batch).await?;
    loop {
        let fetched = page.len();
        let mut reached_end = fetched < batch;
        let keep = page
            .iter()
            .position(|e| match until {
                Until::Head => false,
                Until::Position(p) => e.position > p,
                Until::RecordedAt(t) => e.envelope.recorded_at > t,
            })
            .unwrap_or(fetched);
        if keep < fetched {
            page.truncate(keep);
            reached_end = true;
        }
        let Some(last) = page.last().map(|e| e.position) else { break };
        let read_ahead = async {
            if reached_end {
                Ok(Vec::new())
            } else {
                log.read_after(last, batch).await
            }
        };
        let (projected, next) = tokio::join!(target.project_batch(&page), read_ahead);
        position = projected?;
        events += page.len() as u64;
        progress.update(position.min(total), total);
        if reached_end {
            break;
        }
        page = next?;
    }
    Ok(ReplayReport { events, position, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reads_positions_and_instants() {
        assert_eq!("42".parse::<Until>(), Ok(Until::Position(42)));
        assert_eq!(
            "2026-01-02T03:04:05Z".parse::<Until>(),
            Ok(Until::RecordedAt("2026-01-02T03:04:05Z".parse().unwrap()))
        );
        assert!("yesterday".parse::<Until>().is_err());
    }
}
