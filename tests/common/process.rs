//! The real `fulfillment` binary as a separate process, for the fault tests that kill it or
//! start it under operating-system limits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `fulfillment serve`; dropping it kills the process (SIGKILL) and reaps it.
pub struct Server {
    pub child: Child,
    /// Where its standard error (its log) goes.
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory holding the test configuration and the path of a data directory
/// (created by the service), for tests that run the binary.
pub struct ServiceFiles {
    /// Removed on drop, with everything in it.
    pub dir: tempfile::TempDir,
    /// `fulfillment.toml` with [`super::test_config`].
    pub config: PathBuf,
    /// `data/`, not created yet.
    pub data: PathBuf,
}

/// A fresh [`ServiceFiles`].
pub fn service_files() -> ServiceFiles {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fulfillment.toml");
    std::fs::write(&config, super::test_config()).unwrap();
    let data = dir.path().join("data");
    ServiceFiles { dir, config, data }
}

/// The arguments of `fulfillment serve` on `port` with `data` and `config`.
pub fn serve_args(port: u16, data: &Path, config: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        data.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ]
}

/// Spawns `command` (which starts the service on `port`) and waits until `/readyz` answers
/// 2xx; panics after 10 s. Logs are JSON at `warn` (the projector's and the read models' at `info`) unless `command`
/// sets `FULFILLMENT_LOG_FORMAT` or `RUST_LOG` itself.
pub async fn serve_command(mut command: Command, port: u16) -> Server {
    // Each process's log stays in target/tmp for a look after a failure.
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("processes");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join(format!("serve-{port}-{}.log", chrono::Utc::now().format("%H%M%S%.3f")));
    for (name, default) in [
        ("FULFILLMENT_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,fulfillment_projector=info,fulfillment_read_model=info"),
    ] {
        if !command.get_envs().any(|(set, _)| set == name) {
            command.env(name, default);
        }
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("binary starts");
    let server = Server { child, log };
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("service did not become ready on port {port}");
}

/// The command `fulfillment serve` on `port` with `data` and `config`, for tests that add to
/// its environment before [`serve_command`].
pub fn serve_with(port: u16, data: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fulfillment"));
    command.args(serve_args(port, data, config));
    command
}

/// Starts `fulfillment serve` on `port` and waits until it is ready.
pub async fn serve(port: u16, data: &Path, config: &Path) -> Server {
    serve_command(serve_with(port, data, config), port).await
}

/// Runs the binary to completion; returns (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulfillment"))
        .args(args)
        .env("FULFILLMENT_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends `body` to contoso's webhook on the service at `base`, signed now with its secret;
/// returns the status and the JSON answer.
pub async fn contoso_webhook(base: &str, id: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let body = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp();
    let r = reqwest::Client::new()
        .post(format!("{base}/webhooks/publishers/contoso"))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", super::sign(super::CONTOSO_SECRET, id, ts, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}
