//! `docker-compose.yml` (with `Dockerfile` and `.dockerignore`) is the documented way to run
//! the split deployment: Kafka in KRaft mode, PostgreSQL, a one-shot `fulfillment migrate`, the
//! `ingress` and the `projector`. No Docker engine runs where this project is built and
//! tested, so nothing else would notice when those files drift from the binary: a renamed
//! flag, a port that is not the one the process listens on, a healthcheck on the wrong
//! address, a service that starts before what it needs.
//!
//! This test parses the files, without Docker and without starting anything, and checks them
//! against the built binary itself: the `FULFILLMENT_*` names the compose file sets must be
//! ones that `fulfillment <subcommand> --help` lists as `[env: NAME]`. Every check adds to one
//! list of problems, and the test fails once with the whole list.
//!
//! The `catches_*` tests break a copy of the files one mistake at a time and expect the
//! matching problem, so that each check is known to be able to fail.

use serde_yaml_ng::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The services of the stack that run the `fulfillment` image, with their subcommand.
const APP_SERVICES: [(&str, &str); 3] = [("migrate", "migrate"), ("ingress", "ingress"), ("projector", "projector")];
const KAFKA: &str = "kafka";
const POSTGRES: &str = "postgres";
/// Host port of the ingress: the README's first requests use it.
const INGRESS_HOST_PORT: &str = "8080";
/// What each app service needs to be set, beyond its defaults.
const REQUIRED_ENV: [(&str, &[&str]); 3] = [
    ("migrate", &["FULFILLMENT_DATABASE_URL"]),
    ("ingress", &["FULFILLMENT_LISTEN", "FULFILLMENT_KAFKA_BROKERS", "FULFILLMENT_DATABASE_URL"]),
    ("projector", &["FULFILLMENT_LISTEN", "FULFILLMENT_KAFKA_BROKERS", "FULFILLMENT_DATABASE_URL"]),
];
/// Start order: (service, waits for, condition).
const REQUIRED_ORDER: [(&str, &str, &str); 7] = [
    ("migrate", POSTGRES, "service_healthy"),
    ("ingress", KAFKA, "service_healthy"),
    ("ingress", POSTGRES, "service_healthy"),
    ("ingress", "migrate", "service_completed_successfully"),
    ("projector", KAFKA, "service_healthy"),
    ("projector", POSTGRES, "service_healthy"),
    ("projector", "migrate", "service_completed_successfully"),
];
/// Sources the binary is compiled from: the Docker build context must not leave them out.
const BUILD_INPUTS: [&str; 6] = ["Cargo.toml", "Cargo.lock", "src", "crates", "migrations", "config"];
const DEBIAN_RELEASES: [&str; 4] = ["bullseye", "bookworm", "trixie", "forky"];

// ---------------------------------------------------------------------------------------------
// The files

/// The files under test, as text and parsed YAML, so the `catches_*` tests can break a copy.
struct Inputs {
    compose: Value,
    /// Dockerfiles by path relative to the repository root (those that exist).
    dockerfiles: BTreeMap<String, String>,
    dockerignore: Option<String>,
    /// `rust-version` of the workspace.
    rust_version: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Inputs {
    fn from_repo() -> Inputs {
        let root = repo_root();
        let compose_text = std::fs::read_to_string(root.join("docker-compose.yml"))
            .unwrap_or_else(|e| panic!("cannot read docker-compose.yml at the repository root: {e}"));
        let mut compose: Value = serde_yaml_ng::from_str(&compose_text)
            .unwrap_or_else(|e| panic!("docker-compose.yml is not valid YAML: {e}"));
        compose.apply_merge().unwrap_or_else(|e| panic!("docker-compose.yml: bad `<<` merge key: {e}"));
        let mut dockerfiles = BTreeMap::new();
        for build in services(&compose).values().filter_map(|s| build_of(s).ok().flatten()) {
            let path = build.dockerfile_path();
            if let Ok(text) = std::fs::read_to_string(root.join(&path)) {
                dockerfiles.insert(path, text);
            }
        }
        let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
        let rust_version = cargo_toml
            .lines()
            .find_map(|l| l.trim().strip_prefix("rust-version").map(|rest| rest.trim_start_matches([' ', '=']).trim()))
            .map(|v| v.trim_matches('"').to_string())
            .expect("`rust-version` in the root Cargo.toml");
        Inputs {
            compose,
            dockerfiles,
            dockerignore: std::fs::read_to_string(root.join(".dockerignore")).ok(),
            rust_version,
        }
    }

    fn dockerfile_mut(&mut self) -> &mut String {
        self.dockerfiles.get_mut("Dockerfile").expect("Dockerfile at the repository root")
    }

    fn service_mut(&mut self, name: &str) -> &mut Mapping {
        self.compose
            .get_mut("services")
            .and_then(|s| s.get_mut(name))
            .and_then(Value::as_mapping_mut)
            .unwrap_or_else(|| panic!("service `{name}` in docker-compose.yml"))
    }

    fn env_mut(&mut self, service: &str) -> &mut Mapping {
        self.service_mut(service)
            .get_mut("environment")
            .and_then(Value::as_mapping_mut)
            .unwrap_or_else(|| panic!("`environment` of `{service}` as a mapping"))
    }
}

// ---------------------------------------------------------------------------------------------
// Compose model: only what the checks read, in both the short and the long compose syntax.

#[derive(Debug, Clone, PartialEq)]
struct Build {
    context: String,
    dockerfile: String,
}

impl Build {
    /// The Dockerfile's path relative to the repository root (where docker-compose.yml is).
    fn dockerfile_path(&self) -> String {
        let joined = format!("{}/{}", self.context, self.dockerfile);
        let parts: Vec<&str> = joined.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        parts.join("/")
    }
}

#[derive(Debug, Clone)]
struct Port {
    published: Option<String>,
    target: u16,
}

#[derive(Debug, Clone)]
struct Mount {
    source: String,
    target: String,
}

fn services(compose: &Value) -> BTreeMap<String, &Mapping> {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_mapping()?))).collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default()
}

