//! Slow and greedy clients against the real binary: what an unauthenticated client can make the
//! server hold (memory, connections, time) stays bounded, and everyone else is still served.
//!
//! - 1,000 sockets each declaring a 1 MiB webhook body and sending all but its last byte, then
//!   holding: once without the signature headers (refused before the body is read), once with
//!   well-formed headers and a fresh timestamp but a forged signature (read within the shared
//!   body budget, the rest answered 503). RSS must rise by less than 64 MiB, and the bodies'
//!   memory must be given back after the sockets close (RSS falls by at least half the rise).
//! - 1,100 half-sent requests held by one client against a process limited to 1,024 open files:
//!   another client's `/healthz` and signed webhook are answered within the header-read
//!   timeout plus one second.
//! - The header-read, idle and body-read timeouts each drop a stalled client.
//!
//! The attacks run one at a time (they share the machine with the other suites).

mod common;

use common::process::{free_port, serve_command, serve_with, service_files, Server, ServiceFiles};
use common::{TestApp, PARTNER_1_KEY};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One attack at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const MIB: usize = 1024 * 1024;

/// Resident memory of a process, in bytes (`VmRSS`).
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The test process itself holds over a thousand sockets.
fn raise_own_open_file_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// Many connections held open by one client until [`Attack::end`].
struct Attack {
    stop: CancellationToken,
    sockets: JoinSet<()>,
    connected: usize,
}

impl Attack {
    /// Opens `count` connections; each sends `head(i)` and then `body`, and holds the
    /// connection. Returns once every connection was attempted and its head sent.
    async fn start(port: u16, count: usize, head: impl Fn(usize) -> String, body: &[u8]) -> Attack {
        let body: Arc<[u8]> = body.into();
        let stop = CancellationToken::new();
        let mut sockets = JoinSet::new();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(count);
        for i in 0..count {
            let (head, body, stop, ready) = (head(i), body.clone(), stop.clone(), ready_tx.clone());
            sockets.spawn(async move {
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                    let _ = ready.send(false).await;
                    return;
                };
                let sent = stream.write_all(head.as_bytes()).await.is_ok();
                let _ = ready.send(sent).await;
                // A server that refuses the body closes the socket and the write fails, as it
                // should; either way the client keeps its end until the attack ends.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = stream.write_all(&body) => {}
                }
                stop.cancelled().await;
            });
        }
        let mut connected = 0;
        for _ in 0..count {
            connected += usize::from(ready_rx.recv().await.unwrap_or(false));
        }
        Attack { stop, sockets, connected }
    }

    async fn end(mut self) {
        self.stop.cancel();
        while self.sockets.join_next().await.is_some() {}
    }
}

/// The highest RSS of `pid` over `period`, sampled every 100 ms.
async fn peak_rss(pid: u32, period: Duration) -> usize {
    let until = Instant::now() + period;
    let mut peak = rss(pid);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss(pid));
    }
    peak
}

async fn ready(port: u16) -> bool {
    matches!(reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await, Ok(r) if r.status().is_success())
}

/// The head of a 1 MiB webhook, with or without well-formed signature headers.
fn webhook_head(with_signature_headers: bool, i: usize) -> String {
    let signature = if with_signature_headers {
        let ts = chrono::Utc::now().timestamp();
        format!("webhook-id: attack-{i}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: v1,{}\r\n", "A".repeat(44))
    } else {
        String::new()
    };
    format!(
        "POST /webhooks/publishers/contoso HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {MIB}\r\n{signature}\r\n"
    )
}

/// Runs one 1,000-socket attack; returns (RSS before, peak while held, after the sockets closed).
async fn slow_body_attack(server: &Server, port: u16, with_signature_headers: bool) -> (usize, usize, usize) {
    let pid = server.child.id();
    let before = rss(pid);
    let body = vec![b'x'; MIB - 1];
    let attack = Attack::start(port, 1000, |i| webhook_head(with_signature_headers, i), &body).await;
    assert!(attack.connected >= 900, "the attack connected only {} sockets", attack.connected);
    let peak = peak_rss(pid, Duration::from_secs(3)).await;
    assert!(ready(port).await, "the service answers others during the attack");
    attack.end().await;
    // Give the server a moment to notice the closed sockets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (before, peak, rss(pid))
}

