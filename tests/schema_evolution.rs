//! History stays readable forever: `tests/fixtures/events-v1.jsonl` is a log of version-1
//! events written by `fulfillment` itself (exported with `fulfillment export`). Every change
//! to the domain must still decode it, verify its hash chain, and fold it into the same
//! outcome. Never regenerate the fixture to make this test pass: add an upcast instead
//! (see the README, "Adding an event version").

use fulfillment_audit::replay::{rebuild, Until};
use fulfillment_audit::Silent;
use fulfillment_core::{EventEnvelope, Status, SubscriptionId};
use fulfillment_log::{
    event_hash, AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend, GENESIS_HASH,
};
use fulfillment_read_model::{BillingFeed, SqliteReadModel, SubscriptionQueries};
use serde_json::Value;
use std::collections::HashMap;

const FIXTURE: &str = include_str!("fixtures/events-v1.jsonl");
const ALPHA: &str = "663be994-67e7-44a1-8aeb-40c0c66cb55d";
const BETA: &str = "8b1159fb-ebc8-4ad6-84e5-02f99cd62a7e";
const GAMMA: &str = "205bbe20-efe1-4f50-b073-e408925983ca";

struct Line {
    envelope_raw: String,
    previous_hash: String,
    hash: String,
}

fn lines() -> Vec<Line> {
    FIXTURE
        .lines()
        .map(|raw| {
            let v: Value = serde_json::from_str(raw).unwrap();
            let start = raw.find("\"envelope\":").unwrap() + "\"envelope\":".len();
            Line {
                envelope_raw: raw[start..raw.len() - 1].to_owned(),
                previous_hash: v["previousHash"].as_str().unwrap().to_owned(),
                hash: v["hash"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_version_1_event_still_decodes_and_its_chain_still_checks() {
    let mut last: HashMap<SubscriptionId, String> = HashMap::new();
    let mut types = std::collections::BTreeSet::new();
    for line in lines() {
        let envelope = EventEnvelope::decode(&line.envelope_raw).expect("a version-1 event must stay readable");
        assert_eq!(envelope.schema_version, 1);
        types.insert(envelope.event_type());
        let previous = last.get(&envelope.subscription_id).cloned().unwrap_or_else(|| GENESIS_HASH.to_owned());
        assert_eq!(line.previous_hash, previous);
        assert_eq!(line.hash, event_hash(&previous, &line.envelope_raw));
        last.insert(envelope.subscription_id, line.hash);
    }
    assert_eq!(types.len(), 10, "the fixture covers every event type: {types:?}");
}

#[tokio::test]
async fn the_version_1_log_replays_to_the_same_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteEventLog::open(&dir.path().join("events.sqlite"), SqliteLogOptions::default()).await.unwrap();
    let mut versions: HashMap<SubscriptionId, u64> = HashMap::new();
    for line in lines() {
        let envelope = EventEnvelope::decode(&line.envelope_raw).unwrap();
        let id = envelope.subscription_id;
        let expected = versions.entry(id).or_default();
        let batch = AppendBatch {
            streams: vec![StreamAppend { subscription_id: id, expected_version: *expected, events: vec![envelope] }],
            idempotency: None,
        };
        log.append(batch).await.unwrap();
        *expected += 1;
    }
    let store = SqliteReadModel::open(&dir.path().join("read_model.sqlite")).await.unwrap();
    let report = rebuild(&log, &store, Until::Head, 3, &mut Silent).await.unwrap();
    assert_eq!(report.events, 15);

    let get = |id: &str| {
        let store = &store;
        let id: SubscriptionId = id.parse().unwrap();
        async move { store.subscription(id).await.unwrap().unwrap() }
    };
    let alpha = get(ALPHA).await;
    assert_eq!((alpha.status, alpha.purchase.quantity, alpha.purchase.auto_renew), (Status::Subscribed, 8, false));
    assert_eq!(alpha.purchase.friendly_name, "Alpha CRM");
    assert_eq!(alpha.purchase.indirect_reseller_mpn_id.as_deref(), Some("1234567"));
    let beta = get(BETA).await;
    assert_eq!(beta.status, Status::Unsubscribed);
    assert_eq!(
        beta.cancellation.as_ref().map(|c| (c.reason.as_str(), c.refundable)),
        Some(("ordered by mistake", true))
    );
    assert_eq!(beta.purchase.indirect_reseller_mpn_id.as_deref(), Some("7654321"));
    assert_eq!(beta.purchase.quantity, 3);
    let gamma = get(GAMMA).await;
    assert_eq!(
        (gamma.status, gamma.purchase.plan_id.as_str(), gamma.licenses_assigned),
        (Status::Unsubscribed, "premium", Some(7))
    );
    assert!(gamma.cancellation.as_ref().is_some_and(|c| c.operation_id.is_some()));

    let billing: Vec<(String, String)> = store
        .billing_events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.event["subscriptionId"].as_str().unwrap().to_owned(), b.event["type"].as_str().unwrap().to_owned()))
        .collect();
    let of = |id: &str| billing.iter().filter(|(s, _)| s == id).map(|(_, t)| t.as_str()).collect::<Vec<_>>();
    assert_eq!(of(ALPHA), ["billing.started", "billing.quantity_changed"]);
    assert!(of(BETA).is_empty());
    assert_eq!(of(GAMMA), ["billing.started", "billing.stopped"]);
}
