//! The request id: made at the edge for every HTTP request (or taken from
//! a valid `x-request-id` a proxy set), answered in `x-request-id`, kept in
//! a task-local while the request is served, carried with every entity
//! command (the actor runs it inside the request's span) and across the
//! inter-node channel (the owner serves a forwarded command inside a span
//! with the same id), so every log line a request causes, on any node,
//! names it.

use std::sync::Arc;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// What a command forwarded to another node carries of its request: the
/// id and, when traces are exported, the W3C trace context.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub request_id: Option<Arc<str>>,
    pub traceparent: Option<String>,
}

impl Carried {
    /// The request being served on this task, in the current span.
    pub fn current() -> Carried {
        Carried {
            request_id: request_id(),
            traceparent: crate::telemetry::traceparent(),
        }
    }
}

/// The longest id taken from a client.
pub const MAX_ID_LEN: usize = 64;

/// The id of the request being served on this task, if any.
pub fn request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Runs `fut` as part of request `id`.
pub async fn scope<F: std::future::Future>(id: Arc<str>, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// An id given by a client or a proxy, if it is one we keep: 1–64 of
/// `A-Z a-z 0-9 - _ . :` (anything else would let a client write into
/// log lines).
pub fn accepted(given: &str) -> Option<Arc<str>> {
    let ok = !given.is_empty()
        && given.len() <= MAX_ID_LEN
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| Arc::from(given))
}

/// A new id: a UUIDv7 (time-ordered), in its short form.
pub fn new_id() -> Arc<str> {
    Arc::from(uuid::Uuid::now_v7().simple().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_taken_from_clients() {
        assert_eq!(accepted("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert!(accepted("").is_none());
        assert!(accepted("a b").is_none());
        assert!(accepted("a\nforged=1").is_none());
        assert!(accepted(&"x".repeat(MAX_ID_LEN + 1)).is_none());
        assert_eq!(new_id().len(), 32);
    }

    #[tokio::test]
    async fn the_id_is_there_inside_the_scope_only() {
        assert!(request_id().is_none());
        let id = new_id();
        let seen = scope(id.clone(), async { request_id() }).await;
        assert_eq!(seen, Some(id));
    }
}
