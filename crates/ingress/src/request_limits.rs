//! Bounds on what request bodies can make the server hold, whoever sends them (invariant 7):
//! bytes in memory across all requests in flight, and time to read one body.
//!
//! In: every request, through [`limit_bodies`] (a middleware on the whole router).
//! Out: the request with its body wrapped in a [`LimitedBody`]; a 413 at once when the declared
//! `Content-Length` is over [`MAX_BODY_BYTES`].
//!
//! A body takes its bytes from one shared budget ([`BodyLimits`]) as they are read (the
//! declared length at the first read, more as a body of unknown length grows), and gives them
//! back when its request's response is ready. When the budget is spent the read fails with
//! [`BodyLimitError::Busy`] (503 with `Retry-After`); a body not complete within the body-read
//! timeout fails with [`BodyLimitError::Timeout`] (408). A handler that refuses a request before
//! reading its body (an unsigned webhook) spends nothing and waits for nothing: the body is
//! never read, and hyper closes the connection after the answer.

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why reading a body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyLimitError {
    /// The bytes of all bodies in flight reached the budget.
    #[error("the server holds as many request bytes as it may; retry shortly")]
    Busy,
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} seconds", .0.as_secs())]
    Timeout(Duration),
    /// The body is longer than any request may be.
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

impl From<BodyLimitError> for ApiError {
    fn from(e: BodyLimitError) -> Self {
        match e {
            BodyLimitError::Busy => ApiError::Overloaded(e.to_string()),
            BodyLimitError::Timeout(_) => ApiError::RequestTimeout(e.to_string()),
            BodyLimitError::TooLarge => ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES },
        }
    }
}

/// The body budget shared by every request of one router, and the body-read timeout.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    memory: Arc<Semaphore>,
    read_timeout: Duration,
}

impl BodyLimits {
    /// Room for `max_bytes_in_flight` body bytes (at least one largest body), each body read
    /// within `read_timeout`.
    pub fn new(max_bytes_in_flight: usize, read_timeout: Duration) -> Self {
        let bytes = max_bytes_in_flight.clamp(MAX_BODY_BYTES, Semaphore::MAX_PERMITS);
        BodyLimits { memory: Arc::new(Semaphore::new(bytes)), read_timeout }
    }

    /// Body bytes not taken by requests in flight.
    pub fn available_bytes(&self) -> usize {
        self.memory.available_permits()
    }
}

impl Default for BodyLimits {
    /// 32 MiB in flight, 30 seconds per body.
    fn default() -> Self {
        BodyLimits::new(32 * 1024 * 1024, Duration::from_secs(30))
    }
}

/// The middleware: refuses a declared length over the limit, wraps the body, and holds the
/// bytes it took until the response is ready.
pub async fn limit_bodies(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::from(BodyLimitError::TooLarge).into_response();
    }
    if declared == Some(0) || (declared.is_none() && !request.headers().contains_key(header::TRANSFER_ENCODING)) {
        return next.run(request).await;
    }
    let taken = Arc::new(Mutex::new(None));
    let (parts, body) = request.into_parts();
    let limited = LimitedBody {
        inner: body,
        limits: limits.clone(),
        declared: declared.map(|n| n as usize),
        taken: taken.clone(),
        reserved: 0,
        received: 0,
        deadline: Box::pin(tokio::time::sleep(limits.read_timeout)),
    };
    let response = next.run(Request::from_parts(parts, Body::new(limited))).await;
    drop(taken);
    response
}

/// A request body that draws on the shared budget as it is read and fails past its deadline.
struct LimitedBody {
    inner: Body,
    limits: BodyLimits,
    declared: Option<usize>,
    /// The bytes taken from the budget, shared with the middleware that returns them.
    taken: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    reserved: usize,
    received: usize,
    deadline: Pin<Box<Sleep>>,
}

