//! Accounts: registration rules, profiles, sessions, delivery addresses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_point, check_text, DomainError, GeoPoint, Role};

/// Most concurrent sessions (devices) per user; the oldest is ended first.
pub const MAX_SESSIONS: usize = 10;
/// Most saved delivery addresses per user.
pub const MAX_ADDRESSES: usize = 20;
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The public view of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: crate::domain::ids::UserId,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Set while an admin has the account suspended (no login, no session).
    #[serde(default)]
    pub suspension: Option<Suspension>,
}

/// Why and since when an account is suspended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Suspension {
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A saved delivery address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub id: String,
    pub label: String,
    pub line1: String,
    pub city: String,
    pub lat: f64,
    pub lng: f64,
    pub is_default: bool,
}

/// Normalises an email (trimmed, lower-cased) and checks its syntax.
pub fn normalize_email(raw: &str) -> Result<String, DomainError> {
    let e = raw.trim().to_lowercase();
    if e.is_empty() {
        return Err(DomainError::invalid("email", "email must not be empty"));
    }
    if e.len() > 254 {
        return Err(DomainError::invalid(
            "email",
            "email must be at most 254 characters",
        ));
    }
    let parsed: email_address::EmailAddress = e.parse().map_err(|_| {
        DomainError::invalid(
            "email",
            format!("'{}' is not a valid email address", raw.trim()),
        )
    })?;
    // Require a dotted domain: "user@localhost" is not a deliverable address.
    if !parsed.domain().contains('.') || e.contains(char::is_whitespace) {
        return Err(DomainError::invalid(
            "email",
            format!("'{}' is not a valid email address", raw.trim()),
        ));
    }
    Ok(e)
}

/// Password rules (NIST SP 800-63B style): length, not the email.
pub fn check_password(password: &str, email: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("password must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.trim().is_empty() {
        return Err(DomainError::invalid(
            "password",
            "password must not be only spaces",
        ));
    }
    if password.trim().eq_ignore_ascii_case(email) {
        return Err(DomainError::invalid(
            "password",
            "password must not be your email address",
        ));
    }
    Ok(())
}

/// Roles a person may choose at registration.
pub fn check_self_assigned_role(role: Option<Role>) -> Result<Role, DomainError> {
    match role.unwrap_or_default() {
        Role::Admin => Err(DomainError::invalid(
            "role",
            "role must be one of customer, merchant, shipper",
        )),
        r => Ok(r),
    }
}

pub fn check_phone(phone: &str) -> Result<Option<String>, DomainError> {
    let p = phone.trim();
    if p.is_empty() {
        return Ok(None);
    }
    let ok = p.len() <= 20
        && p.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+') || c == ' ' || c == '-')
        && p.chars().filter(char::is_ascii_digit).count() >= 6;
    if ok {
        Ok(Some(p.to_owned()))
    } else {
        Err(DomainError::invalid(
            "phone",
            "phone must be 6 to 20 digits, optionally starting with +",
        ))
    }
}

/// Input of a new or changed address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub label: String,
    pub line1: String,
    pub city: String,
    pub lat: f64,
    pub lng: f64,
    #[serde(default)]
    pub is_default: bool,
}

pub fn check_address(id: String, input: &AddressInput) -> Result<Address, DomainError> {
    let p = check_point(
        "location",
        GeoPoint {
            lat: input.lat,
            lng: input.lng,
        },
    )?;
    Ok(Address {
        id,
        label: check_text("label", &input.label, 50)?,
        line1: check_text("line1", &input.line1, 200)?,
        city: check_text("city", &input.city, 100)?,
        lat: p.lat,
        lng: p.lng,
        is_default: input.is_default,
    })
}

/// The default address after adding `new` to `existing`: the first address
/// is always the default, and a new one marked default takes over.
pub fn default_after_add(existing: &[Address], new: &Address) -> Option<String> {
    if existing.is_empty() || new.is_default {
        Some(new.id.clone())
    } else {
        None
    }
}

/// The default address after removing `id`: when the default goes, the
/// oldest remaining address becomes the default.
pub fn default_after_remove(existing: &[Address], id: &str) -> Option<String> {
    let removed_default = existing.iter().any(|a| a.id == id && a.is_default);
    if !removed_default {
        return None;
    }
    existing.iter().find(|a| a.id != id).map(|a| a.id.clone())
}

/// The default address of `addresses` (exactly one is, when any exist).
pub fn default_address(addresses: &[Address]) -> Option<&Address> {
    addresses.iter().find(|a| a.is_default)
}

/// Marks exactly `id` as the default.
pub fn set_default(addresses: &mut [Address], id: &str) {
    for a in addresses.iter_mut() {
        a.is_default = a.id == id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(id: &str, is_default: bool) -> Address {
        Address {
            id: id.into(),
            label: "home".into(),
            line1: "1 Main".into(),
            city: "Hanoi".into(),
            lat: 21.0,
            lng: 105.8,
            is_default,
        }
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        let cases = [
            ("  Alice@Example.COM ", Ok("alice@example.com")),
            ("bob@shop.vn", Ok("bob@shop.vn")),
            ("", Err(())),
            ("not-an-email", Err(())),
            ("a@localhost", Err(())),
            ("a b@x.com", Err(())),
            ("@x.com", Err(())),
        ];
        for (input, want) in cases {
            let got = normalize_email(input).map_err(|_| ());
            assert_eq!(
                got.as_deref(),
                want.as_deref().map_err(|_| &()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn password_rules() {
        let cases = [
            ("short", false),
            ("long enough pw", true),
            ("          ", false),
            ("alice@example.com", false),
            (&"x".repeat(129) as &str, false),
            (&"x".repeat(128) as &str, true),
        ];
        for (pw, ok) in cases {
            assert_eq!(
                check_password(pw, "alice@example.com").is_ok(),
                ok,
                "{pw:?}"
            );
        }
    }

    #[test]
    fn admin_cannot_be_self_assigned() {
        assert_eq!(check_self_assigned_role(None).unwrap(), Role::Customer);
        assert_eq!(
            check_self_assigned_role(Some(Role::Merchant)).unwrap(),
            Role::Merchant
        );
        assert!(check_self_assigned_role(Some(Role::Admin)).is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(
            check_phone("+84 912-345-678").unwrap().as_deref(),
            Some("+84 912-345-678")
        );
        assert_eq!(check_phone("").unwrap(), None);
        assert!(check_phone("12ab5678").is_err());
        assert!(check_phone("123").is_err());
    }

    #[test]
    fn default_address_rules() {
        // (existing, new, expected new default)
        let a = addr("a", true);
        assert_eq!(default_after_add(&[], &addr("n", false)), Some("n".into()));
        assert_eq!(
            default_after_add(std::slice::from_ref(&a), &addr("n", false)),
            None
        );
        assert_eq!(
            default_after_add(std::slice::from_ref(&a), &addr("n", true)),
            Some("n".into())
        );

        let list = vec![addr("a", true), addr("b", false), addr("c", false)];
        assert_eq!(default_after_remove(&list, "a"), Some("b".into()));
        assert_eq!(default_after_remove(&list, "b"), None);
        assert_eq!(default_after_remove(&[addr("a", true)], "a"), None);

        let mut list = list;
        set_default(&mut list, "c");
        assert_eq!(list.iter().filter(|a| a.is_default).count(), 1);
        assert!(list[2].is_default);
    }
}
