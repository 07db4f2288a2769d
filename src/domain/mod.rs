//! Domain rules as pure functions and plain data: validation, roles,
//! ownership, the exactly-one-default-address rule. No I/O here; the actors
//! call these and the HTTP layer never re-implements them.

pub mod behavior;
pub mod cart;
pub mod catalog;
pub mod category;
pub mod claim;
pub mod coupon;
pub mod description;
pub mod ids;
pub mod inventory;
pub mod media;
pub mod notification;
pub mod order;
pub mod payment;
pub mod pricing;
pub mod review;
pub mod shipping;
pub mod stats;
pub mod user;
pub mod window;
pub mod zone;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A business rejection, mapped to a 4xx at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input breaks a rule (422).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The thing does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with current state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The credentials or session are not (or no longer) valid (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Well-formed, but not something the server will do, with a code of
    /// its own (422): an idempotency key reused for another request.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
}

impl DomainError {
    /// The error code the API answers it with.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid { .. } => "validation_failed",
            DomainError::NotFound(_) => "not_found",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::Conflict { code, .. } | DomainError::Unprocessable { code, .. } => code,
            DomainError::Unauthorized(_) => "unauthorized",
        }
    }
}

/// `DomainError` as it crosses between nodes (a forwarded command's
/// rejection): the same variants with owned text.
#[derive(Serialize, Deserialize)]
enum WireDomainError {
    Invalid { field: String, message: String },
    NotFound(String),
    Forbidden(String),
    Conflict { code: String, message: String },
    Unauthorized(String),
    Unprocessable { code: String, message: String },
}

/// The program's own static string equal to `s`: codes, field names and
/// entity names are a fixed set in the code, so each is leaked once; past
/// `MAX_INTERNED` distinct strings (a peer sending nonsense) it is
/// "unknown".
fn intern(s: String) -> &'static str {
    const MAX_INTERNED: usize = 4096;
    static INTERNED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashSet<&'static str>>,
    > = std::sync::OnceLock::new();
    let mut set = INTERNED
        .get_or_init(Default::default)
        .lock()
        .expect("interned");
    if let Some(known) = set.get(s.as_str()) {
        return known;
    }
    if set.len() >= MAX_INTERNED {
        return "unknown";
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    set.insert(leaked);
    leaked
}

impl Serialize for DomainError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self.clone() {
            DomainError::Invalid { field, message } => WireDomainError::Invalid {
                field: field.into(),
                message,
            },
            DomainError::NotFound(what) => WireDomainError::NotFound(what.into()),
            DomainError::Forbidden(m) => WireDomainError::Forbidden(m),
            DomainError::Conflict { code, message } => WireDomainError::Conflict {
                code: code.into(),
                message,
            },
            DomainError::Unauthorized(m) => WireDomainError::Unauthorized(m),
            DomainError::Unprocessable { code, message } => WireDomainError::Unprocessable {
                code: code.into(),
                message,
            },
        };
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DomainError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match WireDomainError::deserialize(deserializer)? {
            WireDomainError::Invalid { field, message } => DomainError::Invalid {
                field: intern(field),
                message,
            },
            WireDomainError::NotFound(what) => DomainError::NotFound(intern(what)),
            WireDomainError::Forbidden(m) => DomainError::Forbidden(m),
            WireDomainError::Conflict { code, message } => DomainError::Conflict {
                code: intern(code),
                message,
            },
            WireDomainError::Unauthorized(m) => DomainError::Unauthorized(m),
            WireDomainError::Unprocessable { code, message } => DomainError::Unprocessable {
                code: intern(code),
                message,
            },
        })
    }
}

/// An `Idempotency-Key` and the request it was first sent with: a retry
/// of the same request answers the first result; the same key with another
/// request is refused (`idempotency_key_reused`), as Stripe does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub key: String,
    /// A digest of the request's method, path and body.
    pub request: String,
}

impl IdempotencyKey {
    /// Whether a request with fingerprint `first` (recorded with the key;
    /// `None` for records older than fingerprints) is this one.
    pub fn check(&self, first: Option<&str>) -> Result<(), DomainError> {
        match first {
            Some(f) if f != self.request => Err(DomainError::Unprocessable {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used for a different request".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl DomainError {
    /// A conflict with the state of things (409 with `code`).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Roles. `admin` is never self-assigned; it comes from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Customer,
    Merchant,
    Shipper,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Customer, Role::Merchant, Role::Shipper, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Merchant => "merchant",
            Role::Shipper => "shipper",
            Role::Admin => "admin",
        }
    }
}

/// Who is asking: carried by every command that checks permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: ids::UserId,
    pub role: Role,
}

impl Caller {
    /// Owners and admins may change a thing; nobody else.
    pub fn may_modify(&self, owner_id: &str) -> bool {
        self.role == Role::Admin || self.user_id == owner_id
    }

