//! The API's errors: a status and a JSON body `{"error": ..., "detail": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use strata::store::StoreError;
use strata::warm::WarmError;

/// An error answer: `error` is a stable code for scripts, `detail` a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// A stable, snake_case code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `request_timeout`, `payload_too_large`, `internal`.
    pub error: &'static str,
    /// What went wrong, for a person.
    pub detail: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
        }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub(crate) fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", detail)
    }

    pub(crate) fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownNamespace(_) | StoreError::UnknownEvent(_) => {
                Self::not_found(e.to_string())
            }
            StoreError::MissingParam { .. } => Self::bad_request(e.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<WarmError> for ApiError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::UnknownScope(_) => Self::not_found(e.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}
