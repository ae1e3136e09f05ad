//! The partner console at `/console`: the Partner Center flow (customers, a customer's
//! subscriptions, purchase, a subscription's detail page) as server-rendered HTML.
//!
//! It has no write path of its own: purchases and changes go through the partner API's
//! functions ([`place_order`], [`change_subscription`]) with the same checks, events and
//! idempotency, so what a partner can do here is exactly what the API lets it do. Each
//! rendered form carries a fresh id used as the write's idempotency key, so a double submit
//! makes one change.
//!
//! Security: sign-in with a partner API key (checked like a bearer key, in constant time, never
//! logged) starts a server-side session ([`sessions`]); the cookie is `HttpOnly`,
//! `SameSite=Strict`, `Secure` behind TLS; every form carries the session's CSRF token and
//! the sign-in form a pre-session one (against login CSRF); another partner's customers and
//! subscriptions are not found; pages are `no-store` with a strict Content-Security-Policy.

mod forms;
mod pages;
mod sessions;

use crate::auth::{self, PartnerCaller};
use crate::auth_failures::Attempt;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::log_safe::log_safe;
use crate::partner_orders::{check_customer_id, owned_order, place_order, LineItemRequest, OrderRequest};
use crate::partner_subscriptions::{change_subscription, timeline, SubscriptionPatch};
use crate::state::AppState;
use crate::views::activation_link;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use forms::FieldErrors;
use fulfillment_core::SubscriptionId;
use maud::Markup;
use pages::{FormTokens, Nav, SubscriptionRow};
use serde::Deserialize;
use sessions::{random_token, tokens_match, Session, Sessions};
use std::sync::Arc;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

/// Cookie holding the session id.
const SESSION_COOKIE: &str = "fulfillment_console";

/// Cookie holding the sign-in form's CSRF token (before there is a session).
const SIGN_IN_COOKIE: &str = "fulfillment_console_sign_in";

/// State of the console routes: the API's state plus the session table.
#[derive(Clone)]
pub(crate) struct ConsoleState {
    app: AppState,
    sessions: Arc<Sessions>,
}

/// The console's routes, to nest at `/console` in the API's router.
pub(crate) fn router(app: AppState) -> Router<AppState> {
    let state = ConsoleState { app, sessions: Arc::new(Sessions::default()) };
    Router::new()
        .route("/", get(home))
        .route("/style.css", get(stylesheet))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/customers", get(customers))
        .route("/customers/{customer_id}", get(customer))
        .route("/customers/{customer_id}/orders/{order_id}", get(order))
        .route("/customers/{customer_id}/subscriptions/{id}", get(subscription))
        .route("/customers/{customer_id}/subscriptions/{id}/{action}", post(change))
        .route("/purchase", get(purchase_page).post(purchase))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(html_errors))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// The value of cookie `name`. A name sent twice counts as absent: a second cookie of the same
/// name can only have been planted (by a sibling host, say) to switch the browser into another
/// session, and which one the browser sends first depends on paths the attacker chose.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Whether the browser reached us over TLS, which decides the cookies' `Secure` flag. The
/// service itself speaks plain HTTP, so TLS is always terminated by a proxy in front of it; the
/// proxy says so with `X-Forwarded-Proto` or `Forwarded: proto=` (the first, client-side hop
/// counts when proxies are chained).
fn over_tls(headers: &HeaderMap) -> bool {
    let first_hop =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim);
    let forwarded_proto = first_hop("x-forwarded-proto");
    let forwarded = first_hop("forwarded").and_then(|hop| {
        hop.split(';').filter_map(|p| p.trim().split_once('=')).find(|(k, _)| k.eq_ignore_ascii_case("proto"))
    });
    forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || forwarded.is_some_and(|(_, p)| p.trim_matches('"').eq_ignore_ascii_case("https"))
}

