//! The HTTP/1.1 server loop: accepts connections and serves the router on each, bounding what a
//! client that connects and then stalls can hold (invariant 7).
//!
//! In: a bound [`TcpListener`], the router, [`ConnectionLimits`], the shutdown token.
//! Out: connections served by hyper, each carrying its peer address (`ConnectInfo`) for the
//! per-address rate limits.
//!
//! What it keeps bounded:
//! - time: a request head must arrive within the header-read timeout, a kept-alive connection
//!   is closed after the idle timeout ([`connections`]); reading a body is bounded by the
//!   body-read timeout in [`crate::request_limits`];
//! - connections: at most a cap, kept below the open-file limit ([`open_files`]); at the cap
//!   the connection waiting the longest outside a request is shed for the new one, so one
//!   client holding half-sent requests cannot lock everyone else out;
//! - accept errors (out of descriptors): the loop sheds one waiting connection and backs off
//!   instead of spinning.
//!
//! On shutdown it stops accepting at once, lets requests in flight finish (kept-alive
//! connections close after their current request), and returns when every connection ended.

mod connections;
mod open_files;
mod watched_stream;

pub use open_files::{connection_cap, raise_open_file_limit};

use axum::extract::ConnectInfo;
use axum::Router;
use connections::{Connection, Phase, PhaseTimeouts, Registry};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};
use watched_stream::WatchedStream;

/// Largest request head (request line and headers) a connection may buffer; hyper answers 431
/// beyond it. Every connection may hold this much while its head arrives.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest pause between accept attempts while the process is out of descriptors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How long connections may wait, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a request head may take to arrive, from a connection's accept or from the first
    /// byte of its next request.
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most open connections (further capped below the open-file limit).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cap = connection_cap(limits.max_connections);
    info!(max_connections = cap, "accepting connections");
    let registry = Registry::new();
    let timeouts = PhaseTimeouts { head: limits.header_read_timeout, idle: limits.idle_timeout };
    let connections = TaskTracker::new();
    let sweeper_stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweep(registry.clone(), timeouts, sweeper_stop.clone()));
    let mut backoff = Duration::ZERO;
    let mut refusals = RateLimitedWarning::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                if !registry.make_room(cap) {
                    refusals.warn("connection refused: every connection is inside a request");
                    continue;
                }
                let registration = registry.register();
                let (app, shutdown) = (app.clone(), shutdown.clone());
                connections.spawn(async move {
                    serve_connection(stream, peer, app, registration.connection.clone(), shutdown).await;
                    drop(registration);
                });
            }
            Err(e) if is_per_connection(&e) => debug!(error = %e, "a connection failed before it was accepted"),
            Err(e) => {
                // Out of descriptors (or memory): free one by shedding a waiting connection, and
                // wait before trying again so the loop does not spin on the same error.
                registry.make_room(registry.len());
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                refusals.warn_with(&e, backoff);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    sweeper_stop.cancel();
    let _ = sweeper.await;
    Ok(())
}

/// One connection: hyper's HTTP/1.1 state machine on the watched stream, until it ends, the
/// registry closes it (overdue or shed), or shutdown asks it to finish its request.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    connection: Arc<Connection>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WatchedStream::new(stream, connection.clone()));
    let in_request = connection.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        in_request.enter(Phase::Busy);
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let (app, connection) = (app.clone(), in_request.clone());
        async move {
            let response = app.oneshot(request).await;
            connection.enter(Phase::Idle);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_HEAD_BYTES);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = connection.close.cancelled() => {
                debug!(%peer, "connection closed: overdue, or shed at the connection cap");
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Closes overdue connections a few times per shortest timeout.
async fn sweep(registry: Arc<Registry>, timeouts: PhaseTimeouts, stop: CancellationToken) {
    let tick = (timeouts.head.min(timeouts.idle) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {
                let closed = registry.close_overdue(timeouts);
                if closed > 0 {
                    debug!(closed, "closed connections past their header-read or idle timeout");
                }
            }
        }
    }
}

/// Accept errors that concern one connection only (the peer gave up before we accepted it).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted)
}

/// A warning at most once every ten seconds, with how many were suppressed.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl RateLimitedWarning {
    fn due(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(10)) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    fn warn(&mut self, message: &'static str) {
        if let Some(suppressed) = self.due() {
            warn!(suppressed, "{message}");
        }
    }

    fn warn_with(&mut self, error: &std::io::Error, backoff: Duration) {
        if let Some(suppressed) = self.due() {
            warn!(%error, backoff_ms = backoff.as_millis() as u64, suppressed, "accept failed; backing off");
        }
    }
}
