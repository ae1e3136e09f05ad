//! The console's two cookies, read and written in one place: the session id
//! ([`SESSION_COOKIE`]) and the sign-in form's CSRF token ([`SIGN_IN_COOKIE`]).
//!
//! In: the request's `Cookie` headers, and whether the browser reached us over TLS (as the proxy
//! in front says). Out: a cookie's value (absent when sent twice), and `Set-Cookie` headers that
//! are always `HttpOnly; SameSite=Strict`, `Secure` behind TLS.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

/// Cookie holding the session id.
pub(super) const SESSION_COOKIE: &str = "fulfillment_console";

/// Cookie holding the sign-in form's CSRF token (before there is a session).
pub(super) const SIGN_IN_COOKIE: &str = "fulfillment_console_sign_in";

/// The value of cookie `name`. A name sent twice counts as absent: a second cookie of the same
/// name can only have been planted (by a sibling host, say) to switch the browser into another
/// session, and which one the browser sends first depends on paths the attacker chose.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Whether the browser reached us over TLS, which decides the cookies' `Secure` flag. The
/// service itself speaks plain HTTP, so TLS is always terminated by a proxy in front of it; the
/// proxy says so with `X-Forwarded-Proto` or `Forwarded: proto=` (the first, client-side hop
/// counts when proxies are chained).
pub(super) fn over_tls(headers: &HeaderMap) -> bool {
    let first_hop =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim);
    let forwarded_proto = first_hop("x-forwarded-proto");
    let forwarded = first_hop("forwarded").and_then(|hop| {
        hop.split(';').filter_map(|p| p.trim().split_once('=')).find(|(k, _)| k.eq_ignore_ascii_case("proto"))
    });
    forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || forwarded.is_some_and(|(_, p)| p.trim_matches('"').eq_ignore_ascii_case("https"))
}

/// Adds a `Set-Cookie` for `name` (`Max-Age=0` with an empty value removes it); `secure` when the
/// browser came over TLS ([`over_tls`]).
pub(super) fn set_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    if let Ok(v) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}
