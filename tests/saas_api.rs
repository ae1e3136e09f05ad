//! The SaaS Fulfillment API v2 under `/api`: every operation, every response validated against
//! `specs/saasapi.v2.json`, the error cases, and the whole ISV flow from purchase to billing
//! stopped.

mod common;

use chrono::Duration;
use common::openapi::Spec;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const V: &str = "api-version=2018-08-31";
const SUBS: &str = "/saas/subscriptions";
const SUB: &str = "/saas/subscriptions/{subscriptionId}";
const OPS: &str = "/saas/subscriptions/{subscriptionId}/operations";
const OP: &str = "/saas/subscriptions/{subscriptionId}/operations/{operationId}";

/// A SaaS API call as contoso, checked against the spec for `template`.
async fn saas(
    app: &TestApp,
    spec: &Spec,
    method: Method,
    template: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let separator = if path.contains('?') { '&' } else { '?' };
    let reply =
        app.request(method.clone(), &format!("/api{path}{separator}{V}"), Some(CONTOSO_TOKEN), body, headers).await;
    spec.check(method.as_str(), template, reply.status.as_u16(), &reply.body);
    if reply.status.as_u16() >= 400 {
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{}", reply.body);
    }
    reply
}

/// The authorization code from a partner's activation link, URL-decoded as the landing page
/// would.
fn token_of(order: &Value) -> String {
    let link = order["lineItems"][0]["activationLink"].as_str().unwrap();
    let encoded = link.split("token=").nth(1).unwrap();
    percent_decode(encoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn resolve(app: &TestApp, spec: &Spec, token: &str) -> Reply {
    saas(
        app,
        spec,
        Method::POST,
        "/saas/subscriptions/resolve",
        "/saas/subscriptions/resolve",
        None,
        &[("x-ms-marketplace-token", token)],
    )
    .await
}

/// Purchase, licenses assigned by webhook, activated through the API: billing runs.
async fn active_subscription(app: &TestApp, spec: &Spec, quantity: u32) -> String {
    let (_, sub) = app.purchase("cust-saas", quantity).await;
    app.licenses_assigned(&format!("lic-{sub}"), &sub, quantity).await.expect(200);
    saas(
        app,
        spec,
        Method::POST,
        &format!("{SUB}/activate"),
        &format!("{SUBS}/{sub}/activate"),
        Some(json!({"planId": "standard", "quantity": quantity})),
        &[],
    )
    .await
    .expect(200);
    sub
}

#[tokio::test]
async fn the_whole_isv_flow_from_purchase_to_billing_stopped() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let (order, sub) = app.purchase("cust-saas", 5).await;

    let resolved = resolve(&app, &spec, &token_of(&order)).await.expect(200).body;
    assert_eq!(resolved["id"], sub.as_str());
    assert_eq!(resolved["subscriptionName"], "CRM for sales");
    assert_eq!(resolved["planId"], "standard");
    assert_eq!(resolved["quantity"], 5);
    let s = &resolved["subscription"];
    assert_eq!(s["saasSubscriptionStatus"], "PendingFulfillmentStart");
    assert_eq!(s["sandboxType"], "Csp");
    assert_eq!(s["publisherId"], "contoso");
    assert_eq!(s["term"]["termUnit"], "P1M");
    assert_ne!(s["beneficiary"]["tenantId"], s["purchaser"]["tenantId"], "CSP: purchaser and beneficiary differ");

    app.licenses_assigned("isv-1", &sub, 5).await.expect(200);
    assert!(app.billing_types(&sub).await.is_empty());
    saas(
        &app,
        &spec,
        Method::POST,
        &format!("{SUB}/activate"),
        &format!("{SUBS}/{sub}/activate"),
        Some(json!({"planId": "standard", "quantity": "5"})),
        &[],
    )
    .await
    .expect(200);
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);
    let got = saas(&app, &spec, Method::GET, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.expect(200).body;
    assert_eq!(got["saasSubscriptionStatus"], "Subscribed");

    let patched = saas(&app, &spec, Method::PATCH, SUB, &format!("{SUBS}/{sub}"), Some(json!({"quantity": 8})), &[])
        .await
        .expect(202);
    let location = patched.header("operation-location").unwrap().to_owned();
    let operation_id = patched.header("operation-id").unwrap().to_owned();
    assert_eq!(patched.header("retry-after"), Some("5"));
    // Without --public-url the base is the concrete address the service listens on.
    assert!(
        location.starts_with(&format!("{}/api/saas/subscriptions/{sub}/operations/{operation_id}", app.base)),
        "{location}"
    );
    let op = app.http.get(&location).bearer_auth(CONTOSO_TOKEN).send().await.unwrap();
    let op = read(op).await.expect(200).body;
    spec.check("GET", OP, 200, &op);
    assert_eq!(
        (op["action"].as_str(), op["status"].as_str(), op["quantity"].as_u64()),
        (Some("ChangeQuantity"), Some("InProgress"), Some(8))
    );
    let outstanding =
        saas(&app, &spec, Method::GET, OPS, &format!("{SUBS}/{sub}/operations"), None, &[]).await.expect(200).body;
    assert_eq!(outstanding["operations"].as_array().unwrap().len(), 1);
    assert_eq!(app.billing_types(&sub).await, ["billing.started"], "nothing is billed before the operation succeeds");

    saas(
        &app,
        &spec,
        Method::PATCH,
        OP,
        &format!("{SUBS}/{sub}/operations/{operation_id}"),
        Some(json!({"status": "Success"})),
        &[],
    )
    .await
    .expect(200);
    assert_eq!(app.billing_types(&sub).await, ["billing.started", "billing.quantity_changed"]);
    let op = saas(&app, &spec, Method::GET, OP, &format!("{SUBS}/{sub}/operations/{operation_id}"), None, &[])
        .await
        .expect(200)
        .body;
    assert_eq!(op["status"], "Succeeded");
    assert_eq!(saas(&app, &spec, Method::GET, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.body["quantity"], 8);
    assert_eq!(app.subscription("cust-saas", &sub).await.expect(200).body["quantity"], 8, "the partner sees it too");

    let deleted = saas(&app, &spec, Method::DELETE, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.expect(202);
    let delete_op = deleted.header("operation-id").unwrap().to_owned();
    let op = saas(&app, &spec, Method::GET, OP, &format!("{SUBS}/{sub}/operations/{delete_op}"), None, &[])
        .await
        .expect(200)
        .body;
    assert_eq!((op["action"].as_str(), op["status"].as_str()), (Some("Unsubscribe"), Some("Succeeded")));
    assert_eq!(app.billing_types(&sub).await, ["billing.started", "billing.quantity_changed", "billing.stopped"]);
    let gone = saas(&app, &spec, Method::GET, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.expect(200).body;
    assert_eq!(gone["saasSubscriptionStatus"], "Unsubscribed");
    assert_eq!(gone["allowedCustomerOperations"], json!(["Read"]));
    let partner_view = app.subscription("cust-saas", &sub).await.expect(200).body;
    assert_eq!(partner_view["status"], "deleted");
    assert_eq!(partner_view["cancellation"]["by"], "publisher");
    app.stop().await;
}

#[tokio::test]
async fn resolve_accepts_only_live_tokens_of_the_callers_own_subscriptions() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let (order, sub) = app.purchase("cust-saas", 5).await;
    let token = token_of(&order);
    resolve(&app, &spec, "no-such-token").await.expect(400);
    let missing =
        saas(&app, &spec, Method::POST, "/saas/subscriptions/resolve", "/saas/subscriptions/resolve", None, &[])
            .await
            .expect(400);
    assert_eq!(missing.error_field(), "x-ms-marketplace-token");
    // Still URL-encoded, as a careless client sends it: accepted.
    let encoded = order["lineItems"][0]["activationLink"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned();
    resolve(&app, &spec, &encoded).await.expect(200);
    // Another publisher cannot resolve contoso's token.
    let other = app
        .request(
            Method::POST,
            &format!("/api/saas/subscriptions/resolve?{V}"),
            Some(FABRIKAM_TOKEN),
            None,
            &[("x-ms-marketplace-token", &token)],
        )
        .await
        .expect(400);
    assert!(!other.body.to_string().contains(&sub));
    // Resolving again works while the token is valid; it expires after 24 hours...
    resolve(&app, &spec, &token).await.expect(200);
    app.advance(Duration::hours(24) + Duration::seconds(1));
    let expired = resolve(&app, &spec, &token).await.expect(400);
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"));
    // ...except for an active subscription (the "manage" flow from the landing page).
    let (order, sub) = app.purchase("cust-saas", 5).await;
    app.licenses_assigned("m-1", &sub, 5).await.expect(200);
    app.setup_confirmed("m-2", &sub, 5).await.expect(200);
    app.advance(Duration::days(30));
    assert_eq!(
        resolve(&app, &spec, &token_of(&order)).await.expect(200).body["subscription"]["saasSubscriptionStatus"],
        "Subscribed"
    );
    app.stop().await;
}

#[tokio::test]
async fn activate_checks_plan_quantity_and_status() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let (_, sub) = app.purchase("cust-saas", 5).await;
    let activate = |body: Value| {
        let path = format!("{SUBS}/{sub}/activate");
        let app = &app;
        let spec = &spec;
        async move { saas(app, spec, Method::POST, &format!("{SUB}/activate"), &path, Some(body), &[]).await }
    };
    assert_eq!(activate(json!({"planId": "gold", "quantity": 5})).await.expect(400).body["code"], "plan-mismatch");
    assert_eq!(
        activate(json!({"planId": "standard", "quantity": 4})).await.expect(400).body["code"],
        "quantity-mismatch"
    );
    assert_eq!(activate(json!({"quantity": 5})).await.expect(400).error_field(), "planId");
    assert_eq!(activate(json!({"planId": "standard", "quantity": "many"})).await.expect(400).error_field(), "quantity");
    activate(json!({"planId": "standard", "unknownField": true})).await.expect(200);
    assert!(app.billing_types(&sub).await.is_empty(), "setup alone does not bill");
    // Activated but not yet billing: activating again with the same values is harmless.
    activate(json!({"planId": "standard", "quantity": 5})).await.expect(200);
    app.licenses_assigned("a-1", &sub, 5).await.expect(200);
    assert_eq!(app.billing_types(&sub).await, ["billing.started"]);
    assert_eq!(activate(json!({"planId": "standard"})).await.expect(400).body["code"], "already-subscribed");
    saas(&app, &spec, Method::DELETE, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.expect(202);
    activate(json!({"planId": "standard"})).await.expect(404);
    app.stop().await;
}

#[tokio::test]
async fn patch_accepts_exactly_one_real_change() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let (_, pending) = app.purchase("cust-saas", 5).await;
    let sub = active_subscription(&app, &spec, 6).await;
    let patch = |id: String, body: Value| {
        let (app, spec) = (&app, &spec);
        async move { saas(app, spec, Method::PATCH, SUB, &format!("{SUBS}/{id}"), Some(body), &[]).await }
    };
    patch(sub.clone(), json!({"planId": "gold", "quantity": 7})).await.expect(400);
    patch(sub.clone(), json!({})).await.expect(400);
    assert_eq!(patch(sub.clone(), json!({"quantity": 6})).await.expect(400).body["code"], "same-value");
    assert_eq!(patch(sub.clone(), json!({"planId": "standard"})).await.expect(400).body["code"], "same-value");
    assert_eq!(patch(sub.clone(), json!({"quantity": 501})).await.expect(400).error_field(), "quantity");
    assert_eq!(patch(sub.clone(), json!({"planId": "platinum"})).await.expect(400).error_field(), "planId");
    assert_eq!(patch(pending.clone(), json!({"quantity": 7})).await.expect(400).body["code"], "not-subscribed");
    patch(uuid::Uuid::new_v4().to_string(), json!({"quantity": 7})).await.expect(404);
    patch(sub.clone(), json!({"quantity": "7"})).await.expect(202);

    // A plan change: the new plan must hold the quantity; it bills the new plan on success.
    let plans = saas(
        &app,
        &spec,
        Method::GET,
        &format!("{SUB}/listAvailablePlans"),
        &format!("{SUBS}/{sub}/listAvailablePlans"),
        None,
        &[],
    )
    .await
    .expect(200)
    .body;
    let ids: Vec<_> = plans["plans"].as_array().unwrap().iter().map(|p| p["planId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["standard", "gold"]);
    assert_eq!(plans["plans"][0]["displayName"], "Standard");
    assert_eq!(plans["plans"][1]["minQuantity"], 5);
    let only_gold = saas(
        &app,
        &spec,
        Method::GET,
        &format!("{SUB}/listAvailablePlans"),
        &format!("{SUBS}/{sub}/listAvailablePlans?planId=gold"),
        None,
        &[],
    )
    .await
    .expect(200)
    .body;
    assert_eq!(only_gold["plans"].as_array().unwrap().len(), 1);
    assert_eq!(only_gold["plans"][0]["description"], "More of everything");

    let change = patch(sub.clone(), json!({"planId": "gold"})).await.expect(202);
    let op = change.header("operation-id").unwrap().to_owned();
    saas(
        &app,
        &spec,
        Method::PATCH,
        OP,
        &format!("{SUBS}/{sub}/operations/{op}"),
        Some(json!({"status": "Success", "planId": "gold"})),
        &[],
    )
    .await
    .expect(200);
    let billed: Vec<_> =
        app.billing_events().await.into_iter().filter(|e| e["subscriptionId"] == sub.as_str()).collect();
    assert_eq!(billed.last().unwrap()["type"], "billing.plan_changed");
    assert_eq!(billed.last().unwrap()["planId"], "gold");
    app.stop().await;
}

#[tokio::test]
async fn operation_updates_conflict_when_a_newer_update_completed() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let sub = active_subscription(&app, &spec, 6).await;
    let request = |q: u32| {
        let (app, spec, sub) = (&app, &spec, sub.clone());
        async move {
            let r = saas(app, spec, Method::PATCH, SUB, &format!("{SUBS}/{sub}"), Some(json!({"quantity": q})), &[])
                .await
                .expect(202);
            r.header("operation-id").unwrap().to_owned()
        }
    };
    let complete = |op: String, status: &'static str| {
        let (app, spec, sub) = (&app, &spec, sub.clone());
        async move {
            saas(
                app,
                spec,
                Method::PATCH,
                OP,
                &format!("{SUBS}/{sub}/operations/{op}"),
                Some(json!({"status": status})),
                &[],
            )
            .await
        }
    };
    let older = request(7).await;
    let newer = request(9).await;
    let listed =
        saas(&app, &spec, Method::GET, OPS, &format!("{SUBS}/{sub}/operations"), None, &[]).await.expect(200).body;
    assert_eq!(listed["operations"].as_array().unwrap().len(), 2);
    complete(newer.clone(), "Success").await.expect(200);
    complete(newer.clone(), "Success").await.expect(200);
    assert_eq!(complete(newer.clone(), "Failure").await.expect(409).body["code"], "operation-already-completed");
    assert_eq!(complete(older.clone(), "Success").await.expect(409).body["code"], "newer-operation-completed");
    complete(older.clone(), "Failure").await.expect(200);
    assert_eq!(saas(&app, &spec, Method::GET, SUB, &format!("{SUBS}/{sub}"), None, &[]).await.body["quantity"], 9);
    let listed =
        saas(&app, &spec, Method::GET, OPS, &format!("{SUBS}/{sub}/operations"), None, &[]).await.expect(200).body;
    assert_eq!(listed["operations"], json!([]), "nothing outstanding");
    assert_eq!(complete(older.clone(), "Maybe").await.expect(400).error_field(), "status");
    complete(uuid::Uuid::new_v4().to_string(), "Success").await.expect(404);
    saas(&app, &spec, Method::GET, OP, &format!("{SUBS}/{sub}/operations/not-an-id"), None, &[]).await.expect(404);
    app.stop().await;
}

#[tokio::test]
async fn the_list_is_paged_by_100_with_an_absolute_next_link() {
    let app = TestApp::spawn().await;
    let spec = Spec::load();
    let items: Vec<Value> = (0..50).map(|_| line_item(1)).collect();
    for _ in 0..3 {
        app.request(
            Method::POST,
            "/v1/customers/cust-list/orders",
            Some(PARTNER_1_KEY),
            Some(json!({"lineItems": items})),
            &[],
        )
        .await
        .expect(201);
    }
    let first = saas(&app, &spec, Method::GET, "/saas/subscriptions/", "/saas/subscriptions/", None, &[])
        .await
        .expect(200)
        .body;
    assert_eq!(first["subscriptions"].as_array().unwrap().len(), 100);
    let next = first["@nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/api/saas/subscriptions/?continuationToken=", app.base)), "{next}");
    let second = read(app.http.get(next).bearer_auth(CONTOSO_TOKEN).send().await.unwrap()).await.expect(200).body;
    spec.check("GET", "/saas/subscriptions/", 200, &second);
    assert_eq!(second["subscriptions"].as_array().unwrap().len(), 50);
    assert!(second.get("@nextLink").is_none());
    let mut ids: Vec<_> = first["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["subscriptions"].as_array().unwrap())
        .map(|s| s["id"].clone())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 150);
    // Publishers see only their own subscriptions.
    let theirs = app
        .request(Method::GET, &format!("/api/saas/subscriptions/?{V}"), Some(FABRIKAM_TOKEN), None, &[])
        .await
        .expect(200);
    assert_eq!(theirs.body["subscriptions"], json!([]));
    // An unusable continuation token is a 400 (the spec declares no error for the list; a
    // silent first page would loop a client forever).
    let bad = app
        .request(
            Method::GET,
            &format!("/api/saas/subscriptions/?continuationToken=%25%25&{V}"),
            Some(CONTOSO_TOKEN),
            None,
            &[],
        )
        .await;
    assert_eq!(bad.expect(400).error_field(), "continuationToken");
    app.stop().await;
}

/// `Operation-Location` and `@nextLink` start with the configured public URL, else with the
/// address the service listens on; a caller's `Host` or `X-Forwarded-Proto` cannot point them
/// elsewhere.
#[tokio::test]
async fn links_use_the_public_url_or_the_listen_address_whatever_the_host_header_says() {
    let public = "https://fulfillment.example.com/marketplace";
    let forged = [("host", "attacker.example"), ("x-forwarded-proto", "https")];
    for configured in [Some(public), None] {
        let app = TestApp::spawn_tuned(Tuning { public_url: configured.map(Into::into), ..Tuning::default() }).await;
        let spec = Spec::load();
        let sub = active_subscription(&app, &spec, 5).await;
        let body = Some(json!({"quantity": 8}));
        let patched = saas(&app, &spec, Method::PATCH, SUB, &format!("{SUBS}/{sub}"), body, &forged).await.expect(202);
        let location = patched.header("operation-location").unwrap();
        let base = configured.map(str::to_owned).unwrap_or_else(|| app.base.clone());
        assert!(location.starts_with(&format!("{base}/api/saas/subscriptions/{sub}/operations/")), "{location}");
        app.stop().await;
    }
}

#[tokio::test]
async fn publishers_must_authenticate_and_see_only_their_own_subscriptions() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-saas", 5).await;
    let path = format!("/api/saas/subscriptions/{sub}?{V}");
    let missing = app.request(Method::GET, &path, None, None, &[]).await.expect(401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    app.request(Method::GET, &path, Some("wrong-token-000000000"), None, &[]).await.expect(401);
    app.request(Method::GET, &path, Some(PARTNER_1_KEY), None, &[]).await.expect(401);
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"quantity": 6}))),
        (Method::DELETE, "", None),
        (Method::POST, "/activate", Some(json!({"planId": "standard"}))),
        (Method::GET, "/listAvailablePlans", None),
        (Method::GET, "/operations", None),
    ] {
        let p = format!("/api/saas/subscriptions/{sub}{suffix}?{V}");
        let reply = app.request(method, &p, Some(FABRIKAM_TOKEN), body, &[]).await.expect(404);
        assert!(!reply.body.to_string().contains("contoso"), "{}", reply.body);
    }
    assert_eq!(app.subscription("cust-saas", &sub).await.body["status"], "pending", "nothing changed");
    app.stop().await;
}

