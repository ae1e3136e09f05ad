//! Starting `fulfillment serve` on the embedded log: lock the data directory, open the read
//! models and the log (refusing a damaged or edited log), start the projector in this process,
//! and prepare the deadline scheduler on the same log and read models.
//!
//! In: [`EmbeddedOptions`] and the projector's stop token. Out: the parts for
//! [`super::Service::start`]; the API's reads see their own writes once the projector's
//! position reaches the log's head ([`InProcessProjection`]).

use super::{clock_reader, Api, EmbeddedOptions, Started};
use crate::read_models::ReadModelStore;
use crate::{DataDirLock, StartError};
use fulfillment_ingress::InProcessProjection;
use fulfillment_log::{LogBackend, LogError};
use fulfillment_projector::run_projector;
use fulfillment_scheduler::Scheduler;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Starts the embedded backends and the projector (stopped by `stop_projector`).
pub(super) async fn start(options: EmbeddedOptions, stop_projector: &CancellationToken) -> Result<Started, StartError> {
    let EmbeddedOptions { data_dir, log, read_models, api, folding } = options;
    let lock = DataDirLock::acquire(&data_dir)?;
    let store = ReadModelStore::open(&read_models, &data_dir).await?;
    let path = data_dir.join("events.sqlite");
    let log = fulfillment_log::open(LogBackend::Embedded { path: path.clone(), options: log })
        .await
        .map_err(|e| match e {
            LogError::Damaged(_) | LogError::Tampered(_) => StartError::UntrustedLog {
                path: path.display().to_string(),
                data_dir: data_dir.display().to_string(),
                problem: e,
            },
            other => StartError::Log(other),
        })?
        .shared();
    let projector = run_projector(log.clone(), store.shared(), folding.batch, stop_projector.clone());
    let visibility = InProcessProjection { head: log.head(), projected: projector.position.clone() };
    let scheduler = Scheduler::new(log.clone(), store.shared(), clock_reader(&api.clock), folding.scheduler);
    Ok(Started {
        store,
        lock: Some(lock),
        api: Some(Api { options: api, log, visibility: Some(Arc::new(visibility)) }),
        projector: Some(projector),
        billing_relay: folding.billing_relay,
        scheduler: Some(scheduler),
    })
}
