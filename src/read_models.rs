//! Where the read models and the billing outbox live: next to the embedded log by default, or
//! in PostgreSQL (always, on the Kafka log). [`ReadModelStore`] is the opened store, kept by the
//! service to hand to the ingress and projector and to close last on shutdown.

use fulfillment_projector::ProjectorError;
use fulfillment_read_model::{PostgresOptions, PostgresReadModel, ReadModels, SqliteReadModel};
use std::path::Path;
use std::sync::Arc;

/// Where the read models live: next to the embedded log by default, or in PostgreSQL so that
/// they survive the machine and can be queried by other tools.
#[derive(Debug, Clone, Default)]
pub enum ReadModelBackend {
    /// `<data-dir>/read_model.sqlite`.
    #[default]
    Embedded,
    /// A PostgreSQL database (migrated at start).
    Postgres(PostgresOptions),
}

/// The opened read-model store, kept to close it last on shutdown.
#[derive(Clone)]
pub(crate) enum ReadModelStore {
    Sqlite(SqliteReadModel),
    Postgres(PostgresReadModel),
}

impl ReadModelStore {
    /// Opens (creating or migrating) the store `backend` names; SQLite in `data_dir`.
    pub(crate) async fn open(backend: &ReadModelBackend, data_dir: &Path) -> Result<Self, ProjectorError> {
        Ok(match backend {
            ReadModelBackend::Embedded => {
                ReadModelStore::Sqlite(SqliteReadModel::open(&data_dir.join("read_model.sqlite")).await?)
            }
            ReadModelBackend::Postgres(options) => ReadModelStore::Postgres(PostgresReadModel::connect(options).await?),
        })
    }

    /// The store behind the trait, for the ingress, the projector and the relay.
    pub(crate) fn shared(&self) -> Arc<dyn ReadModels> {
        match self {
            ReadModelStore::Sqlite(store) => Arc::new(store.clone()),
            ReadModelStore::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Closes the store's connections (the last step of a shutdown).
    pub(crate) async fn close(&self) {
        match self {
            ReadModelStore::Sqlite(store) => store.close().await,
            ReadModelStore::Postgres(store) => store.close().await,
        }
    }
}
