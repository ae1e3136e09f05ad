//! The partner console in a real browser (headless Chromium through chromedriver), the whole
//! Partner Center flow: sign in, buy, see Action needed, the publisher's webhooks arrive, the
//! subscription turns active, change licenses, turn auto-renew off, set an MPN ID, cancel
//! inside the window, and find cancel disabled after it. Every page is checked for labels and
//! a single heading, and screenshotted into `target/tmp/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `scripts/test.sh` installs them and runs
//! this test, plain `cargo test` skips it (ignored) so it needs no browser.

mod common;

use common::webdriver::Browser;
use common::{TestApp, PARTNER_1_KEY};
use serde_json::Value;
use std::path::PathBuf;

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// Accessibility basics of the page in the browser: one `h1`, a label for every visible
/// field, no empty button, a language; returns what is wrong.
const ACCESSIBILITY_CHECK: &str = r#"
const problems = [];
const h1s = document.querySelectorAll('h1').length;
if (h1s !== 1) problems.push('page has ' + h1s + ' h1 elements');
for (const el of document.querySelectorAll('input:not([type=hidden]), select')) {
  if (!el.id || !document.querySelector('label[for="' + el.id + '"]')) problems.push('no label for ' + el.name);
}
for (const b of document.querySelectorAll('button')) {
  if (!b.textContent.trim()) problems.push('a button without text');
}
if (document.documentElement.lang !== 'en') problems.push('no lang on html');
return problems;
"#;

async fn check_page(browser: &Browser, name: &str) {
    let problems = browser.script(ACCESSIBILITY_CHECK).await;
    assert_eq!(problems, Value::Array(vec![]), "accessibility problems on {name}");
    browser.screenshot(name).await;
}

/// Subscription id in the current URL (`.../subscriptions/<id>`).
async fn subscription_in_url(browser: &Browser) -> String {
    let url = browser.current_url().await;
    let id = url.rsplit("/subscriptions/").next().unwrap_or_default();
    id.split(['?', '/']).next().unwrap_or_default().to_owned()
}

