//! The purchase → licenses assigned → setup confirmed → billing flow, end to end over HTTP on
//! the embedded log, in both orders, with duplicates, concurrency and restarts.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn licenses_then_setup_starts_billing_exactly_once() {
    let app = TestApp::spawn().await;
    let (order, sub) = app.purchase("cust-1", 5).await;
    let item = &order["lineItems"][0];
    assert!(item["activationLink"].as_str().unwrap().starts_with("https://contoso.example/landing?token="));
    assert!(item["activationLink"].as_str().unwrap().ends_with(item["authorizationCode"].as_str().unwrap()));

    let pending = app.subscription("cust-1", &sub).await.expect(200).body;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["actionNeeded"], true);
    assert_eq!(pending["activationLink"], item["activationLink"]);
    assert_eq!(pending["authorizationCode"], item["authorizationCode"]);
    assert!(pending["billingStartedAt"].is_null());

    let first = app.licenses_assigned("msg-1", &sub, 5).await.expect(200).body;
    assert_eq!(first["status"], "pending");
    assert_eq!(first["billingStarted"], false);
    assert!(app.billing_types(&sub).await.is_empty(), "licenses alone do not start billing");

    let second = app.setup_confirmed("msg-2", &sub, 5).await.expect(200).body;
    assert_eq!(second["status"], "active");
    assert_eq!(second["billingStarted"], true);

    let active = app.subscription("cust-1", &sub).await.expect(200).body;
    assert_eq!(active["status"], "active");
    assert_eq!(active["actionNeeded"], false);
    assert!(active["billingStartedAt"].is_string());

    let billing: Vec<_> =
        app.billing_events().await.into_iter().filter(|e| e["subscriptionId"] == sub.as_str()).collect();
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0]["type"], "billing.started");
    assert_eq!(billing[0]["data"]["quantity"], 5);
    assert_eq!(billing[0]["customerId"], "cust-1");
    assert_eq!(billing[0]["partnerId"], "partner-1");
    assert_eq!(billing[0]["publisherId"], "contoso");
    assert_eq!(billing[0]["causedByEventId"], second["eventIds"][0]);
    app.stop().await;
}

#[tokio::test]
async fn setup_then_licenses_starts_billing_exactly_once() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 7).await;
    app.setup_confirmed("a", &sub, 7).await.expect(200);
    assert!(app.billing_types(&sub).await.is_empty(), "setup alone does not start billing");
    assert_eq!(app.subscription("cust-1", &sub).await.body["status"], "pending");
    // Billing starts only once every bought license is assigned (`policy.licenses_required`
    // defaults to "all").
    let some = app.licenses_assigned("b", &sub, 3).await.expect(200).body;
    assert_eq!(some["billingStarted"], false);
    assert!(app.billing_types(&sub).await.is_empty(), "3 of 7 licenses do not start billing");
    let last = app.licenses_assigned("c", &sub, 7).await.expect(200).body;
    assert_eq!(last["billingStarted"], true);
    // Reporting more facts afterwards never starts billing again.
    app.licenses_assigned("c2", &sub, 6).await.expect(200);
    app.setup_confirmed("d", &sub, 7).await.expect(200);
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_webhook_gives_one_event_and_the_same_answer() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let first = app.licenses_assigned("msg-dup", &sub, 5).await.expect(200);
    assert!(first.header("idempotent-replayed").is_none());
    for _ in 0..3 {
        let again = app.licenses_assigned("msg-dup", &sub, 5).await.expect(200);
        assert_eq!(again.body, first.body);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
    }
    // Even after the state moved on, a redelivery answers what it answered first.
    app.setup_confirmed("msg-setup", &sub, 5).await.expect(200);
    let late = app.licenses_assigned("msg-dup", &sub, 5).await.expect(200);
    assert_eq!(late.body, first.body);

    let history = app.history("cust-1", &sub).await;
    let types: Vec<_> = history.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["subscription.purchased", "subscription.licenses_assigned", "subscription.setup_confirmed"]);

    // The same webhook id with a different body is a publisher bug, not a redelivery.
    let other = app.licenses_assigned("msg-dup", &sub, 4).await.expect(422);
    assert_eq!(other.body["type"], "urn:fulfillment:problem:idempotency-key-reused");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_deliveries_start_billing_once() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 9).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (base, clock_now, sub) = (app.base.clone(), app.now(), sub.clone());
        tasks.push(tokio::spawn(async move {
            let body = if i % 2 == 0 {
                json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 9}})
            } else {
                json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": 9}})
            };
            // Half the deliveries reuse one of two webhook ids, as a retrying sender would.
            let id = if i < 10 { format!("race-{}", i % 2) } else { format!("race-{i}") };
            let body = body.to_string().into_bytes();
            let ts = clock_now.timestamp();
            let sig = sign(CONTOSO_SECRET, &id, ts, &body);
            let response = reqwest::Client::new()
                .post(format!("{base}/webhooks/publishers/contoso"))
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);
    let history = app.history("cust-1", &sub).await;
    assert_eq!(history.len(), 3, "purchase + one licenses + one setup: {history:#?}");
    app.stop().await;
}

