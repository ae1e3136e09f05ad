//! The `fulfillment-bench` binary: `ingest` and `e2e` measure a service it starts on the
//! embedded log; `generate` writes a log that `fold` folds, into a scratch SQLite file or into
//! PostgreSQL, where the store then holds the folded model and a second fold into the same
//! database is refused.
//!
//! The PostgreSQL test needs the server, so it is `#[ignore]`d for plain `cargo test`;
//! `scripts/test.sh` runs it.

// The service's tests' fresh-database helper, shared rather than copied.
#[path = "../../../tests/common/postgres.rs"]
mod postgres;

use fulfillment_read_model::{Fingerprints, PostgresReadModel};
use postgres::fresh_database;
use std::process::{Command, Output};

/// Runs the benchmark binary with `args` to completion.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fulfillment-bench")).args(args).output().unwrap()
}

#[test]
fn generate_writes_a_log_that_fold_folds_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("generated");
    let out = bench(&["generate", "--events", "400", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 400 events for 100 subscriptions"));
    let out = bench(&["fold", "--data-dir", data_dir.to_str().unwrap(), "--batch", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("folded 400 events into SQLite"), "{stdout}");
    let again = bench(&["generate", "--events", "4", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(!again.status.success(), "generate never writes into an existing log");
}

#[test]
fn ingest_and_e2e_measure_an_embedded_service() {
    let out = bench(&["ingest", "--subscriptions", "20", "--concurrency", "4"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in ["partner orders", "signed webhooks", "20 billing.started events visible", "no-op axum handler"] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    let out = bench(&["e2e", "--rate", "20", "--seconds", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("billing event in feed"), "{stdout}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run by scripts/test.sh"]
async fn fold_folds_a_generated_log_into_postgres_and_refuses_a_used_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("generated");
    let out = bench(&["generate", "--events", "400", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let options = fresh_database().await;
    let fold = || bench(&["fold", "--data-dir", data_dir.to_str().unwrap(), "--database-url", &options.url]);
    let out = fold();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("folded 400 events into PostgreSQL"), "{stdout}");
    let store = PostgresReadModel::connect(&options).await.unwrap();
    assert_eq!(store.fingerprint().await.unwrap().subscriptions.len(), 100, "four events per subscription");

    let again = fold();
    assert!(!again.status.success(), "a second fold into the same database is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a folded model"));
}
