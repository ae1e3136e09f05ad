//! Loose JSON is refused at every entrance: an array where the contract has an object (a
//! struct would otherwise be read from its field values in order), a key given twice at any
//! depth (the last would otherwise win), and invalid UTF-8 in a field the service ignores. Each
//! answer is a 4xx problem+json naming the JSON path, and nothing is recorded.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const SAAS_VERSION: &str = "api-version=2018-08-31";

/// A partner API call with a body of raw bytes.
async fn partner_raw(app: &TestApp, method: Method, path: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {PARTNER_1_KEY}");
    app.raw(method, path, &[("authorization", &auth), ("content-type", "application/json")], body.to_vec()).await
}

/// A SaaS API call as contoso with a body of raw bytes.
async fn saas_raw(app: &TestApp, method: Method, path: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {CONTOSO_TOKEN}");
    let path = format!("/api/saas/subscriptions/{path}?{SAAS_VERSION}");
    app.raw(method, &path, &[("authorization", &auth), ("content-type", "application/json")], body.to_vec()).await
}

/// A webhook from contoso, correctly signed over exactly these bytes.
async fn webhook_raw(app: &TestApp, webhook_id: &str, body: &[u8]) -> Reply {
    app.webhook_at("contoso", CONTOSO_SECRET, webhook_id, app.now().timestamp(), body.to_vec()).await
}

/// What a partner can see of a subscription, to compare before and after an attack.
async fn snapshot(app: &TestApp, sub: &str) -> (Vec<Value>, Value) {
    let mut view = app.subscription("cust-1", sub).await.expect(200).body;
    view.as_object_mut().unwrap().remove("asOf");
    (app.history("cust-1", sub).await, view)
}

