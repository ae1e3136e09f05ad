//! One implementation of the read models for both SQL databases.
//!
//! SQLite and PostgreSQL hold the same tables (`migrations/sqlite/read_model`,
//! `migrations/postgres`), so every query is written once, here, generic over the database
//! ([`Backend`]); what the two dialects do differently (placeholders in statements built from
//! the data, how a timestamp is stored, how many rows a statement changed) is said once, in
//! [`dialect`]. A store opts in with [`SqlStore`] (its pool), and gets every client trait but
//! [`Projection`](crate::Projection): how a batch is serialized against a concurrent projector
//! is the one thing the stores do differently, and each does it around the shared
//! [`fold_and_write`].

mod backend;
mod dialect;
mod fingerprints;
mod fold;
mod outbox;
mod subscriptions;
mod usage;

pub(crate) use backend::Backend;
pub(crate) use dialect::Param;
pub(crate) use fold::fold_and_write;
pub(crate) use subscriptions::stored_position;

/// Name of the projector row in `projector_positions`.
pub(crate) const PROJECTOR: &str = "subscriptions";

/// A read-model store in an SQL database: the pool its queries run on.
pub(crate) trait SqlStore: Send + Sync + 'static {
    /// The database.
    type Db: Backend;

    /// The store's connections.
    fn connections(&self) -> &sqlx::Pool<Self::Db>;
}
