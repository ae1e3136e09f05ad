//! Why the service could not start: one error enum for the assembly of the service (the
//! binary's `main` turns it into an exit status with its message).

use fulfillment_ingress::DirectoryError;
use fulfillment_log::LogError;
use fulfillment_projector::ProjectorError;
use fulfillment_relay::RelayError;
use std::net::SocketAddr;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file is unreadable or invalid.
    #[error("configuration {path}: {source}")]
    Config {
        /// File.
        path: String,
        /// Problem.
        source: DirectoryError,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    ConfigRead {
        /// File.
        path: String,
        /// Problem.
        source: std::io::Error,
    },
    /// Another process already uses the data directory.
    #[error("data directory {path} is in use by another fulfillment process (lock file {lock})")]
    DataDirInUse {
        /// Directory.
        path: String,
        /// Lock file.
        lock: String,
    },
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: String,
        /// Problem.
        source: std::io::Error,
    },
    /// The event log could not be opened.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// The event log is damaged (SQLite's `quick_check`) or was edited (a hash chain breaks
    /// after the last verified checkpoint): serving it would answer from, and append to, a log
    /// that cannot be trusted.
    #[error(
        "refusing to start on the event log {path}: {problem}. Run \
         `fulfillment verify --data-dir {data_dir}` for a full report"
    )]
    UntrustedLog {
        /// `events.sqlite`.
        path: String,
        /// The data directory, for the command to run.
        data_dir: String,
        /// What the check found.
        problem: LogError,
    },
    /// The read models could not be opened.
    #[error("read models: {0}")]
    ReadModels(#[from] ProjectorError),
    /// The billing relay's Kafka client could not be configured.
    #[error("billing relay: {0}")]
    Relay(#[from] RelayError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Problem.
        source: std::io::Error,
    },
}

impl From<fulfillment_read_model::ReadModelError> for StartError {
    fn from(e: fulfillment_read_model::ReadModelError) -> Self {
        StartError::ReadModels(ProjectorError::from(e))
    }
}
