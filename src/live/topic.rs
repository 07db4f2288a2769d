//! The names of what can be watched: `user:{id}`, `order:{id}`,
//! `shipper:{id}`, `queue:{id}`, `product:{id}`. One spelling (`Display`) and one parser
//! (`FromStr`), used by every publisher and by the gateway.

use std::fmt;
use std::str::FromStr;

/// A topic. The id is kept as the client spelled it (any UUID form), so a
/// topic prints back exactly as it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A user's profile, addresses, sessions and notifications.
    User(String),
    /// An order's status and money.
    Order(String),
    /// A shipper's availability and deliveries (positions ride beside).
    Shipper(String),
    /// A flash sale's or course's capacity counters.
    Queue(String),
    /// A product's rating summary.
    Product(String),
    /// The platform's counters of today (admins): `admin:stats`.
    AdminStats,
}

/// Why a string names no topic one may watch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// A known kind with an id that is not a UUID: answered like a topic
    /// one may not watch, so ids are not probed.
    #[error("you may not watch {0}")]
    Forbidden(String),
    #[error("no such topic: {0}")]
    Unknown(String),
}

impl Topic {
    pub fn user(id: &str) -> Topic {
        Topic::User(id.to_owned())
    }
    pub fn order(id: &str) -> Topic {
        Topic::Order(id.to_owned())
    }
    pub fn shipper(id: &str) -> Topic {
        Topic::Shipper(id.to_owned())
    }
    pub fn queue(id: &str) -> Topic {
        Topic::Queue(id.to_owned())
    }
    pub fn product(id: &str) -> Topic {
        Topic::Product(id.to_owned())
    }

    /// The id of the entity the topic belongs to.
    pub fn id(&self) -> &str {
        match self {
            Topic::User(id)
            | Topic::Order(id)
            | Topic::Shipper(id)
            | Topic::Queue(id)
            | Topic::Product(id) => id,
            Topic::AdminStats => "stats",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Topic::User(_) => "user",
            Topic::Order(_) => "order",
            Topic::Shipper(_) => "shipper",
            Topic::Queue(_) => "queue",
            Topic::Product(_) => "product",
            Topic::AdminStats => "admin",
        };
        write!(f, "{kind}:{}", self.id())
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Topic, TopicError> {
        let valid = |id: &str| uuid::Uuid::try_parse(id).is_ok();
        match s.split_once(':') {
            Some(("user", id)) if valid(id) => Ok(Topic::user(id)),
            Some(("order", id)) if valid(id) => Ok(Topic::order(id)),
            Some(("shipper", id)) if valid(id) => Ok(Topic::shipper(id)),
            Some(("queue", id)) if valid(id) => Ok(Topic::queue(id)),
            Some(("product", id)) if valid(id) => Ok(Topic::product(id)),
            Some(("admin", "stats")) => Ok(Topic::AdminStats),
            Some(("user" | "order" | "shipper", _)) => Err(TopicError::Forbidden(s.to_owned())),
            _ => Err(TopicError::Unknown(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints_and_refuses_the_rest() {
        let id = "0192a2b3-0000-7000-8000-00000000abcd";
        for t in [
            Topic::user(id),
            Topic::order(id),
            Topic::shipper(id),
            Topic::queue(id),
            Topic::product(id),
        ] {
            assert_eq!(t.to_string().parse::<Topic>(), Ok(t.clone()));
            assert_eq!(t.id(), id);
        }
        assert_eq!("admin:stats".parse::<Topic>(), Ok(Topic::AdminStats));
        assert_eq!(Topic::AdminStats.to_string(), "admin:stats");
        assert_eq!(
            "order:42".parse::<Topic>(),
            Err(TopicError::Forbidden("order:42".into()))
        );
        for s in ["queue:1", "nonsense", "cart:x", ""] {
            assert_eq!(s.parse::<Topic>(), Err(TopicError::Unknown(s.into())));
        }
    }
}
