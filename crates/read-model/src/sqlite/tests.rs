//! The SQLite store against real files: batches never applied twice, replay equals live
//! whatever the batch size, rebuilds appear only when complete, rejections recorded, ambiguous
//! authorization codes refused, and the checkpointer at work.

use super::*;
use crate::{BillingFeed, Fingerprints, FoldPosition, SubscriptionQueries};
use fulfillment_core::fixtures::{envelope, purchase};
use fulfillment_core::{Event, SubscriptionId};
use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
use uuid::Uuid;

/// A log with `n` subscriptions that each reach billing, plus one event that breaks a rule.
async fn populated_log(dir: &tempfile::TempDir, n: usize) -> SqliteEventLog {
    let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
    for i in 0..n {
        let id = SubscriptionId(Uuid::new_v4());
        let mut events = vec![
            envelope(id, purchase("customer-1", &format!("code-{i}"))),
            envelope(id, Event::LicensesAssigned { assigned_count: 3 }),
            envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }),
        ];
        if i == 0 {
            events.push(envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }));
        }
        log.append(AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: 0, events }],
            idempotency: None,
        })
        .await
        .unwrap();
    }
    log
}

async fn project_all(log: &SqliteEventLog, store: &SqliteReadModel, batch: usize) {
    loop {
        let events = log.read_after(store.position().await.unwrap(), batch).await.unwrap();
        if events.is_empty() {
            return;
        }
        store.project_batch(&events).await.unwrap();
    }
}

async fn snapshot(store: &SqliteReadModel) -> (Vec<String>, Vec<String>) {
    let states = sqlx::query_scalar("SELECT state FROM subscriptions ORDER BY subscription_id")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let billing = sqlx::query_scalar("SELECT billing_event_id || ' ' || payload FROM billing_outbox ORDER BY sequence")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    (states, billing)
}

#[tokio::test]
async fn a_batch_is_never_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 3).await;
    let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
    let events = log.read_after(0, 100).await.unwrap();
    assert_eq!(store.project_batch(&events).await.unwrap(), events.last().unwrap().position);
    let before = snapshot(&store).await;
    let err = store.project_batch(&events).await.unwrap_err();
    assert!(matches!(err, ReadModelError::Gap { .. }), "{err}");
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(store.billing_events(0, 100).await.unwrap().len(), 3);
}

#[tokio::test]
async fn rebuilding_from_the_log_equals_the_live_model_whatever_the_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 20).await;
    let live = SqliteReadModel::open(&dir.path().join("live.sqlite")).await.unwrap();
    project_all(&log, &live, 7).await;
    let rebuilt = SqliteReadModel::open(&dir.path().join("rebuilt.sqlite")).await.unwrap();
    project_all(&log, &rebuilt, 1000).await;
    assert_eq!(snapshot(&live).await, snapshot(&rebuilt).await);
    assert_eq!(live.position().await.unwrap(), rebuilt.position().await.unwrap());
}

#[tokio::test]
async fn a_rebuild_target_appears_only_when_complete_and_then_opens_as_a_live_model() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 20).await;
    let live = SqliteReadModel::open(&dir.path().join("live.sqlite")).await.unwrap();
    project_all(&log, &live, 1000).await;
    let target = dir.path().join("rebuild.sqlite");
    let partial = dir.path().join("rebuild.sqlite.partial");
    // What an interrupted rebuild leaves behind is discarded, not resumed.
    std::fs::write(&partial, b"half a rebuild").unwrap();
    let rebuild = SqliteReadModel::create_new(&target).await.unwrap();
    project_all(&log, &rebuild, 7).await;
    assert!(!target.exists(), "an unfinished rebuild must not be at the target path");
    rebuild.checkpoint_and_close().await.unwrap();
    assert!(target.exists() && !partial.exists());
    let reopened = SqliteReadModel::open(&target).await.unwrap();
    assert_eq!(snapshot(&live).await, snapshot(&reopened).await);
    assert_eq!(reopened.position().await.unwrap(), live.position().await.unwrap());
    let err = SqliteReadModel::create_new(&target).await.err().expect("an existing target is refused");
    assert!(matches!(err, ReadModelError::Rebuild(_)), "{err}");
}

#[tokio::test]
async fn rule_breaking_events_are_recorded_as_rejected_without_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 2).await;
    let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
    project_all(&log, &store, 2).await;
    let first = log.read_after(0, 1).await.unwrap()[0].envelope.subscription_id;
    let rejected = store.rejected_events(first).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].code, "setup-already-confirmed");
    assert_eq!(store.position().await.unwrap(), 7, "the events after the rejected one were projected");
}

#[tokio::test]
async fn an_authorization_code_resolves_only_when_it_names_exactly_one_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 2).await;
    for _ in 0..2 {
        let id = SubscriptionId(Uuid::new_v4());
        log.append(AppendBatch {
            streams: vec![StreamAppend {
                subscription_id: id,
                expected_version: 0,
                events: vec![envelope(id, purchase("customer-1", "copied"))],
            }],
            idempotency: None,
        })
        .await
        .unwrap();
    }
    let store = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
    project_all(&log, &store, 100).await;
    let first = log.read_after(0, 1).await.unwrap()[0].envelope.subscription_id;
    let found = store.subscription_by_authorization_code("code-0").await.unwrap().expect("unique code resolves");
    assert_eq!(found.id, first);
    assert!(store.subscription_by_authorization_code("copied").await.unwrap().is_none());
    assert!(store.subscription_by_authorization_code("unknown").await.unwrap().is_none());
}

/// A live model's batches reach its database file although no batch crosses the
/// checkpoint threshold (10,000 WAL pages): the checkpointer copies them beside the batches.
#[tokio::test]
async fn the_checkpointer_copies_batches_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 50).await;
    let file = dir.path().join("read_model.sqlite");
    let store = SqliteReadModel::open(&file).await.unwrap();
    let before = std::fs::metadata(&file).unwrap().len();
    project_all(&log, &store, 100).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&file).unwrap().len() <= before {
        assert!(tokio::time::Instant::now() < deadline, "the database file never grew: nothing was checkpointed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
