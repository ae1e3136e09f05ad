//! The scheduler of deadlines: how time enters the event log. Terms end (renewal or expiry),
//! pending subscriptions reach their activation deadline, suspended ones the end of their grace
//! period; none of that has a caller, so this task asks for it.
//!
//! In: the read models' [`DueDeadlines`] (which subscriptions' `next_deadline_at` has passed,
//! earliest first), the event log, and "now" (the wall clock, injected so tests can move it).
//! Out: events appended to the log through the same path as every command: the subscription's
//! state is read from the log, `decide` is asked to reach its next deadline
//! ([`Command::ReachDeadline`](fulfillment_core::Command::ReachDeadline), through [`reach_due_deadlines`]), and the event is appended against the stream version it was
//! decided on, with `occurred_at` = the deadline, `recorded_at` = now, source `system`, and an
//! id derived from the deadline ([`Deadline::event_id`](fulfillment_core::Deadline::event_id)).
//!
//! So nothing is doubled: two schedulers (two projector processes), a restart or a replay race
//! on the stream version, and the loser decides again against the new state, where the
//! deadline is no longer due. After downtime, or under a clock moved forward, a sweep reaches
//! every deadline that passed, in due order, each subscription's in its own order (a monthly
//! subscription down for 65 days renews twice). The read model only points at work: it may lag
//! the log, and a subscription it still lists as due is simply found not due any more.
//!
//! Each sweep pages through everything due (keyset paging, [`SchedulerOptions::batch`] rows a
//! page) and reaches up to [`SchedulerOptions::concurrency`] subscriptions at once, so the
//! log's group commit gathers their appends; then it sleeps [`SchedulerOptions::interval`].

use chrono::{DateTime, Utc};
use fulfillment_core::{reach_due_deadlines, SubscriptionId};
use fulfillment_log::{AppendBatch, EventLog, LogError, StreamAppend};
use fulfillment_read_model::{DueDeadline, DueDeadlines, ReadModelError};
use futures_util::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

pub use fulfillment_core::SCHEDULER_ACTOR;

/// How often a visit decides again after losing a race on the stream version.
const MAX_CONFLICTS_PER_VISIT: usize = 8;

/// How many other ids a visit tries when a deadline's event id is already taken.
const MAX_ID_ATTEMPTS: u32 = 3;

