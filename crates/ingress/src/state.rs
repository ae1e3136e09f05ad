//! Shared state of the HTTP layer, built once by the binary and cloned into every handler.

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::ApiError;
use fulfillment_log::EventLog;
use fulfillment_projector::ReadModels;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest a read waits for the in-process projector to catch up with the log.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The event log (source of truth).
    pub log: Arc<dyn EventLog>,
    /// Read models (query side).
    pub read_models: Arc<dyn ReadModels>,
    /// Partners, publishers, offers and policy.
    pub directory: Arc<Directory>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Position the in-process projector has committed, when there is one. Reads wait for it
    /// to reach the log head, so a client reads its own writes in the embedded mode.
    pub projected: Option<watch::Receiver<u64>>,
    /// Whether the projector is healthy, for `/readyz`.
    pub projector_healthy: Option<watch::Receiver<bool>>,
}

impl AppState {
    /// Waits (briefly) until the read models include every event durable right now.
    pub async fn catch_up(&self) -> Result<(), ApiError> {
        let Some(projected) = &self.projected else {
            return Ok(());
        };
        let head = *self.log.head().borrow();
        let mut projected = projected.clone();
        let reached = tokio::time::timeout(READ_YOUR_WRITES_WAIT, projected.wait_for(|p| *p >= head)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::Unavailable("the projector has stopped".into())),
            // Serve what we have: a slow projector is a lag, not an outage.
            Err(_) => Ok(()),
        }
    }
}
