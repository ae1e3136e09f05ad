//! The parts of an ISV's catalog that rules depend on: plans with their quantity bounds and
//! allowed terms. Loading the catalog (TOML) is an adapter's job; here it is plain data.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A plan of an offer. Quantity bounds are per plan in the marketplace (`minQuantity` /
/// `maxQuantity` in the SaaS API), so every quantity a partner or publisher sets is checked
/// against the plan, not against a global constant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Plan id, unique within its offer.
    pub id: String,
    /// Smallest license count a subscription of this plan may have.
    pub min_quantity: u32,
    /// Largest license count a subscription of this plan may have.
    pub max_quantity: u32,
    /// Term durations a partner may buy this plan for.
    pub terms: Vec<Term>,
    /// Custom meters publishers report usage against (Metering Service API), beyond the flat
    /// fee; empty for a plan without metered billing.
    #[serde(default)]
    pub metering_dimensions: Vec<MeteringDimension>,
}

/// A custom meter of a plan: usage of it is billed per unit on top of the flat fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeteringDimension {
    /// Dimension id publishers report against (`apicalls`).
    pub id: String,
    /// Name shown to people (`API calls`).
    pub display_name: String,
    /// What one unit is (`1000 calls`).
    pub unit: String,
}

impl Plan {
    /// Whether `quantity` lies within this plan's bounds; callers turn `false` into a
    /// field-level rejection naming the bounds.
    pub fn allows_quantity(&self, quantity: u32) -> bool {
        (self.min_quantity..=self.max_quantity).contains(&quantity)
    }

    /// A metering dimension of this plan, by id.
    pub fn metering_dimension(&self, id: &str) -> Option<&MeteringDimension> {
        self.metering_dimensions.iter().find(|d| d.id == id)
    }
}

/// Commitment term as an ISO-8601 duration, the way both Partner Center (`termDuration`) and the
/// SaaS API (`termUnit`) spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Term {
    /// One month.
    P1M,
    /// One year.
    P1Y,
    /// Two years.
    P2Y,
    /// Three years.
    P3Y,
    /// Four years.
    P4Y,
    /// Five years.
    P5Y,
}

impl Term {
    /// Every term the marketplace knows, for error messages that list the choices.
    pub const ALL: [Term; 6] = [Term::P1M, Term::P1Y, Term::P2Y, Term::P3Y, Term::P4Y, Term::P5Y];

    /// The ISO-8601 spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Term::P1M => "P1M",
            Term::P1Y => "P1Y",
            Term::P2Y => "P2Y",
            Term::P3Y => "P3Y",
            Term::P4Y => "P4Y",
            Term::P5Y => "P5Y",
        }
    }

    /// Length of the term in months, so billing cycles can be checked against it.
    pub fn months(self) -> u32 {
        match self {
            Term::P1M => 1,
            Term::P1Y => 12,
            Term::P2Y => 24,
            Term::P3Y => 36,
            Term::P4Y => 48,
            Term::P5Y => 60,
        }
    }

    /// The end of term number `n` (1-based) of a subscription whose first term started at
    /// `anchor`: `n` terms after the anchor, counted from the anchor rather than from the previous
    /// term's end, so month-end clamping never drifts (a term from Jan 31 ends Feb 28 or 29, the
    /// next Mar 31). `None` only past the year 262,143.
    pub fn end_of_term(self, anchor: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
        anchor.checked_add_months(Months::new(self.months().checked_mul(n)?))
    }

    /// Position in [`Term::ALL`], for tables indexed by term.
    pub(crate) fn index(self) -> usize {
        Term::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Term {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Term::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown term {s:?}; expected one of P1M, P1Y, P2Y, P3Y, P4Y, P5Y"))
    }
}

/// How often the customer is charged within a term (Partner Center `billingCycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BillingCycle {
    /// Charged every month.
    Monthly,
    /// Charged once a year.
    Annual,
    /// Charged once for the whole term.
    OneTime,
}

impl BillingCycle {
    /// The camelCase spelling used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Annual => "annual",
            BillingCycle::OneTime => "oneTime",
        }
    }

    /// A cycle longer than the term makes no sense (an annual charge on a monthly term), so the
    /// purchase rule asks this before accepting a combination.
    pub fn fits(self, term: Term) -> bool {
        match self {
            BillingCycle::Monthly | BillingCycle::OneTime => true,
            BillingCycle::Annual => term.months() >= 12,
        }
    }
}

impl fmt::Display for BillingCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BillingCycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "monthly" => Ok(BillingCycle::Monthly),
            "annual" => Ok(BillingCycle::Annual),
            "oneTime" => Ok(BillingCycle::OneTime),
            other => Err(format!("unknown billing cycle {other:?}; expected one of monthly, annual, oneTime")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            id: "standard".into(),
            min_quantity: 1,
            max_quantity: 500,
            terms: vec![Term::P1M],
            metering_dimensions: vec![],
        }
    }

    #[test]
    fn quantity_bounds_are_inclusive() {
        let p = plan();
        assert!(!p.allows_quantity(0));
        assert!(p.allows_quantity(1));
        assert!(p.allows_quantity(500));
        assert!(!p.allows_quantity(501));
    }

    #[test]
    fn terms_round_trip_through_their_wire_spelling() {
        for t in Term::ALL {
            assert_eq!(t.as_str().parse::<Term>().unwrap(), t);
        }
        assert!("P6M".parse::<Term>().is_err());
    }

    #[test]
    fn terms_end_on_the_same_day_of_the_month_clamped_to_the_months_end() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let jan31 = at("2027-01-31T10:00:00Z");
        assert_eq!(Term::P1M.end_of_term(jan31, 1), Some(at("2027-02-28T10:00:00Z")));
        assert_eq!(Term::P1M.end_of_term(jan31, 2), Some(at("2027-03-31T10:00:00Z")));
        assert_eq!(Term::P1M.end_of_term(at("2028-01-31T00:00:00Z"), 1), Some(at("2028-02-29T00:00:00Z")));
        assert_eq!(Term::P1Y.end_of_term(at("2028-02-29T00:00:00Z"), 1), Some(at("2029-02-28T00:00:00Z")));
        assert_eq!(Term::P3Y.end_of_term(at("2027-01-05T00:00:00Z"), 2), Some(at("2033-01-05T00:00:00Z")));
        assert_eq!(Term::P1M.end_of_term(jan31, u32::MAX), None);
    }

    #[test]
    fn annual_billing_needs_a_term_of_at_least_a_year() {
        assert!(!BillingCycle::Annual.fits(Term::P1M));
        assert!(BillingCycle::Annual.fits(Term::P1Y));
        assert!(BillingCycle::Monthly.fits(Term::P3Y));
        assert_eq!("oneTime".parse::<BillingCycle>().unwrap(), BillingCycle::OneTime);
        assert!("weekly".parse::<BillingCycle>().is_err());
    }
}
