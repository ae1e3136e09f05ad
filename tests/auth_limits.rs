//! Failed authentication is rate limited on every API and on the console's sign-in: after the
//! allowed failures from one address, or for one credential, every attempt (even a correct
//! one) is answered 429 with `Retry-After` until the quota refills, so guesses cannot be made
//! at the speed of the network, nor confirmed while barred. A zero turns a limit off.

mod common;

use common::console::Console;
use common::*;
use fulfillment_ingress::AuthFailureQuota;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn limited(per_address: u32, per_credential: u32) -> TestApp {
    TestApp::spawn_tuned(Tuning {
        auth_failures: AuthFailureQuota {
            per_address_per_minute: per_address,
            per_credential_per_minute: per_credential,
        },
        ..Tuning::default()
    })
    .await
}

fn assert_barred(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    let wait: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn wrong_api_keys_bar_the_address_on_every_api_until_it_refills() {
    let app = limited(3, 0).await;
    for _ in 0..3 {
        app.request(Method::GET, "/v1/customers/cust-1/subscriptions", Some("guess"), None, &[]).await.expect(401);
    }
    // The fourth failure is counted and bars the address ...
    app.request(Method::GET, "/v1/customers/cust-1/subscriptions", Some("guess"), None, &[]).await.expect(401);
    let barred = app.request(Method::GET, "/v1/customers/cust-1/subscriptions", Some("guess"), None, &[]).await;
    assert_barred(&barred.expect(429));
    // ... for every credential and every API: a right key is not even checked.
    assert_barred(
        &app.request(Method::GET, "/v1/customers/cust-1/subscriptions", Some(PARTNER_1_KEY), None, &[]).await,
    );
    assert_barred(&app.request(Method::GET, "/v1/billing/events", Some(BILLING_KEY), None, &[]).await);
    let saas =
        app.request(Method::GET, "/api/saas/subscriptions/?api-version=2018-08-31", Some(CONTOSO_TOKEN), None, &[]);
    assert_barred(&saas.await);
    // Unauthenticated routes are not limited.
    app.request(Method::GET, "/healthz", None, None, &[]).await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn forged_webhook_signatures_bar_that_publisher_and_no_other() {
    let app = limited(0, 2).await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let body = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 1}});
    for i in 0..3 {
        app.webhook_signed("contoso", FABRIKAM_SECRET, &format!("forged-{i}"), &body).await.expect(401);
    }
    let barred = app.webhook_signed("contoso", CONTOSO_SECRET, "real-1", &body).await;
    assert_barred(&barred.expect(429));
    assert_eq!(app.history("cust-1", &sub).await.len(), 1, "nothing recorded while barred");
    // Another publisher's credential is not affected, nor the address (per-address is off).
    let item = json!({"offerId": "fabrikam-analytics", "planId": "team", "quantity": 2, "termDuration": "P1M",
                      "billingCycle": "monthly", "friendlyName": "Analytics"});
    let order = app
        .request(
            Method::POST,
            "/v1/customers/cust-2/orders",
            Some(PARTNER_1_KEY),
            Some(json!({"lineItems": [item]})),
            &[],
        )
        .await
        .expect(201);
    let other = order.body["lineItems"][0]["subscriptionId"].as_str().unwrap().to_owned();
    let other_body = json!({"type": "licenses.assigned", "subscriptionId": other, "data": {"assignedCount": 1}});
    app.webhook_signed("fabrikam", FABRIKAM_SECRET, "fab-1", &other_body).await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn console_sign_in_is_limited_and_says_so_in_plain_words() {
    let app = limited(2, 0).await;
    let mut console = Console::new(&app.base);
    for _ in 0..3 {
        assert_eq!(console.sign_in("not-a-key").await.status, StatusCode::UNAUTHORIZED);
    }
    let barred = console.sign_in(PARTNER_1_KEY).await;
    assert_eq!(barred.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(barred.header("retry-after").is_some());
    barred.assert_contains("Too many sign-in attempts failed");
    assert!(console.cookie("fulfillment_console").is_none(), "no session while barred");
    app.stop().await;
}

#[tokio::test]
async fn zero_turns_the_limits_off() {
    let app = limited(0, 0).await;
    for _ in 0..30 {
        app.request(Method::GET, "/v1/billing/events", Some("guess"), None, &[]).await.expect(401);
    }
    app.request(Method::GET, "/v1/billing/events", Some(BILLING_KEY), None, &[]).await.expect(200);
    app.stop().await;
}

#[tokio::test]
async fn by_default_a_handful_of_mistakes_is_not_barred() {
    let app = TestApp::spawn().await;
    for _ in 0..10 {
        app.request(Method::GET, "/v1/billing/events", Some("typo"), None, &[]).await.expect(401);
    }
    app.request(Method::GET, "/v1/billing/events", Some(BILLING_KEY), None, &[]).await.expect(200);
    app.stop().await;
}
