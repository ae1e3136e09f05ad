//! The partner API: authentication, isolation between partners, validation, changes with
//! etags and idempotency keys, the cancellation window, and the event history.

mod common;

use chrono::Duration;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_partner_route_requires_a_valid_key() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let routes = [
        (Method::POST, "/v1/customers/cust-1/orders".to_owned()),
        (Method::GET, "/v1/customers/cust-1/subscriptions".to_owned()),
        (Method::GET, format!("/v1/customers/cust-1/subscriptions/{sub}")),
        (Method::PATCH, format!("/v1/customers/cust-1/subscriptions/{sub}")),
        (Method::GET, format!("/v1/customers/cust-1/subscriptions/{sub}/events")),
    ];
    for (method, path) in routes {
        let missing = app.request(method.clone(), &path, None, Some(json!({})), &[]).await.expect(401);
        assert_eq!(missing.header("www-authenticate"), Some("Bearer"), "{path}");
        app.request(method.clone(), &path, Some("not-a-real-key-at-all"), Some(json!({})), &[]).await.expect(401);
        app.request(method, &path, None, Some(json!({})), &[("authorization", "Basic dXNlcjpwYXNz")]).await.expect(401);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_partner_sees_only_its_own_customers_and_subscriptions() {
    let app = TestApp::spawn().await;
    let (order, sub) = app.purchase("cust-1", 5).await;
    let other = Some(PARTNER_2_KEY);
    app.request(Method::GET, &format!("/v1/customers/cust-1/subscriptions/{sub}"), other, None, &[]).await.expect(404);
    app.request(Method::GET, "/v1/customers/cust-1/subscriptions", other, None, &[]).await.expect(404);
    app.request(
        Method::PATCH,
        &format!("/v1/customers/cust-1/subscriptions/{sub}"),
        other,
        Some(json!({"status": "deleted"})),
        &[],
    )
    .await
    .expect(404);
    app.request(Method::GET, &format!("/v1/customers/cust-1/subscriptions/{sub}/events"), other, None, &[])
        .await
        .expect(404);
    let order_id = order["id"].as_str().unwrap();
    app.request(Method::GET, &format!("/v1/customers/cust-1/orders/{order_id}"), other, None, &[]).await.expect(404);
    app.request(
        Method::GET,
        &format!("/v1/customers/cust-1/orders/{order_id}/lineitems/0/activationlinks"),
        other,
        None,
        &[],
    )
    .await
    .expect(404);
    // The right partner under the wrong customer does not find it either.
    app.request(Method::GET, &format!("/v1/customers/cust-2/subscriptions/{sub}"), Some(PARTNER_1_KEY), None, &[])
        .await
        .expect(404);
    // The subscription is untouched.
    assert_eq!(app.subscription("cust-1", &sub).await.expect(200).body["status"], "pending");
    // Partner 2 can use the same customer id for its own customer without seeing partner 1's.
    let mine = app
        .request(Method::POST, "/v1/customers/cust-1/orders", other, Some(json!({"lineItems": [line_item(1)]})), &[])
        .await
        .expect(201);
    let list = app.request(Method::GET, "/v1/customers/cust-1/subscriptions", other, None, &[]).await.expect(200);
    assert_eq!(list.body["totalCount"], 1);
    assert_eq!(list.body["items"][0]["id"], mine.body["lineItems"][0]["subscriptionId"]);
    app.stop().await;
}

#[tokio::test]
async fn purchases_are_validated_against_the_catalog() {
    let app = TestApp::spawn().await;
    let post = |body: serde_json::Value| {
        app.request(Method::POST, "/v1/customers/cust-1/orders", Some(PARTNER_1_KEY), Some(body), &[])
    };
    let with = |field: &str, value: serde_json::Value| {
        let mut item = line_item(5);
        item[field] = value;
        json!({"lineItems": [item]})
    };
    for (body, field) in [
        (with("quantity", 501.into()), "lineItems[0].quantity"),
        (with("quantity", 0.into()), "lineItems[0].quantity"),
        (with("quantity", (-3).into()), "lineItems[0].quantity"),
        (with("quantity", "five".into()), "lineItems[0].quantity"),
        (with("offerId", "nope".into()), "lineItems[0].offerId"),
        (with("planId", "platinum".into()), "lineItems[0].planId"),
        (with("termDuration", "P3Y".into()), "lineItems[0].termDuration"),
        (with("termDuration", "P7D".into()), "lineItems[0].termDuration"),
        (with("billingCycle", "annual".into()), "lineItems[0].billingCycle"),
        (with("partnerIdOnRecord", "12".into()), "lineItems[0].partnerIdOnRecord"),
        (with("friendlyName", "  ".into()), "lineItems[0].friendlyName"),
        (json!({"lineItems": []}), "lineItems"),
        (json!({}), "lineItems"),
    ] {
        let reply = post(body).await.expect(422);
        assert_eq!(reply.error_field(), field, "{}", reply.body);
    }
    let auth = format!("Bearer {PARTNER_1_KEY}");
    let raw = app
        .raw(Method::POST, "/v1/customers/cust-1/orders", &[("authorization", &auth)], b"{\"lineItems\": [".to_vec())
        .await
        .expect(400);
    assert_eq!(raw.body["type"], "urn:fulfillment:problem:malformed-json");
    post(json!({"lineItems": [line_item(5)]})).await.expect(201);
    app.request(
        Method::POST,
        "/v1/customers/bad%20id/orders",
        Some(PARTNER_1_KEY),
        Some(json!({"lineItems": [line_item(1)]})),
        &[],
    )
    .await
    .expect(400);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_order() {
    let app = TestApp::spawn().await;
    let body = json!({"lineItems": [line_item(3)]});
    async fn post(app: &TestApp, body: serde_json::Value, key: &str) -> Reply {
        app.request(
            Method::POST,
            "/v1/customers/cust-idem/orders",
            Some(PARTNER_1_KEY),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    }
    let first = post(&app, body.clone(), "order-1").await.expect(201);
    let again = post(&app, body.clone(), "order-1").await.expect(201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let list = app
        .request(Method::GET, "/v1/customers/cust-idem/subscriptions", Some(PARTNER_1_KEY), None, &[])
        .await
        .expect(200);
    assert_eq!(list.body["totalCount"], 1, "one order despite two requests");
    let reused = post(&app, json!({"lineItems": [line_item(4)]}), "order-1").await.expect(422);
    assert_eq!(reused.body["type"], "urn:fulfillment:problem:idempotency-key-reused");
    // Keys are per partner: partner 2 may use the same key for its own order.
    app.request(
        Method::POST,
        "/v1/customers/cust-idem/orders",
        Some(PARTNER_2_KEY),
        Some(body),
        &[("idempotency-key", "order-1")],
    )
    .await
    .expect(201);
    app.stop().await;
}

/// Idempotency records are kept for the retention period and then deleted (the log keeps the
/// events): a repeat inside it replays the first answer, a repeat after it is a new request,
/// decided against the subscription as it is now, so the change is not made twice.
#[tokio::test]
async fn idempotency_records_expire_after_their_retention_without_a_second_change() {
    let retention = fulfillment_ingress::idempotency::IdempotencyRetention {
        keep: std::time::Duration::from_secs(3600),
        sweep_every: std::time::Duration::from_millis(50),
    };
    let app = TestApp::spawn_tuned(Tuning { idempotency_retention: retention, ..Tuning::default() }).await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let patch = || {
        app.request(
            Method::PATCH,
            &path,
            Some(PARTNER_1_KEY),
            Some(json!({"quantity": 8})),
            &[("idempotency-key", "k")],
        )
    };
    let first = patch().await.expect(200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let changes = app.history("cust-1", &sub).await.len();

    app.advance(chrono::Duration::minutes(59));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let kept = patch().await.expect(200);
    assert_eq!(kept.header("idempotent-replayed"), Some("true"), "inside the retention the answer is replayed");

    app.advance(chrono::Duration::minutes(2));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let anew = patch().await.expect(200);
    assert_eq!(anew.header("idempotent-replayed"), None, "after the retention the record is gone");
    assert_eq!(anew.body["quantity"], 8);
    assert_eq!(app.history("cust-1", &sub).await.len(), changes, "the repeat changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn patch_changes_fields_honours_if_match_and_ignores_unchanged_fields() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let read = app.subscription("cust-1", &sub).await.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    assert_eq!(read.body["attributes"]["etag"], etag.as_str());

    let changed = app
        .request(
            Method::PATCH,
            &path,
            Some(PARTNER_1_KEY),
            Some(json!({"friendlyName": "Renamed", "quantity": 8, "autoRenewEnabled": false, "partnerId": "7654321"})),
            &[("if-match", &etag)],
        )
        .await
        .expect(200);
    assert_eq!(changed.body["friendlyName"], "Renamed");
    assert_eq!(changed.body["quantity"], 8);
    assert_eq!(changed.body["autoRenewEnabled"], false);
    assert_eq!(changed.body["partnerId"], "7654321");
    let new_etag = changed.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);

    // The stale etag is refused and nothing changes.
    let stale = app
        .request(Method::PATCH, &path, Some(PARTNER_1_KEY), Some(json!({"quantity": 9})), &[("if-match", &etag)])
        .await
        .expect(412);
    assert_eq!(stale.header("etag"), Some(new_etag.as_str()));
    let read = app.subscription("cust-1", &sub).await.expect(200);
    assert_eq!(read.body["quantity"], 8);
    assert_eq!(read.header("etag"), Some(new_etag.as_str()));

    // Sending back the whole resource as read changes nothing and records no event.
    let before = app.history("cust-1", &sub).await.len();
    app.patch("cust-1", &sub, read.body.clone()).await.expect(200);
    assert_eq!(app.history("cust-1", &sub).await.len(), before);

    for (body, field) in [
        (json!({"quantity": 501}), "quantity"),
        (json!({"quantity": 0}), "quantity"),
        (json!({"partnerId": "abc"}), "partnerId"),
        (json!({"friendlyName": ""}), "friendlyName"),
        (json!({"status": "frozen"}), "status"),
        (json!({"autoRenewEnabled": "no"}), "autoRenewEnabled"),
    ] {
        assert_eq!(app.patch("cust-1", &sub, body).await.expect(422).error_field(), field);
    }
    assert_eq!(
        app.patch("cust-1", &sub, json!({"status": "active"})).await.expect(409).body["code"],
        "status-not-settable"
    );
    let mixed = app.patch("cust-1", &sub, json!({"status": "deleted", "quantity": 3})).await.expect(422);
    assert_eq!(mixed.error_field(), "status");
    app.request(
        Method::PATCH,
        &format!("/v1/customers/cust-1/subscriptions/{}", uuid::Uuid::new_v4()),
        Some(PARTNER_1_KEY),
        Some(json!({})),
        &[],
    )
    .await
    .expect(404);
    app.request(Method::GET, "/v1/customers/cust-1/subscriptions/not-a-uuid", Some(PARTNER_1_KEY), None, &[])
        .await
        .expect(404);
    app.stop().await;
}

#[tokio::test]
async fn cancellation_is_allowed_inside_the_window_only() {
    let app = TestApp::spawn().await;
    let (_, early) = app.purchase("cust-1", 5).await;
    let (_, late) = app.purchase("cust-1", 5).await;
    let window_end =
        app.subscription("cust-1", &late).await.body["cancellationAllowedUntilDate"].as_str().unwrap().to_owned();

    app.advance(Duration::hours(71));
    let cancelled = app
        .patch("cust-1", &early, json!({"status": "deleted", "cancellationReason": "customer changed its mind"}))
        .await
        .expect(200);
    assert_eq!(cancelled.body["status"], "deleted");
    assert_eq!(cancelled.body["actionNeeded"], false);
    assert_eq!(
        cancelled.body["cancellation"],
        json!({"reason": "customer changed its mind", "by": "partner", "refundable": true})
    );
    let again = app.patch("cust-1", &early, json!({"status": "deleted"})).await.expect(409);
    assert_eq!(again.body["code"], "unsubscribed", "cancelling twice is refused with the reason");
    assert_eq!(app.patch("cust-1", &early, json!({"quantity": 6})).await.expect(409).body["code"], "unsubscribed");

    app.advance(Duration::hours(1) + Duration::seconds(1));
    let refused = app.patch("cust-1", &late, json!({"status": "deleted"})).await.expect(409);
    assert_eq!(refused.body["code"], "cancellation-window-closed");
    let closed_at = chrono::DateTime::parse_from_rfc3339(&window_end).unwrap();
    assert!(
        refused.body["detail"].as_str().unwrap().contains(&closed_at.with_timezone(&chrono::Utc).to_string()),
        "{}",
        refused.body
    );
    assert_eq!(app.subscription("cust-1", &late).await.body["status"], "pending");
    app.stop().await;
}

#[tokio::test]
async fn the_history_shows_every_event_with_its_source_and_effects() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    app.licenses_assigned("h-1", &sub, 5).await.expect(200);
    app.setup_confirmed("h-2", &sub, 5).await.expect(200);
    app.patch("cust-1", &sub, json!({"friendlyName": "Team CRM"})).await.expect(200);
    let history = app.history("cust-1", &sub).await;
    let summary: Vec<_> = history
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["source"]["kind"].as_str().unwrap(),
                e["statusAfter"].as_str().unwrap(),
                e["billingEvents"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("subscription.purchased", "partner", "pending", 0),
            ("subscription.licenses_assigned", "publisher", "pending", 0),
            ("subscription.setup_confirmed", "publisher", "active", 1),
            ("subscription.nickname_changed", "partner", "active", 0),
        ]
    );
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e["streamVersion"], i + 1);
        assert_eq!(e["version"], 1);
        assert_eq!(e["outcome"]["result"], "applied");
        assert!(e["eventId"].is_string() && e["occurredAt"].is_string() && e["recordedAt"].is_string());
    }
    assert_eq!(history[1]["source"]["actorId"], "contoso");
    assert_eq!(history[1]["data"]["assignedCount"], 5);
    app.stop().await;
}

#[tokio::test]
async fn health_fallbacks_and_methods_answer_in_problem_json() {
    let app = TestApp::spawn().await;
    assert_eq!(app.request(Method::GET, "/healthz", None, None, &[]).await.expect(200).body["status"], "ok");
    assert_eq!(app.request(Method::GET, "/readyz", None, None, &[]).await.expect(200).body["status"], "ready");
    app.request(Method::GET, "/v2/nothing-here", None, None, &[]).await.expect(404);
    app.request(Method::DELETE, "/v1/customers/cust-1/orders", Some(PARTNER_1_KEY), None, &[]).await.expect(405);
    app.request(Method::GET, "/v1/customers/%FF%FE/subscriptions", Some(PARTNER_1_KEY), None, &[]).await.expect(400);
    app.stop().await;
}
