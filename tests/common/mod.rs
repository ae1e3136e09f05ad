//! Shared harness for the integration tests: starts the real service on `127.0.0.1:0` with its
//! own temporary data directory and a manual clock, and offers typed helpers so each test reads
//! as a scenario. Webhooks are signed here with an independent implementation of the Standard
//! Webhooks scheme, not with the service's own code.
#![allow(dead_code)]

pub mod billing_schemas;
pub mod console;
pub mod events;
pub mod kafka;
pub mod openapi;
pub mod postgres;
pub mod process;
pub mod webdriver;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use fulfillment::{
    ApiOptions, EmbeddedOptions, FoldOptions, IngressOptions, KafkaDeployment, ProjectorOptions, ReadModelBackend,
    Role, Service, ServiceOptions,
};
use fulfillment_ingress::{Directory, ManualClock};
use fulfillment_log::SqliteLogOptions;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::PathBuf;
use std::sync::Arc;

pub const PARTNER_1_KEY: &str = "test-partner-1-key-000001";
pub const PARTNER_2_KEY: &str = "test-partner-2-key-000002";
pub const BILLING_KEY: &str = "test-billing-key-0000001";
pub const CONTOSO_SECRET: &str = "whsec_dGVzdC1jb250b3NvLXNlY3JldC1rZXktbWF0ZXJpYWw=";
pub const CONTOSO_OLD_SECRET: &str = "whsec_b2xkLWNvbnRvc28tc2VjcmV0LWtleS1tYXRlcmlhbA==";
pub const FABRIKAM_SECRET: &str = "whsec_dGVzdC1mYWJyaWthbS1zZWNyZXQta2V5LW1hdGVyaWFs";
pub const CONTOSO_TOKEN: &str = "test-contoso-api-token-0001";
pub const FABRIKAM_TOKEN: &str = "test-fabrikam-api-token-001";

pub fn test_config() -> String {
    format!(
        r#"
[[partners]]
id = "partner-1"
api_keys = ["{PARTNER_1_KEY}"]
[[partners]]
id = "partner-2"
api_keys = ["{PARTNER_2_KEY}"]
[[publishers]]
id = "contoso"
webhook_secrets = ["{CONTOSO_SECRET}", "{CONTOSO_OLD_SECRET}"]
api_tokens = ["{CONTOSO_TOKEN}"]
site_url = "https://contoso.example/landing"
[[publishers]]
id = "fabrikam"
webhook_secrets = ["{FABRIKAM_SECRET}"]
api_tokens = ["{FABRIKAM_TOKEN}"]
site_url = "https://fabrikam.example/activate?lang=en"
[[offers]]
id = "contoso-crm"
publisher = "contoso"
plans = [
  {{ id = "standard", min_quantity = 1, max_quantity = 500, terms = ["P1M", "P1Y"], display_name = "Standard", metering_dimensions = [
    {{ id = "apicalls", display_name = "API calls", unit = "1000 calls" }},
    {{ id = "storage", display_name = "Storage", unit = "GB" }},
  ] }},
  {{ id = "gold", min_quantity = 5, max_quantity = 100, terms = ["P1M"], description = "More of everything", metering_dimensions = [
    {{ id = "apicalls", display_name = "API calls", unit = "1000 calls" }},
  ] }},
]
[[offers]]
id = "fabrikam-analytics"
publisher = "fabrikam"
plans = [{{ id = "team", min_quantity = 2, max_quantity = 50, terms = ["P1M"] }}]
[[billing_consumers]]
id = "billing"
api_keys = ["{BILLING_KEY}"]
"#
    )
}

/// A running service plus what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    /// What this app runs, where its events and read models live (kept across restarts), and
    /// where its billing events go.
    pub parts: Parts,
    /// Limits and settings the test chose (defaults otherwise).
    pub tuning: Tuning,
    service: Option<Service>,
    _dir: Option<tempfile::TempDir>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and, for errors, that the body is RFC 9457 problem+json.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        if status >= 400 {
            assert_eq!(self.header("content-type"), Some("application/problem+json"), "body: {}", self.body);
            assert_eq!(self.body["status"], status, "body: {}", self.body);
            assert!(self.body["type"].is_string() && self.body["title"].is_string() && self.body["detail"].is_string());
        }
        self
    }

    /// The field named by a 422 problem.
    pub fn error_field(&self) -> String {
        self.body["errors"][0]["field"].as_str().unwrap_or_default().to_owned()
    }
}

pub fn line_item(quantity: u32) -> Value {
    json!({
        "offerId": "contoso-crm",
        "planId": "standard",
        "quantity": quantity,
        "termDuration": "P1M",
        "billingCycle": "monthly",
        "friendlyName": "CRM for sales"
    })
}

