//! The one error type of the HTTP edge. Every failure, including JSON
//! syntax errors, unknown routes and wrong methods, answers
//! `{"error": {"code", "message", "id"}}`. Internal failures and outages
//! (every 5xx) become a generic message with an id; the cause (a store's
//! error, a file path) goes to the log under that id.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case, for programs.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The request's id (as in `x-request-id`): quote it when reporting a
    /// problem; every log line the request caused carries it.
    pub id: String,
}

impl AppError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        AppError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Tells the client when to try again (`Retry-After`, seconds). Every
    /// 429 carries one (1 s unless set).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl AppError {
    /// The error as a client is told it, with the request's id under
    /// which the log has it (a 5xx's cause is only in the log).
    pub fn detail(&self) -> ErrorDetail {
        let id = crate::context::request_id()
            .unwrap_or_else(crate::context::new_id)
            .to_string();
        if self.status.is_server_error() {
            tracing::error!(%id, status = %self.status, code = %self.code, cause = %self.message, "request failed");
        } else {
            tracing::debug!(%id, status = %self.status, code = %self.code, message = %self.message, "request rejected");
        }
        // A 5xx's cause (a store's error, a file path, a peer's address)
        // is for the operator: the client gets a sentence per status.
        let message = match self.status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                "an internal error occurred; quote the id when reporting it".to_owned()
            }
            s if s.is_server_error() => {
                "the service is unavailable for a moment; try again after Retry-After seconds, and quote the id if it lasts".to_owned()
            }
            _ => self.message.clone(),
        };
        ErrorDetail {
            code: self.code.to_string(),
            message,
            id,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let retry_after = match self.retry_after {
            None if self.status == StatusCode::TOO_MANY_REQUESTS => Some(1),
            other => other,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        let status = match e {
            DomainError::Invalid { .. } | DomainError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            DomainError::NotFound(_) => StatusCode::NOT_FOUND,
            DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
            DomainError::Conflict { .. } => StatusCode::CONFLICT,
            DomainError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        };
        AppError::new(status, e.code(), e.to_string())
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(d) => d.into(),
            ServiceError::Busy(m) => {
                AppError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m).retry_after(1)
            }
            ServiceError::Throttled(ref t) => AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                e.to_string(),
            )
            .retry_after(t.retry_after_secs),
            ServiceError::Suspended => {
                AppError::new(StatusCode::FORBIDDEN, "account_suspended", e.to_string())
            }
            ServiceError::Timeout => {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", e.to_string())
                    .retry_after(1)
            }
            ServiceError::Unavailable(_) => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
            .retry_after(1),
            // The store down, restarting or closing, or the shard moved to
            // another node: nothing was acknowledged, and a retry later
            // can succeed.
            ServiceError::Storage(
                s @ (StoreError::Unavailable(_) | StoreError::Closed | StoreError::Fenced { .. }),
            ) => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                s.to_string(),
            )
            .retry_after(1),
            ServiceError::Storage(s) => {
                AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", s.to_string())
            }
            ServiceError::Media(m) => {
                use crate::media::MediaError;
                let (status, code) = match &m {
                    // The form's type is fine (415 is for that); its
                    // file's content is what cannot be processed.
                    MediaError::Unsupported(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_image")
                    }
                    MediaError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
                    MediaError::Unreadable(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "unreadable_image")
                    }
                    MediaError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    MediaError::Busy => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
                };
                let e = AppError::new(status, code, m.to_string());
                match status {
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                        e.retry_after(1)
                    }
                    _ => e,
                }
            }
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        let text = r.body_text();
        match r {
            JsonRejection::JsonSyntaxError(_) => {
                AppError::new(StatusCode::BAD_REQUEST, "invalid_json", text)
            }
            JsonRejection::JsonDataError(_) => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
            }
            JsonRejection::MissingJsonContentType(_) => AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with Content-Type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ),
            other => AppError::new(other.status(), "invalid_body", text),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}
