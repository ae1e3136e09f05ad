//! The Marketplace Metering Service API through the real service: every answer validated against
//! `specs/meteringapi.v1.json`; one accepted report per dimension and hour (a second is 409 with
//! the first, concurrent identical reports accept exactly one); a batch answers each of its items;
//! inactive, foreign and unknown subscriptions are refused; each accepted report is exactly one
//! `billing.usage`; the usage is read back, shown to the partner, and reproduced by a replay.
//! `scripts/test.sh` runs this suite again with read models in PostgreSQL and on Kafka.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::openapi::Spec;
use common::*;
use fulfillment::ReadModelBackend;
use reqwest::Method;
use serde_json::{json, Value};

const VERSION: &str = "api-version=2018-08-31";

/// A subscription of 3 licenses bought and activated now (plan `standard`: dimensions
/// `apicalls` and `storage`).
async fn active(app: &TestApp, customer: &str) -> String {
    let (_, sub) = app.purchase(customer, 3).await;
    app.licenses_assigned(&format!("{sub}-l"), &sub, 3).await.expect(200);
    app.setup_confirmed(&format!("{sub}-s"), &sub, 3).await.expect(200);
    sub
}

fn usage(sub: &str, dimension: &str, quantity: Value, at: DateTime<Utc>) -> Value {
    json!({
        "resourceId": sub,
        "quantity": quantity,
        "dimension": dimension,
        "effectiveStartTime": at.to_rfc3339(),
        "planId": "standard",
    })
}

async fn post_usage(app: &TestApp, token: &str, body: Value) -> Reply {
    let path = format!("/api/usageEvent?{VERSION}");
    app.request(
        Method::POST,
        &path,
        Some(token),
        Some(body),
        &[("x-ms-requestid", "7c1a3c9e-0000-4000-8000-000000000001")],
    )
    .await
}

async fn post_batch(app: &TestApp, items: Vec<Value>) -> Reply {
    let path = format!("/api/batchUsageEvent?{VERSION}");
    app.request(Method::POST, &path, Some(CONTOSO_TOKEN), Some(json!({ "request": items })), &[]).await
}

async fn read_back(app: &TestApp, query: &str) -> Reply {
    app.request(Method::GET, &format!("/api/usageEvents?{VERSION}&{query}"), Some(CONTOSO_TOKEN), None, &[]).await
}

/// `sub`'s `billing.usage` events, once the projector folded `expected` of them (10 s at most).
async fn usage_billing(app: &TestApp, sub: &str, expected: usize) -> Vec<Value> {
    for _ in 0..200 {
        let events: Vec<Value> = app
            .billing_events()
            .await
            .into_iter()
            .filter(|e| e["subscriptionId"] == sub && e["type"] == "billing.usage")
            .collect();
        assert!(events.len() <= expected, "more usage billed than accepted: {events:#?}");
        if events.len() == expected {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{sub} never had {expected} billing.usage events");
}

/// The clock moved six hours on (usage is refused for hours before a subscription became
/// active, so every subscription activated so far can now be reported on up to six hours back),
/// then to a whole second at least ten minutes into its hour, so a report and another "in the
/// same hour" a few minutes earlier really share it.
fn mid_hour(app: &TestApp) -> DateTime<Utc> {
    app.advance(Duration::hours(6));
    let now = app.now();
    let hour = now - Duration::seconds(i64::from(now.timestamp() as u32 % 3600));
    if now - hour < Duration::minutes(10) {
        app.advance(Duration::minutes(10));
    }
    let now = app.now();
    now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()))
}

