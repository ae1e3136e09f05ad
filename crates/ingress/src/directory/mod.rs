//! Who may call us and what they sell: partners, publishers, offers and billing consumers, as
//! configured, and the questions handlers ask of them (whose key is this, which plans does this
//! offer have, where is this publisher's landing page).
//!
//! In: the configuration's TOML text, read and checked once at start-up ([`config_file`]).
//! Out: a [`Directory`] the handlers share, which answers lookups by id and by credential.
//!
//! Credentials are kept only as SHA-256 digests (API keys, tokens) and compared in constant
//! time against every configured digest ([`crate::security::credentials`]), so neither a timing
//! difference nor a log line can leak them. Webhook secrets must stay usable as HMAC keys, so
//! they are kept decoded, and their `Debug` output is redacted.

mod config_file;

use crate::security::credentials::{owner_of, CredentialDigest, WebhookSecret};
use fulfillment_core::{Plan, Policy, Purchase};
use std::collections::HashMap;

/// A configuration that cannot be used, with the path of the offending entry.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct DirectoryError(pub String);

/// A CSP partner.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Partner id (the tenant id in Partner Center terms).
    pub id: String,
    api_keys: Vec<CredentialDigest>,
}

/// An ISV publisher.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Publisher id.
    pub id: String,
    /// Secrets accepted on webhooks; several during rotation.
    pub webhook_secrets: Vec<WebhookSecret>,
    api_tokens: Vec<CredentialDigest>,
    /// Landing page partners are sent to ("Go to publisher's site").
    pub site_url: String,
}

/// How a plan is shown to publishers (SaaS API `listAvailablePlans`); not used by any rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDisplay {
    /// Display name (defaults to the plan id).
    pub display_name: String,
    /// Description (defaults to empty).
    pub description: String,
}

/// An offer with its plans.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Offer id.
    pub id: String,
    /// Publisher selling it.
    pub publisher: String,
    /// Plans, by id.
    pub plans: Vec<Plan>,
    display: HashMap<String, PlanDisplay>,
}

impl Offer {
    /// A plan of this offer.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// How a plan of this offer is shown.
    pub fn display(&self, plan_id: &str) -> PlanDisplay {
        self.display
            .get(plan_id)
            .cloned()
            .unwrap_or_else(|| PlanDisplay { display_name: plan_id.to_owned(), description: String::new() })
    }
}

/// A billing system allowed to read the billing feed.
#[derive(Debug, Clone)]
pub struct BillingConsumer {
    /// Consumer id.
    pub id: String,
    api_keys: Vec<CredentialDigest>,
}

/// The whole directory.
#[derive(Debug, Clone)]
pub struct Directory {
    partners: Vec<Partner>,
    publishers: HashMap<String, Publisher>,
    offers: HashMap<String, Offer>,
    billing_consumers: Vec<BillingConsumer>,
    /// Commercial policy.
    pub policy: Policy,
    /// How long an authorization code can be resolved by the SaaS API before the
    /// subscription is active (24 hours, as the marketplace documents for its tokens).
    pub resolve_token_ttl: chrono::Duration,
}

/// Longest id the configuration may give a partner, publisher, offer, plan or billing consumer.
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` has the shape of a configured id: 1 to [`MAX_ID_LEN`] letters, digits, '-', '_'
/// or '.'. An id from a request path without it can name nothing we know, and is never logged
/// whole (see [`crate::log_safe`]).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Directory {
    /// The partner owning `api_key` (see [`owner_of`] for how keys are compared).
    pub fn partner_by_key(&self, api_key: &str) -> Option<&Partner> {
        owner_of(&self.partners, |p| &p.api_keys, api_key)
    }

    /// The billing consumer owning `api_key`.
    pub fn billing_consumer_by_key(&self, api_key: &str) -> Option<&BillingConsumer> {
        owner_of(&self.billing_consumers, |c| &c.api_keys, api_key)
    }

    /// The publisher owning an API token (for the SaaS Fulfillment API).
    pub fn publisher_by_token(&self, token: &str) -> Option<&Publisher> {
        owner_of(self.publishers.values(), |p| &p.api_tokens, token)
    }

    /// A publisher by id (an id of any other shape than [`is_valid_id`]'s names none).
    pub fn publisher(&self, id: &str) -> Option<&Publisher> {
        if !is_valid_id(id) {
            return None;
        }
        self.publishers.get(id)
    }

    /// An offer by id.
    pub fn offer(&self, id: &str) -> Option<&Offer> {
        self.offers.get(id)
    }

    /// The catalog plan a purchase is on now (its offer's plan of that id), if still configured.
    pub fn plan_of(&self, purchase: &Purchase) -> Option<&Plan> {
        self.offer(&purchase.offer_id).and_then(|o| o.plan(&purchase.plan_id))
    }

    /// Every offer, sorted by id (for listings and error messages).
    pub fn offers(&self) -> Vec<&Offer> {
        let mut offers: Vec<_> = self.offers.values().collect();
        offers.sort_by(|a, b| a.id.cmp(&b.id));
        offers
    }
}

#[cfg(test)]
mod tests {
    use super::config_file::tests::VALID;
    use super::*;

    #[test]
    fn a_valid_directory_resolves_credentials_by_digest() {
        let d = Directory::from_toml(VALID).unwrap();
        assert_eq!(d.partner_by_key("pk_test_partner_one_0001").unwrap().id, "partner-1");
        assert!(d.partner_by_key("pk_test_partner_one_0002").is_none());
        assert!(d.partner_by_key("").is_none());
        assert_eq!(d.billing_consumer_by_key("bk_test_billing_000001").unwrap().id, "billing");
        assert_eq!(d.publisher_by_token("pt_test_contoso_0000001").unwrap().id, "contoso");
        assert_eq!(d.offer("contoso-crm").unwrap().plan("standard").unwrap().max_quantity, 500);
        assert_eq!(d.policy, Policy::default());
    }

    #[test]
    fn ids_of_another_shape_name_no_publisher() {
        assert!(is_valid_id("contoso") && is_valid_id("a.b-c_D9") && is_valid_id(&"x".repeat(MAX_ID_LEN)));
        for id in ["", "x\n2026", "x\u{1b}[31m", "caf\u{e9}", "a b", "a/b", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(!is_valid_id(id), "{id:?}");
        }
        let d = Directory::from_toml(VALID).unwrap();
        assert!(d.publisher("contoso").is_some());
        assert!(d.publisher("contoso\n").is_none());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let d = Directory::from_toml(VALID).unwrap();
        let debug = format!("{d:?}");
        assert!(!debug.contains("pk_test_partner_one_0001"));
        assert!(!debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(debug.contains("<redacted>"));
    }
}
