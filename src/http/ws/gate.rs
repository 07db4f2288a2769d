//! Who may open live sessions: the `Origin` allow-list and the per-user
//! cap on open connections.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};

use crate::http::error::AppError;

/// Who may open sessions: the `Origin` allow-list and the per-user cap.
pub struct Gate {
    /// `scheme://host[:port]` of this server; always allowed.
    pub own_origin: String,
    /// Further allowed origins; `*` allows any.
    pub allowed_origins: Vec<String>,
    pub max_per_user: usize,
    open: dashmap::DashMap<String, usize>,
}

/// Counts one open session of a user until dropped.
pub struct Admitted {
    gate: Arc<Gate>,
    user_id: crate::domain::ids::UserId,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.open.remove_if_mut(self.user_id.as_str(), |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl Gate {
    pub fn new(own_origin: String, allowed_origins: Vec<String>, max_per_user: usize) -> Self {
        Gate {
            own_origin,
            allowed_origins,
            max_per_user,
            open: dashmap::DashMap::new(),
        }
    }

    /// Browsers send `Origin`; other clients may not (they are still
    /// authenticated by their token).
    pub(super) fn check_origin(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        let allowed = origin == self.own_origin
            || self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.trim_end_matches('/') == origin);
        if allowed {
            Ok(())
        } else {
            Err(AppError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!("origin {origin} may not open live sessions"),
            ))
        }
    }

    pub(super) fn admit(self: &Arc<Self>, user_id: &str) -> Result<Admitted, AppError> {
        let mut n = self.open.entry(user_id.to_owned()).or_insert(0);
        if *n >= self.max_per_user {
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                format!("at most {} live connections per user", self.max_per_user),
            )
            .retry_after(5));
        }
        *n += 1;
        Ok(Admitted {
            gate: self.clone(),
            user_id: user_id.into(),
        })
    }

    /// Live sessions of `user_id`.
    pub fn open_sessions(&self, user_id: &str) -> usize {
        self.open.get(user_id).map(|n| *n).unwrap_or(0)
    }
}
