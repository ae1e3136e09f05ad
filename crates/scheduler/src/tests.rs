//! The scheduler against a real embedded log and a real SQLite read model in a temporary
//! directory, with the clock moved by hand: renewals once per term, catch-up after a gap,
//! two schedulers racing, and deadlines that stopped being due.

use super::*;
use fulfillment_core::fixtures::{envelope, purchase};
use fulfillment_core::{Event, EventEnvelope, SourceKind};
use fulfillment_log::{SqliteEventLog, SqliteLogOptions};
use fulfillment_read_model::{BillingFeed, FoldPosition, Projection, SqliteReadModel};
use std::sync::Mutex;

struct Fixture {
    _dir: tempfile::TempDir,
    log: Arc<SqliteEventLog>,
    store: Arc<SqliteReadModel>,
    clock: Arc<Mutex<DateTime<Utc>>>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
        let store = SqliteReadModel::open(&dir.path().join("read_model.sqlite")).await.unwrap();
        Fixture { _dir: dir, log: Arc::new(log), store: Arc::new(store), clock: Arc::new(Mutex::new(Utc::now())) }
    }

    fn scheduler(&self) -> Scheduler {
        let clock = self.clock.clone();
        let now: Now = Arc::new(move || *clock.lock().unwrap());
        let options = SchedulerOptions { batch: 2, concurrency: 4, ..SchedulerOptions::default() };
        Scheduler::new(self.log.clone(), self.store.clone(), now, options)
    }

    fn advance(&self, by: chrono::Duration) {
        *self.clock.lock().unwrap() += by;
    }

    /// A subscription bought and activated now (monthly, 3 licenses, auto-renew on).
    async fn active_subscription(&self) -> SubscriptionId {
        let id = SubscriptionId(uuid::Uuid::new_v4());
        let events = vec![
            envelope(id, purchase("customer-1", &id.to_string())),
            envelope(id, Event::LicensesAssigned { assigned_count: 3 }),
            envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 3 }),
        ];
        self.log
            .append(AppendBatch {
                streams: vec![StreamAppend { subscription_id: id, expected_version: 0, events }],
                idempotency: None,
            })
            .await
            .unwrap();
        self.project().await;
        id
    }

    /// Folds everything the log holds into the read model.
    async fn project(&self) {
        let from = self.store.position().await.unwrap();
        let events = self.log.read_after(from, 100_000).await.unwrap();
        if !events.is_empty() {
            self.store.project_batch(&events).await.unwrap();
        }
    }

    async fn billing_types(&self, id: SubscriptionId) -> Vec<String> {
        let entries = self.store.billing_events(0, 1000).await.unwrap();
        entries
            .into_iter()
            .filter(|e| e.event["subscriptionId"] == id.to_string())
            .map(|e| e.event["type"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn system_events(&self, id: SubscriptionId) -> Vec<EventEnvelope> {
        let stream = self.log.read_stream(id).await.unwrap();
        stream.into_iter().map(|e| e.envelope).filter(|e| e.source.kind == SourceKind::System).collect()
    }
}

#[tokio::test]
async fn nothing_happens_before_the_term_ends() {
    let f = Fixture::new().await;
    let id = f.active_subscription().await;
    f.advance(chrono::Duration::days(27));
    let sweep = f.scheduler().sweep(&CancellationToken::new()).await.unwrap();
    assert_eq!(sweep, Sweep::default());
    assert!(f.system_events(id).await.is_empty());
}

#[tokio::test]
async fn a_term_end_renews_once_recorded_at_the_deadline_by_the_system() {
    let f = Fixture::new().await;
    let id = f.active_subscription().await;
    let term_end = f.log.stream_state(id).await.unwrap().subscription.unwrap().current_term.unwrap().end_date;
    f.advance(chrono::Duration::days(32));
    let sweep = f.scheduler().sweep(&CancellationToken::new()).await.unwrap();
    assert_eq!((sweep.visited, sweep.reached), (1, 1));
    // The read model has not folded the renewal yet: the next sweep finds the row still due,
    // reads the log, and appends nothing.
    let again = f.scheduler().sweep(&CancellationToken::new()).await.unwrap();
    assert_eq!(again.reached, 0);
    f.project().await;
    let events = f.system_events(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.type_name(), "subscription.renewed");
    assert_eq!(events[0].occurred_at, term_end);
    assert_eq!(events[0].source.actor_id, SCHEDULER_ACTOR);
    assert_eq!(f.billing_types(id).await, ["billing.started", "billing.renewed"]);
}

#[tokio::test]
async fn after_a_long_gap_every_term_is_caught_up_in_order() {
    let f = Fixture::new().await;
    let ids = [f.active_subscription().await, f.active_subscription().await, f.active_subscription().await];
    f.advance(chrono::Duration::days(65));
    let sweep = f.scheduler().sweep(&CancellationToken::new()).await.unwrap();
    assert_eq!((sweep.visited, sweep.reached), (3, 6), "three subscriptions on pages of two, two terms each");
    f.project().await;
    for id in ids {
        let terms: Vec<u32> = f
            .system_events(id)
            .await
            .iter()
            .map(|e| match e.event {
                Event::Renewed { term_number, .. } => term_number,
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(terms, [2, 3]);
        assert_eq!(f.billing_types(id).await, ["billing.started", "billing.renewed", "billing.renewed"]);
    }
}

#[tokio::test]
async fn two_schedulers_racing_never_double_a_renewal() {
    let f = Fixture::new().await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(f.active_subscription().await);
    }
    f.advance(chrono::Duration::days(32));
    let (a, b) = (f.scheduler(), f.scheduler());
    let stop = CancellationToken::new();
    let (ra, rb) = tokio::join!(a.sweep(&stop), b.sweep(&stop));
    assert_eq!(ra.unwrap().reached + rb.unwrap().reached, 10);
    f.project().await;
    for id in ids {
        assert_eq!(f.billing_types(id).await, ["billing.started", "billing.renewed"]);
    }
}

#[tokio::test]
async fn a_deadline_that_stopped_being_due_is_skipped() {
    let f = Fixture::new().await;
    let id = f.active_subscription().await;
    f.advance(chrono::Duration::days(32));
    // The partner turned auto-renew off after the read model last saw the subscription: the
    // row still says "renewal due"; the log's state says "expiry due", and that is what happens.
    let state = f.log.stream_state(id).await.unwrap();
    let off = envelope(id, Event::AutoRenewChanged { auto_renew: false });
    f.log
        .append(AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: state.version, events: vec![off] }],
            idempotency: None,
        })
        .await
        .unwrap();
    f.scheduler().sweep(&CancellationToken::new()).await.unwrap();
    f.project().await;
    let events = f.system_events(id).await;
    assert_eq!(events.iter().map(|e| e.event.type_name()).collect::<Vec<_>>(), ["subscription.expired"]);
    assert_eq!(f.billing_types(id).await, ["billing.started", "billing.stopped"]);
    let now = *f.clock.lock().unwrap();
    assert!(f.store.due_deadlines(now, None, 10).await.unwrap().is_empty(), "nothing left due");
}

#[tokio::test]
async fn rows_folded_before_deadlines_existed_are_counted() {
    let f = Fixture::new().await;
    f.active_subscription().await;
    f.active_subscription().await;
    assert_eq!(f.store.subscriptions_without_deadlines().await.unwrap(), 0);
    // As a row written by an older release: no deadline column value.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", f._dir.path().join("read_model.sqlite").display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE subscriptions SET next_deadline_at = NULL WHERE rowid = (SELECT MIN(rowid) FROM subscriptions)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(f.store.subscriptions_without_deadlines().await.unwrap(), 1);
}