fn set_cookie(response: &mut Response, name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    if let Ok(v) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A 303 to `to` (a path built from checked ids). Unlike `Redirect::to`, never panics: a path
/// that cannot be a header value sends the browser to the customer list instead.
fn see_other(to: &str) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/console/customers"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A signed-in partner. Taking it in a handler makes the route require a session; without one
/// the browser is sent to the sign-in page.
struct SignedIn {
    session_id: String,
    session: Session,
}

impl SignedIn {
    fn partner(&self) -> PartnerCaller {
        PartnerCaller { id: self.session.partner_id.clone() }
    }

    fn nav(&self) -> Nav<'_> {
        Nav { partner_id: &self.session.partner_id, csrf_token: &self.session.csrf_token }
    }

    /// Hidden fields for a freshly rendered form.
    fn tokens<'a>(&'a self, form_id: &'a str) -> FormTokens<'a> {
        FormTokens { csrf_token: &self.session.csrf_token, form_id }
    }

    /// A signed-in page's form, read and checked: the page answering an unreadable form or one
    /// whose CSRF token is not this session's comes back as the error.
    fn accept<T: forms::SessionForm>(&self, form: Result<Form<T>, FormRejection>) -> Result<T, Box<Response>> {
        let form = match form {
            Ok(Form(form)) => form,
            Err(rejection) => return Err(Box::new(bad_form(Some(&self.nav()), rejection))),
        };
        match self.csrf_refusal(form.csrf()) {
            Some(refused) => Err(Box::new(refused)),
            None => Ok(form),
        }
    }

    /// The refusal of a form whose CSRF token is not this session's (`None`: the form is ours).
    fn csrf_refusal(&self, submitted: &str) -> Option<Response> {
        if tokens_match(&self.session.csrf_token, submitted) {
            None
        } else {
            warn!(partner_id = %self.session.partner_id, "console form refused: CSRF token missing or wrong");
            Some(page(
                StatusCode::FORBIDDEN,
                pages::error(
                    Some(&self.nav()),
                    "This form has expired",
                    "The form did not come from this sign-in session. Nothing was changed; open the page again and \
                     repeat the change.",
                ),
            ))
        }
    }
}

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let session_id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| see_other("/console/sign-in"))?;
        let session = state.sessions.get(session_id).ok_or_else(|| see_other("/console/sign-in"))?;
        Ok(SignedIn { session_id: session_id.to_owned(), session })
    }
}

/// The address the request came from, when it came through a listener.
struct ConnectInfoIfAny(Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ConnectInfoIfAny {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfoIfAny(auth::peer(&parts.extensions)))
    }
}

fn not_found_page(nav: Option<&Nav<'_>>, what: &str) -> Response {
    page(StatusCode::NOT_FOUND, pages::error(nav, "Not found", what))
}

async fn method_not_allowed() -> Response {
    page(
        StatusCode::METHOD_NOT_ALLOWED,
        pages::error(
            None,
            "This page cannot do that",
            "This address is for a form; open the page it belongs to instead.",
        ),
    )
}

async fn not_found() -> Response {
    not_found_page(None, "There is no page at this address.")
}

/// Turns an error while reading into a page: not found, or the service being busy.
fn read_failure(nav: &Nav<'_>, error: ApiError, what: &str) -> Response {
    let (status, errors) = forms::describe(&error, "form");
    if status == StatusCode::NOT_FOUND {
        return not_found_page(Some(nav), what);
    }
    if status.is_server_error() {
        warn!(%error, "console page could not be read");
    }
    let message = errors.get("form").unwrap_or("Something went wrong; try again.").to_owned();
    page(status, pages::error(Some(nav), "Cannot show this page", &message))
}

fn bad_form(nav: Option<&Nav<'_>>, rejection: FormRejection) -> Response {
    info!(rejection = %log_safe(&rejection.body_text()), "console form unreadable");
    page(
        StatusCode::BAD_REQUEST,
        pages::error(
            nav,
            "The form could not be read",
            "Nothing was changed. Open the page again and send the form from there.",
        ),
    )
}

