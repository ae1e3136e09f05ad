//! Webhook authentication and authorization: only a correctly signed, fresh webhook from the
//! subscription's own publisher is recorded; everything else is a 4xx problem and stores
//! nothing.

mod common;

use chrono::Duration;
use common::*;
use reqwest::Method;
use serde_json::json;

fn licenses(sub: &str, n: u32) -> serde_json::Value {
    json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": n}})
}

async fn events_recorded(app: &TestApp, sub: &str) -> usize {
    app.history("cust-1", sub).await.len()
}

#[tokio::test]
async fn a_tampered_body_is_refused() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let signed = licenses(&sub, 1).to_string().into_bytes();
    let tampered = licenses(&sub, 5).to_string().into_bytes();
    let ts = app.now().timestamp();
    let sig = sign(CONTOSO_SECRET, "t-1", ts, &signed);
    let ts = ts.to_string();
    let reply = app
        .raw(
            Method::POST,
            "/webhooks/publishers/contoso",
            &[("webhook-id", "t-1"), ("webhook-timestamp", &ts), ("webhook-signature", &sig)],
            tampered,
        )
        .await
        .expect(401);
    assert!(reply.body["detail"].as_str().unwrap().contains("signature"));
    assert!(reply.header("www-authenticate").is_none(), "webhooks do not use bearer auth");
    assert_eq!(events_recorded(&app, &sub).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_rotated_secrets_are_accepted() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    app.webhook_signed("contoso", FABRIKAM_SECRET, "w-1", &licenses(&sub, 1)).await.expect(401);
    assert_eq!(events_recorded(&app, &sub).await, 1);
    // Both configured secrets work during a rotation.
    app.webhook_signed("contoso", CONTOSO_OLD_SECRET, "w-2", &licenses(&sub, 1)).await.expect(200);
    app.webhook_signed("contoso", CONTOSO_SECRET, "w-3", &licenses(&sub, 2)).await.expect(200);
    assert_eq!(events_recorded(&app, &sub).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let body = licenses(&sub, 1).to_string().into_bytes();
    let now = app.now().timestamp();
    for ts in [now - 301, now + 301, now - 3600] {
        let reply = app.webhook_at("contoso", CONTOSO_SECRET, "s-1", ts, body.clone()).await.expect(401);
        assert!(reply.body["detail"].as_str().unwrap().contains("tolerance"), "{}", reply.body);
    }
    app.webhook_at("contoso", CONTOSO_SECRET, "s-1", now - 299, body.clone()).await.expect(200);
    // A captured request replayed later is refused even though its signature is valid.
    app.advance(Duration::minutes(10));
    app.webhook_at("contoso", CONTOSO_SECRET, "s-9", now, body).await.expect(401);
    app.stop().await;
}

#[tokio::test]
async fn missing_headers_and_unknown_publishers_are_unauthorized() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let body = licenses(&sub, 1).to_string().into_bytes();
    let ts = app.now().timestamp().to_string();
    let sig = sign(CONTOSO_SECRET, "h-1", app.now().timestamp(), &body);
    let cases: [&[(&str, &str)]; 4] = [
        &[("webhook-timestamp", &ts), ("webhook-signature", &sig)],
        &[("webhook-id", "h-1"), ("webhook-signature", &sig)],
        &[("webhook-id", "h-1"), ("webhook-timestamp", &ts)],
        &[("webhook-id", "h-1"), ("webhook-timestamp", "yesterday"), ("webhook-signature", &sig)],
    ];
    for headers in cases {
        app.raw(Method::POST, "/webhooks/publishers/contoso", headers, body.clone()).await.expect(401);
    }
    app.webhook_signed("initech", CONTOSO_SECRET, "h-2", &licenses(&sub, 1)).await.expect(401);
    assert_eq!(events_recorded(&app, &sub).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_publisher_cannot_report_on_another_publishers_subscription() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let reply = app.webhook_signed("fabrikam", FABRIKAM_SECRET, "x-1", &licenses(&sub, 1)).await.expect(404);
    assert!(!reply.body.to_string().contains("contoso"), "the 404 reveals nothing: {}", reply.body);
    assert_eq!(events_recorded(&app, &sub).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn unknown_subscriptions_are_not_found() {
    let app = TestApp::spawn().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    app.webhook_signed("contoso", CONTOSO_SECRET, "u-1", &licenses(&unknown, 1)).await.expect(404);
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_precise_problems() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let ts = app.now().timestamp();
    let send = |id: &'static str, body: Vec<u8>| app.webhook_at("contoso", CONTOSO_SECRET, id, ts, body);
    send("b-1", b"{not json".to_vec()).await.expect(400);
    let r = send(
        "b-2",
        json!({"type": "licenses.assigned", "subscriptionId": "nope", "data": {"assignedCount": 1}})
            .to_string()
            .into_bytes(),
    )
    .await
    .expect(422);
    assert_eq!(r.error_field(), "subscriptionId");
    let r = send(
        "b-3",
        json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": -2}})
            .to_string()
            .into_bytes(),
    )
    .await
    .expect(422);
    assert_eq!(r.error_field(), "data.assignedCount");
    let r = send(
        "b-4",
        json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"quantity": 5}}).to_string().into_bytes(),
    )
    .await
    .expect(422);
    assert_eq!(r.error_field(), "data.planId");
    let r = send("b-5", json!({"type": "licenses.revoked", "subscriptionId": sub}).to_string().into_bytes())
        .await
        .expect(422);
    assert_eq!(r.error_field(), "type");
    let r = send("b-6", licenses(&sub, 0).to_string().into_bytes()).await.expect(422);
    assert_eq!(r.error_field(), "data.assignedCount");
    // Rule violations are conflicts.
    let r = send("b-7", licenses(&sub, 6).to_string().into_bytes()).await.expect(409);
    assert_eq!(r.body["code"], "licenses-exceed-quantity");
    let wrong_plan =
        json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "gold", "quantity": 5}});
    assert_eq!(send("b-8", wrong_plan.to_string().into_bytes()).await.expect(409).body["code"], "plan-mismatch");
    let wrong_quantity =
        json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": 4}});
    assert_eq!(
        send("b-9", wrong_quantity.to_string().into_bytes()).await.expect(409).body["code"],
        "quantity-mismatch"
    );
    // Bodies over 1 MiB.
    let mut big = licenses(&sub, 1);
    big["padding"] = "x".repeat(1024 * 1024).into();
    send("b-10", big.to_string().into_bytes()).await.expect(413);
    assert_eq!(events_recorded(&app, &sub).await, 1, "nothing was recorded");
    app.stop().await;
}
