//! The one mapping from failures to HTTP: status, stable code, error body.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::{ErrorBody, codes};
use kiln_core::Error;
use kiln_core::error::Refusal;

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

    /// 410 `endpoint_removed`: a legacy route that source-sync replaced.
    pub fn endpoint_removed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, codes::ENDPOINT_REMOVED, message)
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
            Error::Refused { refusal, message } => {
                let (status, code) = refusal_status(refusal);
                ApiError::new(status, code, message)
            }
            Error::VersionConflict { current_version, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, codes::VERSION_CONFLICT, err.to_string());
                e.body = e.body.with_detail("current_version", current_version);
                e
            }
            Error::SourceInvalid { issues } => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    codes::SOURCE_INVALID,
                    kiln_core::issues::refusal_message(&issues),
                );
                let wire: Vec<_> = issues.into_iter().map(crate::convert::source_issue).collect();
                e.body = e
                    .body
                    .with_detail("serverIssues", serde_json::to_value(wire).unwrap_or_default());
                e
            }
            Error::RateLimited {
                message,
                retry_after_seconds,
            } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED, message);
                e.body = e.body.with_detail("retry_after_seconds", retry_after_seconds);
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

/// Each refusal's status and wire code.
fn refusal_status(refusal: Refusal) -> (StatusCode, &'static str) {
    match refusal {
        Refusal::UnknownTool => (StatusCode::BAD_REQUEST, codes::UNKNOWN_TOOL),
        Refusal::NoDraft => (StatusCode::CONFLICT, codes::NO_DRAFT),
        Refusal::ForceRequired => (StatusCode::BAD_REQUEST, codes::FORCE_REQUIRED),
        Refusal::NotDeployed => (StatusCode::CONFLICT, codes::NOT_DEPLOYED),
        Refusal::RunInProgress => (StatusCode::CONFLICT, codes::RUN_IN_PROGRESS),
        Refusal::NotRunning => (StatusCode::CONFLICT, codes::NOT_RUNNING),
        Refusal::InputAlreadyAnswered => (StatusCode::BAD_REQUEST, codes::INPUT_ALREADY_ANSWERED),
        Refusal::InputExpired => (StatusCode::BAD_REQUEST, codes::INPUT_EXPIRED),
        Refusal::NoEvalSuite => (StatusCode::CONFLICT, codes::NO_EVAL_SUITE),
        Refusal::RunEnded => (StatusCode::CONFLICT, codes::RUN_ENDED),
        Refusal::QueueFull => (StatusCode::CONFLICT, codes::QUEUE_FULL),
        Refusal::ToolCallNotFound => (StatusCode::NOT_FOUND, codes::TOOL_CALL_NOT_FOUND),
        Refusal::ToolCallAlreadyResolved => (StatusCode::BAD_REQUEST, codes::TOOL_CALL_ALREADY_RESOLVED),
        Refusal::ToolCallExpired => (StatusCode::BAD_REQUEST, codes::TOOL_CALL_EXPIRED),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = retry_after(&self);
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// `Retry-After` (seconds) for an error that says when to come back.
pub(crate) fn retry_after(e: &ApiError) -> Option<HeaderValue> {
    e.body
        .details
        .get("retry_after_seconds")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
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
    // The OpenAI-compatible routes answer in OpenAI's error shape.
    let openai = request.uri().path().starts_with("/v1/");
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
    let error = ApiError::new(status, code, message);
    let mut replaced = if openai {
        crate::routes::openai::OpenAiError::from(error).into_response()
    } else {
        error.into_response()
    };
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::StoreError;
    use kiln_core::error::EntityKind;
    use kiln_core::llm::LlmError;

    /// One error of every kind the core has. The `match` has no catch-all:
    /// a new variant does not compile until it is listed here too.
    fn one_of_each() -> Vec<Error> {
        let samples = vec![
            Error::not_found(EntityKind::Session, "s"),
            Error::Unauthorized("no".into()),
            Error::validation("bad", Some("f")),
            Error::Conflict("taken".into()),
            Error::VersionConflict {
                name: "n".into(),
                current_version: 2,
            },
            Error::PayloadTooLarge { limit_bytes: 1 },
            Error::RateLimited {
                message: "slow down".into(),
                retry_after_seconds: 3,
            },
            Error::SourceInvalid { issues: Vec::new() },
            Error::SecretsDisabled,
            Error::Crypto,
            Error::ModelNotConfigured {
                message: "m".into(),
                configured: Vec::new(),
            },
            Error::Upstream(LlmError::Connection {
                provider: "openai".into(),
                message: "down".into(),
            }),
            Error::Store(StoreError::Database("x".into())),
        ];
        for e in &samples {
            match e {
                Error::NotFound { .. }
                | Error::Unauthorized(_)
                | Error::Validation { .. }
                | Error::Conflict(_)
                | Error::VersionConflict { .. }
                | Error::Refused { .. }
                | Error::PayloadTooLarge { .. }
                | Error::RateLimited { .. }
                | Error::SourceInvalid { .. }
                | Error::SecretsDisabled
                | Error::Crypto
                | Error::ModelNotConfigured { .. }
                | Error::Upstream(_)
                | Error::Store(_) => {}
            }
        }
        let refusals = Refusal::ALL.map(|r| Error::refused(r, "refused"));
        samples.into_iter().chain(refusals).collect()
    }

    #[test]
    fn every_error_the_server_can_emit_has_a_listed_code() {
        for error in one_of_each() {
            let shown = format!("{error:?}");
            let api = ApiError::from(error);
            assert!(
                codes::ALL.contains(&api.body.code.as_str()),
                "{shown} answers code `{}`, which kiln_api::codes does not list",
                api.body.code
            );
            assert_eq!(api.body.error, api.body.code);
            assert!(api.status.is_client_error() || api.status.is_server_error());
        }
        for status in [400u16, 401, 404, 405, 413, 415, 422, 500, 503] {
            let (code, _) = code_for_status(StatusCode::from_u16(status).unwrap());
            assert!(
                codes::ALL.contains(&code),
                "status {status} answers unlisted `{code}`"
            );
        }
    }

    #[test]
    fn refusals_keep_their_contract_statuses() {
        assert_eq!(refusal_status(Refusal::RunInProgress).0, StatusCode::CONFLICT);
        assert_eq!(refusal_status(Refusal::NotRunning).0, StatusCode::CONFLICT);
        assert_eq!(refusal_status(Refusal::UnknownTool).0, StatusCode::BAD_REQUEST);
        assert_eq!(refusal_status(Refusal::InputExpired).0, StatusCode::BAD_REQUEST);
    }
}
