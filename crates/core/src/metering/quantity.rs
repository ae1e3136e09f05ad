//! [`UsageQuantity`]: an exact decimal amount of a metering dimension's units.
//!
//! The Metering Service API sends quantities as JSON numbers (`double`), and usage is money:
//! summing `0.1 + 0.2` units must give `0.3`, not `0.30000000000000004`. So a quantity is read
//! from the number's shortest decimal text (what the sender wrote, for every sane input) into a
//! [`Decimal`], summed exactly, and written back as a JSON number with the same digits.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A usage amount: exact, at most 28 significant digits (the range of [`Decimal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UsageQuantity(Decimal);

impl UsageQuantity {
    /// Zero units.
    pub const ZERO: UsageQuantity = UsageQuantity(Decimal::ZERO);

    /// Whether the amount is above zero (the Metering API refuses zero and negative usage).
    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    /// The sum, or `None` past the decimal range.
    pub fn checked_add(self, other: UsageQuantity) -> Option<UsageQuantity> {
        self.0.checked_add(other.0).map(UsageQuantity)
    }

    /// The amount as a JSON number with the same digits.
    pub fn to_json_number(self) -> serde_json::Number {
        let text = self.0.normalize().to_string();
        // A decimal's text is always a valid JSON number; the fallback is never taken.
        serde_json::Number::from_str(&text).unwrap_or_else(|_| serde_json::Number::from(0))
    }

    /// Reads a JSON number (as written, or as the nearest double prints), refusing one that does
    /// not fit: not finite, beyond 28 significant digits' range.
    pub fn from_json_number(number: &serde_json::Number) -> Result<UsageQuantity, String> {
        number.to_string().parse()
    }
}

impl From<i64> for UsageQuantity {
    fn from(units: i64) -> Self {
        UsageQuantity(Decimal::from(units))
    }
}

impl FromStr for UsageQuantity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = if text.contains(['e', 'E']) { Decimal::from_scientific(text) } else { Decimal::from_str(text) };
        parsed.map(|d| UsageQuantity(d.normalize())).map_err(|_| {
            format!("{text} is not a quantity this service can hold exactly (at most 28 significant digits)")
        })
    }
}

impl fmt::Display for UsageQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl Serialize for UsageQuantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_number().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UsageQuantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        UsageQuantity::from_json_number(&number).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> UsageQuantity {
        text.parse().unwrap()
    }

    #[test]
    fn sums_are_exact() {
        let sum = q("0.1").checked_add(q("0.2")).unwrap();
        assert_eq!(sum, q("0.3"));
        assert_eq!(serde_json::to_string(&sum).unwrap(), "0.3");
    }

    #[test]
    fn json_numbers_round_trip_with_their_digits() {
        for text in ["1", "0.5", "12.25", "1000000", "0.001", "123456789.123"] {
            let read: UsageQuantity = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&read).unwrap(), text, "{text}");
        }
        let tiny: UsageQuantity = serde_json::from_str("1e-7").unwrap();
        assert_eq!(tiny, q("0.0000001"));
        // Very small amounts print in exponent form, as any JSON writer may; the value is kept.
        assert_eq!(serde_json::from_str::<UsageQuantity>(&serde_json::to_string(&tiny).unwrap()).unwrap(), tiny);
        let trailing: UsageQuantity = serde_json::from_str("2.50").unwrap();
        assert_eq!(trailing.to_string(), "2.5");
    }

    #[test]
    fn numbers_beyond_the_decimal_range_are_refused() {
        assert!(serde_json::from_str::<UsageQuantity>("1e40").is_err());
        assert!(serde_json::from_str::<UsageQuantity>("\"5\"").is_err());
        assert!(!q("0").is_positive() && !q("-1").is_positive() && q("0.01").is_positive());
    }
}