/// The wall clock, injected.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Why a sweep stopped early; the next sweep retries.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The read models could not list due deadlines.
    #[error("listing due deadlines: {0}")]
    ReadModel(#[from] ReadModelError),
    /// The log could not be read or written.
    #[error("event log: {0}")]
    Log(#[from] LogError),
}

/// Settings of the scheduler (`--deadline-check-interval` and fixed figures).
#[derive(Debug, Clone, Copy)]
pub struct SchedulerOptions {
    /// Pause between sweeps.
    pub interval: Duration,
    /// Rows a page of due deadlines.
    pub batch: u32,
    /// Subscriptions reached at once.
    pub concurrency: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions { interval: Duration::from_secs(1), batch: 1000, concurrency: 64 }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Subscriptions the read models listed as due.
    pub visited: u64,
    /// Events appended.
    pub reached: u64,
    /// Subscriptions that could not be reached (retried at the next sweep).
    pub failed: u64,
}

/// The scheduler's parts.
#[derive(Clone)]
pub struct Scheduler {
    log: Arc<dyn EventLog>,
    deadlines: Arc<dyn DueDeadlines>,
    now: Now,
    options: SchedulerOptions,
}

impl Scheduler {
    /// A scheduler over `log` and `deadlines`, reading `now`.
    pub fn new(log: Arc<dyn EventLog>, deadlines: Arc<dyn DueDeadlines>, now: Now, options: SchedulerOptions) -> Self {
        Scheduler { log, deadlines, now, options }
    }

    /// Runs sweeps until `stop` is cancelled; a sweep in progress finishes its page first.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            info!(interval_ms = self.options.interval.as_millis() as u64, "deadline scheduler started");
            match self.deadlines.subscriptions_without_deadlines().await {
                Ok(0) => {}
                Ok(stale) => warn!(
                    stale,
                    "live subscriptions folded by a release before terms and deadlines existed: they will not renew, \
                     expire or be cancelled until the read models are rebuilt (fulfillment replay --swap --yes)"
                ),
                Err(e) => warn!(error = %e, "cannot count subscriptions without deadlines"),
            }
            loop {
                match self.sweep(&stop).await {
                    Ok(sweep) if sweep.reached > 0 || sweep.failed > 0 => {
                        info!(
                            visited = sweep.visited,
                            reached = sweep.reached,
                            failed = sweep.failed,
                            "deadlines reached"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "deadline sweep stopped early; retrying at the next"),
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.options.interval) => {}
                }
            }
            info!("deadline scheduler stopped");
        })
    }

    /// One sweep: every deadline due at its start, in due order. Stops between pages once
    /// `stop` is cancelled.
    pub async fn sweep(&self, stop: &CancellationToken) -> Result<Sweep, SchedulerError> {
        let now = (self.now)();
        let mut sweep = Sweep::default();
        let mut after = None;
        while !stop.is_cancelled() {
            let page = self.deadlines.due_deadlines(now, after, self.options.batch).await?;
            let Some(last) = page.last().copied() else { break };
            let reached: Vec<Result<u64, SchedulerError>> = stream::iter(page.iter().copied())
                .map(|due| self.visit(due, now))
                .buffered(self.options.concurrency.max(1))
                .collect()
                .await;
            sweep.visited += page.len() as u64;
            // One subscription that cannot be reached now (its stream unreadable, say) must not
            // hold back the others: it is logged and tried again at the next sweep.
            for (due, result) in page.iter().zip(reached) {
                match result {
                    Ok(n) => sweep.reached += n,
                    Err(e) => {
                        sweep.failed += 1;
                        warn!(subscription_id = %due.subscription_id, error = %e, "deadline not reached; retrying at the next sweep");
                    }
                }
            }
            after = Some(last);
        }
        Ok(sweep)
    }

    /// Reaches every deadline of one subscription due at `now`, in order; returns how many
    /// events it appended.
    async fn visit(&self, due: DueDeadline, now: DateTime<Utc>) -> Result<u64, SchedulerError> {
        let id = due.subscription_id;
        let span = tracing::info_span!("deadline", subscription_id = %id);
        async move {
            let (mut conflicts, mut attempt) = (0, 0);
            loop {
                match self.reach_due(id, now, attempt).await {
                    Ok(reached) => return Ok(reached),
                    Err(LogError::Conflict { .. }) if conflicts < MAX_CONFLICTS_PER_VISIT => {
                        conflicts += 1;
                        debug!("another writer moved the stream; deciding again");
                    }
                    // A Kafka message produced for this id and voided after its commit failed
                    // keeps the id: the next attempt derives another, the same for every writer.
                    Err(LogError::DuplicateEventId(event_id)) if attempt < MAX_ID_ATTEMPTS => {
                        attempt += 1;
                        warn!(%event_id, attempt, "the deadline's event id is taken; deciding again under the next");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Reads the subscription's state from the log and appends the events of every deadline
    /// due at `now` ([`reach_due_deadlines`]) against the version it read; how many.
    async fn reach_due(&self, id: SubscriptionId, now: DateTime<Utc>, attempt: u32) -> Result<u64, LogError> {
        let loaded = self.log.stream_state(id).await?;
        let (_, events) = reach_due_deadlines(loaded.subscription, now, attempt);
        if events.is_empty() {
            return Ok(0);
        }
        let reached: Vec<(uuid::Uuid, &'static str, DateTime<Utc>)> =
            events.iter().map(|e| (e.event_id, e.event_type(), e.occurred_at)).collect();
        let append = StreamAppend { subscription_id: id, expected_version: loaded.version, events };
        self.log.append(AppendBatch { streams: vec![append], idempotency: None }).await?;
        for (event_id, event_type, due_at) in &reached {
            info!(%event_id, event_type, %due_at, "deadline reached");
        }
        Ok(reached.len() as u64)
    }
}

#[cfg(test)]
mod tests;