/// What a test service runs, on which backends. The harness adds the API's options (the test
/// catalog, the manual clock, the [`Tuning`]) and the data directory when it starts it.
#[derive(Clone)]
pub enum Parts {
    /// `serve` on the embedded log, read models where `read_models` says.
    Embedded { read_models: ReadModelBackend, folding: FoldOptions },
    /// `ingress` on a Kafka deployment.
    Ingress(KafkaDeployment),
    /// `serve --kafka-brokers`: a projector of the deployment and the API on it.
    IngressAndProjector(ProjectorOptions),
}

/// How the test services' projectors fold: small batches, billing events to `billing_relay`
/// too when given, deadlines checked every 50 ms (so a test that moves the clock sees them
/// reached without waiting long).
pub fn folding(billing_relay: Option<fulfillment_relay::RelayOptions>) -> FoldOptions {
    let scheduler = fulfillment_scheduler::SchedulerOptions {
        interval: std::time::Duration::from_millis(50),
        ..fulfillment_scheduler::SchedulerOptions::default()
    };
    FoldOptions { batch: 100, billing_relay, scheduler }
}

/// The service settings a test may choose; the defaults are the service's own.
#[derive(Clone, Default)]
pub struct Tuning {
    pub connection_limits: fulfillment_ingress::ConnectionLimits,
    pub body_limits: fulfillment_ingress::BodyLimits,
    pub auth_failures: fulfillment_ingress::AuthFailureQuota,
    pub public_url: Option<String>,
    pub idempotency_retention: fulfillment_ingress::idempotency::IdempotencyRetention,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with_billing_topic(None).await
    }

    /// A service with the test's settings, on the backends the test command asks for.
    pub async fn spawn_tuned(tuning: Tuning) -> TestApp {
        let mut app = Self::unstarted(Self::parts_from_env(None).await);
        app.tuning = tuning;
        app.start().await;
        app
    }

    /// A service that also publishes its billing events to Kafka.
    pub async fn spawn_with_billing_topic(billing_relay: Option<fulfillment_relay::RelayOptions>) -> TestApp {
        Self::spawn_with(Self::parts_from_env(billing_relay).await).await
    }

    async fn parts_from_env(billing_relay: Option<fulfillment_relay::RelayOptions>) -> Parts {
        // The same scenarios run with the read models in PostgreSQL, or with the event log in
        // Kafka (a fresh topic per test, read models in PostgreSQL), when the test command asks
        // for it (scripts/test.sh does, in later passes).
        let kafka = match std::env::var("FULFILLMENT_TEST_EVENT_LOG").as_deref() {
            Ok("kafka") => true,
            Ok("embedded") | Err(_) => false,
            Ok(other) => panic!("FULFILLMENT_TEST_EVENT_LOG={other}: expected embedded or kafka"),
        };
        if kafka {
            let deployment = kafka::fresh_deployment(postgres::fresh_database().await);
            return Parts::IngressAndProjector(kafka::projector(deployment, billing_relay));
        }
        let read_models = match std::env::var("FULFILLMENT_TEST_READ_MODELS").as_deref() {
            Ok("postgres") => ReadModelBackend::Postgres(postgres::fresh_database().await),
            Ok("embedded") | Err(_) => ReadModelBackend::Embedded,
            Ok(other) => panic!("FULFILLMENT_TEST_READ_MODELS={other}: expected embedded or postgres"),
        };
        Parts::Embedded { read_models, folding: folding(billing_relay) }
    }

    /// A service with exactly these parts and backends.
    pub async fn spawn_with(parts: Parts) -> TestApp {
        let mut app = Self::unstarted(parts);
        app.start().await;
        app
    }

    fn unstarted(parts: Parts) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        TestApp {
            base: String::new(),
            parts,
            clock: Arc::new(ManualClock::new(Utc::now())),
            data_dir: dir.path().to_owned(),
            http: reqwest::Client::new(),
            tuning: Tuning::default(),
            service: None,
            _dir: Some(dir),
        }
    }

    /// The service's options: the parts, on the test catalog, the manual clock and the tuning.
    fn options(&self) -> ServiceOptions {
        let api = ApiOptions {
            directory: Directory::from_toml(&test_config()).unwrap(),
            clock: self.clock.clone(),
            body_limits: self.tuning.body_limits.clone(),
            auth_failures: self.tuning.auth_failures,
            public_url: self.tuning.public_url.clone(),
            idempotency_retention: self.tuning.idempotency_retention,
        };
        let role = match self.parts.clone() {
            Parts::Embedded { read_models, folding } => Role::Embedded(EmbeddedOptions {
                data_dir: self.data_dir.clone(),
                log: SqliteLogOptions::default(),
                read_models,
                api,
                folding,
            }),
            Parts::Ingress(kafka) => Role::Ingress(IngressOptions { kafka, api }),
            Parts::IngressAndProjector(projector) => Role::IngressAndProjector { projector, api },
        };
        ServiceOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            connection_limits: self.tuning.connection_limits,
            role,
        }
    }

    async fn start(&mut self) {
        let service = Service::start(self.options()).await.expect("service starts");
        self.base = format!("http://{}", service.addr());
        self.service = Some(service);
    }

    /// The typed helpers for a service started elsewhere (the binary as a process) at `base`;
    /// the clock is the wall clock now, near enough to the process's for signed webhooks.
    pub fn at(base: &str) -> TestApp {
        TestApp {
            base: base.to_owned(),
            parts: Parts::Embedded { read_models: ReadModelBackend::Embedded, folding: folding(None) },
            clock: Arc::new(ManualClock::new(Utc::now())),
            data_dir: PathBuf::new(),
            http: reqwest::Client::new(),
            tuning: Tuning::default(),
            service: None,
            _dir: None,
        }
    }

    /// Stops the service (gracefully) and starts a new one over the same data directory.
    pub async fn restart(&mut self) {
        self.service.take().expect("running").stop().await;
        self.start().await;
    }

    /// Stops the service; the returned guard keeps the data directory until it is dropped.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self._dir.take()
    }

    pub fn now(&self) -> DateTime<Utc> {
        use fulfillment_ingress::Clock;
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path)).body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// Partner 1 buys one `contoso-crm` subscription for `customer`; returns (order, subscription id).
    pub async fn purchase(&self, customer: &str, quantity: u32) -> (Value, String) {
        let reply = self
            .request(
                Method::POST,
                &format!("/v1/customers/{customer}/orders"),
                Some(PARTNER_1_KEY),
                Some(json!({"lineItems": [line_item(quantity)]})),
                &[],
            )
            .await
            .expect(201);
        let id = reply.body["lineItems"][0]["subscriptionId"].as_str().unwrap().to_owned();
        (reply.body, id)
    }

    pub async fn subscription(&self, customer: &str, id: &str) -> Reply {
        self.request(
            Method::GET,
            &format!("/v1/customers/{customer}/subscriptions/{id}"),
            Some(PARTNER_1_KEY),
            None,
            &[],
        )
        .await
    }

    pub async fn patch(&self, customer: &str, id: &str, body: Value) -> Reply {
        self.request(
            Method::PATCH,
            &format!("/v1/customers/{customer}/subscriptions/{id}"),
            Some(PARTNER_1_KEY),
            Some(body),
            &[],
        )
        .await
    }

    pub async fn history(&self, customer: &str, id: &str) -> Vec<Value> {
        let reply = self
            .request(
                Method::GET,
                &format!("/v1/customers/{customer}/subscriptions/{id}/events"),
                Some(PARTNER_1_KEY),
                None,
                &[],
            )
            .await
            .expect(200);
        reply.body["items"].as_array().unwrap().clone()
    }

    /// Sends a webhook signed with `secret` at the clock's time.
    pub async fn webhook_signed(&self, publisher: &str, secret: &str, webhook_id: &str, body: &Value) -> Reply {
        let ts = self.now().timestamp();
        self.webhook_at(publisher, secret, webhook_id, ts, body.to_string().into_bytes()).await
    }

    pub async fn webhook_at(&self, publisher: &str, secret: &str, webhook_id: &str, ts: i64, body: Vec<u8>) -> Reply {
        let signature = sign(secret, webhook_id, ts, &body);
        let ts = ts.to_string();
        self.raw(
            Method::POST,
            &format!("/webhooks/publishers/{publisher}"),
            &[
                ("webhook-id", webhook_id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &signature),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Contoso reports licenses assigned.
    pub async fn licenses_assigned(&self, webhook_id: &str, sub: &str, count: u32) -> Reply {
        let body = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": count}});
        self.webhook_signed("contoso", CONTOSO_SECRET, webhook_id, &body).await
    }

    /// Contoso confirms setup.
    pub async fn setup_confirmed(&self, webhook_id: &str, sub: &str, quantity: u32) -> Reply {
        let body = json!({"type": "setup.confirmed", "subscriptionId": sub, "data": {"planId": "standard", "quantity": quantity}});
        self.webhook_signed("contoso", CONTOSO_SECRET, webhook_id, &body).await
    }

    /// The whole billing feed.
    /// Every billing event of the feed, each checked against its schema in `specs/billing/`.
    pub async fn billing_events(&self) -> Vec<Value> {
        let mut after = "0".to_owned();
        let mut all = Vec::new();
        loop {
            let reply = self
                .request(
                    Method::GET,
                    &format!("/v1/billing/events?after={after}&limit=2"),
                    Some(BILLING_KEY),
                    None,
                    &[],
                )
                .await
                .expect(200);
            let items = reply.body["items"].as_array().unwrap();
            for item in items {
                billing_schemas::assert_matches_schema(&item["event"]);
            }
            all.extend(items.iter().map(|i| i["event"].clone()));
            after = reply.body["nextCursor"].as_str().unwrap().to_owned();
            if !reply.body["hasMore"].as_bool().unwrap() {
                return all;
            }
        }
    }

    /// Billing events of one subscription, by type name.
    pub async fn billing_types(&self, sub: &str) -> Vec<String> {
        self.billing_events()
            .await
            .into_iter()
            .filter(|e| e["subscriptionId"] == sub)
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply { status, headers, body }
}

/// Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(secret, "id.ts.body")).
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}
