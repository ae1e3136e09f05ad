//! The read models and the billing outbox: the query side of `fulfillment`, derived from the
//! event log and rebuildable from it at any time.
//!
//! In: batches of [`StoredEvent`](fulfillment_log::StoredEvent)s, folded with
//! [`fulfillment_core::apply`] and committed with the read-model rows, the billing outbox rows,
//! the rejected events and the new position in **one** transaction (invariant 4: a crash and a
//! restart resume at the committed position, nothing applied twice or skipped). Out: what each
//! client asks for, through a trait of its own, so that no client sees more than it uses:
//!
//! | client | trait |
//! |---|---|
//! | the projector (and `replay`) | [`Projection`] (with [`FoldPosition`]) |
//! | the HTTP API (partner API, console, SaaS API) | [`SubscriptionQueries`] |
//! | the billing feed (HTTP) | [`BillingFeed`] |
//! | the billing relay | [`BillingOutbox`] |
//! | audits (`verify`) and the store tests | [`Fingerprints`] (with [`FoldPosition`]) |
//! | the scheduler of deadlines | [`DueDeadlines`] |
//! | the Metering API's usage read-back | [`UsageQueries`] |
//!
//! [`ReadModels`] is all of them at once: what the service assembly opens and hands out.
//! [`SqliteReadModel`] keeps the models in `<data-dir>/read_model.sqlite` (embedded mode),
//! [`PostgresReadModel`] in PostgreSQL (production; also the Kafka projector's consumed offsets).
//! Both run the same fold and the same queries (`sql/`, written once for both dialects), so a
//! model folded into one is row for row the model the other holds; the schemas are in
//! `migrations/sqlite/read_model` and `migrations/postgres`.

mod billing;
mod deadlines;
mod error;
mod fingerprints;
mod postgres;
mod projection;
mod sql;
mod sqlite;
mod subscription_queries;
mod usage;

pub use billing::{BillingFeed, BillingFeedEntry, BillingOutbox, OutboxEntry};
pub use deadlines::{DueDeadline, DueDeadlines};
pub use error::ReadModelError;
pub use fingerprints::{Fingerprint, Fingerprints, RejectedEvent};
pub use postgres::{redact_url, ConsumedMessage, PostgresOptions, PostgresReadModel};
pub use projection::{FoldPosition, Projection};
pub use sqlite::SqliteReadModel;
pub use subscription_queries::{CustomerSummary, SubscriptionQueries};
pub use usage::{UsageFilter, UsageQueries, UsageRecord};

/// Every client's view of one store: what the service assembly opens, then hands to each client
/// as the one trait that client needs.
pub trait ReadModels:
    Projection + SubscriptionQueries + BillingFeed + BillingOutbox + Fingerprints + DueDeadlines + UsageQueries
{
}

impl<T> ReadModels for T where
    T: Projection + SubscriptionQueries + BillingFeed + BillingOutbox + Fingerprints + DueDeadlines + UsageQueries
{
}
