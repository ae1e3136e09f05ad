//! A subscription's life in time, through the real service with its clock moved by hand: terms
//! renew (billed once each) or expire, a subscription never activated is cancelled at its
//! activation deadline, a billing system suspends and reinstates, and a suspension that outlasts
//! its grace period cancels. Also the license rules: billing waits for every license, and a
//! partner cannot go below the licenses assigned.

mod common;

use chrono::Duration;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration as StdDuration;

/// A subscription of `quantity` licenses bought and activated now.
async fn active(app: &TestApp, customer: &str, quantity: u32) -> String {
    let (_, sub) = app.purchase(customer, quantity).await;
    app.licenses_assigned(&format!("{sub}-l"), &sub, quantity).await.expect(200);
    app.setup_confirmed(&format!("{sub}-s"), &sub, quantity).await.expect(200);
    sub
}

/// Waits (up to 10 s) until `sub`'s billing events are `expected`.
async fn wait_for_billing(app: &TestApp, sub: &str, expected: &[&str]) -> Vec<Value> {
    for _ in 0..200 {
        let events: Vec<Value> =
            app.billing_events().await.into_iter().filter(|e| e["subscriptionId"] == sub).collect();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        if types == expected {
            return events;
        }
        assert!(types.len() <= expected.len(), "more billing than expected: {types:?}");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("billing of {sub} never became {expected:?}: {:?}", app.billing_types(sub).await);
}

/// Waits (up to 10 s) until the partner sees `sub` in `status`.
async fn wait_for_status(app: &TestApp, customer: &str, sub: &str, status: &str) -> Value {
    for _ in 0..200 {
        let body = app.subscription(customer, sub).await.expect(200).body;
        if body["status"] == status {
            return body;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("{sub} never became {status}: {}", app.subscription(customer, sub).await.body);
}

/// The SaaS API's view of `sub`, as contoso reads it.
async fn saas_subscription(app: &TestApp, sub: &str) -> Value {
    let path = format!("/api/saas/subscriptions/{sub}?api-version=2018-08-31");
    app.request(Method::GET, &path, Some(CONTOSO_TOKEN), None, &[]).await.expect(200).body
}

async fn billing_post(app: &TestApp, sub: &str, action: &str, body: Option<Value>, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("idempotency-key", k)]).unwrap_or_default();
    let path = format!("/v1/billing/subscriptions/{sub}/{action}");
    app.request(Method::POST, &path, Some(BILLING_KEY), body, &headers).await
}

#[tokio::test]
async fn a_term_renews_once_with_auto_renew_on_and_the_views_show_the_new_term() {
    let app = TestApp::spawn().await;
    let sub = active(&app, "cust-r", 5).await;
    let first = app.subscription("cust-r", &sub).await.expect(200).body;
    assert_eq!(first["termNumber"], 1);
    assert_eq!(first["renewalDate"], first["commitmentEndDate"]);
    assert!(first["expiryDate"].is_null());
    let term_end: chrono::DateTime<chrono::Utc> = first["commitmentEndDate"].as_str().unwrap().parse().unwrap();
    let before_renewal = app.now();

    app.advance(Duration::days(31));
    let billing = wait_for_billing(&app, &sub, &["billing.started", "billing.renewed"]).await;
    assert_eq!(billing[1]["data"]["termNumber"], 2);
    assert_eq!(billing[1]["data"]["quantity"], 5);
    assert_eq!(billing[1]["planId"], "standard");
    let start: chrono::DateTime<chrono::Utc> = billing[1]["data"]["termStart"].as_str().unwrap().parse().unwrap();
    assert_eq!(start, term_end, "the new term starts where the last one ended");

    let renewed = app.subscription("cust-r", &sub).await.expect(200).body;
    assert_eq!(renewed["termNumber"], 2);
    assert_eq!(renewed["termStartDate"], billing[1]["data"]["termStart"]);
    assert_eq!(renewed["commitmentEndDate"], billing[1]["data"]["termEnd"]);
    assert_eq!(renewed["status"], "active");

    let saas = saas_subscription(&app, &sub).await;
    let saas_start: chrono::DateTime<chrono::Utc> = saas["term"]["startDate"].as_str().unwrap().parse().unwrap();
    assert_eq!(saas_start, start, "the SaaS API's term advances on renewal");

    // Later sweeps find nothing more due in this term.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(app.billing_types(&sub).await, ["billing.started", "billing.renewed"]);
    let history = app.history("cust-r", &sub).await;
    let renewal = history.iter().find(|e| e["type"] == "subscription.renewed").unwrap();
    assert_eq!(renewal["source"]["kind"], "system");
    assert_eq!(renewal["occurredAt"], billing[1]["effectiveAt"]);
    // An audit of the moment before the renewal was recorded still sees the first term.
    let as_of = before_renewal.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let past = app
        .request(
            Method::GET,
            &format!("/v1/customers/cust-r/subscriptions/{sub}?asOf={as_of}"),
            Some(PARTNER_1_KEY),
            None,
            &[],
        )
        .await
        .expect(200)
        .body;
    assert_eq!(past["termNumber"], 1);
    assert_eq!(past["commitmentEndDate"], first["commitmentEndDate"]);
    app.stop().await;
}

#[tokio::test]
async fn with_auto_renew_off_the_subscription_expires_and_billing_stops() {
    let app = TestApp::spawn().await;
    let sub = active(&app, "cust-e", 3).await;
    let off = app.patch("cust-e", &sub, json!({"autoRenewEnabled": false})).await.expect(200).body;
    assert_eq!(off["expiryDate"], off["commitmentEndDate"]);
    assert!(off["renewalDate"].is_null());

    app.advance(Duration::days(65));
    let billing = wait_for_billing(&app, &sub, &["billing.started", "billing.stopped"]).await;
    assert_eq!(billing[1]["data"], json!({"refundable": false, "cancelledBy": "system", "reason": "expired"}));
    let expired = wait_for_status(&app, "cust-e", &sub, "expired").await;
    assert_eq!(expired["expiryDate"], off["expiryDate"]);
    let saas = saas_subscription(&app, &sub).await;
    assert_eq!(saas["saasSubscriptionStatus"], "Unsubscribed");
    let refused = app.patch("cust-e", &sub, json!({"quantity": 4})).await.expect(409);
    assert_eq!(refused.body["code"], "expired");
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_never_activated_is_cancelled_at_its_deadline_and_never_billed() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-d", 5).await;
    let pending = app.subscription("cust-d", &sub).await.expect(200).body;
    assert!(pending["activationDeadline"].is_string());
    app.licenses_assigned("d-1", &sub, 5).await.expect(200);

    app.advance(Duration::days(29));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(app.subscription("cust-d", &sub).await.body["status"], "pending");

    app.advance(Duration::days(2));
    let cancelled = wait_for_status(&app, "cust-d", &sub, "deleted").await;
    assert_eq!(cancelled["cancellation"]["reason"], "activationDeadline");
    assert_eq!(cancelled["cancellation"]["by"], "system");
    assert!(app.billing_types(&sub).await.is_empty(), "never billed");
    let late = app.setup_confirmed("d-2", &sub, 5).await.expect(409);
    assert_eq!(late.body["code"], "unsubscribed");
    app.stop().await;
}

#[tokio::test]
async fn suspend_reinstate_and_a_suspension_past_its_grace_period() {
    let app = TestApp::spawn().await;
    let sub = active(&app, "cust-s", 4).await;

    let suspended =
        billing_post(&app, &sub, "suspend", Some(json!({"reason": "paymentFailed"})), Some("s-1")).await.expect(200);
    assert_eq!(suspended.body["status"], "suspended");
    assert_eq!(suspended.body["saasSubscriptionStatus"], "Suspended");
    assert_eq!(suspended.body["suspension"]["reason"], "paymentFailed");
    // The same request again is answered from the idempotency record; the same key with
    // another body is refused.
    let replay =
        billing_post(&app, &sub, "suspend", Some(json!({"reason": "paymentFailed"})), Some("s-1")).await.expect(200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    billing_post(&app, &sub, "suspend", Some(json!({"reason": "other"})), Some("s-1")).await.expect(422);

    let seen = wait_for_status(&app, "cust-s", &sub, "suspended").await;
    assert_eq!(seen["suspension"]["reason"], "paymentFailed");
    assert!(seen["renewalDate"].is_null(), "a suspended subscription does not renew");
    let again = billing_post(&app, &sub, "suspend", Some(json!({"reason": "paymentFailed"})), None).await.expect(409);
    assert_eq!(again.body["code"], "not-subscribed");
    let refused = app.patch("cust-s", &sub, json!({"quantity": 6})).await.expect(409);
    assert_eq!(refused.body["code"], "suspended");
    billing_post(&app, &sub, "reinstate", None, None).await.expect(200);
    wait_for_billing(&app, &sub, &["billing.started", "billing.suspended", "billing.resumed"]).await;
    let reinstated = wait_for_status(&app, "cust-s", &sub, "active").await;
    assert!(reinstated["suspension"].is_null());
    let not_suspended = billing_post(&app, &sub, "reinstate", Some(json!({})), None).await.expect(409);
    assert_eq!(not_suspended.body["code"], "not-suspended");

    billing_post(&app, &sub, "suspend", Some(json!({"reason": "paymentFailed"})), None).await.expect(200);
    app.advance(Duration::days(20));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(app.subscription("cust-s", &sub).await.body["status"], "suspended", "no renewal while suspended");
    app.advance(Duration::days(11));
    let billing = wait_for_billing(
        &app,
        &sub,
        &["billing.started", "billing.suspended", "billing.resumed", "billing.suspended", "billing.stopped"],
    )
    .await;
    assert_eq!(billing[4]["data"]["reason"], "suspensionGraceExpired");
    let cancelled = wait_for_status(&app, "cust-s", &sub, "deleted").await;
    assert_eq!(cancelled["cancellation"]["reason"], "suspensionGraceExpired");
    app.stop().await;
}

#[tokio::test]
async fn suspension_errors_are_problems() {
    let app = TestApp::spawn().await;
    let (_, pending) = app.purchase("cust-x", 2).await;
    let not_active = billing_post(&app, &pending, "suspend", Some(json!({"reason": "paymentFailed"})), None).await;
    assert_eq!(not_active.expect(409).body["code"], "not-subscribed");
    assert_eq!(billing_post(&app, &pending, "reinstate", None, None).await.expect(409).body["code"], "not-suspended");
    let unknown = uuid::Uuid::new_v4().to_string();
    billing_post(&app, &unknown, "suspend", Some(json!({"reason": "paymentFailed"})), None).await.expect(404);
    let sub = active(&app, "cust-x", 2).await;
    let no_reason = billing_post(&app, &sub, "suspend", Some(json!({})), None).await.expect(422);
    assert_eq!(no_reason.error_field(), "reason");
    billing_post(&app, &sub, "suspend", Some(json!({"reason": ["paymentFailed"]})), None).await.expect(422);
    billing_post(&app, &sub, "suspend", Some(json!({"reason": "  "})), None).await.expect(422);
    billing_post(&app, &sub, "reinstate", Some(json!([])), None).await.expect(422);
    let repeated_key = br#"{"reason":"a","reason":"b"}"#.to_vec();
    let raw = app
        .raw(
            Method::POST,
            &format!("/v1/billing/subscriptions/{sub}/suspend"),
            &[("authorization", &format!("Bearer {BILLING_KEY}")), ("content-type", "application/json")],
            repeated_key,
        )
        .await;
    assert_eq!(raw.status.as_u16(), 422, "a key twice is refused: {}", raw.body);
    // Only billing consumers may suspend.
    app.request(
        Method::POST,
        &format!("/v1/billing/subscriptions/{sub}/suspend"),
        Some(PARTNER_1_KEY),
        Some(json!({"reason": "r"})),
        &[],
    )
    .await
    .expect(401);
    app.stop().await;
}

#[tokio::test]
async fn license_rules_bill_what_was_assigned_and_refund_decreases_inside_the_window() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-l", 5).await;
    app.setup_confirmed("l-1", &sub, 5).await.expect(200);
    app.licenses_assigned("l-2", &sub, 4).await.expect(200);
    assert!(app.billing_types(&sub).await.is_empty(), "4 of 5 licenses start nothing");
    app.licenses_assigned("l-3", &sub, 5).await.expect(200);
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);

    let below = app.patch("cust-l", &sub, json!({"quantity": 3})).await.expect(409);
    assert_eq!(below.body["code"], "quantity-below-assigned-licenses");
    assert!(below.body["detail"].as_str().unwrap().contains("5 licenses the publisher has assigned"), "{}", below.body);
    app.licenses_assigned("l-4", &sub, 3).await.expect(200);
    let view = app.patch("cust-l", &sub, json!({"quantity": 3})).await.expect(200).body;
    assert_eq!(view["refundableQuantity"]["totalQuantity"], 3);
    assert_eq!(view["refundableQuantity"]["details"][0]["allowUntilDateTime"], view["cancellationAllowedUntilDate"]);
    let billing = wait_for_billing(&app, &sub, &["billing.started", "billing.quantity_changed"]).await;
    assert_eq!(billing[1]["data"], json!({"previousQuantity": 5, "quantity": 3, "refundable": true}));

    app.advance(Duration::days(4));
    let later = app.subscription("cust-l", &sub).await.expect(200).body;
    assert_eq!(later["refundableQuantity"]["totalQuantity"], 0);
    app.licenses_assigned("l-5", &sub, 2).await.expect(200);
    app.patch("cust-l", &sub, json!({"quantity": 2})).await.expect(200);
    let billing =
        wait_for_billing(&app, &sub, &["billing.started", "billing.quantity_changed", "billing.quantity_changed"])
            .await;
    assert_eq!(billing[2]["data"]["refundable"], false);
    app.stop().await;
}

/// With the scheduler far behind (it sweeps once an hour here), a partner who turns auto-renew
/// off after the term ended is too late for that term: the write reaches the due renewal first,
/// in the same append, and the change applies to the new term.
#[tokio::test]
async fn a_write_after_a_deadline_passed_reaches_it_first() {
    let mut folding = folding(None);
    folding.scheduler.interval = StdDuration::from_secs(3600);
    let app =
        TestApp::spawn_with(Parts::Embedded { read_models: fulfillment::ReadModelBackend::Embedded, folding }).await;
    let sub = active(&app, "cust-w", 2).await;
    app.advance(Duration::days(31));
    let off = app.patch("cust-w", &sub, json!({"autoRenewEnabled": false})).await.expect(200).body;
    assert_eq!(off["termNumber"], 2, "the term that ended renewed before the change: {off}");
    assert_eq!(off["expiryDate"], off["commitmentEndDate"]);
    assert_eq!(app.billing_types(&sub).await, ["billing.started", "billing.renewed"]);
    let history = app.history("cust-w", &sub).await;
    let types: Vec<&str> = history.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[types.len() - 2..], ["subscription.renewed", "subscription.auto_renew_changed"]);
    app.stop().await;
}