    pub fn ensure_owner(&self, owner_id: &str, what: &str) -> Result<(), DomainError> {
        if self.may_modify(owner_id) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "only the owner of this {what} may change it"
            )))
        }
    }
}

/// A point on the map (WGS84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeoPoint {
    pub lat: f64,
    pub lng: f64,
}

pub fn check_point(field: &'static str, p: GeoPoint) -> Result<GeoPoint, DomainError> {
    if !p.lat.is_finite() || !(-90.0..=90.0).contains(&p.lat) {
        return Err(DomainError::invalid(
            field,
            format!("{field}.lat must be between -90 and 90"),
        ));
    }
    if !p.lng.is_finite() || !(-180.0..=180.0).contains(&p.lng) {
        return Err(DomainError::invalid(
            field,
            format!("{field}.lng must be between -180 and 180"),
        ));
    }
    Ok(p)
}

/// Checks `s` has at most `max` characters (as sent) and something
/// visible, and no control or invisible formatting characters; answers it
/// trimmed.
pub fn check_text(field: &'static str, s: &str, max: usize) -> Result<String, DomainError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if s.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    if has_invisible_formatting(t) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not contain bidirectional-override or zero-width characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Bidirectional controls (which make `"\u{202e}gnp.exe"` read as
/// `exe.png`) and invisible zero-width characters. Joiners (U+200C,
/// U+200D) are kept between two non-ASCII characters, where emoji
/// sequences and several scripts need them.
pub fn has_invisible_formatting(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => true,
        '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}' => true,
        '\u{200C}' | '\u{200D}' => {
            let non_ascii =
                |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| !c.is_ascii());
            !(non_ascii(i.checked_sub(1)) && non_ascii(Some(i + 1)))
        }
        _ => false,
    })
}

/// An ISO 4217 currency code, upper-cased.
pub fn check_currency(code: &str) -> Result<String, DomainError> {
    let upper = code.trim().to_ascii_uppercase();
    iso_currency::Currency::from_code(&upper)
        .map(|_| upper)
        .ok_or_else(|| {
            DomainError::invalid(
                "currency",
                format!("'{code}' is not an ISO 4217 currency code"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_crosses_between_nodes_unchanged() {
        for e in [
            DomainError::Invalid {
                field: "quantity",
                message: "too many".into(),
            },
            DomainError::NotFound("order"),
            DomainError::Conflict {
                code: "sold_out",
                message: "gone".into(),
            },
            DomainError::Unprocessable {
                code: "idempotency_key_reused",
                message: "x".into(),
            },
            DomainError::Forbidden("no".into()),
            DomainError::Unauthorized("who".into()),
        ] {
            let bytes = rmp_serde::to_vec(&e).unwrap();
            assert_eq!(rmp_serde::from_slice::<DomainError>(&bytes).unwrap(), e);
        }
    }

    #[test]
    fn points_are_range_checked() {
        let cases = [
            (0.0, 0.0, true),
            (90.0, 180.0, true),
            (-90.0, -180.0, true),
            (90.1, 0.0, false),
            (0.0, -180.5, false),
            (f64::NAN, 0.0, false),
        ];
        for (lat, lng, ok) in cases {
            assert_eq!(
                check_point("location", GeoPoint { lat, lng }).is_ok(),
                ok,
                "{lat},{lng}"
            );
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(check_text("name", "  Shop  ", 10).unwrap(), "Shop");
        assert!(check_text("name", "   ", 10).is_err());
        assert!(check_text("name", "abcdefghijk", 10).is_err());
        assert!(check_text("name", "a\u{7}b", 10).is_err());
    }

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_refused_ordinary_unicode_is_not() {
        let table = [
            ("\u{202e}gnp.exe", false),
            ("a\u{2066}b\u{2069}", false),
            ("invoice\u{200b}", false),
            ("x\u{200d}y", false),
            ("\u{feff}Mai", false),
            ("Áo thun nữ Hà Nội", true),
            ("Пилатес для начинающих", true),
            ("Yoga 🧘‍♀️ class", true),
            ("family 👨‍👩‍👧", true),
        ];
        for (text, ok) in table {
            assert_eq!(check_text("name", text, 100).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn currencies_are_iso_codes() {
        assert_eq!(check_currency("vnd").unwrap(), "VND");
        assert_eq!(check_currency("USD").unwrap(), "USD");
        assert!(check_currency("XXQ").is_err());
        assert!(check_currency("").is_err());
    }

    #[test]
    fn only_owner_or_admin_may_modify() {
        let owner = Caller {
            user_id: "u1".into(),
            role: Role::Merchant,
        };
        let other = Caller {
            user_id: "u2".into(),
            role: Role::Merchant,
        };
        let admin = Caller {
            user_id: "a".into(),
            role: Role::Admin,
        };
        assert!(owner.may_modify("u1"));
        assert!(!other.may_modify("u1"));
        assert!(admin.may_modify("u1"));
    }
}
