//! Shared state of the HTTP layer, built once by the binary and cloned into every handler.

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::ApiError;
use async_trait::async_trait;
use fulfillment_log::EventLog;
use fulfillment_read_model::{BillingFeed, SubscriptionQueries, UsageQueries};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest a read waits for the projector to catch up with this process's writes.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// How a read learns that the read models include this process's own writes, so a client reads
/// what it just wrote. Each deployment shape knows it differently: the embedded projector
/// publishes its position in memory, the Kafka projector commits offsets to PostgreSQL.
#[async_trait]
pub trait WriteVisibility: Send + Sync + 'static {
    /// Waits up to `limit` until every event this process has appended is folded. `Err` when
    /// the projector is known to have stopped; a timeout is a lag, not an error.
    async fn wait_for_own_writes(&self, limit: Duration) -> Result<(), String>;
}

/// The embedded mode: the projector runs in this process and publishes its position.
pub struct InProcessProjection {
    /// The log's durable head.
    pub head: watch::Receiver<u64>,
    /// The position the projector committed.
    pub projected: watch::Receiver<u64>,
}

#[async_trait]
impl WriteVisibility for InProcessProjection {
    async fn wait_for_own_writes(&self, limit: Duration) -> Result<(), String> {
        let head = *self.head.borrow();
        let mut projected = self.projected.clone();
        let reached = tokio::time::timeout(limit, projected.wait_for(|p| *p >= head)).await.map(|r| r.is_ok());
        match reached {
            Ok(true) | Err(_) => Ok(()),
            Ok(false) => Err("the projector has stopped".into()),
        }
    }
}

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The event log (source of truth).
    pub log: Arc<dyn EventLog>,
    /// Read models (query side): what the partner API, the console and the SaaS API read.
    pub read_models: Arc<dyn SubscriptionQueries>,
    /// The billing outbox, as the billing feed pages through it.
    pub billing_feed: Arc<dyn BillingFeed>,
    /// Accepted usage events, as the Metering API reads them back.
    pub usage: Arc<dyn UsageQueries>,
    /// Partners, publishers, offers and policy.
    pub directory: Arc<Directory>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// How reads wait for this process's writes to be folded; `None` serves reads as they are.
    pub visibility: Option<Arc<dyn WriteVisibility>>,
    /// Health of what runs beside the API in this process (projector, billing relay), for
    /// `/readyz`.
    pub health: crate::health::HealthChecks,
    /// The memory all request bodies in flight may hold, and the time to read one.
    pub bodies: crate::request_limits::BodyLimits,
    /// Failed authentication attempts, per address and per credential.
    pub auth_failures: crate::security::auth_failures::AuthFailures,
    /// The base of the absolute links the SaaS API hands out (`Operation-Location`,
    /// `@nextLink`), without a trailing slash: the configured public URL, else the concrete
    /// listen address; `None`: links are relative. Never taken from the request's `Host`,
    /// which the caller chooses.
    pub public_url: Option<String>,
}

impl AppState {
    /// What links start with: the public URL, or nothing (relative links).
    pub fn links_base(&self) -> &str {
        self.public_url.as_deref().unwrap_or("")
    }

    /// Waits (briefly) until the read models include every event durable right now.
    pub async fn catch_up(&self) -> Result<(), ApiError> {
        let Some(visibility) = &self.visibility else {
            return Ok(());
        };
        // Serve what we have after the wait: a slow projector is a lag, not an outage.
        visibility.wait_for_own_writes(READ_YOUR_WRITES_WAIT).await.map_err(ApiError::Unavailable)
    }
}