/// A scalar as compose reads it, with `${NAME:-default}` / `${NAME-default}` taken at their
/// default (the checks cannot know the caller's shell) and `$$` unescaped.
fn scalar(v: &Value) -> Option<String> {
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let mut out = String::new();
    let mut rest = raw.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let (Some(inner), Some(end)) = (rest.strip_prefix("${"), rest.find('}')) {
            let inner = &inner[..end - 2];
            match inner.split_once(":-").or_else(|| inner.split_once('-')) {
                Some((_, default)) => out.push_str(default),
                None => out.push_str(&rest[..=end]),
            }
            rest = &rest[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Some(out)
}

fn str_field(service: &Mapping, key: &str) -> Option<String> {
    service.get(key).and_then(scalar)
}

fn build_of(service: &Mapping) -> Result<Option<Build>, String> {
    match service.get("build") {
        None => Ok(None),
        Some(v @ Value::String(_)) => {
            Ok(Some(Build { context: scalar(v).unwrap_or_default(), dockerfile: "Dockerfile".into() }))
        }
        Some(Value::Mapping(m)) => Ok(Some(Build {
            context: m.get("context").and_then(scalar).unwrap_or_else(|| ".".into()),
            dockerfile: m.get("dockerfile").and_then(scalar).unwrap_or_else(|| "Dockerfile".into()),
        })),
        Some(other) => Err(format!("`build` is neither a path nor a mapping: {other:?}")),
    }
}

/// `command` as a list of words (a string command is split on whitespace, as compose does).
fn command_of(service: &Mapping) -> Option<Vec<String>> {
    match service.get("command")? {
        Value::Sequence(items) => Some(items.iter().filter_map(scalar).collect()),
        v => Some(scalar(v)?.split_whitespace().map(String::from).collect()),
    }
}

/// `environment`, map or `KEY=VALUE` list. `None` as value: passed through from the shell.
fn env_of(service: &Mapping) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut env = BTreeMap::new();
    match service.get("environment") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = scalar(k).ok_or_else(|| format!("environment key {k:?} is not a string"))?;
                env.insert(key, scalar(v));
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = scalar(item).ok_or_else(|| format!("environment entry {item:?} is not a string"))?;
                match item.split_once('=') {
                    Some((k, v)) => env.insert(k.to_string(), Some(v.to_string())),
                    None => env.insert(item, None),
                };
            }
        }
        Some(other) => return Err(format!("`environment` is neither a mapping nor a list: {other:?}")),
    }
    Ok(env)
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.trim().parse::<u16>().map_err(|_| format!("`{s}` is not a port number"))
}

/// `ports`: `[ip:][host:]container[/proto]` strings or `{target, published, host_ip}` mappings.
fn ports_of(service: &Mapping) -> Result<Vec<Port>, String> {
    let Some(items) = service.get("ports") else { return Ok(vec![]) };
    let items = items.as_sequence().ok_or("`ports` is not a list")?;
    items
        .iter()
        .map(|item| match item {
            Value::Mapping(m) => Ok(Port {
                published: m.get("published").and_then(scalar),
                target: parse_port(&m.get("target").and_then(scalar).ok_or("a `ports` entry has no `target`")?)?,
            }),
            v => {
                let s = scalar(v).ok_or_else(|| format!("`ports` entry {v:?} is not a string"))?;
                let without_proto = s.split('/').next().unwrap_or_default();
                let (front, target) = match without_proto.rsplit_once(':') {
                    Some((front, target)) => (Some(front), target),
                    None => (None, without_proto),
                };
                let published = front.map(|f| f.rsplit_once(':').map_or(f, |(_, host_port)| host_port).to_string());
                Ok(Port { published, target: parse_port(target).map_err(|e| format!("`ports` entry `{s}`: {e}"))? })
            }
        })
        .collect()
}

fn expose_of(service: &Mapping) -> Result<Vec<u16>, String> {
    let Some(items) = service.get("expose") else { return Ok(vec![]) };
    let items = items.as_sequence().ok_or("`expose` is not a list")?;
    items.iter().map(|v| parse_port(&scalar(v).unwrap_or_default())).collect()
}

fn volumes_of(service: &Mapping) -> Vec<Mount> {
    let Some(items) = service.get("volumes").and_then(Value::as_sequence) else { return vec![] };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Mapping(m) => Some(Mount {
                source: m.get("source").and_then(scalar).unwrap_or_default(),
                target: m.get("target").and_then(scalar)?,
            }),
            v => {
                let s = scalar(v)?;
                let mut parts = s.split(':');
                let first = parts.next()?.to_string();
                match parts.next() {
                    Some(target) => Some(Mount { source: first, target: target.to_string() }),
                    None => Some(Mount { source: String::new(), target: first }),
                }
            }
        })
        .collect()
}

fn is_named_volume(source: &str) -> bool {
    !source.is_empty() && !source.starts_with(['.', '/', '~', '$'])
}

/// The healthcheck's command line (`None` when there is none or it is disabled).
fn healthcheck_of(service: &Mapping) -> Option<String> {
    let hc = service.get("healthcheck")?.as_mapping()?;
    if hc.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    match hc.get("test")? {
        Value::Sequence(items) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            match words.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") => Some(words[1..].join(" ")),
                Some("NONE") | None => None,
                Some(_) => Some(words.join(" ")),
            }
        }
        v => scalar(v),
    }
}

/// `depends_on`: service → condition (`service_started` for the list form).
fn depends_on_of(service: &Mapping) -> BTreeMap<String, String> {
    match service.get("depends_on") {
        Some(Value::Sequence(items)) => {
            items.iter().filter_map(scalar).map(|s| (s, "service_started".to_string())).collect()
        }
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| {
                let condition = v.get("condition").and_then(scalar).unwrap_or_else(|| "service_started".to_string());
                Some((scalar(k)?, condition))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Small parsers for values inside the environment

/// `NAME://host:port,...` (Kafka listeners), host may be empty.
fn kafka_listeners(s: &str) -> Result<Vec<(String, String, u16)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, addr) = l.split_once("://").ok_or_else(|| format!("listener `{l}` is not NAME://host:port"))?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("listener `{l}` has no port"))?;
            Ok((name.to_string(), host.to_string(), parse_port(port).map_err(|e| format!("listener `{l}`: {e}"))?))
        })
        .collect()
}

/// `postgres://user[:password]@host[:port]/database[?...]`.
#[derive(Debug)]
struct PgUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    database: String,
}

fn parse_pg_url(url: &str) -> Result<PgUrl, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| "does not start with postgres://".to_string())?;
    let (userinfo, rest) = rest.rsplit_once('@').ok_or("has no user@")?;
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (userinfo.to_string(), None),
    };
    let (hostport, database) = rest.split_once('/').ok_or("names no database")?;
    let database = database.split('?').next().unwrap_or_default().to_string();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), parse_port(p)?),
        None => (hostport.to_string(), 5432),
    };
    Ok(PgUrl { user, password, host, port, database })
}

/// The first `http://host:port/path` in a command line: (host, port, path).
fn http_target(command: &str) -> Option<(String, u16, String)> {
    let start = command.find("http://")?;
    let url = command[start + "http://".len()..].split([' ', '"', '\'']).next()?;
    let (authority, path) = url.split_once('/').map_or((url, String::new()), |(a, p)| (a, format!("/{p}")));
    let (host, port) = authority.rsplit_once(':').map_or((authority, Some(80)), |(h, p)| (h, p.parse().ok()));
    Some((host.to_string(), port?, path))
}