/// Errors axum answers by itself inside the console (an undecodable path segment, say) become
/// HTML pages too, so a browser never shows a JSON or plain-text error document.
async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_html = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (title, message) = match status {
        StatusCode::NOT_FOUND => ("Not found", "There is no page at this address."),
        s if s.is_server_error() => ("Something went wrong", "Something went wrong on our side; try again."),
        _ => ("This address cannot be read", "The address is not one the console knows. Nothing was changed."),
    };
    page(status, pages::error(None, title, message))
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::STYLESHEET).into_response()
}

async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let signed_in = cookie(&headers, SESSION_COOKIE).and_then(|id| state.sessions.get(id)).is_some();
    see_other(if signed_in { "/console/customers" } else { "/console/sign-in" })
}

fn sign_in_form(status: StatusCode, headers: &HeaderMap, error: Option<&str>) -> Response {
    let token = random_token();
    let mut response = page(status, pages::sign_in(&token, error));
    set_cookie(&mut response, SIGN_IN_COOKIE, &token, "/console/sign-in", 3600, over_tls(headers));
    response
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    sign_in_form(StatusCode::OK, &headers, None)
}

async fn sign_in(
    State(state): State<ConsoleState>,
    ConnectInfoIfAny(peer): ConnectInfoIfAny,
    headers: HeaderMap,
    form: Result<Form<forms::SignIn>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return bad_form(None, rejection),
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !tokens_match(expected, &form.csrf) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            &headers,
            Some("The sign-in form expired or did not come from this site. Please sign in again."),
        );
    }
    let attempt = Attempt::from(peer).presenting("API key", form.api_key.trim());
    if let Err(retry_after) = state.app.auth_failures.admit(&attempt) {
        let mut response = sign_in_form(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            Some("Too many sign-in attempts failed. Wait a little, then try again."),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    let Some(partner) = state.app.directory.partner_by_key(form.api_key.trim()) else {
        state.app.auth_failures.failed(&attempt);
        info!("console sign-in refused: unknown API key");
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            &headers,
            Some("That API key is not valid. Check it and try again."),
        );
    };
    // Signing in again (perhaps as another partner) ends the browser's previous session.
    if let Some(previous) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(previous);
    }
    let Some((session_id, _)) = state.sessions.create(&partner.id) else {
        warn!(partner_id = %partner.id, "console sign-in refused: the session table is full");
        let mut response = sign_in_form(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            Some("Too many people are signed in right now. Try again in a few minutes."),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    };
    info!(partner_id = %partner.id, "console sign-in");
    let mut response = see_other("/console/customers");
    let secure = over_tls(&headers);
    set_cookie(&mut response, SESSION_COOKIE, &session_id, "/console", sessions::ABSOLUTE_TIMEOUT.as_secs(), secure);
    set_cookie(&mut response, SIGN_IN_COOKIE, "", "/console/sign-in", 0, secure);
    response
}

async fn sign_out(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    form: Result<Form<forms::SignOut>, FormRejection>,
) -> Response {
    if let Err(refused) = signed_in.accept(form) {
        return *refused;
    }
    state.sessions.remove(&signed_in.session_id);
    info!(partner_id = %signed_in.session.partner_id, "console sign-out");
    let mut response = see_other("/console/sign-in");
    set_cookie(&mut response, SESSION_COOKIE, "", "/console", 0, over_tls(&headers));
    response
}

async fn customers(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let nav = signed_in.nav();
    let listed = async {
        state.app.catch_up().await?;
        Ok::<_, ApiError>(state.app.read_models.partner_customers(&signed_in.session.partner_id).await?)
    }
    .await;
    match listed {
        Ok(customers) => page(StatusCode::OK, pages::customers(&nav, &customers)),
        Err(e) => read_failure(&nav, e, "No customers."),
    }
}