#[tokio::test]
async fn accepted_usage_is_billed_once_read_back_and_shown_to_the_partner() {
    let app = TestApp::spawn().await;
    let spec = Spec::metering();
    let sub = active(&app, "cust-m1").await;
    let at = mid_hour(&app) - Duration::minutes(5);

    let accepted = post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(12.5), at)).await.expect(200);
    spec.check("POST", "/usageEvent", 200, &accepted.body);
    assert_eq!(accepted.body["status"], "Accepted");
    assert_eq!(accepted.body["resourceId"], sub);
    assert_eq!(accepted.body["quantity"], json!(12.5));
    assert_eq!(accepted.header("x-ms-requestid"), Some("7c1a3c9e-0000-4000-8000-000000000001"));
    assert!(accepted.header("x-ms-correlationid").is_some());

    let billed = usage_billing(&app, &sub, 1).await;
    assert_eq!(billed[0]["data"]["usageEventId"], accepted.body["usageEventId"]);
    assert_eq!(billed[0]["data"]["dimension"], "apicalls");
    assert_eq!(billed[0]["data"]["quantity"], json!(12.5));
    assert_eq!(billed[0]["planId"], "standard");
    let hour: DateTime<Utc> = billed[0]["data"]["hour"].as_str().unwrap().parse().unwrap();
    assert_eq!(hour.timestamp() % 3600, 0);
    assert!(hour <= at && at - hour < Duration::hours(1));

    let start = (at - Duration::days(1)).format("%Y-%m-%d").to_string();
    let back = read_back(&app, &format!("usageStartDate={start}")).await.expect(200);
    spec.check("GET", "/usageEvents", 200, &back.body);
    let records = back.body.as_array().unwrap();
    assert_eq!(records.len(), 1, "{:#}", back.body);
    assert_eq!(records[0]["usageResourceId"], sub);
    assert_eq!(records[0]["submittedQuantity"], json!(12.5));
    assert_eq!(records[0]["planName"], "Standard");
    let other_dimension = read_back(&app, &format!("usageStartDate={start}&dimension=storage")).await.expect(200);
    assert_eq!(other_dimension.body, json!([]));
    let fabrikam = app
        .request(
            Method::GET,
            &format!("/api/usageEvents?{VERSION}&usageStartDate={start}"),
            Some(FABRIKAM_TOKEN),
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(fabrikam.body, json!([]), "another publisher reads none of contoso's usage");
    assert_eq!(read_back(&app, "").await.expect(400).error_field(), "usageStartDate");
    assert_eq!(
        read_back(&app, &format!("usageStartDate={start}&colour=red")).await.expect(400).error_field(),
        "colour"
    );

    let view = app.subscription("cust-m1", &sub).await.expect(200).body;
    let dimensions = view["meteredUsage"]["dimensions"].as_array().unwrap();
    assert_eq!(view["meteredUsage"]["termNumber"], 1);
    assert_eq!(
        dimensions[0],
        json!({"dimension": "apicalls", "displayName": "API calls", "unit": "1000 calls", "quantity": 12.5})
    );
    assert_eq!(dimensions[1]["quantity"], 0);

    let plans = app
        .request(
            Method::GET,
            &format!("/api/saas/subscriptions/{sub}/listAvailablePlans?{VERSION}"),
            Some(CONTOSO_TOKEN),
            None,
            &[],
        )
        .await
        .expect(200);
    Spec::load().check("GET", "/saas/subscriptions/{subscriptionId}/listAvailablePlans", 200, &plans.body);
    let standard = plans.body["plans"].as_array().unwrap().iter().find(|p| p["planId"] == "standard").unwrap().clone();
    assert_eq!(standard["planComponents"]["meteringDimensions"][1]["id"], "storage");
    assert_eq!(standard["planComponents"]["meteringDimensions"][0]["unitOfMeasure"], "1000 calls");

    let history = app.history("cust-m1", &sub).await;
    assert!(history.iter().any(|e| e["type"] == "subscription.usage_reported"), "{history:#?}");
    let mut console = common::console::Console::new(&app.base);
    console.sign_in(PARTNER_1_KEY).await;
    let page = console.get(&format!("/console/customers/cust-m1/subscriptions/{sub}")).await;
    page.assert_contains("Metered usage this term").assert_contains("API calls: 12.5 \u{00d7} 1000 calls");
    page.assert_contains("Publisher reported usage: 12.5 units of apicalls");
    app.stop().await;
}

#[tokio::test]
async fn a_second_report_in_the_same_hour_is_409_with_the_accepted_one() {
    let app = TestApp::spawn().await;
    let spec = Spec::metering();
    let sub = active(&app, "cust-m2").await;
    let at = mid_hour(&app);
    let first =
        post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(3), at - Duration::minutes(9))).await.expect(200);
    let second = post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(4), at)).await.expect(409);
    spec.check("POST", "/usageEvent", 409, &second.body);
    assert_eq!(second.header("content-type"), Some("application/problem+json"));
    assert_eq!(second.body["code"], "Conflict");
    assert_eq!(second.body["additionalInfo"]["acceptedMessage"], as_duplicate(&first.body));
    // Another dimension in the same hour is its own report.
    post_usage(&app, CONTOSO_TOKEN, usage(&sub, "storage", json!(0.25), at)).await.expect(200);

    // The same hour again in a later batch, and a single report after a batch: duplicates.
    let hour = at - Duration::seconds(i64::from(at.timestamp() as u32 % 3600));
    let batch =
        post_batch(&app, vec![usage(&sub, "apicalls", json!(8), hour + Duration::minutes(1))]).await.expect(200);
    spec.check("POST", "/batchUsageEvent", 200, &batch.body);
    let item = &batch.body["result"][0];
    assert_eq!((item["status"].as_str(), item["error"]["code"].as_str()), (Some("Duplicate"), Some("Conflict")));
    assert_eq!(item["error"]["additionalInfo"]["acceptedMessage"], as_duplicate(&first.body));
    // Hour boundaries: the last second of the previous hour and the first of this one's
    // neighbour are hours of their own; a second report for either is a duplicate.
    let previous_hour_end = hour - Duration::seconds(1);
    let batch = post_batch(&app, vec![usage(&sub, "storage", json!(1), previous_hour_end)]).await.expect(200);
    assert_eq!(batch.body["result"][0]["status"], "Accepted");
    post_usage(&app, CONTOSO_TOKEN, usage(&sub, "storage", json!(2), previous_hour_end - Duration::minutes(59)))
        .await
        .expect(409);
    post_usage(&app, CONTOSO_TOKEN, usage(&sub, "storage", json!(2), hour)).await.expect(409);
    assert_eq!(usage_billing(&app, &sub, 3).await.len(), 3);
    app.stop().await;
}

