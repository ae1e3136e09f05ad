//! Replay and audit tooling against a log written through the real API: `verify` (equal,
//! tampered log, tampered read model), `history`, `export`, `replay --until` and `--swap`, and
//! state as of an instant over HTTP.

mod common;

use chrono::Duration;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Runs the binary; returns (exit code, stdout, stderr).
fn run(args: &[&str], data_dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulfillment"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("FULFILLMENT_LOG_FORMAT", "json")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data directory with a varied history: active, changed, cancelled and pending subscriptions.
async fn populated() -> (TestApp, Vec<String>) {
    let app = TestApp::spawn().await;
    let mut subs = Vec::new();
    for i in 0..4 {
        let (_, sub) = app.purchase("cust-audit", 5).await;
        if i < 3 {
            app.licenses_assigned(&format!("a-{i}"), &sub, 5).await.expect(200);
            app.setup_confirmed(&format!("b-{i}"), &sub, 5).await.expect(200);
        }
        if i == 1 {
            app.patch("cust-audit", &sub, json!({"quantity": 9, "friendlyName": "Grown"})).await.expect(200);
        }
        if i == 2 {
            app.patch("cust-audit", &sub, json!({"status": "deleted"})).await.expect(200);
        }
        subs.push(sub);
    }
    (app, subs)
}

#[tokio::test]
async fn verify_passes_on_an_untouched_store_and_names_a_tampered_event() {
    let (app, subs) = populated().await;
    let dir = app.data_dir.clone();
    let (code, out, err) = run(&["verify"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hash chains: intact") && out.contains("OK"), "{out}");
    assert!(out.contains("subscriptions") && out.contains("equal"), "{out}");

    // Someone edits a stored event: 5 licenses become 50 in the licenses event of subs[1].
    let history = app.history("cust-audit", &subs[1]).await;
    let position = history[1]["position"].as_i64().unwrap();
    let _keep = app.stop().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        dir.join("events.sqlite").display()
    ))
    .await
    .unwrap();
    sqlx::query("DROP TRIGGER events_no_update").execute(&mut conn).await.unwrap();
    sqlx::query("UPDATE events SET envelope = replace(envelope, '\"assignedCount\":5', '\"assignedCount\":50') WHERE position = ?")
        .bind(position)
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, out, _) = run(&["verify"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("subscription {} broken at position {position}", subs[1])), "{out}");
    assert!(out.contains("this event was edited"), "{out}");
    assert!(out.contains("FAILED"));
}

#[tokio::test]
async fn verify_shows_how_a_tampered_read_model_differs() {
    let (app, subs) = populated().await;
    let dir = app.data_dir.clone();
    let _keep = app.stop().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        dir.join("read_model.sqlite").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE subscriptions SET state = json_set(state, '$.quantity', 99) WHERE subscription_id = ?")
        .bind(&subs[0])
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, out, _) = run(&["verify"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("subscription {} differs:", subs[0])), "{out}");
    assert!(out.contains(".state.quantity: live 99, replayed 5"), "{out}");
    assert!(out.contains("hash chains: intact"), "the log itself is fine: {out}");
}

#[tokio::test]
async fn history_explains_each_event_and_its_billing_effects() {
    let (app, subs) = populated().await;
    let dir = app.data_dir.clone();
    let (code, table, err) = run(&["history", &subs[2]], &dir);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "subscription.purchased v1",
        "partner:partner-1",
        "publisher:contoso",
        "5 licenses assigned",
        "setup confirmed for standard x5",
        "-> billing.started",
        "cancelled by partner, refundable: cancelled by partner",
        "-> billing.stopped",
        "deleted",
    ] {
        assert!(table.contains(expected), "missing {expected:?} in\n{table}");
    }
    let (code, json_out, _) = run(&["history", &subs[1], "--format", "json"], &dir);
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(&json_out).unwrap();
    let types: Vec<_> = rows.iter().map(|r| r["eventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "subscription.purchased",
            "subscription.licenses_assigned",
            "subscription.setup_confirmed",
            "subscription.nickname_changed",
            "subscription.quantity_changed"
        ]
    );
    assert_eq!(rows[2]["statusAfter"], "active");
    assert_eq!(rows[4]["billing"].as_array().unwrap().len(), 1);
    let (code, _, err) = run(&["history", &uuid::Uuid::new_v4().to_string()], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("no events"), "{err}");
    app.stop().await;
}

