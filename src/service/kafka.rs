//! Starting a process of a Kafka deployment: the ingress, the projector (with the deadline
//! scheduler), or both. The read
//! models are in PostgreSQL, and so is the Kafka log's write side, so the store is opened first
//! and its pool handed to the log (`fulfillment_log::open`) and to the projector.
//!
//! In: the [`KafkaDeployment`], the API's options when this process serves it, the projector's
//! when it folds, and the projector's stop token. Out: the parts for
//! [`super::Service::start`]; the API's reads see their own writes once the consumer group
//! committed offsets past what this process produced ([`KafkaWriteVisibility`]).

use super::{clock_reader, Api, ApiOptions, FoldOptions, KafkaDeployment, Started};
use crate::read_models::ReadModelStore;
use crate::StartError;
use async_trait::async_trait;
use fulfillment_ingress::WriteVisibility;
use fulfillment_log::{ensure_topic, KafkaEventLog, LogBackend};
use fulfillment_projector::{run_kafka_projector, KafkaProjectorOptions};
use fulfillment_read_model::PostgresReadModel;
use fulfillment_scheduler::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts the parts of a Kafka-mode process: the API when `api` is given, the projector (with
/// its session timeout, stopped by `stop_projector`) when `projector` is.
pub(super) async fn start(
    kafka: KafkaDeployment,
    api: Option<ApiOptions>,
    projector: Option<(FoldOptions, Duration)>,
    stop_projector: &CancellationToken,
) -> Result<Started, StartError> {
    let store = PostgresReadModel::connect(&kafka.database).await?;
    let clock = api.as_ref().map(|options| options.clock.clone());
    let api = match api {
        Some(options) => {
            let log = fulfillment_log::open(LogBackend::Kafka {
                options: kafka.log.clone(),
                bookkeeping: store.pool().clone(),
            })
            .await?;
            let visibility = log.kafka().map(|log| {
                Arc::new(KafkaWriteVisibility {
                    log: log.clone(),
                    store: store.clone(),
                    group: kafka.consumer_group.clone(),
                }) as Arc<dyn WriteVisibility>
            });
            Some(Api { options, log: log.shared(), visibility })
        }
        None => {
            // The projector only consumes; it still creates the topic, so whichever process
            // starts first finds it.
            if kafka.log.create_topic {
                ensure_topic(&kafka.log).await?;
            }
            None
        }
    };
    let (projector, billing_relay, scheduler) = match projector {
        Some((folding, session_timeout)) => {
            // The scheduler appends what deadlines cause, so a projector-only process opens
            // the log's write side too.
            let log = match &api {
                Some(api) => api.log.clone(),
                None => fulfillment_log::open(LogBackend::Kafka {
                    options: kafka.log.clone(),
                    bookkeeping: store.pool().clone(),
                })
                .await?
                .shared(),
            };
            let now = clock.map(|clock| clock_reader(&clock)).unwrap_or_else(|| Arc::new(chrono::Utc::now));
            let scheduler = Scheduler::new(log, Arc::new(store.clone()), now, folding.scheduler);
            let options = KafkaProjectorOptions {
                topic: kafka.log.topic.clone(),
                group: kafka.consumer_group.clone(),
                batch: folding.batch,
                session_timeout,
                ..KafkaProjectorOptions::new(kafka.log.brokers.clone())
            };
            let handle = run_kafka_projector(options, store.clone(), store.pool().clone(), stop_projector.clone())?;
            (Some(handle), folding.billing_relay, Some(scheduler))
        }
        None => (None, None, None),
    };
    Ok(Started { store: ReadModelStore::Postgres(store), lock: None, api, projector, billing_relay, scheduler })
}

/// Reads wait, in the Kafka mode, until the projector (this process's or another's) committed
/// offsets past every message this process produced.
struct KafkaWriteVisibility {
    log: KafkaEventLog,
    store: PostgresReadModel,
    group: String,
}

#[async_trait]
impl WriteVisibility for KafkaWriteVisibility {
    async fn wait_for_own_writes(&self, limit: std::time::Duration) -> Result<(), String> {
        let produced = self.log.produced_offsets();
        if produced.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // A database that does not answer is a lag here; the read itself reports it.
            if let Ok(consumed) = self.store.consumed_offsets(&self.group, self.log.topic()).await {
                if produced.iter().all(|(p, offset)| consumed.get(p).is_some_and(|next| next > offset)) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
