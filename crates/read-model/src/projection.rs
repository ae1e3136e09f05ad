//! The projector's side of a store: how far it has folded the log, and folding the next batch.
//! In: events from the log, in order. Out: the read models, the billing outbox rows and the
//! rejected events they imply, committed with the new position in one transaction (invariant 4).

use crate::ReadModelError;
use async_trait::async_trait;
use fulfillment_log::StoredEvent;

/// How far a store has folded the log: what the projector resumes from, and what an audit
/// replays up to.
#[async_trait]
pub trait FoldPosition: Send + Sync + 'static {
    /// Log position folded so far (0 before the first event).
    async fn position(&self) -> Result<u64, ReadModelError>;
}

/// A store the projector (and a replay) folds the log into.
#[async_trait]
pub trait Projection: FoldPosition {
    /// Folds `events` (which must start right after [`FoldPosition::position`]) and commits the
    /// result atomically; returns the new position. A batch that overlaps what is committed
    /// fails with [`ReadModelError::Gap`] (or [`ReadModelError::PositionMoved`] when another
    /// projector committed meanwhile) and changes nothing.
    async fn project_batch(&self, events: &[StoredEvent]) -> Result<u64, ReadModelError>;
}
