//! Read models in PostgreSQL (`--database-url`): the store several ingress processes can
//! query while one projector writes it. The queries are the shared ones ([`crate::sql`]), so
//! it holds the same rows and gives the same fingerprints as the SQLite store; what is its own
//! is the connection set-up, batches serialized by locking the projector's position row, and
//! the Kafka projector's batches with their partition offsets ([`consumed`]).

mod consumed;

pub use consumed::ConsumedMessage;

use crate::sql::{fold_and_write, SqlStore, PROJECTOR};
use crate::{Projection, ReadModelError};
use async_trait::async_trait;
use fulfillment_log::StoredEvent;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// How to reach PostgreSQL. The URL may carry a password, so `Debug` never shows it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Upper bound of pooled connections (per process).
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails (and is retried by the
    /// projector, or answered 503 by the ingress).
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// The URL without its password, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable database url>".into();
    };
    // The last `@` before the query ends the credentials: a password may hold an unencoded
    // `@`, and sqlx's parser splits the same way.
    let query = rest.find('?').unwrap_or(rest.len());
    match rest[..query].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// The read models in PostgreSQL: every client trait of [`crate::ReadModels`].
#[derive(Clone)]
pub struct PostgresReadModel {
    pool: PgPool,
}

impl PostgresReadModel {
    /// Connects and applies `migrations/postgres` (idempotent: applied migrations are skipped,
    /// concurrent starts are serialized by sqlx's advisory lock).
    pub async fn connect(options: &PostgresOptions) -> Result<Self, ReadModelError> {
        let connect = PgConnectOptions::from_str(&options.url)?.application_name("fulfillment");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Self::migrate(&pool).await?;
        Ok(PostgresReadModel { pool })
    }

    /// Applies the migrations `migrations/postgres` holds to `pool`'s database.
    pub async fn migrate(pool: &PgPool) -> Result<(), ReadModelError> {
        sqlx::migrate!("../../migrations/postgres").run(pool).await.map_err(|e| ReadModelError::Store(e.into()))
    }

    /// The pool, for tests and tools that inspect the tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for in-flight queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl SqlStore for PostgresReadModel {
    type Db = Postgres;

    fn connections(&self) -> &PgPool {
        &self.pool
    }
}

/// Takes the projector's row lock for this batch (creating the row on first use) and returns
/// the stored position. The lock serializes batches on the database: a second projector waits
/// here, then sees what the first committed and refuses or trims its batch instead of folding
/// anything twice.
async fn lock_position(tx: &mut Transaction<'_, Postgres>) -> Result<u64, ReadModelError> {
    sqlx::query("INSERT INTO projector_positions (projector, position) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(PROJECTOR)
        .execute(&mut **tx)
        .await?;
    let position: i64 = sqlx::query_scalar("SELECT position FROM projector_positions WHERE projector = $1 FOR UPDATE")
        .bind(PROJECTOR)
        .fetch_one(&mut **tx)
        .await?;
    Ok(position as u64)
}

/// Folds `events` onto the stored states and writes what they produce and the new `position`,
/// inside the batch's transaction.
async fn fold_and_write_at(
    tx: &mut Transaction<'_, Postgres>,
    events: &[StoredEvent],
    position: u64,
) -> Result<(), ReadModelError> {
    fold_and_write::<Postgres>(&mut **tx, events).await?;
    sqlx::query("UPDATE projector_positions SET position = $2 WHERE projector = $1")
        .bind(PROJECTOR)
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Projection for PostgresReadModel {
    async fn project_batch(&self, events: &[StoredEvent]) -> Result<u64, ReadModelError> {
        let mut tx = self.pool.begin().await?;
        let start = lock_position(&mut tx).await?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(start);
        };
        if first.position <= start {
            return Err(ReadModelError::Gap { position: start, first: first.position });
        }
        fold_and_write_at(&mut tx, events, last.position).await?;
        tx.commit().await?;
        Ok(last.position)
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn the_password_never_shows_even_with_an_unencoded_at_sign() {
        assert_eq!(
            redact_url("postgres://u:p@ss@db:5432/x?sslmode=require"),
            "postgres://u:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u:secret@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact_url("postgres://db/x?user=a@b"), "postgres://db/x?user=a@b");
        assert!(!redact_url("postgres://u:p@ss@db/x").contains("ss@"));
    }
}
