//! Who may call us and what they sell: partners, publishers, offers and billing consumers, read
//! from the TOML configuration and checked once at start-up.
//!
//! Credentials are kept only as SHA-256 digests (API keys, tokens) and compared in constant
//! time against every configured digest, so neither a timing difference nor a log line can
//! leak them. Webhook secrets must stay usable as HMAC keys, so they are kept decoded, and
//! their `Debug` output is redacted.

use crate::security::credentials::{owner_of, CredentialDigest, WebhookSecret};
use fulfillment_core::{Plan, Policy, Term};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    partners: Vec<PartnerEntry>,
    #[serde(default)]
    publishers: Vec<PublisherEntry>,
    #[serde(default)]
    offers: Vec<OfferEntry>,
    #[serde(default)]
    billing_consumers: Vec<KeyedEntry>,
    #[serde(default)]
    policy: PolicyEntry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    id: String,
    api_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyedEntry {
    id: String,
    api_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherEntry {
    id: String,
    #[serde(default)]
    webhook_secrets: Vec<String>,
    #[serde(default)]
    api_tokens: Vec<String>,
    site_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferEntry {
    id: String,
    publisher: String,
    plans: Vec<PlanEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    id: String,
    min_quantity: u32,
    max_quantity: u32,
    terms: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    #[serde(default = "default_window_hours")]
    cancellation_window_hours: u32,
    #[serde(default = "default_resolve_token_ttl_hours")]
    resolve_token_ttl_hours: u32,
}

impl Default for PolicyEntry {
    fn default() -> Self {
        PolicyEntry {
            cancellation_window_hours: default_window_hours(),
            resolve_token_ttl_hours: default_resolve_token_ttl_hours(),
        }
    }
}

fn default_window_hours() -> u32 {
    72
}

fn default_resolve_token_ttl_hours() -> u32 {
    24
}

fn credentials(
    owner: &str,
    field: &str,
    keys: &[String],
    required: bool,
) -> Result<Vec<CredentialDigest>, DirectoryError> {
    if required && keys.is_empty() {
        return Err(DirectoryError(format!("{owner}: {field} must list at least one key")));
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| CredentialDigest::configured(k).map_err(|e| DirectoryError(format!("{owner}: {field}[{i}] {e}"))))
        .collect()
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

fn check_id(kind: &str, id: &str, seen: &mut HashSet<String>) -> Result<(), DirectoryError> {
    if !is_valid_id(id) {
        return Err(DirectoryError(format!(
            "{kind} id {id:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    if !seen.insert(id.to_owned()) {
        return Err(DirectoryError(format!("{kind} id {id:?} appears twice")));
    }
    Ok(())
}

impl Directory {
    /// Parses and validates a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, DirectoryError> {
        let file: DirectoryFile = toml::from_str(text).map_err(|e| DirectoryError(e.to_string()))?;
        let mut seen = HashSet::new();
        let mut partners = Vec::new();
        for p in file.partners {
            check_id("partner", &p.id, &mut seen)?;
            let owner = format!("partners.{}", p.id);
            partners.push(Partner { api_keys: credentials(&owner, "api_keys", &p.api_keys, true)?, id: p.id });
        }
        let mut seen = HashSet::new();
        let mut publishers = HashMap::new();
        for p in file.publishers {
            check_id("publisher", &p.id, &mut seen)?;
            let owner = format!("publishers.{}", p.id);
            let webhook_secrets = p
                .webhook_secrets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    WebhookSecret::parse(s).map_err(|e| DirectoryError(format!("{owner}: webhook_secrets[{i}] {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !(p.site_url.starts_with("https://") || p.site_url.starts_with("http://"))
                || p.site_url.contains(char::is_whitespace)
            {
                return Err(DirectoryError(format!("{owner}: site_url must be an http(s) URL")));
            }
            let publisher = Publisher {
                api_tokens: credentials(&owner, "api_tokens", &p.api_tokens, false)?,
                webhook_secrets,
                site_url: p.site_url,
                id: p.id.clone(),
            };
            publishers.insert(p.id, publisher);
        }
        let mut seen = HashSet::new();
        let mut offers = HashMap::new();
        for o in file.offers {
            check_id("offer", &o.id, &mut seen)?;
            if !publishers.contains_key(&o.publisher) {
                return Err(DirectoryError(format!("offers.{}: publisher {:?} is not configured", o.id, o.publisher)));
            }
            if o.plans.is_empty() {
                return Err(DirectoryError(format!("offers.{}: needs at least one plan", o.id)));
            }
            let mut plan_ids = HashSet::new();
            let mut plans = Vec::new();
            let mut display = HashMap::new();
            for p in o.plans {
                check_id(&format!("offers.{} plan", o.id), &p.id, &mut plan_ids)?;
                if p.min_quantity == 0 || p.min_quantity > p.max_quantity {
                    return Err(DirectoryError(format!(
                        "offers.{}.plans.{}: need 1 <= min_quantity <= max_quantity",
                        o.id, p.id
                    )));
                }
                let terms = p
                    .terms
                    .iter()
                    .map(|t| {
                        t.parse::<Term>().map_err(|e| DirectoryError(format!("offers.{}.plans.{}: {e}", o.id, p.id)))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if terms.is_empty() {
                    return Err(DirectoryError(format!("offers.{}.plans.{}: needs at least one term", o.id, p.id)));
                }
                display.insert(
                    p.id.clone(),
                    PlanDisplay {
                        display_name: p.display_name.unwrap_or_else(|| p.id.clone()),
                        description: p.description.unwrap_or_default(),
                    },
                );
                plans.push(Plan { id: p.id, min_quantity: p.min_quantity, max_quantity: p.max_quantity, terms });
            }
            offers.insert(o.id.clone(), Offer { id: o.id, publisher: o.publisher, plans, display });
        }
        let mut seen = HashSet::new();
        let mut billing_consumers = Vec::new();
        for c in file.billing_consumers {
            check_id("billing consumer", &c.id, &mut seen)?;
            let owner = format!("billing_consumers.{}", c.id);
            billing_consumers
                .push(BillingConsumer { api_keys: credentials(&owner, "api_keys", &c.api_keys, true)?, id: c.id });
        }
        if file.policy.cancellation_window_hours == 0 {
            return Err(DirectoryError("policy.cancellation_window_hours must be at least 1".into()));
        }
        if file.policy.resolve_token_ttl_hours == 0 {
            return Err(DirectoryError("policy.resolve_token_ttl_hours must be at least 1".into()));
        }
        let policy =
            Policy { cancellation_window: chrono::Duration::hours(file.policy.cancellation_window_hours.into()) };
        let resolve_token_ttl = chrono::Duration::hours(file.policy.resolve_token_ttl_hours.into());
        Ok(Directory { partners, publishers, offers, billing_consumers, policy, resolve_token_ttl })
    }

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

    /// Every offer, sorted by id (for listings and error messages).
    pub fn offers(&self) -> Vec<&Offer> {
        let mut offers: Vec<_> = self.offers.values().collect();
        offers.sort_by(|a, b| a.id.cmp(&b.id));
        offers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
        [[partners]]
        id = "partner-1"
        api_keys = ["pk_test_partner_one_0001"]
        [[publishers]]
        id = "contoso"
        webhook_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        api_tokens = ["pt_test_contoso_0000001"]
        site_url = "https://contoso.example/landing"
        [[offers]]
        id = "contoso-crm"
        publisher = "contoso"
        plans = [{ id = "standard", min_quantity = 1, max_quantity = 500, terms = ["P1M", "P1Y"] }]
        [[billing_consumers]]
        id = "billing"
        api_keys = ["bk_test_billing_000001"]
    "#;

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

    #[test]
    fn invalid_directories_name_the_entry() {
        let cases = [
            (VALID.replace("publisher = \"contoso\"", "publisher = \"fabrikam\""), "fabrikam"),
            (VALID.replace("whsec_MfKQ", "whsec_!!"), "webhook_secrets[0]"),
            (VALID.replace("pk_test_partner_one_0001", "short"), "shorter than 16"),
            (VALID.replace("max_quantity = 500", "max_quantity = 0"), "min_quantity <= max_quantity"),
            (VALID.replace("\"P1Y\"", "\"P7Y\""), "unknown term"),
            (VALID.replace("https://contoso", "ftp://contoso"), "site_url"),
            (
                format!("{VALID}\n[[partners]]\nid = \"partner-1\"\napi_keys = [\"pk_test_partner_one_0009\"]"),
                "appears twice",
            ),
            (VALID.replace("site_url", "site_uri"), "site_uri"),
        ];
        for (text, expected) in cases {
            let err = Directory::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }
}