#[tokio::test]
async fn api_version_is_required_and_request_ids_are_echoed() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-saas", 5).await;
    for query in ["", "?api-version=2020-01-01"] {
        let reply = app
            .request(Method::GET, &format!("/api/saas/subscriptions/{sub}{query}"), Some(CONTOSO_TOKEN), None, &[])
            .await
            .expect(400);
        assert_eq!(reply.error_field(), "api-version");
        assert!(reply.header("x-ms-requestid").is_some());
    }
    let request_id = "0f5f1d2e-7f8a-4b6c-9d0e-1a2b3c4d5e6f";
    let reply = app
        .request(
            Method::GET,
            &format!("/api/saas/subscriptions/{sub}?{V}"),
            Some(CONTOSO_TOKEN),
            None,
            &[("x-ms-requestid", request_id), ("x-ms-correlationid", "corr-1")],
        )
        .await
        .expect(200);
    assert_eq!(reply.header("x-ms-requestid"), Some(request_id));
    assert_eq!(reply.header("x-ms-correlationid"), Some("corr-1"));
    let generated = app
        .request(Method::GET, &format!("/api/saas/subscriptions/{sub}?{V}"), Some(CONTOSO_TOKEN), None, &[])
        .await
        .expect(200);
    assert!(uuid::Uuid::parse_str(generated.header("x-ms-requestid").unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(generated.header("x-ms-correlationid").unwrap()).is_ok());
    app.stop().await;
}

#[test]
fn the_validator_refuses_what_the_spec_does_not_allow() {
    let spec = Spec::load();
    let ok = serde_json::json!({"id": "8d7d7f44-5f32-4a83-a9a3-6c3bb4e0c1f1", "action": "ChangePlan", "quantity": 3,
        "status": "InProgress", "timeStamp": "2026-01-01T00:00:00Z"});
    assert!(spec.validate_schema("SaaSOperation", &ok).is_empty());
    for (field, bad) in [
        ("id", "not-a-uuid".into()),
        ("action", "Explode".into()),
        ("quantity", 3_000_000_000u64.into()),
        ("timeStamp", "yesterday".into()),
        ("extra", 1.into()),
        ("status", 5.into()),
    ] {
        let mut v = ok.clone();
        v[field] = bad;
        assert!(!spec.validate_schema("SaaSOperation", &v).is_empty(), "{field} should be refused");
    }
}