#[tokio::test]
async fn an_array_for_an_object_is_refused_everywhere() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let before = snapshot(&app, &sub).await;

    // `["name", 7]` would be read as {"friendlyName": "name", "quantity": 7}.
    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let reply = partner_raw(&app, Method::PATCH, &path, br#"["name",7]"#).await.expect(422);
    assert_eq!(reply.error_field(), "body");
    assert!(reply.body["errors"][0]["message"].as_str().unwrap().contains("expected a JSON object"), "{}", reply.body);

    // A signed webhook whose fields come in order instead of by name.
    let body = json!(["licenses.assigned", sub, {"assignedCount": 2}]).to_string();
    assert_eq!(webhook_raw(&app, "arr-1", body.as_bytes()).await.expect(422).error_field(), "body");
    // Its `data` as an array.
    let body = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": [2]}).to_string();
    assert_eq!(webhook_raw(&app, "arr-2", body.as_bytes()).await.expect(422).error_field(), "data");

    // An order line item as an array.
    let order = json!({"lineItems": [["contoso-crm", "standard", 1, "P1M", "monthly"]]}).to_string();
    let reply = partner_raw(&app, Method::POST, "/v1/customers/cust-2/orders", order.as_bytes()).await.expect(422);
    assert_eq!(reply.error_field(), "lineItems[0]");
    let order = json!([[line_item(1)]]).to_string();
    partner_raw(&app, Method::POST, "/v1/customers/cust-2/orders", order.as_bytes()).await.expect(422);

    // The SaaS Fulfillment API answers 400 on its bodies, naming the place all the same.
    let reply = saas_raw(&app, Method::PATCH, &sub, br#"["gold"]"#).await.expect(400);
    assert_eq!(reply.error_field(), "body");
    let reply = saas_raw(&app, Method::POST, &format!("{sub}/activate"), br#"["standard", 5]"#).await.expect(400);
    assert_eq!(reply.error_field(), "body");
    let op = uuid::Uuid::new_v4();
    let reply = saas_raw(&app, Method::PATCH, &format!("{sub}/operations/{op}"), br#"["Success"]"#).await.expect(400);
    assert_eq!(reply.error_field(), "body");

    assert_eq!(snapshot(&app, &sub).await, before, "nothing was recorded");
    let orders = app.request(Method::GET, "/v1/customers/cust-2/subscriptions", Some(PARTNER_1_KEY), None, &[]).await;
    orders.expect(404); // The partner bought nothing for this customer.
}

#[tokio::test]
async fn a_key_given_twice_is_refused_at_any_depth() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let before = snapshot(&app, &sub).await;

    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let reply = partner_raw(&app, Method::PATCH, &path, br#"{"quantity":6,"quantity":400}"#).await.expect(422);
    assert_eq!(reply.error_field(), "quantity");
    assert!(reply.body["errors"][0]["message"].as_str().unwrap().contains("duplicate field"), "{}", reply.body);
    // A key the contract does not know is still one key.
    let reply = partner_raw(&app, Method::PATCH, &path, br#"{"friendlyName":"a","x":1,"x":2}"#).await.expect(422);
    assert_eq!(reply.error_field(), "x");

    let top = format!(
        r#"{{"type":"licenses.assigned","subscriptionId":"{sub}","data":{{"assignedCount":2}},"type":"setup.confirmed"}}"#
    );
    assert_eq!(webhook_raw(&app, "dup-1", top.as_bytes()).await.expect(422).error_field(), "type");
    let data = format!(
        r#"{{"type":"licenses.assigned","subscriptionId":"{sub}","data":{{"assignedCount":2,"assignedCount":5}}}}"#
    );
    assert_eq!(webhook_raw(&app, "dup-2", data.as_bytes()).await.expect(422).error_field(), "data.assignedCount");
    let deep = format!(
        r#"{{"type":"licenses.assigned","subscriptionId":"{sub}","data":{{"assignedCount":2,"seats":[{{"user":"a","user":"b"}}]}}}}"#
    );
    assert_eq!(webhook_raw(&app, "dup-3", deep.as_bytes()).await.expect(422).error_field(), "data.seats[0].user");

    let mut item = line_item(1).to_string();
    item.insert_str(item.len() - 1, r#","quantity":500"#);
    let order = format!(r#"{{"lineItems":[{item}]}}"#);
    let reply = partner_raw(&app, Method::POST, "/v1/customers/cust-2/orders", order.as_bytes()).await.expect(422);
    assert_eq!(reply.error_field(), "lineItems[0].quantity");

    let reply = saas_raw(&app, Method::POST, &format!("{sub}/activate"), br#"{"planId":"standard","planId":"gold"}"#)
        .await
        .expect(400);
    assert_eq!(reply.error_field(), "planId");

    assert_eq!(snapshot(&app, &sub).await, before, "nothing was recorded");
    let orders = app.request(Method::GET, "/v1/customers/cust-2/subscriptions", Some(PARTNER_1_KEY), None, &[]).await;
    orders.expect(404); // The partner bought nothing for this customer.
}

#[tokio::test]
async fn invalid_utf8_is_refused_even_in_an_ignored_field() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let before = snapshot(&app, &sub).await;

    let mut webhook =
        format!(r#"{{"type":"licenses.assigned","subscriptionId":"{sub}","data":{{"assignedCount":2}},"note":""#)
            .into_bytes();
    webhook.extend_from_slice(b"caf\xe9\"}");
    let reply = webhook_raw(&app, "utf-1", &webhook).await.expect(400);
    assert_eq!(reply.error_field(), "note");

    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let reply = partner_raw(&app, Method::PATCH, &path, b"{\"friendlyName\":\"ok\",\"comment\":\"\xff\xfe\"}")
        .await
        .expect(400);
    assert_eq!(reply.error_field(), "comment");

    let mut order = br#"{"lineItems":[{"offerId":"contoso-crm","planId":"standard","quantity":1,"termDuration":"P1M","billingCycle":"monthly","memo":""#.to_vec();
    order.extend_from_slice(b"\xc3\x28\"}]}");
    let reply = partner_raw(&app, Method::POST, "/v1/customers/cust-2/orders", &order).await.expect(400);
    assert_eq!(reply.error_field(), "lineItems[0].memo");

    assert_eq!(snapshot(&app, &sub).await, before, "nothing was recorded");
}

#[tokio::test]
async fn well_formed_bodies_still_work_unknown_fields_included() {
    let app = TestApp::spawn().await;
    let (_, sub) = app.purchase("cust-1", 5).await;
    let body = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 5, "extra": {"a": [1]}}, "sentBy": "crm"});
    webhook_raw(&app, "ok-1", body.to_string().as_bytes()).await.expect(200);
    // Microsoft's client sends the spec's SubscriberPlan; extra fields are accepted as before.
    let reply =
        saas_raw(&app, Method::POST, &format!("{sub}/activate"), br#"{"planId":"standard","quantity":"5","x":null}"#)
            .await;
    reply.expect(200);
    let path = format!("/v1/customers/cust-1/subscriptions/{sub}");
    let reply =
        partner_raw(&app, Method::PATCH, &path, b"{\"friendlyName\":\"caf\xc3\xa9\",\"links\":{}}\n").await.expect(200);
    assert_eq!(reply.body["friendlyName"], "café");
}
