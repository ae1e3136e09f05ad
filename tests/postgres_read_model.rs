//! The PostgreSQL read-model store against a real server, one fresh database per test: it folds
//! a log exactly as the SQLite store does (equal fingerprints), never applies a batch twice,
//! survives two projectors racing on one database, and keeps working across a reconnect and
//! across connections killed inside its batches.
//!
//! Needs PostgreSQL, so `#[ignore]`d for plain `cargo test`; `scripts/test.sh` runs them.

mod common;

use chrono::Utc;
use common::events::{envelope, purchase};
use common::postgres::fresh_database;
use fulfillment_core::{Event, SubscriptionId};
use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
use fulfillment_projector::{run_projector, ProjectorHandle};
use fulfillment_read_model::{
    BillingFeed, BillingFeedEntry, BillingOutbox, Fingerprints, FoldPosition, PostgresReadModel, Projection,
    ReadModelError, ReadModels, SqliteReadModel, SubscriptionQueries,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A log with `n` subscriptions that each reach billing (every third stays pending), plus one
/// event on the first that breaks a rule (setup confirmed twice).
async fn populated_log(dir: &tempfile::TempDir, n: usize) -> SqliteEventLog {
    let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
    for i in 0..n {
        let id = SubscriptionId(Uuid::new_v4());
        let mut events = vec![envelope(id, purchase(&format!("customer-{}", i % 4), &format!("code-{i}")))];
        if i % 3 != 2 {
            events.push(envelope(id, Event::LicensesAssigned { assigned_count: 3 }));
            events.push(envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }));
        }
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

async fn project_all(log: &SqliteEventLog, store: &dyn ReadModels, batch: usize) {
    loop {
        let events = log.read_after(store.position().await.unwrap(), batch).await.unwrap();
        if events.is_empty() {
            return;
        }
        store.project_batch(&events).await.unwrap();
    }
}

async fn head(log: &SqliteEventLog) -> u64 {
    *log.head().borrow()
}

/// Asserts `store` equals a fresh fold of the whole log into a new database, row for row.
async fn assert_equals_fresh_fold(log: &SqliteEventLog, store: &PostgresReadModel) {
    let fresh = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    project_all(log, &fresh, 1000).await;
    assert_eq!(store.fingerprint().await.unwrap(), fresh.fingerprint().await.unwrap(), "the model equals a fresh fold");
}

/// Asserts the billing feed holds `expected` events, none of them twice.
async fn assert_billing_once_each(store: &PostgresReadModel, expected: usize) {
    let billing = store.billing_events(0, 10_000).await.unwrap();
    let mut ids: Vec<&str> = billing.iter().map(|e| e.event["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), billing.len(), "no billing event twice");
    assert_eq!(billing.len(), expected, "one billing start per activated subscription");
}

/// Waits until `projector` has folded everything up to the log's head, then stops it.
async fn stop_when_caught_up(log: &SqliteEventLog, projector: ProjectorHandle, stop: CancellationToken) {
    let last = head(log).await;
    let mut position = projector.position.clone();
    tokio::time::timeout(Duration::from_secs(60), position.wait_for(|p| *p >= last))
        .await
        .expect("the projector retries and catches up")
        .unwrap();
    stop.cancel();
    projector.task.await.unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn postgres_folds_a_log_into_exactly_the_models_sqlite_folds() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 40).await;
    let sqlite = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
    project_all(&log, &sqlite, 1000).await;
    let postgres = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    project_all(&log, &postgres, 9).await;

    let (a, b) = (sqlite.fingerprint().await.unwrap(), postgres.fingerprint().await.unwrap());
    assert_eq!(a.position, head(&log).await);
    assert_eq!(a.subscriptions.len(), 40);
    assert_eq!(a, b, "same log, same rows, whatever the backend and batch size");

    // The queries answer the same too.
    let first = log.read_after(0, 1).await.unwrap()[0].envelope.subscription_id;
    assert_eq!(sqlite.subscription(first).await.unwrap(), postgres.subscription(first).await.unwrap());
    // PostgreSQL keeps timestamps to the microsecond; everything else is equal.
    let customers = |list: Vec<fulfillment_read_model::CustomerSummary>| {
        list.into_iter()
            .map(|c| (c.customer_id, c.subscriptions, c.action_needed, c.latest_purchase.timestamp_micros()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        customers(sqlite.partner_customers("partner-1").await.unwrap()),
        customers(postgres.partner_customers("partner-1").await.unwrap())
    );
    assert_eq!(
        sqlite.customer_subscriptions("partner-1", "customer-1").await.unwrap(),
        postgres.customer_subscriptions("partner-1", "customer-1").await.unwrap()
    );
    assert_eq!(sqlite.billing_events(0, 1000).await.unwrap(), postgres.billing_events(0, 1000).await.unwrap());
    assert_eq!(sqlite.rejected_events(first).await.unwrap(), postgres.rejected_events(first).await.unwrap());
    assert_eq!(postgres.rejected_events(first).await.unwrap()[0].code, "setup-already-confirmed");
    let summaries = postgres.partner_customers("partner-1").await.unwrap();
    assert_eq!(summaries.iter().map(|c| c.subscriptions).sum::<u64>(), 40);
    assert_eq!(summaries.iter().map(|c| c.action_needed).sum::<u64>(), 13, "every third is still pending");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn publisher_pages_follow_bytewise_id_order_whatever_the_database_locale() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 25).await;
    let postgres = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    project_all(&log, &postgres, 1000).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = postgres.publisher_subscriptions("contoso", after, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| s.id);
        seen.extend(page.into_iter().map(|s| s.id.to_string()));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 25, "every subscription on exactly one page");
    assert_eq!(seen, sorted);
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn a_batch_is_never_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 3).await;
    let store = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    let events = log.read_after(0, 100).await.unwrap();
    assert_eq!(store.project_batch(&events).await.unwrap(), events.last().unwrap().position);
    let before = store.fingerprint().await.unwrap();
    let err = store.project_batch(&events).await.unwrap_err();
    assert!(matches!(err, ReadModelError::Gap { .. }), "{err}");
    assert_eq!(store.fingerprint().await.unwrap(), before);
    assert_eq!(store.billing_events(0, 100).await.unwrap().len(), 2, "two of three reached billing");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn two_projectors_racing_on_one_database_fold_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SqliteEventLog> = Arc::new(populated_log(&dir, 60).await);
    let options = fresh_database().await;
    let a = Arc::new(PostgresReadModel::connect(&options).await.unwrap());
    let b = Arc::new(PostgresReadModel::connect(&options).await.unwrap());
    let stop = CancellationToken::new();
    // Small batches so the two keep colliding on the position row.
    let pa = run_projector(log.clone(), a.clone(), 5, stop.child_token());
    let pb = run_projector(log.clone(), b.clone(), 3, stop.child_token());
    let target = head(&log).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while a.position().await.unwrap() < target {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the projectors catch up");
    let (moved_a, moved_b) = (*pa.position.borrow(), *pb.position.borrow());
    stop.cancel();
    pa.task.await.unwrap();
    pb.task.await.unwrap();
    assert_eq!(moved_a.max(moved_b), target, "one of them committed the last batch");

    assert_equals_fresh_fold(&log, &a).await;
    assert_billing_once_each(&a, 40).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn the_projector_resumes_after_its_connections_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SqliteEventLog> = Arc::new(populated_log(&dir, 10).await);
    let options = fresh_database().await;
    let store = Arc::new(PostgresReadModel::connect(&options).await.unwrap());
    let stop = CancellationToken::new();
    let projector = run_projector(log.clone(), store.clone(), 4, stop.child_token());
    let mut position = projector.position.clone();
    let first = head(&log).await;
    tokio::time::timeout(Duration::from_secs(30), position.wait_for(|p| *p >= first)).await.unwrap().unwrap();

    // Kill every connection of the projector's pool from the server side, then append more.
    let database = options.url.rsplit('/').next().unwrap().to_owned();
    let admin = common::postgres::admin_url();
    let mut killer = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database)
    .fetch_all(&mut killer)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the pool held connections to kill");
    for i in 0..5 {
        let id = SubscriptionId(Uuid::new_v4());
        log.append(AppendBatch {
            streams: vec![StreamAppend {
                subscription_id: id,
                expected_version: 0,
                events: vec![
                    envelope(id, purchase("after-kill", &format!("late-{i}"))),
                    envelope(id, Event::LicensesAssigned { assigned_count: 3 }),
                    envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }),
                ],
            }],
            idempotency: None,
        })
        .await
        .unwrap();
    }
    stop_when_caught_up(&log, projector, stop).await;
    assert_equals_fresh_fold(&log, &store).await;
    assert_eq!(store.customer_subscriptions("partner-1", "after-kill").await.unwrap().len(), 5);
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn connections_killed_inside_batches_skip_nothing_and_apply_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SqliteEventLog> = Arc::new(populated_log(&dir, 600).await);
    let last = head(&log).await;
    let options = fresh_database().await;
    let store = Arc::new(PostgresReadModel::connect(&options).await.unwrap());
    let stop = CancellationToken::new();
    // Batches of two events: hundreds of short transactions, so the kills below land inside
    // them (a batch's statements run while its transaction is open).
    let projector = run_projector(log.clone(), store.clone(), 2, stop.child_token());
    let position = projector.position.clone();

    // Terminate the projector's backends over and over while it folds, until five of them were
    // caught inside a transaction or a statement.
    let database = options.url.rsplit('/').next().unwrap().to_owned();
    let mut killer = <sqlx::PgConnection as sqlx::Connection>::connect(&common::postgres::admin_url()).await.unwrap();
    let mut killed_inside = 0;
    let started = std::time::Instant::now();
    while killed_inside < 5 && *position.borrow() < last {
        assert!(started.elapsed() < Duration::from_secs(60), "the projector made no progress under the kills");
        let states: Vec<String> = sqlx::query_scalar(
            // Materialized first, so the terminate call only ever sees the chosen backends.
            "WITH caught AS MATERIALIZED (
                 SELECT pid, state FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction'))
             SELECT state FROM caught WHERE pg_terminate_backend(pid)",
        )
        .bind(&database)
        .fetch_all(&mut killer)
        .await
        .unwrap();
        killed_inside += states.len();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(killed_inside >= 5, "only {killed_inside} backends were caught inside a batch before the end of the log");
    stop_when_caught_up(&log, projector, stop).await;

    // Nothing skipped, nothing applied twice.
    assert_equals_fresh_fold(&log, &store).await;
    assert_billing_once_each(&store, 400).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn the_migrate_command_applies_the_schema_and_asks_for_a_url_without_one() {
    let options = fresh_database().await;
    let binary = env!("CARGO_BIN_EXE_fulfillment");
    let out = std::process::Command::new(binary)
        .args(["migrate", "--database-url", &options.url])
        .env_remove("FULFILLMENT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = PostgresReadModel::connect(&options).await.unwrap();
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let mut shipped: Vec<i64> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.ends_with(".sql").then(|| name.split('_').next().unwrap().parse().unwrap())
        })
        .collect();
    shipped.sort();
    assert_eq!(applied, shipped, "every shipped migration applied once, and a second start finds nothing to do");
    assert_eq!(store.position().await.unwrap(), 0);

    let out =
        std::process::Command::new(binary).arg("migrate").env_remove("FULFILLMENT_DATABASE_URL").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--database-url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong password-bearing URL fails clearly and never prints the password.
    let bad = "postgres://postgres:sup3r-secret@127.0.0.1:1/nowhere";
    let out = std::process::Command::new(binary)
        .args(["migrate", "--database-url", bad, "--database-acquire-timeout", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("sup3r-secret"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn the_outbox_hands_out_unpublished_billing_events_in_order_until_marked() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 9).await;
    let store = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    project_all(&log, &store, 1000).await;
    let pending = store.unpublished_billing(100).await.unwrap();
    assert_eq!(pending.len(), 6, "two of every three subscriptions reached billing");
    let sequences: Vec<u64> = pending.iter().map(|p| p.sequence).collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    assert_eq!(sequences, sorted, "oldest first");
    let feed = store.billing_events(0, 100).await.unwrap();
    assert_eq!(feed[0].event["id"], pending[0].billing_event_id.to_string());

    let before = store.fingerprint().await.unwrap();
    store.mark_billing_published(&sequences[..4], Utc::now()).await.unwrap();
    let rest = store.unpublished_billing(100).await.unwrap();
    assert_eq!(rest.iter().map(|p| p.sequence).collect::<Vec<_>>(), sequences[4..]);
    assert_eq!(store.unpublished_billing(1).await.unwrap().len(), 1, "the limit holds");
    assert_eq!(store.fingerprint().await.unwrap(), before, "publishing is bookkeeping, not part of the model");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn sequence_gaps_left_by_failed_batches_do_not_change_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated_log(&dir, 12).await;
    let live = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    loop {
        let events = log.read_after(live.position().await.unwrap(), 5).await.unwrap();
        if events.is_empty() {
            break;
        }
        // What a batch that dies before COMMIT leaves behind: its outbox rows are gone, the
        // identity values they took are not (sequences are not transactional).
        let mut failed = live.pool().begin().await.unwrap();
        for _ in 0..2 {
            sqlx::query(
                "INSERT INTO billing_outbox (billing_event_id, subscription_id, event_type, log_position, payload)
                 VALUES ($1, 'failed-batch', 'billing.started', 0, '{}')",
            )
            .bind(Uuid::new_v4().to_string())
            .execute(&mut *failed)
            .await
            .unwrap();
        }
        failed.rollback().await.unwrap();
        sqlx::query("SELECT nextval(pg_get_serial_sequence('billing_outbox', 'sequence'))")
            .execute(live.pool())
            .await
            .unwrap();
        live.project_batch(&events).await.unwrap();
    }
    let fresh = PostgresReadModel::connect(&fresh_database().await).await.unwrap();
    project_all(&log, &fresh, 1000).await;
    let sqlite = SqliteReadModel::open(&dir.path().join("rm.sqlite")).await.unwrap();
    project_all(&log, &sqlite, 1000).await;

    let (live_feed, fresh_feed) =
        (live.billing_events(0, 1000).await.unwrap(), fresh.billing_events(0, 1000).await.unwrap());
    let sequences = |feed: &[BillingFeedEntry]| feed.iter().map(|e| e.sequence).collect::<Vec<_>>();
    let (gapped, dense) = (sequences(&live_feed), sequences(&fresh_feed));
    assert_eq!(dense, (1..=8).collect::<Vec<u64>>(), "a fresh fold numbers its 8 billing events without gaps");
    assert_eq!(gapped.len(), dense.len());
    assert!(gapped.windows(2).all(|w| w[0] < w[1]), "the feed cursor still only grows: {gapped:?}");
    assert!(gapped[0] > 1 && gapped.windows(2).any(|w| w[1] > w[0] + 1), "the failed batches left gaps: {gapped:?}");
    let events = |feed: Vec<BillingFeedEntry>| feed.into_iter().map(|e| e.event).collect::<Vec<_>>();
    assert_eq!(events(live_feed), events(fresh_feed), "the same billing events in the same order");

    let print = live.fingerprint().await.unwrap();
    assert_eq!(print.position, head(&log).await);
    assert_eq!(print, fresh.fingerprint().await.unwrap(), "the feed cursor is bookkeeping, not part of the model");
    assert_eq!(print, sqlite.fingerprint().await.unwrap());
}
