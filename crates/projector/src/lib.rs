//! The projector: keeps the read models caught up with the event log.
//!
//! It reads events after the store's committed position and hands them, batch after batch, to
//! the store's [`Projection`](fulfillment_read_model::Projection), which folds each with the
//! domain's `apply` and commits the read-model rows, the billing events, the rejected
//! events and the new position in **one** transaction (invariant 4). A crash anywhere and a
//! restart resume at the committed position: no event is applied twice or skipped.
//!
//! In: an [`EventLog`](fulfillment_log::EventLog) read in order ([`run_projector`], the embedded
//! mode), or the Kafka events topic read by a consumer group ([`run_kafka_projector`], folding
//! into PostgreSQL with the partitions' offsets). Out: the position committed so far and the
//! projector's health, for read-your-writes waits, the billing relay's wake-ups and `/readyz`.
//! The stores themselves live in `fulfillment-read-model`.

mod error;
mod kafka;
mod runner;

pub use error::ProjectorError;
pub use kafka::{run_kafka_projector, KafkaProjectorOptions};
pub use runner::{run_projector, ProjectorHandle};
