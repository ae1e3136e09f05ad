//! Audit tooling: answer "what happened to this subscription, and why was it billed" from the
//! event log alone, and prove that the read models are exactly what the log says.
//!
//! - [`replay::rebuild`] folds the log, from the first event, into a fresh read-model store,
//!   optionally only up to a position or an instant (point-in-time state).
//! - [`verify::verify`] replays into a scratch store and compares it with the live one by
//!   deterministic checksums per table and per subscription (invariant 5, replay equals live),
//!   and checks every subscription's hash chain, naming the first broken link.
//! - [`history::timeline`] explains one subscription event by event.
//! - [`export::export_jsonl`] streams raw envelopes with their positions and hashes, in
//!   constant memory whatever the size of the log.
//!
//! Everything here reads the log through the `EventLog` trait, folds into read models through
//! `Projection` and compares them through `Fingerprints`, so it works on any backend that
//! implements them.

pub mod export;
pub mod history;
pub mod replay;
pub mod verify;

use fulfillment_log::LogError;
use fulfillment_read_model::ReadModelError;

/// Why an audit command failed (as opposed to finding a difference, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// Reading or writing a read-model store failed.
    #[error("read models: {0}")]
    Store(#[from] ReadModelError),
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// An argument is unusable.
    #[error("{0}")]
    Usage(String),
}

/// Reports progress of a long command (a progress bar on a terminal, log lines otherwise).
pub trait Progress {
    /// `done` of `total` units are done.
    fn update(&mut self, done: u64, total: u64);
}

/// No progress reporting.
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _: u64, _: u64) {}
}
