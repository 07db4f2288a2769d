//! How a client of a Surge server is built (the demo seeder's, the tests',
//! the bench's), by the rule docs/api.md gives every client:
//!
//! - its pool lets an idle connection go before the server does
//!   ([`CLIENT_IDLE`], below `keep_alive_idle_secs`), so it never sends on a
//!   connection the server is closing;
//! - a request safe to repeat (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`)
//!   that meets a reset or a connection closed before any answer is sent
//!   once more, on a new connection: where the server cannot remove the
//!   race (a load balancer with a shorter idle timeout), the retry makes it
//!   harmless.

use std::time::Duration;

/// How long a Surge client keeps an idle connection: well below the
/// server's default `keep_alive_idle_secs` (120) and below the 60 s idle
/// timeout of common load balancers.
pub const CLIENT_IDLE: Duration = Duration::from_secs(30);

/// A `reqwest` client builder with [`CLIENT_IDLE`] and the one retry.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .pool_idle_timeout(CLIENT_IDLE)
        .retry(retry_policy())
}

/// Retries, once, a request safe to repeat that failed on its connection
/// before any answer came.
pub fn retry_policy() -> reqwest::retry::Builder {
    reqwest::retry::for_host(AnyHost)
        .max_retries_per_request(1)
        .classify_fn(|attempt| {
            let safe = matches!(
                *attempt.method(),
                reqwest::Method::GET
                    | reqwest::Method::HEAD
                    | reqwest::Method::PUT
                    | reqwest::Method::DELETE
                    | reqwest::Method::OPTIONS
            );
            if safe && attempt.error().is_some_and(connection_lost) {
                attempt.retryable()
            } else {
                attempt.success()
            }
        })
}

/// Every host a client talks to: the retry applies to all of them.
struct AnyHost;

impl PartialEq<&str> for AnyHost {
    fn eq(&self, _: &&str) -> bool {
        true
    }
}

/// Whether `error` (or one of its causes) is the connection reset or
/// closed before an answer: the keep-alive race, not a refusal.
pub fn connection_lost(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_or_an_early_close_is_a_lost_connection_and_a_refusal_is_not() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(connection_lost(&reset));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!connection_lost(&refused));
        let wrapped = Wrapped(reset);
        assert!(connection_lost(&wrapped), "found among the causes");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_client_lets_idle_connections_go_before_the_server_does() {
        let server = crate::config::Settings::default().keep_alive_idle_secs;
        assert!(
            CLIENT_IDLE < Duration::from_secs(server),
            "{CLIENT_IDLE:?} vs {server} s"
        );
    }
}
