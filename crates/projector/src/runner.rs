//! The projector loop: wait for new events, fold them in batches, repeat; retry on errors
//! without moving the position; stop between batches when asked.

use crate::ProjectorError;
use fulfillment_log::EventLog;
use fulfillment_read_model::Projection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A running projector: its task and the position it has committed.
pub struct ProjectorHandle {
    /// Position committed so far, updated after every batch.
    pub position: watch::Receiver<u64>,
    /// Whether the last attempt succeeded (for `/readyz`).
    pub healthy: watch::Receiver<bool>,
    /// The projector task; ends after `shutdown` is cancelled and the current batch finished.
    pub task: JoinHandle<()>,
}

/// Starts folding `log` into `store`, `batch_size` events per transaction, until `shutdown`.
pub fn run_projector(
    log: Arc<dyn EventLog>,
    store: Arc<dyn Projection>,
    batch_size: usize,
    shutdown: CancellationToken,
) -> ProjectorHandle {
    let (position_tx, position_rx) = watch::channel(0);
    let (healthy_tx, healthy_rx) = watch::channel(true);
    let task = tokio::spawn(async move {
        let mut head = log.head();
        let mut backoff = Duration::from_millis(50);
        let mut position = loop {
            match store.position().await {
                Ok(p) => break p,
                Err(e) => {
                    warn!(error = %e, "projector cannot read its position; retrying");
                    healthy_tx.send_replace(false);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        position_tx.send_replace(position);
        info!(position, "projector started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let step = async {
                let events = log.read_after(position, batch_size).await?;
                if events.is_empty() {
                    return Ok(None);
                }
                store.project_batch(&events).await.map(Some).map_err(ProjectorError::from)
            };
            match step.await {
                Ok(Some(new_position)) => {
                    debug!(from = position, to = new_position, "projected batch");
                    position = new_position;
                    position_tx.send_replace(position);
                    healthy_tx.send_replace(true);
                    backoff = Duration::from_millis(50);
                }
                Ok(None) => {
                    healthy_tx.send_replace(true);
                    // Caught up: sleep until the log moves (or a safety poll, or shutdown).
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = head.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(e) => {
                    warn!(error = %e, position, "projection failed; retrying the same events");
                    healthy_tx.send_replace(false);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    // Re-read the committed position: a failed commit may or may not have landed.
                    if let Ok(p) = store.position().await {
                        position = p;
                    }
                }
            }
        }
        info!(position, "projector stopped");
    });
    ProjectorHandle { position: position_rx, healthy: healthy_rx, task }
}
