//! How an order is paid: the payment methods Surge knows and money as an
//! amount in a currency.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A way to pay, one per payment provider. Stored and sent as its name;
/// ordered by name (the order lists of methods are given in).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMethod {
    /// Cash on delivery.
    Cod,
    /// PayOS (VietQR bank transfers).
    #[serde(rename = "payos")]
    PayOs,
    /// The built-in sandbox gateway.
    Sandbox,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Cod,
        PaymentMethod::PayOs,
        PaymentMethod::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cod => "cod",
            PaymentMethod::Sandbox => "sandbox",
            PaymentMethod::PayOs => "payos",
        }
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no payment method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod;

impl FromStr for PaymentMethod {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, UnknownMethod> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(UnknownMethod)
    }
}

/// An amount in the currency's smallest unit, with its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Money {
    pub fn new(amount: u64, currency: impl Into<String>) -> Self {
        Money {
            amount,
            currency: currency.into(),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_their_names_everywhere() {
        for m in PaymentMethod::ALL {
            assert_eq!(m.as_str().parse::<PaymentMethod>(), Ok(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
            // Journals hold the name: old records decode.
            let stored = rmp_serde::to_vec(m.as_str()).unwrap();
            assert_eq!(rmp_serde::from_slice::<PaymentMethod>(&stored).unwrap(), m);
        }
        assert_eq!("PayOS".parse::<PaymentMethod>(), Err(UnknownMethod));
        // Ordered as their names are.
        let mut names: Vec<_> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
        names.sort();
        let by_method: Vec<_> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(by_method, names);
        let mut sorted = PaymentMethod::ALL;
        sorted.sort();
        assert_eq!(sorted, PaymentMethod::ALL);
        assert_eq!("".parse::<PaymentMethod>(), Err(UnknownMethod));
    }

    #[test]
    fn money_reads_as_amount_and_currency() {
        assert_eq!(Money::new(125_000, "VND").to_string(), "125000 VND");
    }
}
