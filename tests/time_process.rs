//! Time against the real binary: the service is stopped, then started again with its clock
//! moved 65 days ahead by libfaketime (Debian's `libfaketime`, which `scripts/test.sh`
//! installs), as after a long outage. At start it must act on every deadline that passed while
//! it was down, in order: a monthly subscription renews twice, one with auto-renew off expires
//! once, one never activated is cancelled at its deadline and never billed. A second start under
//! the same clock adds nothing.
//!
//! Skipped (with a message) when libfaketime is not installed.

mod common;

use common::process::{contoso_webhook, free_port, serve_command, serve_with, service_files, Server, ServiceFiles};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

struct Process {
    _server: Server,
    base: String,
}

/// Starts `serve` on `data`, its clock `shift` ahead of the wall clock when given (libfaketime
/// relative offset such as `+65d`; monotonic time is left alone so timers keep working).
async fn start(data: &Path, config: &Path, shift: Option<&str>) -> Process {
    let port = free_port();
    let mut command = serve_with(port, data, config);
    if let Some(shift) = shift {
        command.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", shift).env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let server = serve_command(command, port).await;
    Process { _server: server, base: format!("http://127.0.0.1:{port}") }
}

impl Process {
    async fn send(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn buy(&self, customer: &str) -> String {
        let order = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/customers/{customer}/orders"),
                PARTNER_1_KEY,
                Some(json!({"lineItems": [line_item(2)]})),
            )
            .await;
        order["lineItems"][0]["subscriptionId"].as_str().unwrap().to_owned()
    }

    async fn webhook(&self, id: &str, body: Value) {
        let (status, answer) = contoso_webhook(&self.base, id, &body).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn activate(&self, sub: &str) {
        self.webhook(
            &format!("{sub}-l"),
            json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 2}}),
        )
        .await;
        self.webhook(
            &format!("{sub}-s"),
            json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": 2}}),
        )
        .await;
    }

    /// Billing event types per subscription, in feed order.
    async fn billing(&self, sub: &str) -> Vec<Value> {
        let page = self.send(reqwest::Method::GET, "/v1/billing/events?limit=1000", BILLING_KEY, None).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["event"].clone())
            .filter(|e| e["subscriptionId"] == sub)
            .collect()
    }

    async fn subscription(&self, customer: &str, sub: &str) -> Value {
        self.send(reqwest::Method::GET, &format!("/v1/customers/{customer}/subscriptions/{sub}"), PARTNER_1_KEY, None)
            .await
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_restart_with_the_clock_moved_past_the_deadlines_catches_up_in_order_once() {
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!("skipped: {LIBFAKETIME} is missing (apt-get install libfaketime)");
        return;
    }
    let ServiceFiles { dir: _dir, config, data } = service_files();
    let p = start(&data, &config, None).await;
    let renews = p.buy("cust-t1").await;
    let expires = p.buy("cust-t2").await;
    let pending = p.buy("cust-t3").await;
    p.activate(&renews).await;
    p.activate(&expires).await;
    p.send(
        reqwest::Method::PATCH,
        &format!("/v1/customers/cust-t2/subscriptions/{expires}"),
        PARTNER_1_KEY,
        Some(json!({"autoRenewEnabled": false})),
    )
    .await;
    let first_term_end = p.subscription("cust-t1", &renews).await["commitmentEndDate"].clone();
    drop(p);

    let p = start(&data, &config, Some("+65d")).await;
    let mut caught_up = false;
    for _ in 0..200 {
        if types(&p.billing(&renews).await).len() == 3
            && p.subscription("cust-t3", &pending).await["status"] == "deleted"
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "renewals: {:?}", types(&p.billing(&renews).await));
    let billing = p.billing(&renews).await;
    assert_eq!(types(&billing), ["billing.started", "billing.renewed", "billing.renewed"]);
    assert_eq!(billing[1]["data"]["termNumber"], 2);
    assert_eq!(billing[1]["data"]["termStart"], first_term_end);
    assert_eq!(billing[2]["data"]["termNumber"], 3);
    assert_eq!(billing[2]["data"]["termStart"], billing[1]["data"]["termEnd"]);
    assert_eq!(p.subscription("cust-t1", &renews).await["termNumber"], 3);

    let ended = p.billing(&expires).await;
    assert_eq!(types(&ended), ["billing.started", "billing.stopped"]);
    assert_eq!(ended[1]["data"]["reason"], "expired");
    assert_eq!(p.subscription("cust-t2", &expires).await["status"], "expired");

    let cancelled = p.subscription("cust-t3", &pending).await;
    assert_eq!(cancelled["cancellation"]["reason"], "activationDeadline");
    assert!(p.billing(&pending).await.is_empty());
    drop(p);

    // The same moment again: nothing more is due.
    let p = start(&data, &config, Some("+65d")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(types(&p.billing(&renews).await), ["billing.started", "billing.renewed", "billing.renewed"]);
    assert_eq!(types(&p.billing(&expires).await), ["billing.started", "billing.stopped"]);
}