#[tokio::test]
async fn a_thousand_slow_one_mebibyte_webhooks_do_not_pin_memory() {
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_own_open_file_limit();
    let files = service_files();
    let port = free_port();
    let server = common::process::serve(port, &files.data, &files.config).await;
    for with_headers in [false, true] {
        let (before, peak, after) = slow_body_attack(&server, port, with_headers).await;
        let (rise, left) = ((peak.saturating_sub(before)) / MIB, (after.saturating_sub(before)) / MIB);
        eprintln!("signature headers {with_headers}: RSS {} MiB, peak +{rise} MiB, after +{left} MiB", before / MIB);
        assert!(rise < 64, "RSS rose by {rise} MiB under the attack (signature headers: {with_headers})");
        if with_headers {
            // The bodies read within the budget are given back when the sockets close. (Without
            // the headers no body is read at all; what the connections themselves took, a few
            // MiB, stays with the allocator for the next ones.)
            let fell = peak.saturating_sub(after) / MIB;
            assert!(fell * 2 >= rise, "RSS fell by only {fell} of {rise} MiB after the sockets closed (+{left} MiB)");
        }
    }
    let app = TestApp::at(&format!("http://127.0.0.1:{port}"));
    let (_, sub) = app.purchase("cust-slow", 5).await;
    app.licenses_assigned("after-the-attack", &sub, 5).await.expect(200);
}

/// `fulfillment serve` under an open-file limit of 1,024 (soft and hard: `ulimit -n` in the
/// child before it becomes the service).
fn serve_with_open_file_limit(files: &ServiceFiles, port: u16, limit: u32) -> Command {
    let service = serve_with(port, &files.data, &files.config);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(service.get_program())
        .args(service.get_args());
    command
}

#[tokio::test]
async fn held_connections_do_not_lock_others_out_under_a_low_open_file_limit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_own_open_file_limit();
    let files = service_files();
    let port = free_port();
    let server = serve_command(serve_with_open_file_limit(&files, port, 1024), port).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    assert!(
        limits.lines().any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("1024")),
        "the service runs with 1,024 files: {limits}"
    );
    let base = format!("http://127.0.0.1:{port}");
    let (_, sub) = TestApp::at(&base).purchase("cust-slow", 5).await;

    let half_sent = |_| "POST /webhooks/publishers/contoso HTTP/1.1\r\nhost: 127.0.0.1\r\n".to_owned();
    let attack = Attack::start(port, 1100, half_sent, b"").await;
    assert!(attack.connected >= 1000, "the attack connected only {} sockets", attack.connected);
    let header_read_timeout = Duration::from_secs(10);

    let started = Instant::now();
    let health =
        tokio::time::timeout(header_read_timeout + Duration::from_secs(1), reqwest::get(format!("{base}/healthz")))
            .await
            .expect("/healthz answered within the header-read timeout plus one second")
            .unwrap();
    assert_eq!(health.status(), 200);
    let health_took = started.elapsed();

    let started = Instant::now();
    // A client of its own, so the webhook opens a new connection as the health check did.
    let publisher = TestApp::at(&base);
    let webhook = tokio::time::timeout(
        header_read_timeout + Duration::from_secs(1),
        publisher.licenses_assigned("during-the-attack", &sub, 5),
    )
    .await
    .expect("the webhook answered within the header-read timeout plus one second");
    webhook.expect(200);
    eprintln!("under 1,100 held connections: /healthz in {health_took:?}, webhook in {:?}", started.elapsed());
    attack.end().await;
}

/// Reads until the server closes the connection (EOF or reset); the time it took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn stalled_heads_idle_connections_and_slow_bodies_are_dropped() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let files = service_files();
    let port = free_port();
    let mut command = serve_with(port, &files.data, &files.config);
    command.args(["--header-read-timeout", "1", "--idle-timeout", "3", "--body-read-timeout", "2"]);
    let _server = serve_command(command, port).await;

    // A head that never ends: closed after the header-read timeout.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let took = until_closed(&mut stalled, Duration::from_secs(5)).await.expect("a stalled head is dropped");
    assert!(took >= Duration::from_millis(900), "not before the header-read timeout: {took:?}");

    // A kept-alive connection: open while idle for less than the idle timeout (longer than the
    // header-read timeout), closed after it.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut reply = vec![0u8; 4096];
    for _ in 0..2 {
        kept.write_all(request).await.unwrap();
        let n = kept.read(&mut reply).await.unwrap();
        assert!(String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 200"), "served while idle < timeout");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let took = until_closed(&mut kept, Duration::from_secs(5)).await.expect("an idle connection is dropped");
    assert!(took >= Duration::from_millis(1000), "idle timeout, not the header-read timeout: {took:?}");

    // A body that stops arriving: 408 problem+json after the body-read timeout, then closed.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(
        format!(
            "POST /v1/customers/c/orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {PARTNER_1_KEY}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"lineItems\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "not before the body-read timeout");
}
