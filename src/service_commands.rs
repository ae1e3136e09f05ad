//! The service commands of the `fulfillment` binary: `serve`, `ingress` and `projector` start
//! the service their arguments describe and run it until SIGINT or SIGTERM, then stop it in
//! order; `migrate` applies the PostgreSQL migrations and exits.
//!
//! In: parsed arguments (`crate::config`). Out: a running service, log lines, an exit status.

use crate::config::{DatabaseArgs, DirectoryArgs};
use fulfillment::{load_directory, DirectorySource, Service, ServiceOptions, DEMO_CONFIG};
use fulfillment_ingress::listener::raise_open_file_limit;
use fulfillment_ingress::Directory;
use fulfillment_read_model::{redact_url, PostgresReadModel};
use std::path::PathBuf;
use tracing::{info, warn};

/// Starts the service and runs it until SIGINT or SIGTERM.
pub async fn run(options: ServiceOptions) -> anyhow::Result<()> {
    raise_open_file_limit();
    let service = Service::start(options).await?;
    let stop = service.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        stop.cancel();
    });
    service.run_until_stopped().await;
    Ok(())
}

/// Loads the directory named by the flags (or the default file, or the demo catalog).
pub fn directory(args: &DirectoryArgs) -> anyhow::Result<Directory> {
    let explicit = args.config.is_some();
    let path = args.config.clone().unwrap_or_else(|| PathBuf::from("fulfillment.toml"));
    let (directory, source) = load_directory(&path, explicit)?;
    match &source {
        DirectorySource::Demo => announce_demo(),
        DirectorySource::File(p) => info!(config = %p.display(), "configuration loaded"),
    }
    Ok(directory)
}

/// Tells the operator that public demo credentials are live, and what they are.
fn announce_demo() {
    warn!(
        "no configuration file found: serving the public DEMO catalog (config/demo.toml); do not expose this instance"
    );
    for line in DEMO_CONFIG.lines().filter(|l| {
        l.contains("api_keys") || l.contains("webhook_secrets") || l.contains("api_tokens") || l.starts_with("id =")
    }) {
        info!(demo = %line.trim(), "demo configuration");
    }
}

/// `fulfillment migrate`.
pub async fn migrate(database: DatabaseArgs) -> anyhow::Result<()> {
    let Some(options) = database.postgres() else {
        anyhow::bail!("fulfillment migrate needs --database-url (or FULFILLMENT_DATABASE_URL)");
    };
    let store = PostgresReadModel::connect(&options).await?;
    store.close().await;
    info!(database = %redact_url(&options.url), "PostgreSQL migrations applied");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
