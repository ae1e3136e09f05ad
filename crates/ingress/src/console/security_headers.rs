//! The headers every console response carries, whatever produced it: never cached (`no-store`),
//! a Content-Security-Policy that allows only our own stylesheet and forms posting to us, and no
//! framing, sniffing or cross-site referrers.
//!
//! In: any response of the console's routes (a layer on its router). Out: the same response with
//! these headers set.

use axum::http::{header, HeaderValue};
use axum::response::Response;

/// Sets the console's security headers on `response`.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
