//! `docker-compose.yml` is the documented way to run the split deployment, and no Docker engine
//! runs where this project is built, so nothing else notices when it drifts from the binary.
//! These tests read the file (starting nothing) and check what our own code decides:
//! - every `FULFILLMENT_*` name a service sets is one `fulfillment <its command> --help` lists;
//! - ports, exposed ports and health checks use the address the service listens on, and the
//!   services reach Kafka and PostgreSQL where those listen;
//! - services start in order (`depends_on` with conditions that can be met).
//!
//! What Docker, Kafka and PostgreSQL make of their own settings is checked when the stack runs.

use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;

/// The services that run the `fulfillment` image, with the subcommand each runs.
const APP_SERVICES: [(&str, &str); 3] = [("migrate", "migrate"), ("ingress", "ingress"), ("projector", "projector")];
/// The services that listen, and the host port the README's first requests use (if published).
const LISTENING: [(&str, Option<&str>); 2] = [("ingress", Some("8080")), ("projector", None)];
/// Start order: (service, waits for, condition).
const START_ORDER: [(&str, &str, &str); 7] = [
    ("migrate", "postgres", "service_healthy"),
    ("ingress", "kafka", "service_healthy"),
    ("ingress", "postgres", "service_healthy"),
    ("ingress", "migrate", "service_completed_successfully"),
    ("projector", "kafka", "service_healthy"),
    ("projector", "postgres", "service_healthy"),
    ("projector", "migrate", "service_completed_successfully"),
];

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "docker-compose.yml has no service `{name}`");
    service
}

/// A scalar as text (compose accepts `8080` and `"8080"` alike).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// A list of scalars (`command`, `ports`, `expose`, a healthcheck's `test`); absent is empty.
fn texts(value: &Value) -> Vec<String> {
    value.as_sequence().map(|items| items.iter().map(text).collect()).unwrap_or_default()
}

/// A service's `environment` (map form).
fn environment(service: &Value) -> BTreeMap<String, String> {
    let map = service["environment"].as_mapping().expect("`environment` as a map");
    map.iter().map(|(k, v)| (text(k), text(v))).collect()
}

/// The `[env: NAME]` names `fulfillment [subcommand] --help` lists (whitespace normalised
/// first, so a name wrapped inside its bracket still counts).
fn env_names(subcommand: Option<&str>) -> BTreeSet<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fulfillment"));
    command.args(subcommand).arg("--help");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FULFILLMENT_")) {
        command.env_remove(key);
    }
    let out = command.output().expect("run fulfillment --help");
    assert!(out.status.success(), "fulfillment {subcommand:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let after_env = help.split("[env: ").skip(1);
    after_env.map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()).collect()
}

#[test]
fn every_fulfillment_name_is_one_the_binary_accepts() {
    let compose = compose();
    let global = env_names(None);
    for (name, subcommand) in APP_SERVICES {
        let service = service(&compose, name);
        assert_eq!(texts(&service["command"]), [subcommand], "service `{name}` runs `fulfillment {subcommand}`");
        let accepted: BTreeSet<String> = env_names(Some(subcommand)).union(&global).cloned().collect();
        let env = environment(service);
        assert!(env.contains_key("FULFILLMENT_DATABASE_URL"), "service `{name}` sets no FULFILLMENT_DATABASE_URL");
        let unknown: Vec<&String> =
            env.keys().filter(|k| k.starts_with("FULFILLMENT_") && !accepted.contains(*k)).collect();
        assert!(unknown.is_empty(), "service `{name}`: `fulfillment {subcommand} --help` lists no {unknown:?}");
    }
}

#[test]
fn ports_and_health_checks_use_the_listen_address() {
    let compose = compose();
    for (name, host_port) in LISTENING {
        let service = service(&compose, name);
        let listen = environment(service).get("FULFILLMENT_LISTEN").map(|a| a.parse::<SocketAddr>());
        let listen = listen.unwrap_or_else(|| panic!("service `{name}` sets no FULFILLMENT_LISTEN")).expect("address");
        assert!(listen.ip().is_unspecified(), "service `{name}` listens on {listen}: other containers cannot reach it");
        let port = listen.port().to_string();
        let ports = texts(&service["ports"]);
        for mapping in &ports {
            let container = mapping.rsplit(':').next().unwrap_or_default().trim_end_matches("/tcp");
            assert_eq!(container, port, "service `{name}`: `ports: {mapping}` is not its listen port");
        }
        for exposed in texts(&service["expose"]) {
            assert_eq!(exposed, port, "service `{name}`: exposes a port it does not listen on");
        }
        if let Some(host_port) = host_port {
            assert!(
                ports.iter().any(|p| p.ends_with(&format!(":{host_port}:{port}"))),
                "service `{name}`: no `ports` entry publishes host port {host_port} to {port}"
            );
        }
        let health = texts(&service["healthcheck"]["test"]).join(" ");
        let ready = format!("http://127.0.0.1:{port}/readyz");
        assert!(health.contains(&ready), "service `{name}`: healthcheck `{health}` does not GET {ready}");
    }
    // The app reaches Kafka on a listener it advertises to containers, PostgreSQL on its port.
    let listeners = environment(service(&compose, "kafka"))["KAFKA_ADVERTISED_LISTENERS"].clone();
    let advertised: BTreeSet<&str> = listeners
        .split(',')
        .filter_map(|l| l.split_once("://").map(|(_, address)| address))
        .filter(|address| !address.starts_with("localhost:"))
        .collect();
    for (name, _) in APP_SERVICES {
        let env = environment(service(&compose, name));
        for broker in env.get("FULFILLMENT_KAFKA_BROKERS").iter().flat_map(|b| b.split(',')) {
            assert!(advertised.contains(broker), "service `{name}`: broker {broker} is not in {advertised:?}");
        }
        let database = &env["FULFILLMENT_DATABASE_URL"];
        assert!(database.contains("@postgres:5432/"), "service `{name}`: {database} is not postgres:5432");
    }
}

#[test]
fn services_start_in_order() {
    let compose = compose();
    for (name, target, condition) in START_ORDER {
        let waits = &service(&compose, name)["depends_on"][target]["condition"];
        assert_eq!(waits.as_str(), Some(condition), "service `{name}` must wait for `{target}`: {condition}");
    }
    // Each condition can be met: a healthy target has a healthcheck, a completed one stays down.
    let services = compose["services"].as_mapping().expect("services");
    for (name, dependent) in services {
        for (target, how) in dependent["depends_on"].as_mapping().into_iter().flatten() {
            let (name, target_name) = (text(name), text(target));
            let target = service(&compose, &target_name);
            let condition = how["condition"].as_str();
            let waits = format!("service `{name}` waits for `{target_name}` ({condition:?})");
            match condition {
                Some("service_healthy") => assert!(target["healthcheck"].is_mapping(), "{waits}: no healthcheck"),
                Some("service_completed_successfully") => assert_eq!(target["restart"].as_str(), Some("no"), "{waits}"),
                _ => assert_eq!(condition, Some("service_started"), "{waits}: unknown condition"),
            }
        }
    }
}
