//! The real `fulfillment` binary, killed with SIGKILL between every step of the flow: every
//! answered write is still there after the restart, and billing starts exactly once. Also the
//! command line's own failures (bad configuration) are clear and non-zero.

mod common;

use common::process::{contoso_webhook, free_port, run, serve, service_files, Server, ServiceFiles};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

/// A running service and its address; dropping it kills the process with SIGKILL.
struct Process {
    _server: Server,
    base: String,
}

async fn start(data_dir: &Path, config: &Path) -> Process {
    let port = free_port();
    let server = serve(port, data_dir, config).await;
    Process { _server: server, base: format!("http://127.0.0.1:{port}") }
}

impl Process {
    /// Kills the server with SIGKILL: no graceful shutdown, no flush.
    fn kill(self) {
        drop(self);
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(PARTNER_1_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn get(&self, path: &str, key: &str) -> Value {
        let r = reqwest::Client::new().get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    async fn webhook(&self, id: &str, body: Value) -> (u16, Value) {
        contoso_webhook(&self.base, id, &body).await
    }
}

#[tokio::test]
async fn sigkill_between_every_step_loses_nothing_and_bills_once() {
    let ServiceFiles { dir: _dir, config, data } = service_files();

    let p = start(&data, &config).await;
    let (status, order) = p.post("/v1/customers/cust-k/orders", json!({"lineItems": [line_item(4)]})).await;
    assert_eq!(status, 201);
    let sub = order["lineItems"][0]["subscriptionId"].as_str().unwrap().to_owned();
    p.kill();

    let p = start(&data, &config).await;
    let licenses = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 4}});
    let (status, first) = p.webhook("k-1", licenses.clone()).await;
    assert_eq!(status, 200);
    p.kill();

    let p = start(&data, &config).await;
    assert_eq!(p.webhook("k-1", licenses).await, (200, first), "redelivery after a crash gets the first answer");
    let setup =
        json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": 4}});
    let (status, activated) = p.webhook("k-2", setup.clone()).await;
    assert_eq!((status, activated["billingStarted"].clone()), (200, json!(true)));
    p.kill();

    let p = start(&data, &config).await;
    assert_eq!(p.webhook("k-2", setup).await.1, activated);
    let s = p.get(&format!("/v1/customers/cust-k/subscriptions/{sub}"), PARTNER_1_KEY).await;
    assert_eq!(s["status"], "active");
    let feed = p.get("/v1/billing/events?limit=1000", BILLING_KEY).await;
    let started: Vec<_> =
        feed["items"].as_array().unwrap().iter().filter(|i| i["event"]["subscriptionId"] == sub.as_str()).collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["event"]["type"], "billing.started");
    let history = p.get(&format!("/v1/customers/cust-k/subscriptions/{sub}/events"), PARTNER_1_KEY).await;
    assert_eq!(history["totalCount"], 3);
    p.kill();
}

/// Runs `fulfillment serve` with `args`; returns (success, stderr).
fn run_serve(args: &[&str]) -> (bool, String) {
    let (ok, _, stderr) = run(&[&["serve"], args].concat());
    (ok, stderr)
}

#[test]
fn a_missing_or_invalid_configuration_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let (ok, stderr) = run_serve(&["--listen", "127.0.0.1:0", "--config", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("cannot read configuration") && stderr.contains("absent.toml"), "{stderr}");

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(&invalid, test_config().replace("publisher = \"fabrikam\"", "publisher = \"initech\"")).unwrap();
    let (ok, stderr) = run_serve(&["--listen", "127.0.0.1:0", "--config", invalid.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("initech") && stderr.contains("not configured"), "{stderr}");
}
