//! The one mapping from failures to HTTP: status, stable code, error body.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::{ErrorBody, codes};
use kiln_core::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// 400 `bad_request`, naming the offending field when known.
    pub fn bad_request(message: impl Into<String>, field: Option<&str>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message);
        if let Some(field) = field {
            e.body = e.body.with_detail("field", field);
        }
        e
    }

    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, codes::VALIDATION_FAILED, message);
        if let Some(field) = field {
            e.body = e.body.with_detail("field", field);
        }
        e
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        )
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, err.to_string()),
            Error::Unauthorized(message) => {
                ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
            }
            Error::Validation { message, field } => ApiError::validation(message, field.as_deref()),
            Error::Conflict(message) => ApiError::new(StatusCode::CONFLICT, codes::CONFLICT, message),
            Error::Refused { kind, code, message } => {
                let status = match kind {
                    kiln_core::error::Refusal::BadRequest => StatusCode::BAD_REQUEST,
                    kiln_core::error::Refusal::Conflict => StatusCode::CONFLICT,
                };
                ApiError::new(status, code, message)
            }
            Error::VersionConflict { current_version, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, codes::VERSION_CONFLICT, err.to_string());
                e.body = e.body.with_detail("current_version", current_version);
                e
            }
            Error::PayloadTooLarge { limit_bytes } => {
                let mut e = ApiError::payload_too_large(err.to_string());
                e.body = e.body.with_detail("limit_bytes", limit_bytes);
                e
            }
            Error::SecretsDisabled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SECRETS_DISABLED,
                err.to_string(),
            ),
            Error::ModelNotConfigured { message, configured } => {
                let mut e = ApiError::validation(message, Some("model"));
                e.body = e.body.with_detail("configured_providers", configured);
                e
            }
            Error::Upstream(upstream) => {
                let (provider, status) = match &upstream {
                    kiln_core::llm::LlmError::Upstream { provider, status, .. } => {
                        (provider.clone(), Some(*status))
                    }
                    kiln_core::llm::LlmError::Timeout { provider, .. }
                    | kiln_core::llm::LlmError::Connection { provider, .. }
                    | kiln_core::llm::LlmError::InvalidResponse { provider, .. } => (provider.clone(), None),
                };
                tracing::warn!(error = %upstream, "LLM provider failed");
                let mut e = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    codes::UPSTREAM_ERROR,
                    upstream.to_string(),
                );
                e.body = e.body.with_detail("provider", provider);
                if let Some(status) = status {
                    e.body = e.body.with_detail("provider_status", status);
                }
                e
            }
            Error::Crypto => {
                tracing::error!("a stored secret failed to decrypt: wrong KEK or tampered row");
                ApiError::internal()
            }
            Error::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The code a bare framework error status stands for.
fn code_for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (codes::METHOD_NOT_ALLOWED, "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => (codes::PAYLOAD_TOO_LARGE, "request body is too large"),
        StatusCode::UNAUTHORIZED => (codes::UNAUTHORIZED, "unauthorized"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (codes::BAD_REQUEST, "unsupported content type"),
        s if s.is_client_error() => (codes::BAD_REQUEST, "bad request"),
        _ => (codes::INTERNAL, "internal error"),
    }
}

/// Safety net: any error response that is not already JSON (axum's own 405,
/// a layer's 413) gets the contract's error body, so clients never see a
/// bare status.
pub async fn ensure_error_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = code_for_status(status);
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = ApiError::new(status, code, message).into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    replaced
}