/// The value after `flag` in a command line (`--flag value` or `--flag=value`).
fn flag_value<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, w)| {
        if *w == flag {
            words.get(i + 1).copied()
        } else {
            w.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Dockerfile model

#[derive(Debug, Default)]
struct Stage {
    from: String,
    name: Option<String>,
    /// (INSTRUCTION, arguments), continuation lines joined, comments dropped.
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn runs(&self) -> impl Iterator<Item = &str> {
        self.instructions.iter().filter(|(i, _)| i == "RUN").map(|(_, a)| a.as_str())
    }

    fn last(&self, instruction: &str) -> Option<&str> {
        self.instructions.iter().rev().find(|(i, _)| i == instruction).map(|(_, a)| a.as_str())
    }

    fn installs(&self, package: &str) -> bool {
        self.runs().any(|r| {
            r.split("&&")
                .filter(|step| step.contains("apt-get install") || step.contains("apk add"))
                .any(|step| step.split_whitespace().any(|w| w == package))
        })
    }
}

fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        logical.push(current);
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (instruction, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let args = args.trim().to_string();
        if instruction == "FROM" {
            let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage { from: words.first().unwrap_or(&"").to_string(), name, instructions: vec![] });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((instruction, args));
        }
    }
    stages
}

fn debian_release(image: &str) -> Option<&'static str> {
    DEBIAN_RELEASES.iter().copied().find(|r| image.contains(r))
}

/// `1.95` from `rust:1.95-bookworm` / `rust:1.95.0-slim-bookworm`.
fn rust_image_version(image: &str) -> Option<(u32, u32)> {
    let tag = image.strip_prefix("rust:")?;
    let mut parts = tag.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The exec-form ENTRYPOINT's words, e.g. `["fulfillment"]`.
fn exec_form(args: &str) -> Option<Vec<String>> {
    serde_yaml_ng::from_str::<Vec<String>>(args).ok()
}

// ---------------------------------------------------------------------------------------------
// The binary's env names

/// The `[env: NAME]` names in clap's help output (`[env: NAME=]`, `[env: NAME=value]` and
/// `[env: NAME]` when the value is hidden). Whitespace is normalised first, so a help line
/// wrapped inside the bracket still counts.
fn env_names_in_help(help: &str) -> BTreeSet<String> {
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.match_indices("[env: ")
        .map(|(i, m)| {
            flat[i + m.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// `fulfillment [subcommand] --help` of the built binary, as env names (`""`: top level).
fn binary_env_names(subcommand: &str) -> Result<BTreeSet<String>, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fulfillment"));
    if !subcommand.is_empty() {
        cmd.arg(subcommand);
    }
    cmd.arg("--help");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FULFILLMENT_") {
            cmd.env_remove(key);
        }
    }
    let shown = format!("fulfillment {subcommand} --help").replace("  ", " ");
    let out = cmd.output().map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`{shown}` failed ({}): {}", out.status, stderr.lines().next().unwrap_or("").trim()));
    }
    let names = env_names_in_help(&String::from_utf8_lossy(&out.stdout));
    if names.is_empty() {
        return Err(format!("`{shown}` lists no `[env: ...]` names"));
    }
    Ok(names)
}

/// [`binary_env_names`], run once per subcommand for the whole test binary.
fn cached_env_names(subcommand: &str) -> Result<BTreeSet<String>, String> {
    static CACHE: Mutex<BTreeMap<String, Result<BTreeSet<String>, String>>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(subcommand.to_string()).or_insert_with(|| binary_env_names(subcommand)).clone()
}

// ---------------------------------------------------------------------------------------------
// The checks

struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }
}

