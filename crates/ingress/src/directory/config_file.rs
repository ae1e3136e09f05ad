//! The configuration file's directory entries (`[[partners]]`, `[[publishers]]`, `[[offers]]`,
//! `[[billing_consumers]]`, `[policy]`) and the checks they pass before the service starts.
//!
//! In: the TOML text. Out: a [`Directory`], or a [`DirectoryError`] naming the offending entry
//! (`partners.<id>: api_keys[0] is shorter than 16 characters`). Unknown keys are refused, ids
//! must have the shape [`is_valid_id`] accepts and be unique, offers must name a configured
//! publisher, and credentials are turned into their digests here, so nothing after start-up
//! holds a configured key.

use super::{is_valid_id, BillingConsumer, Directory, DirectoryError, Offer, Partner, PlanDisplay, Publisher};
use crate::security::credentials::{CredentialDigest, WebhookSecret};
use fulfillment_core::{LicensesRequired, MeteringDimension, Plan, Policy, Term};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    partners: Vec<KeyedEntry>,
    #[serde(default)]
    publishers: Vec<PublisherEntry>,
    #[serde(default)]
    offers: Vec<OfferEntry>,
    #[serde(default)]
    billing_consumers: Vec<KeyedEntry>,
    #[serde(default)]
    policy: PolicyEntry,
}

/// A partner or a billing consumer: an id and its API keys.
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
    /// Custom meters of the plan (Metering Service API).
    #[serde(default)]
    metering_dimensions: Vec<DimensionEntry>,
}

/// `{ id = "apicalls", display_name = "API calls", unit = "1000 calls" }` in a plan's
/// `metering_dimensions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionEntry {
    id: String,
    display_name: String,
    unit: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    #[serde(default = "default_window_hours")]
    cancellation_window_hours: u32,
    /// Per-term overrides of the window, keyed by the term's ISO 8601 spelling (`P1Y = 168`).
    #[serde(default)]
    cancellation_window_hours_by_term: HashMap<String, u32>,
    #[serde(default = "default_resolve_token_ttl_hours")]
    resolve_token_ttl_hours: u32,
    #[serde(default = "default_days")]
    activation_deadline_days: u32,
    #[serde(default = "default_days")]
    suspension_grace_days: u32,
    #[serde(default)]
    licenses_required: LicensesRequired,
}

impl Default for PolicyEntry {
    fn default() -> Self {
        PolicyEntry {
            cancellation_window_hours: default_window_hours(),
            cancellation_window_hours_by_term: HashMap::new(),
            resolve_token_ttl_hours: default_resolve_token_ttl_hours(),
            activation_deadline_days: default_days(),
            suspension_grace_days: default_days(),
            licenses_required: LicensesRequired::default(),
        }
    }
}

impl PolicyEntry {
    /// The policy, once every value is checked.
    fn policy(&self) -> Result<Policy, DirectoryError> {
        let at_least_one = |key: &str, value: u32| {
            if value == 0 {
                return Err(DirectoryError(format!("policy.{key} must be at least 1")));
            }
            Ok(())
        };
        at_least_one("cancellation_window_hours", self.cancellation_window_hours)?;
        at_least_one("activation_deadline_days", self.activation_deadline_days)?;
        at_least_one("suspension_grace_days", self.suspension_grace_days)?;
        let mut policy = Policy {
            cancellation_window: chrono::Duration::hours(self.cancellation_window_hours.into()),
            cancellation_window_by_term: [None; Term::ALL.len()],
            activation_deadline: chrono::Duration::days(self.activation_deadline_days.into()),
            suspension_grace: chrono::Duration::days(self.suspension_grace_days.into()),
            licenses_required: self.licenses_required,
        };
        for (term, hours) in &self.cancellation_window_hours_by_term {
            let key = format!("cancellation_window_hours_by_term.{term}");
            let term: Term = term.parse().map_err(|e| DirectoryError(format!("policy.{key}: {e}")))?;
            at_least_one(&key, *hours)?;
            policy.set_cancellation_window(term, chrono::Duration::hours((*hours).into()));
        }
        Ok(policy)
    }
}

fn default_days() -> u32 {
    30
}

fn default_window_hours() -> u32 {
    72
}

fn default_resolve_token_ttl_hours() -> u32 {
    24
}

/// The digests of `keys`, each long enough; `required`: at least one.
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