async fn customer(State(state): State<ConsoleState>, signed_in: SignedIn, Path(customer_id): Path<String>) -> Response {
    let nav = signed_in.nav();
    let not_yours = "You have no customer with this ID.";
    let listed = async {
        check_customer_id(&customer_id).map_err(|_| ApiError::NotFound(String::new()))?;
        state.app.catch_up().await?;
        let found = state.app.read_models.customer_subscriptions(&signed_in.session.partner_id, &customer_id).await?;
        if found.is_empty() {
            return Err(ApiError::NotFound(String::new()));
        }
        Ok(found)
    }
    .await;
    match listed {
        Ok(subscriptions) => {
            let rows: Vec<SubscriptionRow<'_>> = subscriptions
                .iter()
                .map(|s| SubscriptionRow { subscription: s, activation_link: activation_link(&state.app.directory, s) })
                .collect();
            page(StatusCode::OK, pages::customer(&nav, &customer_id, &rows))
        }
        Err(e) => read_failure(&nav, e, not_yours),
    }
}

async fn order(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, order_id)): Path<(String, String)>,
) -> Response {
    let nav = signed_in.nav();
    match owned_order(&state.app, &signed_in.partner(), &customer_id, &order_id).await {
        Ok((_, subscriptions)) => {
            let rows: Vec<SubscriptionRow<'_>> = subscriptions
                .iter()
                .map(|s| SubscriptionRow { subscription: s, activation_link: activation_link(&state.app.directory, s) })
                .collect();
            page(StatusCode::OK, pages::order_confirmation(&nav, &customer_id, &rows))
        }
        Err(e) => read_failure(&nav, e, "You have no order with this ID."),
    }
}

fn offer_choices(app: &AppState) -> Vec<pages::OfferChoice<'_>> {
    app.directory
        .offers()
        .into_iter()
        .map(|offer| pages::OfferChoice {
            offer_id: &offer.id,
            publisher_id: &offer.publisher,
            plans: offer.plans.iter().map(|p| (p, offer.display(&p.id).display_name)).collect(),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct PurchaseQuery {
    #[serde(default)]
    customer: Option<String>,
}

async fn purchase_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    query: Result<Query<PurchaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let customer_id = query.ok().and_then(|Query(q)| q.customer).unwrap_or_default();
    let offers = offer_choices(&state.app);
    let values = pages::PurchaseValues {
        customer_id,
        offer_plan: String::new(),
        quantity: "1".into(),
        term: "P1M".into(),
        billing_cycle: "monthly".into(),
        ..Default::default()
    };
    let form_id = Uuid::new_v4().to_string();
    let markup =
        pages::purchase(&signed_in.nav(), &signed_in.tokens(&form_id), &offers, &values, &FieldErrors::default());
    page(StatusCode::OK, markup)
}

/// The idempotency key of a console write: the form's id, fingerprinted with what was sent.
fn form_key(partner: &PartnerCaller, form_id: &str, path: &str, fields: &[&str]) -> Option<IdempotencyKey> {
    if form_id.is_empty() || form_id.len() > 64 {
        return None;
    }
    let mut parts: Vec<&[u8]> = vec![b"POST", path.as_bytes()];
    parts.extend(fields.iter().map(|f| f.as_bytes()));
    Some(IdempotencyKey::new(format!("partner:{}", partner.id), format!("console:{form_id}"), &parts))
}

async fn purchase(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    form: Result<Form<forms::Purchase>, FormRejection>,
) -> Response {
    let nav = signed_in.nav();
    let form = match signed_in.accept(form) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let partner = signed_in.partner();
    let customer_id = form.customer_id.trim().to_owned();
    let placed = async {
        let (offer_id, plan_id) =
            form.offer_plan.split_once('/').ok_or_else(|| ApiError::invalid("offerId", "Choose an offer and plan"))?;
        let quantity = forms::parse_count("quantity", "Quantity", &form.quantity)?;
        let request = OrderRequest {
            line_items: vec![LineItemRequest {
                offer_id: offer_id.to_owned(),
                plan_id: plan_id.to_owned(),
                quantity,
                term_duration: form.term.clone(),
                billing_cycle: form.billing_cycle.clone(),
                friendly_name: Some(form.friendly_name.trim().to_owned()).filter(|n| !n.is_empty()),
                partner_id_on_record: Some(form.mpn_id.trim().to_owned()).filter(|m| !m.is_empty()),
                auto_renew_enabled: None,
            }],
        };
        let fields = [
            customer_id.as_str(),
            &form.offer_plan,
            &form.quantity,
            &form.term,
            &form.billing_cycle,
            &form.friendly_name,
            &form.mpn_id,
        ];
        let key = form_key(&partner, &form.tokens.form_id, "/console/purchase", &fields);
        place_order(&state.app, &partner, &customer_id, &request, key.as_ref()).await
    }
    .await;
    match placed {
        Ok((response, _)) => {
            let order_id = response.body["id"].as_str().unwrap_or_default();
            see_other(&format!("/console/customers/{customer_id}/orders/{order_id}"))
        }
        Err(error) => {
            let (status, errors) = forms::describe(&error, "form");
            if status.is_server_error() {
                warn!(%error, "console purchase failed");
            }
            let values = pages::PurchaseValues {
                customer_id: form.customer_id.clone(),
                offer_plan: form.offer_plan.clone(),
                quantity: form.quantity.clone(),
                term: form.term.clone(),
                billing_cycle: form.billing_cycle.clone(),
                friendly_name: form.friendly_name.clone(),
                mpn_id: form.mpn_id.clone(),
            };
            let form_id = Uuid::new_v4().to_string();
            let offers = offer_choices(&state.app);
            page(status, pages::purchase(&nav, &signed_in.tokens(&form_id), &offers, &values, &errors))
        }
    }
}

#[derive(Debug, Deserialize)]
struct DetailQuery {
    #[serde(default)]
    done: Option<String>,
}

/// What a successful change says on the page it returns to.
fn done_message(action: &str) -> Option<&'static str> {
    Some(match action {
        "nickname" => "Nickname saved.",
        "quantity" => "Licenses updated.",
        "auto-renew" => "Auto-renew updated.",
        "reseller" => "Indirect reseller MPN ID saved.",
        "cancel" => "Subscription cancelled.",
        _ => return None,
    })
}