/// Every problem of the compose file, Dockerfile and .dockerignore; `env_names(subcommand)`
/// lists the env names `fulfillment <subcommand>` accepts (`""`: the global ones).
fn check(inputs: &Inputs, env_names: &dyn Fn(&str) -> Result<BTreeSet<String>, String>) -> Vec<String> {
    let mut p = Problems(vec![]);
    let services = services(&inputs.compose);
    for name in [KAFKA, POSTGRES].into_iter().chain(APP_SERVICES.iter().map(|(s, _)| *s)) {
        p.check(services.contains_key(name), || {
            format!("docker-compose.yml: service `{name}` is missing (has: {:?})", services.keys().collect::<Vec<_>>())
        });
    }
    let env = |name: &str, p: &mut Problems| -> BTreeMap<String, Option<String>> {
        services.get(name).map_or_else(BTreeMap::new, |s| {
            env_of(s).unwrap_or_else(|e| {
                p.add(format!("service `{name}`: {e}"));
                BTreeMap::new()
            })
        })
    };
    let set = |env: &BTreeMap<String, Option<String>>, key: &str| env.get(key).cloned().flatten();

    // --- kafka: KRaft, one node; which host:port the other containers must use.
    let mut kafka_internal_ports = BTreeSet::new();
    if let Some(kafka) = services.get(KAFKA) {
        let image = str_field(kafka, "image").unwrap_or_default();
        p.check(image.starts_with("apache/kafka:") || image.starts_with("apache/kafka@"), || {
            format!("service `kafka`: image `{image}` is not the official `apache/kafka` image")
        });
        let tag = image.split_once([':', '@']).map(|(_, t)| t).unwrap_or("");
        p.check(tag.starts_with(|c: char| c.is_ascii_digit()) || tag.starts_with("sha256:"), || {
            format!("service `kafka`: image `{image}` is not pinned to a version (e.g. apache/kafka:4.1.0)")
        });
        let kenv = env(KAFKA, &mut p);
        let roles = set(&kenv, "KAFKA_PROCESS_ROLES").unwrap_or_default();
        let roles: BTreeSet<&str> = roles.split(',').map(str::trim).collect();
        p.check(roles.contains("controller") && roles.contains("broker"), || {
            format!("service `kafka`: KAFKA_PROCESS_ROLES is {roles:?}; a single KRaft node needs `broker,controller`")
        });
        p.check(!kenv.keys().any(|k| k.contains("ZOOKEEPER")), || {
            "service `kafka`: ZooKeeper settings in a KRaft setup".to_string()
        });
        let listeners = kafka_listeners(&set(&kenv, "KAFKA_LISTENERS").unwrap_or_default()).unwrap_or_else(|e| {
            p.add(format!("service `kafka`: KAFKA_LISTENERS: {e}"));
            vec![]
        });
        p.check(!listeners.is_empty(), || "service `kafka`: KAFKA_LISTENERS is not set".to_string());
        let controller_names = set(&kenv, "KAFKA_CONTROLLER_LISTENER_NAMES").unwrap_or_default();
        let controller_names: BTreeSet<&str> = controller_names.split(',').map(str::trim).collect();
        let controller_ports: BTreeSet<u16> = listeners
            .iter()
            .filter(|(n, _, _)| controller_names.contains(n.as_str()))
            .map(|(_, _, port)| *port)
            .collect();
        p.check(!controller_ports.is_empty(), || {
            format!("service `kafka`: KAFKA_CONTROLLER_LISTENER_NAMES {controller_names:?} names no listener in KAFKA_LISTENERS")
        });
        let kafka_client_ports: BTreeSet<u16> = listeners
            .iter()
            .filter(|(n, _, _)| !controller_names.contains(n.as_str()))
            .map(|(_, _, port)| *port)
            .collect();
        let node_id = set(&kenv, "KAFKA_NODE_ID").unwrap_or_default();
        p.check(!node_id.is_empty(), || "service `kafka`: KAFKA_NODE_ID is not set".to_string());
        let voters = set(&kenv, "KAFKA_CONTROLLER_QUORUM_VOTERS").unwrap_or_default();
        let hostname = str_field(kafka, "hostname").unwrap_or_else(|| KAFKA.to_string());
        let voter_ok = voters.split(',').any(|v| {
            v.split_once('@').is_some_and(|(id, addr)| {
                id.trim() == node_id
                    && addr.rsplit_once(':').is_some_and(|(host, port)| {
                        (host == KAFKA || host == hostname)
                            && port.parse().is_ok_and(|port: u16| controller_ports.contains(&port))
                    })
            })
        });
        p.check(voter_ok, || {
            format!(
                "service `kafka`: KAFKA_CONTROLLER_QUORUM_VOTERS `{voters}` must name this node ({node_id}@kafka:PORT) \
                 on its controller listener port {controller_ports:?}"
            )
        });
        let protocol_map = set(&kenv, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").unwrap_or_default();
        let mapped: BTreeSet<&str> =
            protocol_map.split(',').filter_map(|e| e.split_once(':').map(|(n, _)| n.trim())).collect();
        let standard = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
        for (name, _, _) in &listeners {
            p.check(standard.contains(&name.as_str()) || mapped.contains(name.as_str()), || {
                format!("service `kafka`: listener `{name}` has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
            });
        }
        let advertised =
            kafka_listeners(&set(&kenv, "KAFKA_ADVERTISED_LISTENERS").unwrap_or_default()).unwrap_or_else(|e| {
                p.add(format!("service `kafka`: KAFKA_ADVERTISED_LISTENERS: {e}"));
                vec![]
            });
        let kafka_ports = ports_of(kafka).unwrap_or_else(|e| {
            p.add(format!("service `kafka`: {e}"));
            vec![]
        });
        for (name, host, port) in &advertised {
            let Some((_, _, listen_port)) = listeners.iter().find(|(n, _, _)| n == name) else {
                p.add(format!("service `kafka`: advertised listener `{name}` is not in KAFKA_LISTENERS"));
                continue;
            };
            if host == KAFKA || *host == hostname {
                p.check(port == listen_port, || {
                    format!("service `kafka`: listener `{name}` advertises port {port} but listens on {listen_port}")
                });
                kafka_internal_ports.insert(*port);
            } else if host == "localhost" || host == "127.0.0.1" {
                p.check(
                    kafka_ports.iter().any(|m| m.target == *listen_port && m.published.as_deref() == Some(&port.to_string())),
                    || format!("service `kafka`: listener `{name}` advertises {host}:{port}, but no `ports` entry publishes {port} to its port {listen_port}"),
                );
            }
        }
        p.check(!kafka_internal_ports.is_empty(), || {
            "service `kafka`: KAFKA_ADVERTISED_LISTENERS has no listener on host `kafka`, the name other containers use"
                .to_string()
        });
        p.check(set(&kenv, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR").is_some(), || {
            "service `kafka`: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR is not set; its default (3) leaves a single \
             broker without consumer groups"
                .to_string()
        });
        for (key, value) in kenv.iter().filter(|(k, _)| k.ends_with("_REPLICATION_FACTOR") || k.ends_with("_MIN_ISR")) {
            p.check(value.as_deref() == Some("1"), || {
                format!("service `kafka`: {key} is {value:?}; a single broker needs 1")
            });
        }
        let mounts = volumes_of(kafka);
        let log_dirs = set(&kenv, "KAFKA_LOG_DIRS").unwrap_or_default();
        p.check(
            mounts.iter().any(|m| is_named_volume(&m.source) && !log_dirs.is_empty() && log_dirs.starts_with(&m.target)),
            || format!("service `kafka`: KAFKA_LOG_DIRS `{log_dirs}` is not on a named volume: the log is lost with the container"),
        );
        match healthcheck_of(kafka) {
            None => p.add("service `kafka`: no healthcheck"),
            Some(hc) => {
                p.check(hc.contains("kafka-broker-api-versions.sh") || hc.contains("kafka-topics.sh"), || {
                    format!("service `kafka`: healthcheck `{hc}` does not ask the broker (kafka-broker-api-versions.sh or kafka-topics.sh)")
                });
                let port = flag_value(&hc, "--bootstrap-server")
                    .and_then(|s| s.split(',').next()?.rsplit_once(':')?.1.parse::<u16>().ok());
                p.check(port.is_some_and(|port| kafka_client_ports.contains(&port)), || {
                    format!("service `kafka`: healthcheck `{hc}` does not bootstrap from a broker listener port {kafka_client_ports:?}")
                });
            }
        }
    }

    // --- postgres
    let mut pg = (String::new(), None::<String>, String::new());
    if let Some(postgres) = services.get(POSTGRES) {
        let image = str_field(postgres, "image").unwrap_or_default();
        let tag = image.strip_prefix("postgres:").unwrap_or("");
        p.check(tag.starts_with(|c: char| c.is_ascii_digit()), || {
            format!(
                "service `postgres`: image `{image}` is not `postgres:` pinned to a major version (e.g. postgres:16)"
            )
        });
        let penv = env(POSTGRES, &mut p);
        let user = set(&penv, "POSTGRES_USER").unwrap_or_else(|| "postgres".into());
        let password = set(&penv, "POSTGRES_PASSWORD");
        p.check(password.is_some() || set(&penv, "POSTGRES_HOST_AUTH_METHOD").is_some(), || {
            "service `postgres`: POSTGRES_PASSWORD is not set (the image refuses to start)".to_string()
        });
        let database = set(&penv, "POSTGRES_DB").unwrap_or_else(|| user.clone());
        pg = (user.clone(), password, database);
        p.check(
            volumes_of(postgres)
                .iter()
                .any(|m| is_named_volume(&m.source) && m.target.starts_with("/var/lib/postgresql")),
            || "service `postgres`: no named volume on /var/lib/postgresql/data".to_string(),
        );
        match healthcheck_of(postgres) {
            None => p.add("service `postgres`: no healthcheck"),
            Some(hc) => {
                p.check(hc.contains("pg_isready"), || {
                    format!("service `postgres`: healthcheck `{hc}` does not run pg_isready")
                });
                let port = flag_value(&hc, "-p").unwrap_or("5432");
                p.check(port == "5432", || {
                    format!("service `postgres`: healthcheck `{hc}` checks port {port}, not 5432")
                });
                let hc_user = flag_value(&hc, "-U").unwrap_or(&user);
                p.check(hc_user == user, || {
                    format!(
                        "service `postgres`: healthcheck `{hc}` connects as `{hc_user}`, not POSTGRES_USER `{user}`"
                    )
                });
            }
        }
    }

    // --- the fulfillment services
    let global_names = env_names("").unwrap_or_else(|e| {
        p.add(format!("cannot list the global env names: {e}"));
        BTreeSet::new()
    });
    let broker_count = usize::from(services.contains_key(KAFKA));
    let mut listen_ports = BTreeMap::new();
    for (name, subcommand) in APP_SERVICES {
        let Some(service) = services.get(name) else { continue };
        match build_of(service) {
            Err(e) => p.add(format!("service `{name}`: {e}")),
            Ok(None) => p.add(format!("service `{name}`: not built from the Dockerfile (no `build`)")),
            Ok(Some(build)) => {
                let path = build.dockerfile_path();
                p.check(path == "Dockerfile", || {
                    format!("service `{name}`: builds from `{path}`, not the root Dockerfile")
                });
                p.check(inputs.dockerfiles.contains_key(&path), || {
                    format!("service `{name}`: its Dockerfile `{path}` does not exist")
                });
            }
        }
        let command = command_of(service).unwrap_or_default();
        p.check(command.first().map(String::as_str) == Some(subcommand), || {
            format!("service `{name}`: command is {command:?}, expected [\"{subcommand}\"] (the image's entrypoint is `fulfillment`)")
        });
        let senv = env(name, &mut p);
        match env_names(subcommand) {
            Err(e) => p.add(format!("service `{name}`: cannot list the env names of `fulfillment {subcommand}`: {e}")),
            Ok(accepted) => {
                let accepted: BTreeSet<String> = accepted.union(&global_names).cloned().collect();
                for key in senv.keys().filter(|k| k.starts_with("FULFILLMENT_")) {
                    p.check(accepted.contains(key), || {
                        format!(
                            "service `{name}`: {key} is not an env name of `fulfillment {subcommand}` (it accepts {})",
                            accepted.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    });
                }
            }
        }
        let required = REQUIRED_ENV.iter().find(|(s, _)| *s == name).map_or(&[][..], |(_, r)| *r);
        for key in required {
            p.check(set(&senv, key).is_some_and(|v| !v.is_empty()), || {
                format!("service `{name}`: {key} is not set to a value")
            });
        }
        for (key, value) in senv.iter().filter(|(k, _)| k.starts_with("FULFILLMENT_")) {
            let Some(value) = value else { continue };
            if ["_MAX_CONNECTIONS", "_PARTITIONS", "_REPLICATION_FACTOR", "_BATCH"].iter().any(|s| key.ends_with(s)) {
                p.check(value.parse::<u32>().is_ok_and(|n| n > 0), || {
                    format!("service `{name}`: {key}=`{value}` is not a positive number")
                });
            }
        }
        if let Some(factor) = set(&senv, "FULFILLMENT_KAFKA_REPLICATION_FACTOR").and_then(|f| f.parse::<usize>().ok()) {
            p.check(factor <= broker_count, || {
                format!("service `{name}`: FULFILLMENT_KAFKA_REPLICATION_FACTOR={factor}, but the stack has {broker_count} broker")
            });
        }
        if let Some(format) = set(&senv, "FULFILLMENT_LOG_FORMAT") {
            p.check(["auto", "text", "json"].contains(&format.as_str()), || {
                format!("service `{name}`: FULFILLMENT_LOG_FORMAT=`{format}` is not auto, text or json")
            });
        }
        if let Some(brokers) = set(&senv, "FULFILLMENT_KAFKA_BROKERS") {
            for broker in brokers.split(',').map(str::trim) {
                let ok = broker.rsplit_once(':').is_some_and(|(host, port)| {
                    host == KAFKA && port.parse().is_ok_and(|port: u16| kafka_internal_ports.contains(&port))
                });
                p.check(ok, || {
                    format!(
                        "service `{name}`: FULFILLMENT_KAFKA_BROKERS `{broker}` is not kafka:PORT on kafka's internal \
                         listener {kafka_internal_ports:?}"
                    )
                });
            }
        }
        if let Some(url) = set(&senv, "FULFILLMENT_DATABASE_URL") {
            match parse_pg_url(&url) {
                Err(e) => p.add(format!("service `{name}`: FULFILLMENT_DATABASE_URL {e}")),
                Ok(u) => {
                    p.check(u.host == POSTGRES && u.port == 5432, || {
                        format!(
                            "service `{name}`: FULFILLMENT_DATABASE_URL points at {}:{}, not postgres:5432",
                            u.host, u.port
                        )
                    });
                    p.check(u.user == pg.0 && u.password == pg.1 && u.database == pg.2, || {
                        format!(
                            "service `{name}`: FULFILLMENT_DATABASE_URL uses user `{}` / database `{}` (or a password) \
                             other than the postgres service's POSTGRES_USER `{}` / POSTGRES_DB `{}` / POSTGRES_PASSWORD",
                            u.user, u.database, pg.0, pg.2
                        )
                    });
                }
            }
        }
        let ports = ports_of(service).unwrap_or_else(|e| {
            p.add(format!("service `{name}`: {e}"));
            vec![]
        });
        let expose = expose_of(service).unwrap_or_else(|e| {
            p.add(format!("service `{name}`: `expose`: {e}"));
            vec![]
        });
        let Some(listen) = set(&senv, "FULFILLMENT_LISTEN") else {
            p.check(ports.is_empty() && expose.is_empty(), || {
                format!("service `{name}`: publishes or exposes ports but sets no FULFILLMENT_LISTEN")
            });
            continue;
        };
        let Ok(listen) = listen.parse::<SocketAddr>() else {
            p.add(format!("service `{name}`: FULFILLMENT_LISTEN `{listen}` is not an address:port"));
            continue;
        };
        p.check(listen.ip().is_unspecified(), || {
            format!(
                "service `{name}`: FULFILLMENT_LISTEN {listen} is not reachable from other containers (use 0.0.0.0)"
            )
        });
        listen_ports.insert(name, listen.port());
        for port in &ports {
            p.check(port.target == listen.port(), || {
                format!(
                    "service `{name}`: `ports` maps to container port {}, but it listens on {}",
                    port.target,
                    listen.port()
                )
            });
        }
        for port in &expose {
            p.check(*port == listen.port(), || {
                format!("service `{name}`: exposes {port}, but it listens on {}", listen.port())
            });
        }
        if name == "ingress" {
            p.check(
                ports.iter().any(|m| m.target == listen.port() && m.published.as_deref() == Some(INGRESS_HOST_PORT)),
                || format!("service `ingress`: no `ports` entry publishes host port {INGRESS_HOST_PORT} to its listen port {}", listen.port()),
            );
        }
    }
    for name in ["ingress", "projector"] {
        let Some(service) = services.get(name) else { continue };
        match healthcheck_of(service) {
            None => p.add(format!("service `{name}`: no healthcheck")),
            Some(hc) => {
                let target = http_target(&hc);
                let listen_port = listen_ports.get(name).copied();
                p.check(
                    target.as_ref().is_some_and(|(host, port, path)| {
                        ["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str())
                            && Some(*port) == listen_port
                            && path.starts_with("/readyz")
                    }),
                    || {
                        format!(
                            "service `{name}`: healthcheck `{hc}` does not GET http://127.0.0.1:{}/readyz",
                            listen_port.map_or("?".into(), |p| p.to_string())
                        )
                    },
                );
                let program = hc.split_whitespace().next().unwrap_or_default();
                let program = program.rsplit('/').next().unwrap_or_default();
                if let Some(runtime) =
                    inputs.dockerfiles.get("Dockerfile").map(|d| parse_dockerfile(d)).and_then(|mut s| s.pop())
                {
                    p.check(program == "fulfillment" || runtime.installs(program), || {
                        format!("service `{name}`: healthcheck runs `{program}`, which the Dockerfile's runtime stage does not install")
                    });
                }
            }
        }
    }
    // Either may create the events topic; reads on the ingress wait on the projectors' group.
    let (ingress_env, projector_env) = (env("ingress", &mut Problems(vec![])), env("projector", &mut Problems(vec![])));
    for key in [
        "FULFILLMENT_EVENTS_TOPIC",
        "FULFILLMENT_EVENTS_TOPIC_PARTITIONS",
        "FULFILLMENT_KAFKA_REPLICATION_FACTOR",
        "FULFILLMENT_CONSUMER_GROUP",
    ] {
        let (on_ingress, on_projector) = (set(&ingress_env, key), set(&projector_env, key));
        p.check(on_ingress == on_projector, || {
            format!("ingress and projector disagree on {key}: {on_ingress:?} vs {on_projector:?} (set it on both)")
        });
    }

    // --- start order
    for (name, service) in &services {
        for (target, condition) in depends_on_of(service) {
            let Some(dependency) = services.get(target.as_str()) else {
                p.add(format!("service `{name}`: depends on `{target}`, which is not a service"));
                continue;
            };
            match condition.as_str() {
                "service_healthy" => p.check(healthcheck_of(dependency).is_some(), || {
                    format!("service `{name}`: waits for `{target}` to be healthy, but `{target}` has no healthcheck")
                }),
                "service_completed_successfully" => {
                    let restart = str_field(dependency, "restart").unwrap_or_else(|| "no".into());
                    p.check(restart == "no" || restart.starts_with("on-failure"), || {
                        format!(
                            "service `{name}`: waits for `{target}` to complete, but `{target}` has restart: {restart}"
                        )
                    })
                }
                "service_started" => {}
                other => p.add(format!("service `{name}`: unknown depends_on condition `{other}` for `{target}`")),
            }
        }
    }
    for (name, target, condition) in REQUIRED_ORDER {
        let Some(service) = services.get(name) else { continue };
        let actual = depends_on_of(service).get(target).cloned();
        p.check(actual.as_deref() == Some(condition), || match actual {
            None => {
                format!("service `{name}`: does not wait for `{target}` (depends_on {target}: condition: {condition})")
            }
            Some(actual) => format!("service `{name}`: waits for `{target}` with `{actual}`, expected `{condition}`"),
        });
    }

    // --- named volumes are declared
    let declared: BTreeSet<String> = inputs
        .compose
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(scalar).collect())
        .unwrap_or_default();
    for (name, service) in &services {
        for mount in volumes_of(service).into_iter().filter(|m| is_named_volume(&m.source)) {
            p.check(declared.contains(&mount.source), || {
                format!("service `{name}`: volume `{}` is not declared under the top-level `volumes`", mount.source)
            });
        }
    }

    check_dockerfile(inputs, &mut p);
    p.0
}

fn check_dockerfile(inputs: &Inputs, p: &mut Problems) {
    let Some(text) = inputs.dockerfiles.get("Dockerfile") else {
        p.add("Dockerfile: missing at the repository root");
        return;
    };
    let stages = parse_dockerfile(text);
    let builder_index = stages.iter().position(|s| s.runs().any(|r| r.contains("cargo build")));
    let Some(builder_index) = builder_index else {
        p.add("Dockerfile: no stage runs `cargo build`");
        return;
    };
    let builder = &stages[builder_index];
    let build = builder.runs().find(|r| r.contains("cargo build")).unwrap_or_default();
    let words: Vec<&str> = build.split_whitespace().collect();
    for flag in ["--release", "--locked"] {
        p.check(words.contains(&flag), || format!("Dockerfile: `{build}` lacks {flag}"));
    }
    p.check(words.windows(2).any(|w| w == ["--bin", "fulfillment"]) || words.contains(&"--bin=fulfillment"), || {
        format!("Dockerfile: `{build}` does not build the `fulfillment` binary (--bin fulfillment)")
    });
    let wanted = inputs.rust_version.split('.').filter_map(|n| n.parse().ok()).collect::<Vec<u32>>();
    let wanted = (wanted.first().copied().unwrap_or(0), wanted.get(1).copied().unwrap_or(0));
    p.check(rust_image_version(&builder.from).is_some_and(|v| v >= wanted), || {
        format!(
            "Dockerfile: builder image `{}` is not rust:X.Y at least the workspace rust-version {}",
            builder.from, inputs.rust_version
        )
    });
    let Some(runtime) = stages.last().filter(|_| stages.len() > builder_index + 1) else {
        p.add("Dockerfile: the builder is the last stage; ship the binary in a slim runtime stage");
        return;
    };
    let builder_release = debian_release(&builder.from);
    p.check(builder_release.is_some() && builder_release == debian_release(&runtime.from), || {
        format!(
            "Dockerfile: builder `{}` and runtime `{}` must name the same Debian release (the binary needs the builder's glibc)",
            builder.from, runtime.from
        )
    });
    let builder_ref = builder.name.clone().unwrap_or_else(|| builder_index.to_string());
    p.check(
        runtime
            .instructions
            .iter()
            .any(|(i, a)| i == "COPY" && a.contains(&format!("--from={builder_ref}")) && a.contains("fulfillment")),
        || format!("Dockerfile: the runtime stage does not COPY the binary --from={builder_ref}"),
    );
    let entrypoint = runtime.last("ENTRYPOINT").and_then(exec_form).unwrap_or_default();
    p.check(entrypoint.first().is_some_and(|e| e.rsplit('/').next() == Some("fulfillment")), || {
        format!("Dockerfile: runtime ENTRYPOINT is {entrypoint:?}, expected [\"fulfillment\"] in exec form (compose passes the subcommand as `command`)")
    });
    let user = runtime.last("USER").unwrap_or("root");
    let user_name = user.split(':').next().unwrap_or_default();
    p.check(user_name != "root" && user_name != "0", || {
        format!("Dockerfile: the runtime stage runs as `{user}`, not a non-root user")
    });
    p.check(runtime.installs("ca-certificates"), || {
        "Dockerfile: the runtime stage does not install ca-certificates".to_string()
    });

    match &inputs.dockerignore {
        None => p.add(".dockerignore: missing (target/ would be sent as build context)"),
        Some(ignore) => {
            let patterns: Vec<&str> = ignore
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
                .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
                .collect();
            p.check(patterns.iter().any(|l| *l == "target" || *l == "**/target"), || {
                ".dockerignore: does not exclude target/".to_string()
            });
            for input in BUILD_INPUTS {
                p.check(!patterns.iter().any(|l| *l == input || *l == "*" || *l == format!("{input}/**")), || {
                    format!(".dockerignore: excludes `{input}`, which the build needs")
                });
            }
        }
    }
}

fn report(problems: &[String]) -> String {
    format!("{} problem(s):\n  - {}\n", problems.len(), problems.join("\n  - "))
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The real check: the files against the built binary's `--help`.
#[test]
fn compose_file_matches_the_fulfillment_binary() {
    let problems = check(&Inputs::from_repo(), &cached_env_names);
    assert!(problems.is_empty(), "docker-compose.yml / Dockerfile / .dockerignore: {}", report(&problems));
}

#[test]
fn help_output_yields_env_names() {
    let help = "Options:\n      --listen <LISTEN>  Address to listen on [env: FULFILLMENT_LISTEN=] [default: 127.0.0.1:8080]\n      \
                --database-url <URL>  Keep the read models in PostgreSQL [env:\n          FULFILLMENT_DATABASE_URL]\n      \
                --batch <N>  [env: FULFILLMENT_PROJECTOR_BATCH=500]\n";
    let names: Vec<String> = env_names_in_help(help).into_iter().collect();
    assert_eq!(names, ["FULFILLMENT_DATABASE_URL", "FULFILLMENT_LISTEN", "FULFILLMENT_PROJECTOR_BATCH"]);
}

/// `serve` and `migrate` exist: the help parsing works on the real clap output, including the
/// database URL whose value clap hides.
#[test]
fn binary_help_lists_env_names_of_existing_subcommands() {
    let serve = binary_env_names("serve").expect("fulfillment serve --help");
    for name in
        ["FULFILLMENT_LISTEN", "FULFILLMENT_DATABASE_URL", "FULFILLMENT_KAFKA_BROKERS", "FULFILLMENT_LOG_FORMAT"]
    {
        assert!(serve.contains(name), "`fulfillment serve --help` lists no {name}: {serve:?}");
    }
    let migrate = binary_env_names("migrate").expect("fulfillment migrate --help");
    assert!(migrate.contains("FULFILLMENT_DATABASE_URL"), "migrate: {migrate:?}");
    assert!(!migrate.contains("FULFILLMENT_LISTEN"), "migrate does not listen: {migrate:?}");
    let global = binary_env_names("").expect("fulfillment --help");
    assert!(global.contains("FULFILLMENT_LOG_FORMAT"), "global: {global:?}");
    assert!(binary_env_names("no-such-subcommand").is_err());
}

/// Breaks a copy of the files with `mutate` and expects a problem containing `expected`.
fn assert_caught(mutate: impl FnOnce(&mut Inputs), expected: &str) {
    let mut inputs = Inputs::from_repo();
    let before = check(&inputs, &cached_env_names);
    assert!(
        !before.iter().any(|p| p.contains(expected)),
        "{expected:?} is reported before breaking anything; {}",
        report(&before)
    );
    mutate(&mut inputs);
    let problems = check(&inputs, &cached_env_names);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}; got {}",
        report(&problems)
    );
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("test YAML")
}

#[test]
fn catches_a_missing_service() {
    assert_caught(
        |i| {
            i.compose["services"].as_mapping_mut().unwrap().remove("postgres");
        },
        "service `postgres` is missing",
    );
}

#[test]
fn catches_kafka_that_is_not_official_pinned_kraft() {
    assert_caught(|i| i.service_mut(KAFKA)["image"] = "bitnami/kafka:3.9".into(), "not the official `apache/kafka`");
    assert_caught(|i| i.service_mut(KAFKA)["image"] = "apache/kafka:latest".into(), "not pinned");
    assert_caught(|i| i.env_mut(KAFKA)["KAFKA_PROCESS_ROLES"] = "broker".into(), "KAFKA_PROCESS_ROLES");
    assert_caught(
        |i| i.env_mut(KAFKA)["KAFKA_CONTROLLER_QUORUM_VOTERS"] = "1@kafka:9092".into(),
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
    );
    assert_caught(
        |i| i.env_mut(KAFKA)["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] = "3".into(),
        "a single broker needs 1",
    );
    assert_caught(
        |i| i.env_mut(KAFKA)["KAFKA_ADVERTISED_LISTENERS"] = "PLAINTEXT://localhost:9092".into(),
        "no listener on host `kafka`",
    );
    assert_caught(|i| i.env_mut(KAFKA)["KAFKA_LOG_DIRS"] = "/tmp/kraft-combined-logs".into(), "not on a named volume");
}

#[test]
fn catches_an_env_name_the_binary_does_not_accept() {
    assert_caught(
        |i| {
            let env = i.env_mut("ingress");
            let brokers = env.remove("FULFILLMENT_KAFKA_BROKERS").unwrap();
            env.insert("FULFILLMENT_KAFKA_BROKER".into(), brokers);
        },
        "FULFILLMENT_KAFKA_BROKER is not an env name of `fulfillment ingress`",
    );
    assert_caught(
        |i| {
            i.env_mut("migrate").insert("FULFILLMENT_LISTEN".into(), "0.0.0.0:8080".into());
        },
        "FULFILLMENT_LISTEN is not an env name of `fulfillment migrate`",
    );
}

#[test]
fn catches_connections_to_the_wrong_place() {
    assert_caught(
        |i| i.env_mut("projector")["FULFILLMENT_KAFKA_BROKERS"] = "localhost:9092".into(),
        "FULFILLMENT_KAFKA_BROKERS `localhost:9092`",
    );
    assert_caught(
        |i| i.env_mut("ingress")["FULFILLMENT_KAFKA_BROKERS"] = "kafka:9094".into(),
        "FULFILLMENT_KAFKA_BROKERS `kafka:9094`",
    );
    assert_caught(
        |i| {
            i.env_mut("projector")["FULFILLMENT_DATABASE_URL"] =
                "postgres://fulfillment:fulfillment@postgres:5433/fulfillment".into()
        },
        "not postgres:5432",
    );
    assert_caught(
        |i| i.env_mut("migrate")["FULFILLMENT_DATABASE_URL"] = "postgres://postgres@postgres/fulfillment".into(),
        "other than the postgres service's",
    );
    assert_caught(
        |i| {
            i.env_mut("ingress").remove("FULFILLMENT_DATABASE_URL");
        },
        "service `ingress`: FULFILLMENT_DATABASE_URL is not set",
    );
    assert_caught(
        |i| i.env_mut("projector")["FULFILLMENT_EVENTS_TOPIC"] = "events".into(),
        "disagree on FULFILLMENT_EVENTS_TOPIC",
    );
    assert_caught(
        |i| i.env_mut("ingress")["FULFILLMENT_KAFKA_REPLICATION_FACTOR"] = "3".into(),
        "the stack has 1 broker",
    );
    assert_caught(
        |i| i.env_mut("ingress")["FULFILLMENT_CONSUMER_GROUP"] = "other".into(),
        "disagree on FULFILLMENT_CONSUMER_GROUP",
    );
}

#[test]
fn catches_ports_that_do_not_match_the_listen_address() {
    assert_caught(|i| i.service_mut("ingress")["ports"] = yaml(r#"["8080:9090"]"#), "maps to container port 9090");
    assert_caught(
        |i| i.service_mut("ingress")["ports"] = yaml(r#"["127.0.0.1:8000:8080"]"#),
        "publishes host port 8080",
    );
    assert_caught(
        |i| i.env_mut("ingress")["FULFILLMENT_LISTEN"] = "127.0.0.1:8080".into(),
        "not reachable from other containers",
    );
    assert_caught(
        |i| i.service_mut("projector")["expose"] = yaml(r#"["8080"]"#),
        "exposes 8080, but it listens on 8081",
    );
}

#[test]
fn catches_healthchecks_that_are_missing_or_look_elsewhere() {
    for service in [KAFKA, POSTGRES, "ingress", "projector"] {
        assert_caught(
            |i| {
                i.service_mut(service).remove("healthcheck");
            },
            &format!("service `{service}`: no healthcheck"),
        );
    }
    assert_caught(
        |i| {
            i.service_mut("projector")["healthcheck"]["test"] =
                yaml(r#"["CMD", "curl", "-f", "http://127.0.0.1:8080/readyz"]"#)
        },
        "does not GET http://127.0.0.1:8081/readyz",
    );
    assert_caught(
        |i| {
            i.service_mut("ingress")["healthcheck"]["test"] =
                yaml(r#"["CMD", "curl", "-f", "http://127.0.0.1:8080/healthz"]"#)
        },
        "does not GET http://127.0.0.1:8080/readyz",
    );
    assert_caught(
        |i| {
            i.service_mut("ingress")["healthcheck"]["test"] =
                yaml(r#"["CMD", "wget", "-q", "http://127.0.0.1:8080/readyz"]"#)
        },
        "runs `wget`, which the Dockerfile's runtime stage does not install",
    );
    assert_caught(
        |i| {
            i.service_mut(KAFKA)["healthcheck"]["test"] =
                yaml(r#"["CMD-SHELL", "/opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9093 --list"]"#)
        },
        "does not bootstrap from a broker listener port",
    );
    assert_caught(
        |i| i.service_mut(POSTGRES)["healthcheck"]["test"] = yaml(r#"["CMD", "pg_isready", "-p", "5433"]"#),
        "checks port 5433",
    );
}

#[test]
fn catches_a_wrong_start_order() {
    assert_caught(
        |i| i.service_mut("projector")["depends_on"]["migrate"]["condition"] = "service_started".into(),
        "service `projector`: waits for `migrate` with `service_started`, expected `service_completed_successfully`",
    );
    assert_caught(
        |i| {
            i.service_mut("ingress")["depends_on"].as_mapping_mut().unwrap().remove("kafka");
        },
        "service `ingress`: does not wait for `kafka`",
    );
    assert_caught(|i| i.service_mut("migrate")["depends_on"] = yaml("[postgres]"), "expected `service_healthy`");
    assert_caught(
        |i| i.service_mut("migrate")["restart"] = "unless-stopped".into(),
        "waits for `migrate` to complete, but `migrate` has restart: unless-stopped",
    );
}

#[test]
fn catches_services_not_built_from_the_dockerfile_or_with_the_wrong_command() {
    assert_caught(
        |i| {
            i.service_mut("migrate").remove("build");
        },
        "service `migrate`: not built from the Dockerfile",
    );
    assert_caught(
        |i| i.service_mut("ingress")["build"]["dockerfile"] = "docker/Dockerfile.ingress".into(),
        "does not exist",
    );
    assert_caught(|i| i.service_mut("ingress")["command"] = "serve".into(), "expected [\"ingress\"]");
}

#[test]
fn catches_a_dockerfile_that_would_not_serve_the_compose_file() {
    let replace = |from: &'static str, to: &'static str| {
        move |i: &mut Inputs| {
            let d = i.dockerfile_mut();
            assert!(d.contains(from), "Dockerfile has no `{from}` to replace");
            *d = d.replace(from, to);
        }
    };
    assert_caught(replace("--bin fulfillment", "--workspace"), "does not build the `fulfillment` binary");
    assert_caught(replace("--locked", ""), "lacks --locked");
    assert_caught(replace("FROM debian:bookworm-slim", "FROM debian:trixie-slim"), "same Debian release");
    assert_caught(
        replace("ca-certificates curl", "ca-certificates"),
        "runs `curl`, which the Dockerfile's runtime stage",
    );
    assert_caught(replace("ENTRYPOINT [\"fulfillment\"]", "ENTRYPOINT [\"/bin/sh\"]"), "runtime ENTRYPOINT");
    assert_caught(replace("USER fulfillment:fulfillment", "USER root"), "not a non-root user");
    assert_caught(
        |i| {
            i.dockerfiles.clear();
        },
        "Dockerfile: missing",
    );
    assert_caught(|i| i.dockerignore = Some("migrations/\n".into()), "excludes `migrations`");
    assert_caught(|i| i.dockerignore = Some(".git/\n".into()), "does not exclude target/");
}
