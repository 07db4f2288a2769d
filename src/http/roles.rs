//! Who may call an operation, checked in one place. An operation's OpenAPI
//! security requirement names the roles it needs, as OpenAPI 3.1 lets a
//! non-OAuth scheme do (`security(("bearer" = ["merchant"]))`); [`guard`]
//! reads them from the document the server publishes and answers 403 to
//! any other role (admins always pass) before the handler runs. A
//! requirement without roles lets any signed-in account through. What the
//! caller owns is the service's check after this one: a seller changes a
//! shop only as a merchant *and* its owner, so a merchant made a customer
//! keeps no right over the shops they opened.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use super::extract::bearer;
use super::state::AppState;
use crate::domain::Role;

/// The roles each operation (path template, then method) requires, from
/// the OpenAPI document.
#[derive(Debug, Default)]
pub struct Roles(HashMap<String, Vec<(Method, Vec<Role>)>>);

impl Roles {
    /// Reads every operation's `bearer` roles from `doc`. A name that is
    /// not a role is a mistake in an annotation: it panics at start-up.
    pub fn from_doc(doc: &utoipa::openapi::OpenApi) -> Roles {
        let doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
        let mut out = HashMap::new();
        let paths = doc["paths"].as_object().into_iter().flatten();
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let roles: Vec<Role> = op["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|req| req["bearer"].as_array())
                    .flatten()
                    .map(|r| {
                        serde_json::from_value(r.clone())
                            .unwrap_or_else(|_| panic!("{method} {path}: {r} is not a role"))
                    })
                    .collect();
                if !roles.is_empty() {
                    out.entry(path.clone())
                        .or_insert_with(Vec::new)
                        .push((method, roles));
                }
            }
        }
        Roles(out)
    }

    /// The roles `method` on `path` (a route template) requires; none for
    /// an operation any caller may try.
    pub fn of(&self, method: &Method, path: &str) -> &[Role] {
        self.0
            .get(path)
            .and_then(|ops| ops.iter().find(|(m, _)| m == method))
            .map(|(_, roles)| roles.as_slice())
            .unwrap_or_default()
    }
}

/// 403 unless `role` is one of `roles` (admins always pass).
pub fn permit(role: Role, roles: &[Role]) -> Result<(), AppError> {
    if role == Role::Admin || roles.contains(&role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(AppError::forbidden(format!(
        "this requires the role {}",
        names.join(" or ")
    )))
}

/// The route layer: authenticates the caller of an operation that
/// requires a role, refuses a caller without it, and hands the handler's
/// `Auth` the caller it found (one authentication per request).
pub async fn guard(
    State((state, roles)): State<(AppState, Arc<Roles>)>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let needed = matched
        .as_ref()
        .map(|p| roles.of(req.method(), p.as_str()))
        .unwrap_or_default();
    if needed.is_empty() {
        return next.run(req).await;
    }
    let caller = match bearer(req.headers()) {
        Ok(token) => state.services.auth.authenticate(token).await,
        Err(e) => return e.into_response(),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return AppError::from(e).into_response(),
    };
    if let Err(e) = permit(caller.role, needed) {
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
