//! The partner console over HTTP: sign-in and sessions, CSRF, ownership, and that its writes
//! are the partner API's writes (same events, same rules, one change per form).

mod common;

use common::console::Console;
use common::{TestApp, PARTNER_1_KEY, PARTNER_2_KEY};
use reqwest::StatusCode;

const SESSION_COOKIE: &str = "fulfillment_console";

async fn signed_in(app: &TestApp, key: &str) -> Console {
    let mut console = Console::new(&app.base);
    let answer = console.sign_in(key).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
    assert_eq!(answer.location(), "/console/customers");
    console
}

/// Opens the purchase form and sends it with `fields` (plus its CSRF token and form id).
async fn send_purchase(console: &mut Console, fields: &[(&str, &str)]) -> common::console::Page {
    let form = console.get("/console/purchase").await;
    assert_eq!(form.status, StatusCode::OK);
    let (csrf, form_id) = (form.input("csrf"), form.input("form_id"));
    let mut all =
        vec![("csrf", csrf.as_str()), ("form_id", form_id.as_str()), ("term", "P1M"), ("billing_cycle", "monthly")];
    all.extend_from_slice(fields);
    console.post("/console/purchase", &all).await
}

/// Buys through the console's purchase form; returns the confirmation page's path.
async fn buy(console: &mut Console, customer: &str, quantity: &str) -> String {
    let fields = [
        ("customer_id", customer),
        ("offer_plan", "contoso-crm/standard"),
        ("quantity", quantity),
        ("friendly_name", "Sales CRM"),
    ];
    let answer = send_purchase(console, &fields).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
    answer.location().to_owned()
}

fn subscription_id_from(html: &str) -> String {
    let marker = "/subscriptions/";
    let at = html.find(marker).expect("a subscription link") + marker.len();
    html[at..at + 36].to_owned()
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_and_signing_out_ends_it() {
    let app = TestApp::spawn().await;
    let mut console = Console::new(&app.base);
    let unauthenticated = console.get("/console/customers").await;
    assert_eq!(unauthenticated.status, StatusCode::SEE_OTHER);
    assert_eq!(unauthenticated.location(), "/console/sign-in");

    let answer = console.sign_in(PARTNER_1_KEY).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let cookie = answer.set_cookies().into_iter().find(|c| c.starts_with(SESSION_COOKIE)).expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP cannot carry a Secure cookie: {cookie}");
    assert!(!cookie.contains(PARTNER_1_KEY), "the API key never goes into a cookie");

    let customers = console.get("/console/customers").await;
    assert_eq!(customers.status, StatusCode::OK);
    customers.assert_contains("Signed in as").assert_contains("partner-1");
    assert_eq!(customers.header("cache-control"), Some("no-store"));
    assert!(customers.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));

    let session = console.cookie(SESSION_COOKIE).unwrap().to_owned();
    let csrf = customers.input("csrf");
    let out = console.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(console.cookie(SESSION_COOKIE).is_none(), "sign-out clears the cookie");
    // Even a browser that kept the old cookie is signed out.
    console.set_cookie(SESSION_COOKIE, &session);
    assert_eq!(console.get("/console/customers").await.location(), "/console/sign-in");
    app.stop().await;
}

