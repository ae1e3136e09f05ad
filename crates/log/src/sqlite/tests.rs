//! Tests of the embedded log as a whole, through the [`EventLog`] trait: ordering, conflicts,
//! idempotency, group commit, reopening, hash chains, and the state cache against the file.

use super::startup::connect_options;
use super::*;
use crate::chain::{event_hash, GENESIS_HASH};
// The log stores any fact alike; the tests number theirs by licence count.
use crate::test_fixtures::licenses_assigned as envelope;
use crate::StreamAppend;
use fulfillment_core::EventEnvelope;
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

/// One append of `events` to stream `id`, decided against version `expected`.
pub(super) fn single(id: SubscriptionId, expected: u64, events: Vec<EventEnvelope>) -> AppendBatch {
    AppendBatch {
        streams: vec![StreamAppend { subscription_id: id, expected_version: expected, events }],
        idempotency: None,
    }
}

/// Two streams appended in turn, `a` two events, `b` one, `a` a third (positions 1 to 4).
async fn interleaved(log: &SqliteEventLog) -> (SubscriptionId, SubscriptionId) {
    let a = SubscriptionId(Uuid::new_v4());
    let b = SubscriptionId(Uuid::new_v4());
    log.append(single(a, 0, vec![envelope(a, 1), envelope(a, 2)])).await.unwrap();
    log.append(single(b, 0, vec![envelope(b, 1)])).await.unwrap();
    log.append(single(a, 2, vec![envelope(a, 3)])).await.unwrap();
    (a, b)
}

/// A fresh log in `dir`, with the default options.
pub(super) async fn open(dir: &tempfile::TempDir) -> SqliteEventLog {
    SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap()
}
#[tokio::test]
async fn appends_are_ordered_per_stream_and_globally() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let (a, b) = interleaved(&log).await;
    let stream: Vec<u64> = log.read_stream(a).await.unwrap().iter().map(|e| e.stream_version).collect();
    assert_eq!(stream, [1, 2, 3]);
    assert_eq!(log.read_stream(b).await.unwrap()[0].position, 3);
    let all = log.read_after(0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(*log.head().borrow(), 4);
    assert_eq!(log.read_after(2, 1).await.unwrap()[0].position, 3);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let a = SubscriptionId(Uuid::new_v4());
    log.append(single(a, 0, vec![envelope(a, 1)])).await.unwrap();
    let err = log.append(single(a, 0, vec![envelope(a, 2)])).await.unwrap_err();
    assert!(matches!(err, LogError::Conflict { expected: 0, actual: 1, .. }), "{err}");
    assert_eq!(log.read_stream(a).await.unwrap().len(), 1);
}

#[tokio::test]
async fn idempotency_keys_are_unique_and_stored_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let a = SubscriptionId(Uuid::new_v4());
    let record = IdempotencyRecord {
        scope: "webhook:contoso".into(),
        key: "msg_1".into(),
        fingerprint: "f".into(),
        response: serde_json::json!({"status": 200}),
    };
    let mut batch = single(a, 0, vec![envelope(a, 1)]);
    batch.idempotency = Some(record.clone());
    log.append(batch.clone()).await.unwrap();
    let mut again = single(a, 1, vec![envelope(a, 1)]);
    again.idempotency = Some(record.clone());
    assert!(matches!(log.append(again).await, Err(LogError::DuplicateIdempotencyKey)));
    assert_eq!(log.read_stream(a).await.unwrap().len(), 1, "the duplicate stored no event");
    assert_eq!(log.idempotency_record("webhook:contoso", "msg_1").await.unwrap(), Some(record));
    assert_eq!(log.idempotency_record("webhook:other", "msg_1").await.unwrap(), None);
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_a_conflict_spoils_only_its_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let ids: Vec<_> = (0..200).map(|_| SubscriptionId(Uuid::new_v4())).collect();
    let mut tasks = Vec::new();
    for id in &ids {
        let id = *id;
        let first = log.clone();
        tasks.push(tokio::spawn(async move { first.append(single(id, 0, vec![envelope(id, 1)])).await }));
        // Some streams get a second writer decided against the same version: one loses.
        if id.0.as_u128() % 4 == 0 {
            let second = log.clone();
            tasks.push(tokio::spawn(async move { second.append(single(id, 0, vec![envelope(id, 9)])).await }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 200);
    assert_eq!(log.read_after(0, 1000).await.unwrap().len(), 200);
}

#[tokio::test]
async fn events_survive_reopening_and_the_head_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let a = SubscriptionId(Uuid::new_v4());
    {
        let log = open(&dir).await;
        log.append(single(a, 0, vec![envelope(a, 1), envelope(a, 2)])).await.unwrap();
    }
    let log = open(&dir).await;
    assert_eq!(*log.head().borrow(), 2);
    assert_eq!(log.read_stream(a).await.unwrap().len(), 2);
}

#[tokio::test]
async fn each_event_is_chained_to_the_previous_event_of_its_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let (a, b) = interleaved(&log).await;
    let stream = log.read_stream(a).await.unwrap();
    assert_eq!(stream[0].previous_hash, GENESIS_HASH);
    for pair in stream.windows(2) {
        assert_eq!(pair[1].previous_hash, pair[0].hash);
    }
    for e in &stream {
        assert_eq!(e.hash, event_hash(&e.previous_hash, &e.raw));
    }
    assert_eq!(log.read_stream(b).await.unwrap()[0].previous_hash, GENESIS_HASH);
}