/// What the detail page reports about the last change.
struct Feedback<'a> {
    /// Status of the page (200, or the failed change's).
    status: StatusCode,
    /// A change that succeeded.
    done: Option<&'a str>,
    /// Why a change failed, by field.
    errors: &'a FieldErrors,
    /// The failed form's field and what was typed in it.
    submitted: Option<(&'a str, &'a str)>,
}

/// Renders the detail page, from the subscription's stream (so it shows every write that
/// returned, with no read-model lag).
async fn render_subscription(
    state: &ConsoleState,
    signed_in: &SignedIn,
    customer_id: &str,
    id: SubscriptionId,
    feedback: Feedback<'_>,
) -> Response {
    let nav = signed_in.nav();
    let (entries, subscription) = match timeline(&state.app, &signed_in.partner(), customer_id, id).await {
        Ok(found) => found,
        Err(e) => return read_failure(&nav, e, "You have no subscription with this ID under this customer."),
    };
    let plan =
        state.app.directory.offer(&subscription.purchase.offer_id).and_then(|o| o.plan(&subscription.purchase.plan_id));
    let form_id = Uuid::new_v4().to_string();
    let details = pages::SubscriptionPage {
        customer_id,
        row: SubscriptionRow {
            subscription: &subscription,
            activation_link: activation_link(&state.app.directory, &subscription),
        },
        plan,
        timeline: &entries,
        now: state.app.clock.now(),
        done: feedback.done,
        errors: feedback.errors,
        submitted: feedback.submitted,
    };
    page(feedback.status, pages::subscription(&nav, &signed_in.tokens(&form_id), &details))
}

async fn subscription(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, raw_id)): Path<(String, String)>,
    query: Result<Query<DetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(id) = raw_id.parse::<SubscriptionId>() else {
        return not_found_page(Some(&signed_in.nav()), "You have no subscription with this ID.");
    };
    let done = query.ok().and_then(|Query(q)| q.done).and_then(|d| done_message(&d));
    let span = tracing::info_span!("console_subscription", subscription_id = %id);
    let feedback = Feedback { status: StatusCode::OK, done, errors: &FieldErrors::default(), submitted: None };
    render_subscription(&state, &signed_in, &customer_id, id, feedback).instrument(span).await
}

