//! The contract's error answers: `{"error": "<message>", "error_type": "<kind>"}` with a status per kind.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong, as `error_type` names it in docker/CONTRACT.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    Backend,
    Unhealthy,
}

impl ErrorKind {
    /// The `error_type` string.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::MethodNotAllowed => "MethodNotAllowed",
            ErrorKind::PayloadTooLarge => "PayloadTooLarge",
            ErrorKind::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorKind::Validation => "Validation",
            ErrorKind::Backend => "Backend",
            ErrorKind::Unhealthy => "Unhealthy",
        }
    }

    /// The HTTP status the contract gives this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Backend => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answer: its kind decides the status, the message tells the client what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// The JSON body, exactly as sent.
    pub fn body(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_type: &'a str,
        }
        serde_json::to_value(Body { error: &self.message, error_type: self.kind.name() })
            .expect("an error body always serialises")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.kind.status(), axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_exactly_error_and_error_type() {
        let e = ApiError::validation("\"inputs\" is missing");
        let body = e.body();
        let obj = body.as_object().unwrap();
        assert_eq!(obj.len(), 2);
        assert_eq!(obj["error"], "\"inputs\" is missing");
        assert_eq!(obj["error_type"], "Validation");
    }

    #[test]
    fn every_kind_maps_to_the_contract_status() {
        let table = [
            (ErrorKind::NotFound, 404, "NotFound"),
            (ErrorKind::MethodNotAllowed, 405, "MethodNotAllowed"),
            (ErrorKind::PayloadTooLarge, 413, "PayloadTooLarge"),
            (ErrorKind::UnsupportedMediaType, 415, "UnsupportedMediaType"),
            (ErrorKind::Validation, 422, "Validation"),
            (ErrorKind::Backend, 500, "Backend"),
            (ErrorKind::Unhealthy, 503, "Unhealthy"),
        ];
        for (kind, status, name) in table {
            assert_eq!(kind.status().as_u16(), status, "{name}");
            assert_eq!(kind.name(), name);
        }
    }
}