#[tokio::test]
async fn behind_tls_the_session_cookie_is_secure() {
    let app = TestApp::spawn().await;
    let mut console = Console::new(&app.base);
    console.extra_headers.push(("x-forwarded-proto", "https, http"));
    let answer = console.sign_in(PARTNER_1_KEY).await;
    let cookie = answer.set_cookies().into_iter().find(|c| c.starts_with(SESSION_COOKIE)).unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_key_or_a_forged_sign_in_form_is_refused_in_plain_words() {
    let app = TestApp::spawn().await;
    let mut console = Console::new(&app.base);
    let wrong = console.sign_in("not-a-key").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    wrong.assert_contains("That API key is not valid");
    assert!(wrong.header("content-type").unwrap().starts_with("text/html"));
    assert!(console.cookie(SESSION_COOKIE).is_none());

    // A sign-in form posted from elsewhere carries no sign-in cookie (login CSRF).
    let mut stranger = Console::new(&app.base);
    let forged = stranger.post("/console/sign-in", &[("csrf", "guessed"), ("api_key", PARTNER_1_KEY)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(stranger.cookie(SESSION_COOKIE).is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_console_purchase_is_the_partner_api_purchase_and_a_double_submit_buys_once() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let form = console.get("/console/purchase").await;
    let fields = [
        ("csrf", form.input("csrf")),
        ("form_id", form.input("form_id")),
        ("customer_id", "cust-7".to_owned()),
        ("offer_plan", "contoso-crm/gold".to_owned()),
        ("quantity", "6".to_owned()),
        ("term", "P1M".to_owned()),
        ("billing_cycle", "monthly".to_owned()),
        ("friendly_name", "Gold CRM".to_owned()),
        ("mpn_id", "1234567".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let first = console.post("/console/purchase", &fields).await;
    let second = console.post("/console/purchase", &fields).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.html);
    assert_eq!(second.location(), first.location(), "the repeat gets the first answer");

    let confirmation = console.get(first.location()).await;
    assert_eq!(confirmation.status, StatusCode::OK);
    confirmation.assert_contains("Action needed").assert_contains("Go to publisher's site");
    confirmation.assert_contains("https://contoso.example/landing?token=");

    // The partner API sees exactly one subscription, with what the form said.
    let listed = app
        .request(reqwest::Method::GET, "/v1/customers/cust-7/subscriptions", Some(PARTNER_1_KEY), None, &[])
        .await
        .expect(200);
    assert_eq!(listed.body["totalCount"], 1, "{}", listed.body);
    let s = &listed.body["items"][0];
    assert_eq!((s["planId"].as_str(), s["quantity"].as_u64()), (Some("gold"), Some(6)));
    assert_eq!(s["friendlyName"], "Gold CRM");
    assert_eq!(s["partnerId"], "1234567");
    let history = app.history("cust-7", s["id"].as_str().unwrap()).await;
    assert_eq!(history[0]["source"]["kind"], "partner");
    assert_eq!(history[0]["source"]["actorId"], "partner-1");
    app.stop().await;
}

#[tokio::test]
async fn purchase_errors_are_shown_next_to_their_field_and_keep_what_was_typed() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let fields = [
        ("customer_id", "cust-8"),
        ("offer_plan", "contoso-crm/gold"),
        ("quantity", "2"),
        ("friendly_name", "Too small"),
    ];
    let answer = send_purchase(&mut console, &fields).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.header("content-type").unwrap().starts_with("text/html"), "never raw JSON");
    answer.assert_contains("id=\"quantity-error\"").assert_contains("aria-invalid=\"true\"");
    assert_eq!(answer.input("friendly_name"), "Too small", "the form keeps what was typed");
    assert!(!answer.html.contains("\"type\":"), "no problem JSON on the page");
    let listed =
        app.request(reqwest::Method::GET, "/v1/customers/cust-8/subscriptions", Some(PARTNER_1_KEY), None, &[]).await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND, "nothing was bought");
    app.stop().await;
}

#[tokio::test]
async fn a_change_without_the_sessions_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let confirmation = buy(&mut console, "cust-9", "3").await;
    let page = console.get(&confirmation).await;
    let id = subscription_id_from(&page.html);
    let detail_path = format!("/console/customers/cust-9/subscriptions/{id}");
    let detail = console.get(&detail_path).await;
    let version = detail.form_input(&format!("{detail_path}/quantity"), "version");
    let forged = console
        .post(
            &format!("{detail_path}/quantity"),
            &[("csrf", "forged"), ("form_id", "f-1"), ("version", &version), ("quantity", "9")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let s = app.subscription("cust-9", &id).await.expect(200);
    assert_eq!(s.body["quantity"], 3);
    assert_eq!(app.history("cust-9", &id).await.len(), 1, "no event was appended");
    app.stop().await;
}

#[tokio::test]
async fn another_partners_customers_and_subscriptions_are_not_found() {
    let app = TestApp::spawn().await;
    let mut owner = signed_in(&app, PARTNER_1_KEY).await;
    let confirmation = buy(&mut owner, "cust-10", "3").await;
    let id = subscription_id_from(&owner.get(&confirmation).await.html);
    let detail_path = format!("/console/customers/cust-10/subscriptions/{id}");

    let mut other = signed_in(&app, PARTNER_2_KEY).await;
    assert_eq!(other.get("/console/customers/cust-10").await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&detail_path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&confirmation).await.status, StatusCode::NOT_FOUND);
    let customers = other.get("/console/customers").await;
    assert!(!customers.html.contains("cust-10"), "partner 2 does not see partner 1's customer");
    let csrf = customers.input("csrf");
    let attempt = other
        .post(
            &format!("{detail_path}/cancel"),
            &[("csrf", &csrf), ("form_id", "x-1"), ("version", "\"1\""), ("reason", "")],
        )
        .await;
    assert_eq!(attempt.status, StatusCode::NOT_FOUND);
    let s = app.subscription("cust-10", &id).await.expect(200);
    assert_eq!(s.body["status"], "pending", "still not cancelled");
    app.stop().await;
}

#[tokio::test]
async fn the_subscription_page_follows_the_lifecycle_and_its_changes_become_events() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let confirmation = buy(&mut console, "cust-11", "3").await;
    let id = subscription_id_from(&console.get(&confirmation).await.html);
    let detail_path = format!("/console/customers/cust-11/subscriptions/{id}");

    let customer = console.get("/console/customers/cust-11").await;
    customer.assert_contains("Action needed").assert_contains("Sales CRM");

    app.licenses_assigned("wh-1", &id, 3).await.expect(200);
    app.setup_confirmed("wh-2", &id, 3).await.expect(200);
    let active = console.get(&detail_path).await;
    active.assert_contains("Billing started on").assert_contains("billing started.");
    assert!(!active.html.contains("Action needed"));

    // Licenses: a number outside the plan is refused next to the field, in words.
    let quantity_action = format!("{detail_path}/quantity");
    let fields = |page: &common::console::Page, action: &str| {
        (page.input("csrf"), page.form_input(action, "form_id"), page.form_input(action, "version"))
    };
    let (csrf, form_id, version) = fields(&active, &quantity_action);
    let refused = console
        .post(&quantity_action, &[("csrf", &csrf), ("form_id", &form_id), ("version", &version), ("quantity", "900")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.assert_contains("id=\"quantity-error\"");
    assert_eq!(refused.form_input(&quantity_action, "quantity"), "900");

    let (csrf, form_id, version) = fields(&refused, &quantity_action);
    let changed = console
        .post(&quantity_action, &[("csrf", &csrf), ("form_id", &form_id), ("version", &version), ("quantity", "5")])
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
    let after = console.get(changed.location()).await;
    after.assert_contains("Licenses updated.");
    assert!(app.billing_types(&id).await.contains(&"billing.quantity_changed".to_owned()));

    // A form from before that change carries a stale version: refused, nothing changes.
    let stale = console
        .post(
            &format!("{detail_path}/nickname"),
            &[
                ("csrf", &csrf),
                ("form_id", "stale-1"),
                ("version", &version),
                ("friendly_name", "Renamed on an old page"),
            ],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    stale.assert_contains("Someone changed this subscription");
    let s = app.subscription("cust-11", &id).await.expect(200);
    assert_eq!((s.body["friendlyName"].as_str(), s.body["quantity"].as_u64()), (Some("Sales CRM"), Some(5)));

    // Past the cancellation window the cancel control is disabled with the date it closed,
    // and a hand-made request is still refused by the API's rule.
    app.advance(chrono::Duration::hours(73));
    let late = console.get(&detail_path).await;
    late.assert_contains("Cancellation is no longer possible: the cancellation window closed on");
    late.assert_contains("disabled");
    let cancel_action = format!("{detail_path}/cancel");
    let (csrf, form_id, version) = fields(&late, &cancel_action);
    let refused = console.post(&cancel_action, &[("csrf", &csrf), ("form_id", &form_id), ("version", &version)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
    refused.assert_contains("id=\"cancel-error\"");
    app.stop().await;
}

#[tokio::test]
async fn the_console_answers_html_not_problem_json_for_unknown_pages() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let missing = console.get("/console/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.header("content-type").unwrap().starts_with("text/html"));
    let not_uuid = console.get("/console/customers/cust-1/subscriptions/not-a-uuid").await;
    assert_eq!(not_uuid.status, StatusCode::NOT_FOUND);
    let root = console.get("/console").await;
    assert_eq!((root.status, root.location()), (StatusCode::SEE_OTHER, "/console/customers"));
    // The API next door still answers problem+json.
    let api = app.request(reqwest::Method::GET, "/v1/nowhere", Some(PARTNER_1_KEY), None, &[]).await;
    assert_eq!(api.header("content-type"), Some("application/problem+json"));
    app.stop().await;
}

#[tokio::test]
async fn wrong_methods_unreadable_addresses_and_forms_get_pages_not_json() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    for (page, expected) in [
        (console.get("/console/sign-out").await, StatusCode::METHOD_NOT_ALLOWED),
        (console.get("/console/customers/%FF").await, StatusCode::BAD_REQUEST),
        (console.post("/console/customers", &[]).await, StatusCode::METHOD_NOT_ALLOWED),
    ] {
        assert_eq!(page.status, expected, "{}", page.html);
        assert!(page.header("content-type").unwrap().starts_with("text/html"), "{expected}: {:?}", page.headers);
        assert!(!page.html.contains("problem"), "{}", page.html);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_customer_id_that_urls_would_resolve_away_is_refused_next_to_its_field() {
    let app = TestApp::spawn().await;
    let mut console = signed_in(&app, PARTNER_1_KEY).await;
    let fields = [("customer_id", ".."), ("offer_plan", "contoso-crm/standard"), ("quantity", "3")];
    let answer = send_purchase(&mut console, &fields).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.html);
    answer.assert_contains("id=\"customer_id-error\"");
    assert!(!console.get("/console/customers").await.html.contains("/console/customers/.."), "nothing was bought");
    app.stop().await;
}

#[tokio::test]
async fn a_planted_second_session_cookie_or_a_new_sign_in_ends_the_old_session() {
    let app = TestApp::spawn().await;
    let mut victim = signed_in(&app, PARTNER_1_KEY).await;
    let attacker = signed_in(&app, PARTNER_2_KEY).await;
    let (victim_id, attacker_id) =
        (victim.cookie(SESSION_COOKIE).unwrap().to_owned(), attacker.cookie(SESSION_COOKIE).unwrap().to_owned());
    let both = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console/customers", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={attacker_id}; {SESSION_COOKIE}={victim_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::SEE_OTHER, "two session cookies: neither is trusted");
    assert_eq!(both.headers()["location"], "/console/sign-in");

    // Signing in again in the same browser (here as another partner) ends the first session.
    let again = victim.sign_in(PARTNER_2_KEY).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    victim.set_cookie(SESSION_COOKIE, &victim_id);
    assert_eq!(victim.get("/console/customers").await.location(), "/console/sign-in");
    app.stop().await;
}