/// The patch a change form asks for, and what was typed (kept in the form after an error).
fn patch_for(action: &str, form: &forms::Change) -> Result<(SubscriptionPatch, String), ApiError> {
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let mut patch = SubscriptionPatch::default();
    let typed = match action {
        "nickname" => {
            patch.friendly_name = Some(text(&form.friendly_name));
            text(&form.friendly_name)
        }
        "quantity" => {
            let typed = text(&form.quantity);
            patch.quantity = Some(forms::parse_count("quantity", "Quantity", &typed)?);
            typed
        }
        "auto-renew" => {
            patch.auto_renew_enabled = Some(match text(&form.auto_renew).as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(ApiError::invalid("autoRenewEnabled", "must be on or off")),
            });
            String::new()
        }
        "reseller" => {
            let typed = text(&form.mpn_id);
            if typed.is_empty() {
                return Err(ApiError::invalid("partnerId", "must not be empty"));
            }
            patch.partner_id = Some(typed.clone());
            typed
        }
        "cancel" => {
            patch.status = Some("deleted".into());
            patch.cancellation_reason = Some(text(&form.reason)).filter(|r| !r.is_empty());
            text(&form.reason)
        }
        _ => return Err(ApiError::NotFound("no such change".into())),
    };
    Ok((patch, typed))
}

async fn change(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path((customer_id, raw_id, action)): Path<(String, String, String)>,
    form: Result<Form<forms::Change>, FormRejection>,
) -> Response {
    let nav = signed_in.nav();
    let form = match signed_in.accept(form) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let (Ok(id), Some(_)) = (raw_id.parse::<SubscriptionId>(), done_message(&action)) else {
        return not_found_page(Some(&nav), "There is no such change for this subscription.");
    };
    let span = tracing::info_span!("console_change", subscription_id = %id, action = %action);
    async {
        let partner = signed_in.partner();
        let fallback = match action.as_str() {
            "nickname" => "friendly_name",
            "quantity" => "quantity",
            "auto-renew" => "auto_renew",
            "reseller" => "mpn_id",
            _ => "cancel",
        };
        let (result, typed) = match patch_for(&action, &form) {
            Ok((patch, typed)) => {
                let path = format!("/console/customers/{customer_id}/subscriptions/{id}/{action}");
                let fields = [
                    form.version.as_str(),
                    form.friendly_name.as_deref().unwrap_or(""),
                    form.quantity.as_deref().unwrap_or(""),
                    form.auto_renew.as_deref().unwrap_or(""),
                    form.mpn_id.as_deref().unwrap_or(""),
                    form.reason.as_deref().unwrap_or(""),
                ];
                let key = form_key(&partner, &form.tokens.form_id, &path, &fields);
                let if_match = Some(form.version.clone()).filter(|v| !v.is_empty());
                let result =
                    change_subscription(&state.app, &partner, &customer_id, id, &patch, if_match, key.as_ref()).await;
                (result, typed)
            }
            Err(e) => (Err(e), String::new()),
        };
        match result {
            Ok(_) => see_other(&format!("/console/customers/{customer_id}/subscriptions/{id}?done={action}")),
            Err(error) => {
                let (status, errors) = forms::describe(&error, fallback);
                if status == StatusCode::NOT_FOUND {
                    return not_found_page(Some(&nav), "You have no subscription with this ID under this customer.");
                }
                if status.is_server_error() {
                    warn!(%error, "console change failed");
                }
                // After a stale page (412) or a reused form, the page shows the current values
                // as its message says; otherwise it keeps what was typed, to be corrected.
                let stale = matches!(error, ApiError::PreconditionFailed { .. } | ApiError::IdempotencyKeyReused(_));
                let submitted_field = if fallback == "cancel" { "reason" } else { fallback };
                let submitted = (!stale).then_some((submitted_field, typed.as_str()));
                let feedback = Feedback { status, done: None, errors: &errors, submitted };
                render_subscription(&state, &signed_in, &customer_id, id, feedback).await
            }
        }
    }
    .instrument(span)
    .await
}
