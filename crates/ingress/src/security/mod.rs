//! Everything that decides who a caller is, in one reviewed place: bearer keys and tokens,
//! webhook signatures, the limits on failed attempts, and the console's sign-in sessions.
//!
//! In: what a request presents (an `Authorization: Bearer` key or token, the Standard Webhooks
//! headers over a body, a session cookie with its form's CSRF token) and the address it came
//! from. Out: an authenticated caller for the handler ([`bearer::PartnerCaller`],
//! [`bearer::PublisherCaller`], [`bearer::BillingCaller`], a verified webhook, a console
//! [`sessions::Session`]), or a 401/403/429 before any handler work.
//!
//! - [`bearer`]: the extractors that make authentication part of a handler's type.
//! - [`signature`]: Standard Webhooks HMAC signatures, checked in constant time.
//! - [`credentials`]: digests of configured keys, webhook secrets, fresh random tokens, and the
//!   constant-time comparisons of each.
//! - [`auth_failures`]: failed attempts counted per address and per credential (429 when barred).
//! - [`sessions`]: the console's server-side sessions and their CSRF tokens.
//!
//! The configured credentials are read with the rest of the configuration ([`crate::directory`]),
//! which keeps them as [`credentials`] types and asks [`credentials::owner_of`] who presented one.

pub mod auth_failures;
pub(crate) mod bearer;
pub mod credentials;
pub(crate) mod sessions;
pub mod signature;