#[tokio::test]
async fn restarting_between_every_step_loses_nothing_and_bills_once() {
    let mut app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    app.restart().await;
    assert_eq!(app.subscription("cust-1", &sub).await.expect(200).body["status"], "pending");
    let licenses = app.licenses_assigned("r-1", &sub, 5).await.expect(200).body;
    app.restart().await;
    // A redelivery after the restart still gets the first answer.
    assert_eq!(app.licenses_assigned("r-1", &sub, 5).await.expect(200).body, licenses);
    app.setup_confirmed("r-2", &sub, 5).await.expect(200);
    app.restart().await;
    app.setup_confirmed("r-2", &sub, 5).await.expect(200);
    assert_eq!(app.subscription("cust-1", &sub).await.expect(200).body["status"], "active");
    app.restart().await;
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);
    assert_eq!(app.history("cust-1", &sub).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn an_order_with_several_line_items_creates_one_subscription_each() {
    let app = TestApp::spawn().await;
    let body = json!({"lineItems": [line_item(2), {
        "offerId": "fabrikam-analytics", "planId": "team", "quantity": 3,
        "termDuration": "P1M", "billingCycle": "monthly", "partnerIdOnRecord": "1234567"
    }]});
    let order = app
        .request(Method::POST, "/v1/customers/cust-9/orders", Some(PARTNER_1_KEY), Some(body), &[])
        .await
        .expect(201);
    let items = order.body["lineItems"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["lineItemNumber"], 1);
    assert_eq!(items[1]["partnerIdOnRecord"], "1234567");
    assert!(items[1]["activationLink"]
        .as_str()
        .unwrap()
        .starts_with("https://fabrikam.example/activate?lang=en&token="));
    let location = order.header("location").unwrap().to_owned();
    let fetched = app.request(Method::GET, &location, Some(PARTNER_1_KEY), None, &[]).await.expect(200);
    assert_eq!(fetched.body["lineItems"].as_array().unwrap().len(), 2);

    let order_id = order.body["id"].as_str().unwrap();
    let links = app
        .request(
            Method::GET,
            &format!("/v1/customers/cust-9/orders/{order_id}/lineitems/1/activationlinks"),
            Some(PARTNER_1_KEY),
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(links.body["totalCount"], 1);
    assert_eq!(links.body["items"][0]["lineItemNumber"], 1);
    assert_eq!(links.body["items"][0]["link"]["uri"], items[1]["activationLink"]);
    assert_eq!(links.body["items"][0]["link"]["method"], "GET");
    assert_eq!(links.body["attributes"]["objectType"], "Collection");
    app.request(
        Method::GET,
        &format!("/v1/customers/cust-9/orders/{order_id}/lineitems/2/activationlinks"),
        Some(PARTNER_1_KEY),
        None,
        &[],
    )
    .await
    .expect(404);

    let list = app
        .request(Method::GET, "/v1/customers/cust-9/subscriptions", Some(PARTNER_1_KEY), None, &[])
        .await
        .expect(200);
    assert_eq!(list.body["totalCount"], 2);
    app.stop().await;
}

#[tokio::test]
async fn quantity_changes_and_cancellation_after_billing_reach_the_billing_feed() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    app.licenses_assigned("q-1", &sub, 5).await.expect(200);
    app.setup_confirmed("q-2", &sub, 5).await.expect(200);
    let patched = app.patch("cust-1", &sub, json!({"quantity": 12})).await.expect(200);
    assert_eq!(patched.body["quantity"], 12);
    let cancelled = app.patch("cust-1", &sub, json!({"status": "deleted"})).await.expect(200);
    assert_eq!(cancelled.body["status"], "deleted");
    assert_eq!(cancelled.body["cancellation"]["refundable"], true);
    let billing: Vec<_> =
        app.billing_events().await.into_iter().filter(|e| e["subscriptionId"] == sub.as_str()).collect();
    let types: Vec<_> = billing.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["billing.started", "billing.quantity_changed", "billing.stopped"]);
    assert_eq!(billing[1]["data"], json!({"previousQuantity": 5, "quantity": 12, "refundable": false}));
    assert_eq!(billing[2]["data"]["refundable"], true);
    assert_eq!(billing[2]["data"]["cancelledBy"], "partner");
    // Facts arriving after cancellation are refused and never bill.
    let late = app.licenses_assigned("q-3", &sub, 2).await.expect(409);
    assert_eq!(late.body["code"], "unsubscribed");
    app.stop().await;
}

#[tokio::test]
async fn the_billing_feed_is_stable_and_cursor_paged() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        let (_, sub) = app.purchase("cust-feed", 2).await;
        app.licenses_assigned(&format!("f-{i}-a"), &sub, 2).await.expect(200);
        app.setup_confirmed(&format!("f-{i}-b"), &sub, 2).await.expect(200);
    }
    let all = app.billing_events().await;
    assert_eq!(all.len(), 3);
    let page = app.request(Method::GET, "/v1/billing/events?limit=2", Some(BILLING_KEY), None, &[]).await.expect(200);
    assert_eq!(page.body["hasMore"], true);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let rest = app
        .request(Method::GET, &format!("/v1/billing/events?after={cursor}"), Some(BILLING_KEY), None, &[])
        .await
        .expect(200);
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["items"][0]["event"], all[2]);
    assert_eq!(app.billing_events().await, all, "reading again gives the same events and ids");
    for bad in ["limit=0", "limit=1001", "limit=x", "after=-1"] {
        let reply = app
            .request(Method::GET, &format!("/v1/billing/events?{bad}"), Some(BILLING_KEY), None, &[])
            .await
            .expect(400);
        assert!(["limit", "after"].contains(&reply.error_field().as_str()), "{bad}");
    }
    app.request(Method::GET, "/v1/billing/events", None, None, &[]).await.expect(401);
    app.request(Method::GET, "/v1/billing/events", Some(PARTNER_1_KEY), None, &[]).await.expect(401);
    app.stop().await;
}