fn chain_hash(previous: &str, envelope: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(b"\n");
    h.update(envelope.as_bytes());
    format!("{:x}", h.finalize())
}

#[tokio::test]
async fn export_streams_raw_envelopes_whose_chains_check_out() {
    let (app, subs) = populated().await;
    let dir = app.data_dir.clone();
    let (code, out, err) = run(&["export", "--format", "jsonl"], &dir);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4 + 3 * 2 + 2 + 1, "{out}");
    let positions: Vec<u64> = lines.iter().map(|l| l["position"].as_u64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    // The chain can be checked from the export alone, with an independent implementation.
    for raw in out.lines() {
        let line: Value = serde_json::from_str(raw).unwrap();
        let envelope = &raw[raw.find("\"envelope\":").unwrap() + "\"envelope\":".len()..raw.len() - 1];
        assert_eq!(line["hash"], chain_hash(line["previousHash"].as_str().unwrap(), envelope));
    }
    let (_, one, _) = run(&["export", "--subscription", &subs[3]], &dir);
    assert_eq!(one.lines().count(), 1);
    let future = (app.now() + Duration::hours(1)).to_rfc3339();
    let (_, none, _) = run(&["export", "--since", &future], &dir);
    assert_eq!(none.lines().count(), 0);
    let (_, all, _) = run(&["export", "--until", &future], &dir);
    assert_eq!(all.lines().count(), lines.len());
    let (code, _, err) = run(&["export", "--since", "last tuesday"], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("last tuesday"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn replay_builds_point_in_time_models_and_swaps_only_when_stopped() {
    let (app, subs) = populated().await;
    let dir = app.data_dir.clone();
    // Up to position 3: only the first subscription's purchase, licenses and setup.
    let target = dir.join("until-3.sqlite");
    let (code, out, err) = run(&["replay", "--until", "3", "--target", target.to_str().unwrap()], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed 3 events (log position 3)"), "{out}");
    let mut conn =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", target.display())).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT subscription_id, status FROM subscriptions").fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows, [(subs[0].clone(), "active".to_owned())]);
    // The target must be new.
    let (code, _, err) = run(&["replay", "--target", target.to_str().unwrap()], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    // --swap without --yes only says what it would do; with --yes it needs the service stopped.
    let (code, out, _) = run(&["replay", "--swap"], &dir);
    assert_eq!(code, 0);
    assert!(out.starts_with("dry run"), "{out}");
    let (code, _, err) = run(&["replay", "--swap", "--yes"], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("in use by another fulfillment process"), "{err}");
    let (code, _, err) = run(&["replay", "--swap", "--yes", "--until", "3"], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("cannot be combined"), "{err}");
    let _keep = app.stop().await;

    let (code, out, err) = run(&["replay", "--swap", "--yes"], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("swapped"), "{out}");
    assert!(std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("read_model.sqlite.replaced-")));
    let (code, out, _) = run(&["verify"], &dir);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn state_as_of_an_instant_over_http() {
    let app = TestApp::spawn().await;
    let before_purchase = app.now();
    app.advance(Duration::minutes(1));
    let (_, sub) = app.purchase("cust-asof", 5).await;
    app.advance(Duration::hours(1));
    let pending_at = app.now();
    app.advance(Duration::hours(1));
    app.licenses_assigned("t-1", &sub, 5).await.expect(200);
    app.setup_confirmed("t-2", &sub, 5).await.expect(200);
    let get = |as_of: String| {
        let path = format!("/v1/customers/cust-asof/subscriptions/{sub}?asOf={}", as_of.replace('+', "%2B"));
        let app = &app;
        async move { app.request(Method::GET, &path, Some(PARTNER_1_KEY), None, &[]).await }
    };
    let then = get(pending_at.to_rfc3339()).await.expect(200);
    assert_eq!(then.body["status"], "pending");
    assert_eq!(then.body["asOf"], pending_at.to_rfc3339());
    assert_eq!(get(app.now().to_rfc3339()).await.expect(200).body["status"], "active");
    get(before_purchase.to_rfc3339()).await.expect(404);
    assert_eq!(get("yesterday".into()).await.expect(400).error_field(), "asOf");
    // Another partner does not see it in the past either.
    let as_of = app.now().to_rfc3339().replace('+', "%2B");
    app.request(
        Method::GET,
        &format!("/v1/customers/cust-asof/subscriptions/{sub}?asOf={as_of}"),
        Some(PARTNER_2_KEY),
        None,
        &[],
    )
    .await
    .expect(404);
    app.stop().await;
}
