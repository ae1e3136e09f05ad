//! Opening the event log by backend: the factory beside the [`EventLog`] trait (the shape of
//! svix's `queue/`: one small trait, and one function that turns a configuration into a
//! running backend).
//!
//! In: a [`LogBackend`], which names the backend and carries what it needs. Out: an
//! [`OpenLog`]: the log behind the trait for code that works on any backend, plus the Kafka
//! log itself where that is the backend.
//!
//! The Kafka backend keeps its write-side bookkeeping (stream versions, dedupe records, the
//! outcome of every produced event) in PostgreSQL, in the database of the read models, whose
//! store migrates it. So it takes a pool rather than a URL: the caller opens the read-model
//! store first and hands over its pool, and one process holds one pool to one database.

use crate::{EventLog, KafkaEventLog, KafkaLogOptions, LogError, SqliteEventLog, SqliteLogOptions};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;

/// Which event log to open, with what it needs.
#[derive(Debug, Clone)]
pub enum LogBackend {
    /// The embedded log: one SQLite file, opened for writing (checked, migrated) with its
    /// writer and checkpointer threads.
    Embedded {
        /// The file (`<data-dir>/events.sqlite`).
        path: PathBuf,
        /// Its tuning.
        options: SqliteLogOptions,
    },
    /// The events topic on Kafka, with its write side in PostgreSQL.
    Kafka {
        /// The topic and the producer's settings.
        options: KafkaLogOptions,
        /// A pool on the (migrated) database of the read models.
        bookkeeping: PgPool,
    },
}

/// An event log opened by [`open`].
#[derive(Clone)]
pub struct OpenLog {
    shared: Arc<dyn EventLog>,
    kafka: Option<KafkaEventLog>,
}

impl OpenLog {
    /// The log behind the trait: what the ingress, the projector and the audit tools use.
    pub fn shared(&self) -> Arc<dyn EventLog> {
        self.shared.clone()
    }

    /// The Kafka log itself, when that is the backend: only it knows the offsets this process
    /// produced ([`KafkaEventLog::produced_offsets`]), which a read of one's own writes waits
    /// for the projectors to pass. `None` for the embedded log, whose head says the same.
    pub fn kafka(&self) -> Option<&KafkaEventLog> {
        self.kafka.as_ref()
    }
}

/// Opens the event log `backend` names. Errors are the backend's: for the embedded log,
/// [`LogError::Damaged`] or [`LogError::Tampered`] when the file must not be served.
pub async fn open(backend: LogBackend) -> Result<OpenLog, LogError> {
    Ok(match backend {
        LogBackend::Embedded { path, options } => {
            OpenLog { shared: Arc::new(SqliteEventLog::open(&path, options).await?), kafka: None }
        }
        LogBackend::Kafka { options, bookkeeping } => {
            let log = KafkaEventLog::connect(options, bookkeeping).await?;
            OpenLog { shared: Arc::new(log.clone()), kafka: Some(log) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{licenses_assigned, new_id};
    use crate::{AppendBatch, StreamAppend};

    #[tokio::test]
    async fn the_embedded_backend_opens_a_writable_log_in_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let opened =
            open(LogBackend::Embedded { path: path.clone(), options: SqliteLogOptions::default() }).await.unwrap();
        assert!(opened.kafka().is_none());
        let log = opened.shared();
        let id = new_id();
        let batch = AppendBatch {
            streams: vec![StreamAppend {
                subscription_id: id,
                expected_version: 0,
                events: vec![licenses_assigned(id, 1)],
            }],
            idempotency: None,
        };
        assert_eq!(log.append(batch).await.unwrap().positions, [1]);
        assert!(log.is_ready().await);
        assert!(path.is_file());
    }
}