/// An accepted report as the marketplace repeats it to a duplicate: `status` `Duplicate`.
fn as_duplicate(accepted: &Value) -> Value {
    let mut repeated = accepted.clone();
    repeated["status"] = json!("Duplicate");
    repeated
}

#[tokio::test]
async fn concurrent_identical_reports_accept_exactly_one() {
    let app = TestApp::spawn().await;
    let sub = active(&app, "cust-m3").await;
    let body = usage(&sub, "apicalls", json!(7), mid_hour(&app));
    let replies = futures_join(&app, &body, 24).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let duplicates = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!((accepted, duplicates), (1, 23), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let first = replies.iter().find(|r| r.status == 200).unwrap();
    for duplicate in replies.iter().filter(|r| r.status == 409) {
        assert_eq!(duplicate.body["additionalInfo"]["acceptedMessage"], as_duplicate(&first.body));
    }
    assert_eq!(usage_billing(&app, &sub, 1).await.len(), 1);
    app.stop().await;
}

/// Sends `body` to `usageEvent` `n` times at once.
async fn futures_join(app: &TestApp, body: &Value, n: usize) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (base, body, http) = (app.base.clone(), body.clone(), app.http.clone());
        tasks.spawn(async move {
            let response = http
                .post(format!("{base}/api/usageEvent?{VERSION}"))
                .bearer_auth(CONTOSO_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("sent");
            read(response).await
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_batch_of_25_answers_each_item_on_its_own() {
    let app = TestApp::spawn().await;
    let spec = Spec::metering();
    let subs = [active(&app, "cust-m4").await, active(&app, "cust-m4").await, active(&app, "cust-m4").await];
    let (_, pending) = app.purchase("cust-m4", 3).await;
    let cancelled = active(&app, "cust-m4").await;
    app.patch("cust-m4", &cancelled, json!({"status": "deleted"})).await.expect(200);
    let suspended = active(&app, "cust-m4").await;
    let path = format!("/v1/billing/subscriptions/{suspended}/suspend");
    app.request(Method::POST, &path, Some(BILLING_KEY), Some(json!({"reason": "paymentFailed"})), &[])
        .await
        .expect(200);
    let (_, fabrikam_sub) = {
        let order = json!({"lineItems": [{"offerId": "fabrikam-analytics", "planId": "team", "quantity": 2, "termDuration": "P1M", "billingCycle": "monthly", "friendlyName": "Analytics"}]});
        let reply = app
            .request(Method::POST, "/v1/customers/cust-m4/orders", Some(PARTNER_1_KEY), Some(order), &[])
            .await
            .expect(201);
        (reply.body.clone(), reply.body["lineItems"][0]["subscriptionId"].as_str().unwrap().to_owned())
    };
    let at = mid_hour(&app);

    let mut items: Vec<(Value, &str)> = vec![
        (usage(&subs[0], "apicalls", json!(1), at), "Accepted"),
        (usage(&subs[0], "storage", json!(2.5), at), "Accepted"),
        (usage(&subs[0], "apicalls", json!(9), at - Duration::minutes(1)), "Duplicate"),
        (usage(&subs[1], "apicalls", json!(1), at - Duration::hours(2)), "Accepted"),
        (usage(&subs[1], "apicalls", json!(1), at - Duration::hours(25)), "Expired"),
        (usage(&subs[1], "apicalls", json!(1), at + Duration::hours(1)), "BadArgument"),
        (usage(&subs[1], "bandwidth", json!(1), at), "InvalidDimension"),
        (usage(&subs[1], "storage", json!(0), at), "InvalidQuantity"),
        (usage(&subs[1], "storage", json!(-2), at), "InvalidQuantity"),
        (usage(&subs[1], "storage", json!("2"), at), "InvalidQuantity"),
        (usage(&pending, "apicalls", json!(1), at), "ResourceNotActive"),
        (usage(&cancelled, "apicalls", json!(1), at), "ResourceNotActive"),
        (usage(&suspended, "apicalls", json!(1), at), "ResourceNotActive"),
        (usage(&fabrikam_sub, "apicalls", json!(1), at), "ResourceNotAuthorized"),
        (usage(&uuid::Uuid::new_v4().to_string(), "apicalls", json!(1), at), "ResourceNotFound"),
        (usage("not-a-guid", "apicalls", json!(1), at), "BadArgument"),
        (json!({"resourceId": subs[2], "quantity": 1, "dimension": "apicalls", "planId": "standard"}), "BadArgument"),
        (
            json!({"resourceId": subs[2], "quantity": 1, "dimension": "apicalls", "effectiveStartTime": at.to_rfc3339(), "planId": "gold"}),
            "BadArgument",
        ),
        (
            json!({"resourceId": subs[2], "quantity": 1, "dimension": "apicalls", "effectiveStartTime": at.to_rfc3339(), "planId": "standard", "price": 3}),
            "BadArgument",
        ),
        (json!("a usage event"), "BadArgument"),
    ];
    for hour in 1..=5 {
        items.push((usage(&subs[2], "apicalls", json!(hour), at - Duration::hours(hour)), "Accepted"));
    }
    assert_eq!(items.len(), 25);
    let reply = post_batch(&app, items.iter().map(|(v, _)| v.clone()).collect()).await.expect(200);
    spec.check("POST", "/batchUsageEvent", 200, &reply.body);
    assert_eq!(reply.body["count"], 25);
    let statuses: Vec<&str> =
        reply.body["result"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    let expected: Vec<&str> = items.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, expected);
    let result = reply.body["result"].as_array().unwrap();
    assert_eq!(result[2]["error"]["additionalInfo"]["acceptedMessage"]["quantity"], 1);
    assert_eq!(result[2]["error"]["additionalInfo"]["acceptedMessage"]["status"], "Duplicate");
    assert_eq!(result[2]["error"]["code"], "Conflict");
    assert_eq!(result[2]["error"]["additionalInfo"]["acceptedMessage"]["usageEventId"], result[0]["usageEventId"]);
    assert_eq!(result[6]["error"]["code"], "InvalidDimension");
    assert!(result[15].get("resourceId").is_none(), "a malformed id is not echoed: {}", result[15]);

    assert_eq!(usage_billing(&app, &subs[0], 2).await.len(), 2);
    assert_eq!(usage_billing(&app, &subs[1], 1).await.len(), 1);
    assert_eq!(usage_billing(&app, &subs[2], 5).await.len(), 5);
    for refused in [&pending, &cancelled, &suspended] {
        assert!(app
            .billing_events()
            .await
            .iter()
            .all(|e| !(e["subscriptionId"] == *refused && e["type"] == "billing.usage")));
    }

    let too_many = post_batch(&app, vec![usage(&subs[0], "apicalls", json!(1), at); 26]).await.expect(400);
    assert_eq!(too_many.header("content-type"), Some("application/problem+json"));
    assert_eq!(too_many.body["code"], "BadArgument");
    post_batch(&app, vec![]).await.expect(400);
    app.stop().await;
}

#[tokio::test]
async fn single_reports_are_refused_for_inactive_foreign_and_unknown_subscriptions() {
    let app = TestApp::spawn().await;
    let spec = Spec::metering();
    let (_, pending) = app.purchase("cust-m5", 3).await;
    let sub = active(&app, "cust-m5").await;
    let at = mid_hour(&app);
    let refused = post_usage(&app, CONTOSO_TOKEN, usage(&pending, "apicalls", json!(1), at)).await.expect(400);
    spec.check("POST", "/usageEvent", 400, &refused.body);
    assert_eq!(refused.body["code"], "ResourceNotActive");
    assert_eq!(refused.body["details"][0]["target"], "resourceId");
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));

    let foreign = post_usage(&app, FABRIKAM_TOKEN, usage(&sub, "apicalls", json!(1), at)).await.expect(403);
    assert_eq!(foreign.body["code"], "ResourceNotAuthorized");
    let unknown = usage(&uuid::Uuid::new_v4().to_string(), "apicalls", json!(1), at);
    assert_eq!(post_usage(&app, CONTOSO_TOKEN, unknown).await.expect(400).body["code"], "ResourceNotFound");
    let expired =
        post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(1), at - Duration::hours(30))).await.expect(400);
    assert_eq!(expired.body["code"], "Expired");
    let early =
        post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(1), at - Duration::hours(7))).await.expect(400);
    assert_eq!(
        (early.body["code"].as_str(), early.body["target"].as_str()),
        (Some("ResourceNotActive"), Some("effectiveStartTime"))
    );
    let dimension = post_usage(&app, CONTOSO_TOKEN, usage(&sub, "seats", json!(1), at)).await.expect(400);
    assert_eq!(
        (dimension.body["code"].as_str(), dimension.body["target"].as_str()),
        (Some("InvalidDimension"), Some("dimension"))
    );

    let path = format!("/api/usageEvent?{VERSION}");
    app.request(Method::POST, &path, None, Some(usage(&sub, "apicalls", json!(1), at)), &[]).await.expect(401);
    app.request(Method::POST, "/api/usageEvent", Some(CONTOSO_TOKEN), Some(usage(&sub, "apicalls", json!(1), at)), &[])
        .await
        .expect(400);
    let malformed = app
        .raw(
            Method::POST,
            &path,
            &[("authorization", &format!("Bearer {CONTOSO_TOKEN}")), ("content-type", "application/json")],
            b"{\"resourceId\": ".to_vec(),
        )
        .await
        .expect(400);
    assert_eq!(malformed.header("content-type"), Some("application/problem+json"));
    spec.check("POST", "/usageEvent", 400, &malformed.body);
    assert_eq!(
        (malformed.body["code"].as_str(), malformed.body["target"].as_str()),
        (Some("BadArgument"), Some("body"))
    );

    // Nothing of the refused reports was billed; the subscription is still usable.
    post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", json!(1), at)).await.expect(200);
    assert_eq!(usage_billing(&app, &sub, 1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn usage_before_an_instant_is_not_in_the_state_as_of_then_and_a_replay_reproduces_it() {
    let app = TestApp::spawn().await;
    let sub = active(&app, "cust-m6").await;
    let at = mid_hour(&app);
    let before = app.now();
    app.advance(Duration::seconds(1));
    for (hour, quantity) in [(3, json!(1.1)), (2, json!(2.2)), (1, json!(0.7))] {
        post_usage(&app, CONTOSO_TOKEN, usage(&sub, "apicalls", quantity, at - Duration::hours(hour)))
            .await
            .expect(200);
    }
    usage_billing(&app, &sub, 3).await;
    let now = app.subscription("cust-m6", &sub).await.expect(200).body;
    assert_eq!(
        now["meteredUsage"]["dimensions"][0]["quantity"],
        json!(4),
        "exact decimal sum: {}",
        now["meteredUsage"]
    );
    let as_of = before.to_rfc3339().replace('+', "%2B");
    let then = app
        .request(
            Method::GET,
            &format!("/v1/customers/cust-m6/subscriptions/{sub}?asOf={as_of}"),
            Some(PARTNER_1_KEY),
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(then.body["meteredUsage"]["dimensions"][0]["quantity"], 0);

    match app.parts.clone() {
        // The production deployment: the topic folded afresh into a new database equals the live
        // read models, table by table (the usage read model and the billing outbox included).
        Parts::IngressAndProjector(projector) => {
            let live = fulfillment_read_model::PostgresReadModel::connect(&projector.kafka.database).await.unwrap();
            let log = &projector.kafka.log;
            kafka::wait_until_folded(&live, &projector.kafka.consumer_group, log).await;
            let print = kafka::assert_equals_fresh_fold(&live, log).await;
            assert!(print.tables.contains_key("usage_events"), "{print:?}");
        }
        // The embedded log: `verify` folds it afresh and compares every table; `history` and
        // `export` show the usage.
        Parts::Embedded { read_models: ReadModelBackend::Embedded, .. } => {
            let run = |args: &[&str]| {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_fulfillment"))
                    .args(args)
                    .arg("--data-dir")
                    .arg(&app.data_dir)
                    .output()
                    .expect("binary runs");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert_eq!(out.status.code(), Some(0), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
                text
            };
            let verified = run(&["verify"]);
            assert!(verified.contains("usage_events") && !verified.contains("DIFFERENT"), "{verified}");
            let history = run(&["history", &sub]);
            assert_eq!(history.matches("usage: ").count(), 3, "{history}");
            let export = run(&["export", "--subscription", &sub]);
            assert_eq!(export.matches("subscription.usage_reported").count(), 3, "{export}");
        }
        _ => {}
    }
    app.stop().await;
}
