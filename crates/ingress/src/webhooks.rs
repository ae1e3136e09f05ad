//! `POST /webhooks/publishers/{publisherId}`: signed progress reports from ISV publishers.
//!
//! Order of checks: the publisher exists and the Standard Webhooks headers are present, well
//! formed and fresh (else 401, before the body is read), the body arrives within the limits of
//! [`crate::request_limits`], the signature matches one of the publisher's secrets (else 401,
//! without saying which), the body parses (400/422), the subscription exists
//! and belongs to one of the publisher's offers (else 404), then the domain decides (409 on a
//! rule). The `webhook-id` is the idempotency key: a redelivery gets the first answer.

use crate::body::{parse_json, parse_value, RawBody};
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey, StoredResponse};
use crate::log_safe::log_safe;
use crate::security::auth_failures::Attempt;
use crate::security::bearer;
use crate::security::signature;
use crate::state::AppState;
use crate::write_model::{envelopes, load, prepare};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use fulfillment_core::{decide, Command, Source, SourceKind, SubscriptionId};
use fulfillment_log::AppendBatch;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn, Instrument};

/// The webhook route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/publishers/{publisher_id}", post(receive))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookBody {
    #[serde(rename = "type")]
    kind: String,
    subscription_id: SubscriptionId,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicensesAssignedData {
    assigned_count: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetupConfirmedData {
    plan_id: String,
    quantity: u32,
}

/// The webhook types publishers send.
const LICENSES_ASSIGNED: &str = "licenses.assigned";
const SETUP_CONFIRMED: &str = "setup.confirmed";

/// Reads a webhook body into the command it asks for: 400 when it is not JSON, 422 naming the
/// field when a value does not fit. The handler and the fuzz target run this same code.
pub(crate) fn parse_webhook(raw: &[u8]) -> Result<(WebhookBody, Command), ApiError> {
    let body: WebhookBody = parse_json(raw)?;
    let command = command(&body)?;
    Ok((body, command))
}

fn command(body: &WebhookBody) -> Result<Command, ApiError> {
    match body.kind.as_str() {
        LICENSES_ASSIGNED => {
            let data: LicensesAssignedData = parse_value(&body.data, "data")?;
            Ok(Command::AssignLicenses { assigned_count: data.assigned_count })
        }
        SETUP_CONFIRMED => {
            let data: SetupConfirmedData = parse_value(&body.data, "data")?;
            Ok(Command::ConfirmSetup { plan_id: data.plan_id, quantity: data.quantity })
        }
        other => Err(ApiError::invalid(
            "type",
            format!("unknown webhook type {other:?}; expected {LICENSES_ASSIGNED:?} or {SETUP_CONFIRMED:?}"),
        )),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Receives one signed webhook. Everything that can be checked without the body (the
/// publisher, the three signature headers, the timestamp) is checked before it is read.
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(publisher_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    // The id is the caller's, percent-decoded: logged only through `log_safe` (an id of another
    // shape than configured ones names no publisher, and is escaped and cut in the log).
    let refused = |reason: String| {
        warn!(publisher_id = %log_safe(&publisher_id), %reason, "webhook refused");
        ApiError::Unauthorized { message: reason, bearer: false }
    };
    let address = Attempt::from(bearer::peer(request.extensions()));
    let attempt = address.clone().claiming("publisher", &publisher_id);
    state.auth_failures.admit(&attempt).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let Some(publisher) = state.directory.publisher(&publisher_id) else {
        state.auth_failures.failed(&address);
        return Err(refused("unknown publisher or invalid signature".into()));
    };
    let headers = request.headers();
    let signed = signature::check_headers(
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
        state.clock.now(),
    )
    .map_err(|e| {
        // Counted against the address only: headers anyone can leave out must not bar the
        // publisher they name.
        state.auth_failures.failed(&address);
        refused(e.to_string())
    })?;
    let RawBody(raw) = RawBody::from_request(request, &state).await?;
    let verified = signature::verify_body(&publisher.webhook_secrets, signed, &raw).map_err(|e| {
        state.auth_failures.failed(&attempt);
        refused(e.to_string())
    })?;
    let (body, command) = parse_webhook(&raw)?;
    let id = body.subscription_id;
    let webhook_id = log_safe(&verified.id);
    let span = tracing::info_span!("webhook", publisher_id = %publisher.id, %webhook_id, subscription_id = %id);
    let key = IdempotencyKey::new(format!("webhook:{}", publisher.id), verified.id.clone(), &[&raw]);
    let (response, replayed) = idempotency::write(&state, Some(&key), || {
        async {
            let loaded = load(&state, id).await?;
            let current = loaded
                .subscription
                .as_ref()
                .filter(|s| s.purchase.publisher_id == publisher.id)
                .ok_or_else(|| ApiError::NotFound("subscription not found".into()))?;
            let now = state.clock.now();
            let events = decide(Some(current), &command, now).map_err(|r| ApiError::from_rejection(r, "data."))?;
            let source = Source { kind: SourceKind::Publisher, actor_id: publisher.id.clone() };
            let envelopes = envelopes(id, &source, verified.timestamp, now, events);
            let event_ids: Vec<_> = envelopes.iter().map(|e| e.event_id).collect();
            let (after, stream) = prepare(id, &loaded, envelopes);
            let after = after.ok_or_else(|| ApiError::Internal("subscription vanished while folding".into()))?;
            let body = json!({
                "subscriptionId": id,
                "accepted": true,
                "eventIds": event_ids,
                "status": after.status.partner_center_name(),
                "billingStarted": after.billing_started_at.is_some(),
            });
            Ok((
                AppendBatch { streams: vec![stream], idempotency: None },
                StoredResponse { status: 200, body, location: None, etag: None },
            ))
        }
        .instrument(span.clone())
    })
    .await?;
    span.in_scope(|| info!(kind = %body.kind, replayed, events = %response.body["eventIds"], status = %response.body["status"], "webhook accepted"));
    Ok(response.render(replayed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strict_json::Strict;
    use std::time::{Duration, Instant};

    const BODY: &[u8] = br#"{"type":"licenses.assigned","subscriptionId":"6f1c2a9e-4d7b-4c1e-9a3f-2b8d7e5c1a04","data":{"assignedCount":5}}"#;

    /// How the webhook path read a body before strict JSON: serde_json with field paths, then
    /// `data` from a copy of its `Value`.
    fn lenient(raw: &[u8]) -> Command {
        let body: WebhookBody =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(raw)).unwrap();
        let data: LicensesAssignedData = serde_path_to_error::deserialize(body.data.clone()).unwrap();
        Command::AssignLicenses { assigned_count: data.assigned_count }
    }

    /// Plain serde_json, no field paths: the floor either way.
    fn plain(raw: &[u8]) -> Command {
        let body: WebhookBody = serde_json::from_slice(raw).unwrap();
        let data = LicensesAssignedData::deserialize(&body.data).unwrap();
        Command::AssignLicenses { assigned_count: data.assigned_count }
    }

    /// The strict rules alone over plain serde_json (what `parse_webhook` runs on an accepted
    /// body, less the UTF-8 proof).
    fn strict_rules(raw: &[u8]) -> Command {
        let body = WebhookBody::deserialize(Strict(&mut serde_json::Deserializer::from_slice(raw))).unwrap();
        let data = LicensesAssignedData::deserialize(Strict(&body.data)).unwrap();
        Command::AssignLicenses { assigned_count: data.assigned_count }
    }

    fn strict(raw: &[u8]) -> Command {
        parse_webhook(raw).unwrap().1
    }

    fn time(rounds: u32, parse: fn(&[u8]) -> Command) -> Duration {
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(parse(std::hint::black_box(BODY)));
        }
        start.elapsed() / rounds
    }

    fn median(mut ratios: Vec<f64>) -> f64 {
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    }

    #[test]
    fn every_reading_gives_the_same_command() {
        for parse in [lenient, plain, strict_rules] {
            assert_eq!(parse(BODY), strict(BODY));
        }
    }

    /// The cost of strict JSON on the webhook hot path: `parse_webhook` against the lenient read
    /// it replaced, and the strict rules alone against plain serde_json. Alternating runs, each
    /// pair printed, then the medians: `cargo test --release -p fulfillment-ingress parse_cost
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand in release mode"]
    fn parse_cost() {
        let rounds = 200_000;
        for parse in [lenient, strict, plain, strict_rules] {
            time(rounds, parse);
        }
        let (mut replaced, mut rules) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let (before, after) = (time(rounds, lenient), time(rounds, strict));
            let (floor, checked) = (time(rounds, plain), time(rounds, strict_rules));
            eprintln!(
                "lenient {before:?}, parse_webhook {after:?}; plain serde_json {floor:?}, strict rules {checked:?}"
            );
            replaced.push(after.as_secs_f64() / before.as_secs_f64());
            rules.push(checked.as_secs_f64() / floor.as_secs_f64());
        }
        eprintln!("median parse_webhook / lenient: {:.3}", median(replaced));
        eprintln!("median strict rules / plain serde_json: {:.3}", median(rules));
    }
}