/// A plan's metering dimensions: ids of the usual id shape, unique within the plan, with a
/// display name and a unit.
fn metering_dimensions(
    offer: &str,
    plan: &str,
    entries: Vec<DimensionEntry>,
) -> Result<Vec<MeteringDimension>, DirectoryError> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .map(|d| {
            check_id(&format!("offers.{offer}.plans.{plan} metering dimension"), &d.id, &mut seen)?;
            for (key, value) in [("display_name", &d.display_name), ("unit", &d.unit)] {
                if value.trim().is_empty() || value.chars().count() > 100 {
                    return Err(DirectoryError(format!(
                        "offers.{offer}.plans.{plan}.metering_dimensions.{}: {key} must be 1 to 100 characters",
                        d.id
                    )));
                }
            }
            Ok(MeteringDimension { id: d.id, display_name: d.display_name, unit: d.unit })
        })
        .collect()
}

/// Checks an id's shape and that it is the first of its kind.
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
                let metering_dimensions = metering_dimensions(&o.id, &p.id, p.metering_dimensions)?;
                plans.push(Plan {
                    id: p.id,
                    min_quantity: p.min_quantity,
                    max_quantity: p.max_quantity,
                    terms,
                    metering_dimensions,
                });
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
        if file.policy.resolve_token_ttl_hours == 0 {
            return Err(DirectoryError("policy.resolve_token_ttl_hours must be at least 1".into()));
        }
        let policy = file.policy.policy()?;
        let resolve_token_ttl = chrono::Duration::hours(file.policy.resolve_token_ttl_hours.into());
        Ok(Directory { partners, publishers, offers, billing_consumers, policy, resolve_token_ttl })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) const VALID: &str = r#"
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
            (format!("{VALID}\n[policy]\nactivation_deadline_days = 0"), "policy.activation_deadline_days"),
            (
                VALID.replace("terms = [\"P1M\", \"P1Y\"] }", "terms = [\"P1M\"], metering_dimensions = [{ id = \"a\", display_name = \"A\", unit = \"u\" }, { id = \"a\", display_name = \"B\", unit = \"u\" }] }"),
                "offers.contoso-crm.plans.standard metering dimension",
            ),
            (
                VALID.replace("terms = [\"P1M\", \"P1Y\"] }", "terms = [\"P1M\"], metering_dimensions = [{ id = \"a\", display_name = \"\", unit = \"u\" }] }"),
                "metering_dimensions.a: display_name",
            ),
            (
                VALID.replace("terms = [\"P1M\", \"P1Y\"] }", "terms = [\"P1M\"], metering_dimensions = [{ id = \"a\", display_name = \"A\" }] }"),
                "unit",
            ),
            (format!("{VALID}\n[policy]\nlicenses_required = \"some\""), "licenses_required"),
            (
                format!("{VALID}\n[policy.cancellation_window_hours_by_term]\nP7Y = 1"),
                "policy.cancellation_window_hours_by_term.P7Y: unknown term",
            ),
        ];
        for (text, expected) in cases {
            let err = Directory::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }

    #[test]
    fn plans_list_their_metering_dimensions() {
        let text = VALID.replace(
            "terms = [\"P1M\", \"P1Y\"] }",
            "terms = [\"P1M\"], metering_dimensions = [{ id = \"apicalls\", display_name = \"API calls\", unit = \"1000 calls\" }] }",
        );
        let directory = Directory::from_toml(&text).unwrap();
        let plan = directory.offer("contoso-crm").unwrap().plan("standard").unwrap();
        assert_eq!(
            plan.metering_dimension("apicalls"),
            Some(&MeteringDimension {
                id: "apicalls".into(),
                display_name: "API calls".into(),
                unit: "1000 calls".into()
            })
        );
        let without = Directory::from_toml(VALID).unwrap();
        assert!(without.offer("contoso-crm").unwrap().plan("standard").unwrap().metering_dimensions.is_empty());
    }

    #[test]
    fn the_policy_table_sets_deadlines_the_license_rule_and_windows_per_term() {
        let text = format!(
            "{VALID}\n[policy]\nactivation_deadline_days = 14\nsuspension_grace_days = 7\nlicenses_required = \"any\"\n\
             [policy.cancellation_window_hours_by_term]\nP1Y = 168"
        );
        let policy = Directory::from_toml(&text).unwrap().policy;
        assert_eq!(policy.activation_deadline, chrono::Duration::days(14));
        assert_eq!(policy.suspension_grace, chrono::Duration::days(7));
        assert_eq!(policy.licenses_required, LicensesRequired::Any);
        assert_eq!(policy.cancellation_window_for(Term::P1Y), chrono::Duration::hours(168));
        assert_eq!(policy.cancellation_window_for(Term::P1M), chrono::Duration::hours(72));
    }
}