async fn buy(browser: &Browser, app: &TestApp, nickname: &str) {
    browser.goto(&format!("{}/console/purchase?customer=contoso-ltd", app.base)).await;
    assert_eq!(browser.attribute("#customer_id", "value").await.as_deref(), Some("contoso-ltd"));
    browser.click("select#offer_plan option[value='contoso-crm/standard']").await;
    browser.type_into("#quantity", "3").await;
    browser.click("select#term option[value='P1M']").await;
    browser.click("select#billing_cycle option[value='monthly']").await;
    browser.type_into("#friendly_name", nickname).await;
    browser.follow("main form button[type=submit]").await;
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver; scripts/test.sh installs them and runs it"]
async fn a_partner_runs_the_whole_flow_in_the_browser() {
    let app = TestApp::spawn().await;
    let browser = Browser::start(&screenshot_dir()).await;

    // Sign in, from the keyboard (Enter submits).
    browser.goto(&format!("{}/console", app.base)).await;
    assert!(browser.current_url().await.ends_with("/console/sign-in"));
    check_page(&browser, "01-sign-in").await;
    browser.type_into("#api_key", "wrong-key").await;
    browser.follow("main form button[type=submit]").await;
    assert!(browser.text("#api_key-error").await.contains("That API key is not valid"));
    check_page(&browser, "02-sign-in-error").await;
    browser.type_into("#api_key", &format!("{PARTNER_1_KEY}\u{E007}")).await;
    browser.wait_for_url_ending("/console/customers").await;
    assert!(browser.text("main").await.contains("You have not bought any subscription yet"));
    check_page(&browser, "03-customers-empty").await;

    // Purchase: a form error first (too few licenses for the gold plan), then a good order.
    browser.follow("a.button[href='/console/purchase']").await;
    browser.type_into("#customer_id", "contoso-ltd").await;
    browser.click("select#offer_plan option[value='contoso-crm/gold']").await;
    browser.type_into("#quantity", "2").await;
    check_page(&browser, "04-purchase-form").await;
    browser.follow("main form button[type=submit]").await;
    let error = browser.text("#quantity-error").await;
    assert!(error.starts_with("Quantity") || error.contains("quantity"), "plain words next to the field: {error}");
    assert!(!browser.source().await.contains("application/problem+json"));
    check_page(&browser, "05-purchase-error").await;
    buy(&browser, &app, "Sales CRM").await;
    assert!(browser.current_url().await.contains("/console/customers/contoso-ltd/orders/"));
    let link = browser.attribute("a[target=_blank]", "href").await.unwrap();
    assert!(link.starts_with("https://contoso.example/landing?token="), "{link}");
    let code = browser.text(".action-needed code").await;
    assert!(link.ends_with(&code), "the link carries the authorization code");
    check_page(&browser, "06-order-confirmation").await;

    // The customer's subscriptions: Action needed with the publisher's link and the code.
    browser.follow("header a[href='/console/customers']").await;
    browser.follow("a[href='/console/customers/contoso-ltd']").await;
    let table = browser.text("table").await;
    assert!(table.contains("Sales CRM") && table.contains("Action needed"), "{table}");
    assert!(table.contains("Go to publisher's site") && table.contains(&code));
    check_page(&browser, "07-customer-action-needed").await;

    // The publisher assigns licenses and confirms setup; the subscription turns active.
    browser.follow("table a[href*='/subscriptions/']").await;
    let id = subscription_in_url(&browser).await;
    let detail = browser.current_url().await;
    assert!(browser.text("#billing").await.contains("Not started"));
    app.licenses_assigned("wh-browser-1", &id, 3).await.expect(200);
    app.setup_confirmed("wh-browser-2", &id, 3).await.expect(200);
    browser.goto(&detail).await;
    assert!(browser.text(".badge").await.contains("Active"));
    assert!(browser.text("#billing").await.starts_with("Billing started on"));
    assert_eq!(browser.count(".action-needed").await, 0);
    check_page(&browser, "08-subscription-active").await;

    // Licenses outside the plan: the browser itself stops the form (min/max on the field);
    // without that check (an old browser), the server's refusal shows next to the field.
    browser.type_into("#quantity", "900").await;
    browser.click("form[action$='/quantity'] button").await;
    let blocked = browser.script("return document.querySelector('#quantity').validity.rangeOverflow;").await;
    assert_eq!(blocked, Value::Bool(true), "the browser refuses 900 before sending");
    assert_eq!(browser.current_url().await, detail, "nothing was sent");
    browser.script("document.querySelector('#quantity').removeAttribute('max'); return null;").await;
    browser.follow("form[action$='/quantity'] button").await;
    let error = browser.text("#quantity-error").await;
    assert!(error.starts_with("Quantity must be between 1 and 500 licenses"), "{error}");
    check_page(&browser, "09-licenses-error").await;
    browser.type_into("#quantity", "7").await;
    browser.follow("form[action$='/quantity'] button").await;
    assert!(browser.text(".notice").await.contains("Licenses updated."));
    assert!(browser.text("main dl").await.contains("7 licenses"));

    // Auto-renew off.
    browser.follow("form[action$='/auto-renew'] button").await;
    assert!(browser.text("#auto-renew-state").await.contains("off"));

    // Indirect reseller MPN ID.
    browser.type_into("#mpn_id", "7654321").await;
    browser.follow("form[action$='/reseller'] button").await;
    assert!(browser.text(".notice").await.contains("MPN ID saved"));
    assert!(browser.text("main dl").await.contains("7654321"));
    let timeline = browser.text("ol.timeline").await;
    for expected in ["Publisher assigned 3 licenses", "Licenses changed from 3 to 7", "Auto-renew turned off"] {
        assert!(timeline.contains(expected), "timeline lacks {expected:?}: {timeline}");
    }
    check_page(&browser, "10-subscription-changed").await;

    // A second subscription, to see the window close on it later.
    buy(&browser, &app, "Second CRM").await;
    browser.follow("main a[href*='/subscriptions/']").await;
    let second = browser.current_url().await;

    // Cancel the first inside the window.
    browser.goto(&detail).await;
    assert!(browser.is_enabled("form[action$='/cancel'] button").await);
    browser.type_into("#reason", "customer changed its mind").await;
    browser.follow("form[action$='/cancel'] button").await;
    assert!(browser.text(".notice").await.contains("Subscription cancelled."));
    assert!(browser.text(".badge").await.contains("Cancelled"));
    assert!(browser.text("#billing").await.contains("stopped on"));
    assert_eq!(browser.count("form[action$='/cancel']").await, 0, "a cancelled subscription has no controls");
    check_page(&browser, "11-subscription-cancelled").await;

    // Past the 72-hour window, cancel is disabled with the reason and the closing date.
    app.advance(chrono::Duration::hours(73));
    browser.goto(&second).await;
    assert!(!browser.is_enabled("form[action$='/cancel'] button").await);
    let reason = browser.text("#cancel-hint").await;
    assert!(reason.starts_with("Cancellation is no longer possible: the cancellation window closed on"), "{reason}");
    check_page(&browser, "12-cancel-disabled").await;

    // Readable on a phone: nothing wider than the screen.
    browser.set_window_size(390, 844).await;
    browser.goto(&format!("{}/console/customers/contoso-ltd", app.base)).await;
    let too_wide = browser
        .script(
            "return [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
               .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
        )
        .await;
    assert_eq!(too_wide, Value::Array(vec![]), "elements wider than a phone screen (the page would scroll sideways)");
    check_page(&browser, "13-customer-on-a-phone").await;

    // Sign out.
    browser.follow("header form button").await;
    assert!(browser.current_url().await.ends_with("/console/sign-in"));
    browser.goto(&detail).await;
    assert!(browser.current_url().await.ends_with("/console/sign-in"), "signed out for good");

    browser.quit().await;
    app.stop().await;
}
