//! Fault tests for the embedded mode's storage, on the real binary:
//!
//! - **Disk full.** The service runs under a file-size limit (`ulimit -f`, with SIGXFSZ
//!   ignored, so a write past the limit fails with `EFBIG` the way a write to a full disk fails
//!   with `ENOSPC`; no root, mount or tmpfs needed). Partner orders are sent until the log cannot
//!   grow: every refusal is a 503 problem+json with `Retry-After`, never a 2xx for an order that
//!   was not stored. After a restart with room, every order that got a 2xx is there exactly
//!   once, and the refused ones, retried with their `Idempotency-Key`, are accepted once.
//! - **Read-only data directory.** The service refuses to start, exits non-zero and says which
//!   path it could not write; nothing listens.

mod common;

use common::process::{free_port, run, serve, serve_args, serve_command, service_files, ServiceFiles};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// File-size limit for the disk-full run, in 512-byte blocks (`ulimit -f`): 2 MiB, room for the
/// schema and some hundreds of appends, reached within seconds.
const FILE_SIZE_LIMIT_BLOCKS: u32 = 4096;
/// Orders sent at most before the limit must have been hit.
const MAX_ORDERS: usize = 5000;

/// Places order `i` with its own idempotency key; returns the status and body.
async fn order(client: &reqwest::Client, base: &str, i: usize) -> (u16, Option<String>, Value) {
    let response = client
        .post(format!("{base}/v1/customers/disk-{}/orders", i % 20))
        .bearer_auth(PARTNER_1_KEY)
        .header("idempotency-key", format!("disk-order-{i}"))
        .json(&json!({"lineItems": [line_item(2)]}))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after = response.headers().get("retry-after").is_some();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == 503 {
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "order {i}: {body}");
        assert!(retry_after, "order {i}: a 503 without Retry-After");
    }
    (status, body["lineItems"][0]["subscriptionId"].as_str().map(str::to_owned), body)
}

#[tokio::test]
async fn a_full_disk_is_a_503_and_every_accepted_order_survives_exactly_once() {
    let ServiceFiles { dir: _dir, config, data } = service_files();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // The binary under the limit: `trap '' XFSZ` makes the signal ignored, which exec keeps.
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg(format!("ulimit -f {FILE_SIZE_LIMIT_BLOCKS} && trap '' XFSZ && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fulfillment"))
        .args(serve_args(port, &data, &config));
    let server = serve_command(limited, port).await;

    let mut accepted: HashMap<usize, String> = HashMap::new();
    let mut refused = Vec::new();
    for i in 0..MAX_ORDERS {
        let (status, subscription, body) = order(&client, &base, i).await;
        match status {
            201 => {
                accepted.insert(i, subscription.expect("a created order names its subscription"));
            }
            503 => refused.push(i),
            other => panic!("order {i} answered {other}: {body}"),
        }
        if refused.len() >= 20 {
            break;
        }
    }
    assert!(!accepted.is_empty(), "nothing was accepted before the disk filled");
    assert!(
        refused.len() >= 20,
        "{} of {MAX_ORDERS} orders acknowledged under a 2 MiB file-size limit: more than the files can hold",
        accepted.len()
    );
    // A full disk is not healthy.
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    let ready_status = ready.status().as_u16();
    drop(server);

    // With room again: everything answered 2xx is stored once, the refused orders go through.
    let server = serve(port, &data, &config).await;
    for i in &refused {
        let (status, subscription, body) = order(&client, &base, *i).await;
        assert_eq!(status, 201, "refused order {i} retried: {body}");
        accepted.insert(*i, subscription.unwrap());
    }
    for (i, subscription) in &accepted {
        let (status, again, _) = order(&client, &base, *i).await;
        assert_eq!(status, 201, "order {i} replayed");
        assert_eq!(again.as_deref(), Some(subscription.as_str()), "order {i} replayed its first answer");
    }
    drop(server);
    let export = run(&["export", "--data-dir", data.to_str().unwrap()]);
    assert!(export.0, "export failed: {}", export.2);
    let mut purchases: HashMap<String, usize> = HashMap::new();
    for line in export.1.lines() {
        let stored: Value = serde_json::from_str(line).unwrap();
        if stored["envelope"]["type"] == "subscription.purchased" {
            *purchases.entry(stored["envelope"]["subscriptionId"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(purchases.len(), accepted.len(), "one purchase per accepted order, none for a refused one");
    for subscription in accepted.values() {
        assert_eq!(purchases.get(subscription), Some(&1), "subscription {subscription}");
    }
    let verify = run(&["verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verify.0, "verify found a difference:\n{}\n{}", verify.1, verify.2);
    assert_eq!(ready_status, 503, "readyz while the disk was full");
}

/// Makes `path` and everything under it read-only (directories stay searchable).
fn make_read_only(path: &std::path::Path) {
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            make_read_only(&entry.path());
        } else {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
}

#[tokio::test]
async fn a_read_only_data_dir_stops_the_start_with_a_clear_error() {
    let ServiceFiles { dir, config, data } = service_files();
    // Searchable and readable by the unprivileged user the service runs as below.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let client = reqwest::Client::new();

    // A data directory with a log and read models in it, then read-only.
    let server = serve(port, &data, &config).await;
    let (status, _, body) = order(&client, &format!("http://127.0.0.1:{port}"), 0).await;
    assert_eq!(status, 201, "{body}");
    drop(server);
    make_read_only(&data);

    // Root ignores file permissions, so as root the service runs as `nobody`.
    let mut command = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(env!("CARGO_BIN_EXE_fulfillment"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_fulfillment"))
    };
    let mut child = command
        .args(serve_args(port, &data, &config))
        .env("FULFILLMENT_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_err(),
            "the service listens on a read-only data directory"
        );
        assert!(std::time::Instant::now() < deadline, "the service neither started nor stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the service exited with success on a read-only data directory");
    assert!(stderr.contains(data.to_str().unwrap()), "the error names the data directory:\n{stderr}");
    assert!(
        ["Permission denied", "Read-only file system", "readonly"].iter().any(|why| stderr.contains(why)),
        "the error says why:\n{stderr}"
    );
}

/// Whether the tests run as root (uid 0), read without unsafe code from `/proc/self/status`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}
