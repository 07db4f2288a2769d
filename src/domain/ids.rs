//! Ids of the entities whose ids cross module boundaries, as types of their
//! own: an order id cannot be passed where a user id is expected. On the
//! wire and in journals they are plain strings (`#[serde(transparent)]`),
//! so nothing stored or sent changes.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                $name(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                String::schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

entity_id!(
    /// A user (customer, merchant, trainer, shipper or admin).
    UserId
);
entity_id!(
    /// An order.
    OrderId
);
entity_id!(
    /// A shop.
    ShopId
);
entity_id!(
    /// A product.
    ProductId
);
entity_id!(
    /// A queue: a flash sale's, or a course's (the course id).
    QueueId
);

/// `key` spread over `n` slots (0..n): the first 8 bytes of its SHA-256,
/// mod n. Stable across processes and releases (not std's hasher), so a
/// key finds its slot again after a restart.
pub fn spread(key: &str, n: u32) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (h % u64::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire_and_in_journals() {
        let id = OrderId::from("0192");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0192\"");
        assert_eq!(
            rmp_serde::to_vec(&id).unwrap(),
            rmp_serde::to_vec("0192").unwrap()
        );
        let back: OrderId = rmp_serde::from_slice(&rmp_serde::to_vec("0192").unwrap()).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn generated_ids_are_uuids() {
        let (a, b) = (UserId::generate(), UserId::generate());
        assert!(uuid::Uuid::try_parse(&a).is_ok());
        assert_ne!(a, b);
    }
}
