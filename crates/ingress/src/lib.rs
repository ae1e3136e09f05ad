//! The HTTP ingress of `fulfillment` (axum): every way the outside world talks to the service.
//!
//! In: signed ISV webhooks (`/webhooks/publishers/{id}`), the SaaS Fulfillment API v2 for
//! publishers (`/api/saas/...`), the partner API (`/v1/customers/...`) and the partner
//! console on top of it (`/console`), the billing feed (`/v1/billing/events`), health checks.
//! Out: facts appended to the event log, and reads from the read models.
//!
//! Connections are served by [`listener`] (timeouts, a connection cap below the open-file
//! limit) and request bodies read within [`request_limits`] (a shared memory budget, a read
//! timeout), so an unauthenticated client cannot make the server hold unbounded memory,
//! connections or time.
//!
//! Invariants kept here: a 2xx on a write is sent only after the log committed the events
//! (invariant 1); repeated webhooks and repeated partner requests with the same key produce one
//! event and the first answer (invariant 2, [`idempotency`]); every caller is authenticated and
//! sees only its own subscriptions, others are 404 (invariant 7); every bad input is a 4xx
//! problem+json ([`error`]), never a panic or a 5xx (invariant 6).
//!
//! Where things are:
//! - One module per API, each with its own router, merged by [`router`]: `webhooks` (publishers'
//!   signed progress reports), `saas/` (the SaaS Fulfillment API v2), `metering/` (the
//!   Marketplace Metering Service API v1), `partner/` (orders,
//!   subscriptions and their history, Partner Center views), `billing_feed` (billing events for
//!   billing systems), `console/` (the partner console, one module per page), `health`.
//! - Who is calling: [`security`] (bearer keys, webhook signatures, failed-attempt limits,
//!   credentials, console sessions) and [`directory`] (the configured partners, publishers,
//!   offers and billing consumers).
//! - The write side: `write_model` (load a subscription's state, wrap decided events, prepare the
//!   append) and [`idempotency`] (the one write flow: replays, races, commit before 2xx).
//! - Reading requests safely: [`listener`], [`request_limits`], [`body`] (with `body_buffer` and
//!   `strict_json`), [`log_safe`] for caller text in logs; [`error`] for every error answer.
//! - `state` ([`AppState`]) and [`clock`]: what every handler shares, and time as a dependency.
//! - `fuzzing` (feature `fuzzing`): the parsers and verifier on raw bytes, for `crates/fuzz`.

mod billing_feed;
mod billing_suspension;
pub mod body;
mod body_buffer;
pub mod clock;
mod console;
pub mod directory;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod health;
pub mod idempotency;
pub mod listener;
pub mod log_safe;
mod metering;
mod partner;
pub mod request_limits;
mod saas;
pub mod security;
mod state;
mod strict_json;
mod webhooks;
mod write_model;

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{Directory, DirectoryError};
pub use health::{health_router, HealthChecks};
pub use listener::{serve, ConnectionLimits};
pub use request_limits::BodyLimits;
pub use security::auth_failures::{AuthFailureQuota, AuthFailures};
/// Kept at the crate root for the load generator and tests (`fulfillment_ingress::signature::sign`).
pub use security::signature;
pub use state::{AppState, InProcessProjection, WriteVisibility};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The span of one request, at DEBUG and with the target of tower-http's default one (so the same
/// filters show it), whose `uri` (the caller's, up to the whole request target) goes through
/// [`log_safe::log_safe`].
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    tracing::debug_span!(
        target: "tower_http::trace::make_span",
        "request",
        method = %request.method(),
        uri = %log_safe::log_safe(target),
        version = ?request.version(),
    )
}

/// Builds the whole HTTP API: the routes of each API's module, and around them the layers every
/// request goes through (body limits, problem+json errors, panics caught, a request span).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(partner::router())
        .merge(billing_feed::router())
        .merge(billing_suspension::router())
        .merge(webhooks::router())
        .nest("/api", saas::api_conventions(saas::router().merge(metering::router())))
        .nest("/console", console::router(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        // Let bodies up to one byte over the limit through, so `RawBody` answers 413 itself.
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES + 1))
        .layer(axum::middleware::from_fn_with_state(state.bodies.clone(), request_limits::limit_bodies))
        .layer(axum::middleware::map_response(error::ensure_problem_json))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}