impl LimitedBody {
    /// Takes enough of the budget for `received + incoming` bytes: the declared length at the
    /// first read, then whatever a body of unknown length grows by.
    fn reserve(&mut self, incoming: usize) -> Result<(), BodyLimitError> {
        let needed = self.received + incoming;
        if needed > MAX_BODY_BYTES {
            return Err(BodyLimitError::TooLarge);
        }
        let target = self.declared.unwrap_or(0).max(needed).min(MAX_BODY_BYTES);
        if target <= self.reserved {
            return Ok(());
        }
        let more = u32::try_from(target - self.reserved).map_err(|_| BodyLimitError::TooLarge)?;
        let permit = self.limits.memory.clone().try_acquire_many_owned(more).map_err(|_| BodyLimitError::Busy)?;
        let mut taken = self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match taken.as_mut() {
            Some(held) => held.merge(permit),
            None => *taken = Some(permit),
        }
        self.reserved = target;
        Ok(())
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.reserved == 0 {
            // Taken before the first byte is read, so a full budget refuses without reading.
            if let Err(e) = this.reserve(0) {
                return Poll::Ready(Some(Err(axum::Error::new(e))));
            }
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyLimitError::Timeout(this.limits.read_timeout)))));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(e) = this.reserve(data.len()) {
                return Poll::Ready(Some(Err(axum::Error::new(e))));
            }
            this.received += data.len();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`BodyLimitError`] behind a body-buffering failure, if one caused it.
pub fn cause(error: &(dyn std::error::Error + 'static)) -> Option<BodyLimitError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(limit) = e.downcast_ref::<BodyLimitError>() {
            return Some(*limit);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    async fn read(request: Request) -> Response {
        match axum::body::to_bytes(request.into_body(), usize::MAX).await {
            Ok(bytes) => bytes.len().to_string().into_response(),
            Err(e) => ApiError::from(cause(&e).expect("a limit error")).into_response(),
        }
    }

    fn app(limits: BodyLimits) -> Router {
        Router::new()
            .route("/", post(read))
            .route("/refuse", post(|| async { axum::http::StatusCode::UNAUTHORIZED }))
            .layer(axum::middleware::from_fn_with_state(limits, limit_bodies))
    }

    /// A body whose chunks the test sends when it wants.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
        });
        (tx, Body::from_stream(chunks))
    }

    fn post_body(uri: &str, body: Body, length: Option<usize>) -> Request {
        let mut builder = Request::post(uri);
        if let Some(n) = length {
            builder = builder.header(header::CONTENT_LENGTH, n);
        } else {
            builder = builder.header(header::TRANSFER_ENCODING, "chunked");
        }
        builder.body(body).unwrap()
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let response = app(BodyLimits::default())
            .oneshot(post_body("/", Body::from("x"), Some(MAX_BODY_BYTES + 1)))
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
    }

    #[tokio::test]
    async fn bytes_are_taken_while_a_request_runs_and_given_back_after() {
        let limits = BodyLimits::new(MAX_BODY_BYTES, Duration::from_secs(5));
        let (sender, body) = channel_body();
        let first = tokio::spawn(app(limits.clone()).oneshot(post_body("/", body, Some(MAX_BODY_BYTES))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(limits.available_bytes(), 0, "the declared length is taken before the first byte is read");
        sender.send(Bytes::from_static(b"partial")).await.unwrap();
        // A second body finds the budget spent: 503, without waiting.
        let second = app(limits.clone()).oneshot(post_body("/", Body::from("{}"), Some(2))).await.unwrap();
        assert_eq!(second.status(), 503);
        assert!(second.headers().contains_key(header::RETRY_AFTER));
        // A request refused without reading its body takes nothing.
        let refused = app(limits.clone()).oneshot(post_body("/refuse", Body::from("{}"), Some(2))).await.unwrap();
        assert_eq!(refused.status(), 401);
        drop(sender);
        let _ = first.await.unwrap();
        assert_eq!(limits.available_bytes(), MAX_BODY_BYTES, "given back when the response is ready");
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_takes_bytes_as_it_grows_and_stops_at_the_limit() {
        let limits = BodyLimits::new(2 * MAX_BODY_BYTES, Duration::from_secs(5));
        let chunks =
            vec![Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; MAX_BODY_BYTES])), Ok(Bytes::from_static(b"b"))];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let response = app(limits.clone()).oneshot(post_body("/", body, None)).await.unwrap();
        assert_eq!(response.status(), 413);
        assert_eq!(limits.available_bytes(), 2 * MAX_BODY_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_past_the_read_timeout_is_a_408() {
        let limits = BodyLimits::new(MAX_BODY_BYTES, Duration::from_secs(30));
        let (sender, body) = channel_body();
        let pending = tokio::spawn(app(limits.clone()).oneshot(post_body("/", body, Some(100))));
        sender.send(Bytes::from_static(b"slow")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(31)).await;
        let response = pending.await.unwrap().unwrap();
        assert_eq!(response.status(), 408);
        assert_eq!(limits.available_bytes(), MAX_BODY_BYTES);
    }
}