#[tokio::test]
async fn the_log_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await.unwrap();
    let a = SubscriptionId(Uuid::new_v4());
    log.append(single(a, 0, vec![envelope(a, 1)])).await.unwrap();
    let mut conn = SqliteConnection::connect_with(&connect_options(&path)).await.unwrap();
    let err = sqlx::query("DELETE FROM events").execute(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("UPDATE events SET envelope = '{}'").execute(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// Writers on several threads race on a few subscriptions, each deciding against
/// `stream_state` and appending after the version it saw, with a cache of `state_cache`
/// states per generation: every state the log answers equals a fold of the stream as
/// stored, a writer always sees at least its own commit right after its answer, and losers
/// of a race are refused as conflicts, never stored.
async fn race_on_stream_states(state_cache: usize) {
    use crate::test_fixtures::{licenses_assigned, purchased};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteLogOptions { state_cache, ..SqliteLogOptions::default() };
    let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), options).await.unwrap();
    let ids: Vec<SubscriptionId> = (0..5).map(|_| SubscriptionId(Uuid::new_v4())).collect();
    let mut writers = Vec::new();
    for writer in 0..8u32 {
        let (log, ids) = (log.clone(), ids.clone());
        writers.push(tokio::spawn(async move {
            let (mut appended, mut conflicts) = (0, 0);
            for round in 0..60u32 {
                let id = ids[((writer + round) % 5) as usize];
                let seen = log.stream_state(id).await.unwrap();
                let event = if seen.version == 0 { purchased(id) } else { licenses_assigned(id, 1 + round % 3) };
                match log.append(single(id, seen.version, vec![event])).await {
                    Ok(_) => {
                        appended += 1;
                        let after = log.stream_state(id).await.unwrap();
                        assert!(after.version > seen.version, "a writer must see its own commit");
                    }
                    Err(LogError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
                if round % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            (appended, conflicts)
        }));
    }
    let (mut appended, mut conflicts) = (0, 0);
    for writer in writers {
        let (a, c) = writer.await.unwrap();
        appended += a;
        conflicts += c;
    }
    let mut stored = 0;
    for id in &ids {
        let from_file = fold_stream(log.read_stream(*id).await.unwrap());
        assert_eq!(log.stream_state(*id).await.unwrap(), from_file);
        assert!(from_file.subscription.is_some());
        stored += from_file.version;
    }
    assert_eq!(stored, appended, "every accepted append is stored once, every refused one not at all");
    assert_eq!(appended + conflicts, 8 * 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_states_always_equal_a_fold_of_the_stored_stream() {
    race_on_stream_states(2).await; // tiny: states keep falling out and coming back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_cache_states_are_folded_from_the_file() {
    race_on_stream_states(0).await;
}

#[tokio::test]
async fn a_conflict_makes_the_next_state_come_from_the_file() {
    use crate::test_fixtures::purchased;
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir).await;
    let a = SubscriptionId(Uuid::new_v4());
    log.append(single(a, 0, vec![purchased(a), envelope(a, 2)])).await.unwrap();
    assert_eq!(log.stream_state(a).await.unwrap().version, 2);
    let err = log.append(single(a, 1, vec![envelope(a, 3)])).await.unwrap_err();
    assert!(matches!(err, LogError::Conflict { expected: 1, actual: 2, .. }), "{err}");
    let state = log.stream_state(a).await.unwrap();
    assert_eq!(state, fold_stream(log.read_stream(a).await.unwrap()));
    assert_eq!(state.subscription.unwrap().licenses_assigned, Some(2));
}
