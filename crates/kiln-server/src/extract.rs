//! Extractors that speak the contract: tolerant JSON bodies, API-key auth,
//! and path/query parsing whose failures carry the error body.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use kiln_core::auth::AuthContext;

use crate::AppState;
use crate::error::ApiError;

/// The header every `/api/sdk` call authenticates with.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The caller, authenticated by `X-API-Key`: its key and its project.
#[derive(Debug, Clone)]
pub struct Authed(pub AuthContext);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(key) = header_credential(parts)? else {
            return Err(kiln_core::Error::Unauthorized("missing X-API-Key header".into()).into());
        };
        authenticate(state, parts, key).await.map(Authed)
    }
}

/// The key or token of `X-API-Key`, or `Authorization: Bearer <key>` as
/// OpenAI clients send it.
fn header_credential(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .filter(|v| v.as_bytes().starts_with(b"Bearer "));
    let Some(value) = parts.headers.get(API_KEY_HEADER).or(bearer) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::from(kiln_core::Error::Unauthorized("invalid API key".into())))?;
    Ok(Some(key.strip_prefix("Bearer ").unwrap_or(key).trim()))
}

async fn authenticate(state: &AppState, parts: &Parts, key: &str) -> Result<AuthContext, ApiError> {
    let ctx = state.control.authenticate(key).await?;
    if let Some(session) = &ctx.session {
        check_session_scope(session, parts.uri.path())?;
    }
    Ok(ctx)
}

/// The caller of the realtime channel: a key or token in the headers, as
/// for every route, or a short-lived token in `?token=` (a browser's
/// WebSocket cannot set headers). API keys are refused in the query: URLs
/// end up in logs.
#[derive(Debug, Clone)]
pub struct RealtimeAuthed(pub AuthContext);

impl FromRequestParts<AppState> for RealtimeAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(key) = header_credential(parts)? {
            return authenticate(state, parts, key).await.map(RealtimeAuthed);
        }
        #[derive(serde::Deserialize)]
        struct TokenQuery {
            token: Option<String>,
        }
        let token = axum::extract::Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.token);
        let Some(token) = token else {
            return Err(kiln_core::Error::Unauthorized(
                "missing X-API-Key header (or ?token= with a token from POST /api/sdk/tokens)".into(),
            )
            .into());
        };
        let ctx = authenticate(state, parts, token.trim()).await?;
        if !ctx.via_token {
            return Err(kiln_core::Error::Unauthorized(
                "?token= takes a short-lived token from POST /api/sdk/tokens; send API keys in X-API-Key"
                    .into(),
            )
            .into());
        }
        Ok(RealtimeAuthed(ctx))
    }
}

/// A token scoped to one session reaches only that session's routes
/// (`/api/sdk/agents/<id>` and below) and the realtime channel (where it
/// follows only that session); anything else answers 404, as another
/// project's would.
fn check_session_scope(session: &kiln_core::ids::SessionId, path: &str) -> Result<(), ApiError> {
    let own = format!("/api/sdk/agents/{session}");
    let allowed = path == own || path.starts_with(&format!("{own}/")) || path == "/api/sdk/ws";
    if allowed {
        return Ok(());
    }
    let shown = path
        .strip_prefix("/api/sdk/agents/")
        .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| path.to_owned());
    Err(kiln_core::Error::not_found(kiln_core::error::EntityKind::Session, shown).into())
}

/// A JSON body read tolerantly (CONTRACT §1.3, §1.13): any or no
/// Content-Type, an empty body reads as `{}`, unknown fields are ignored.
/// Syntax and type errors become 400 `bad_request` naming the field.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("request body is larger than the server's limit")
    } else {
        ApiError::bad_request(format!("could not read the request body: {rejection}"), None)
    }
}

/// Parses a JSON body; exposed for tests of the error shapes. Error
/// messages never echo the offending value (it may be a secret), and NUL
/// characters are refused (PostgreSQL cannot store them in text).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            format!(
                "request body is not valid JSON: {}",
                without_values(&e.to_string())
            ),
            None,
        )
    })?;
    if let Some(path) = nul_path(&value, String::new()) {
        let field = (!path.is_empty()).then_some(path);
        return Err(ApiError::bad_request(
            "NUL characters are not allowed",
            field.as_deref(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field =
            missing_field(&inner.to_string()).or_else(|| (path != "." && !path.is_empty()).then_some(path));
        let detail = without_values(&inner.to_string());
        let message = match &field {
            Some(field) => format!("invalid field `{field}`: {detail}"),
            None => format!("invalid request body: {detail}"),
        };
        ApiError::bad_request(message, field.as_deref())
    })
}

/// The path of the first string (or key) holding a NUL character.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(v, here)
            }
        }),
        _ => None,
    }
}

/// serde's message with every backtick-quoted value removed:
/// ``invalid type: integer `123`, expected a string`` → `invalid type:
/// integer, expected a string`. Field names are reported apart.
fn without_values(message: &str) -> String {
    if !(message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("unknown variant"))
    {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" `") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('`') {
            Some(end) => rest = &rest[start + 2 + end + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `missing field `name`` → `name`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Path parameters, percent-decoded after routing (so `%2F` stays inside
/// one segment and `+` stays `+`).
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(ApiError::bad_request(
                "NUL characters are not allowed in paths",
                None,
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(format!("invalid path parameter: {}", e.body_text()), None)
            })
    }
}

/// Query parameters; a malformed one (say `limit=abc`) is 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::bad_request(
                "NUL characters are not allowed in query strings",
                None,
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        name: String,
        #[serde(default)]
        count: Option<i64>,
    }

    #[test]
    fn empty_body_reads_as_empty_object() {
        let e = parse_json::<Body>(b"").unwrap_err();
        assert_eq!(e.body.details.get("field").and_then(|v| v.as_str()), Some("name"));
        #[derive(serde::Deserialize)]
        struct AllOptional {
            #[serde(default)]
            _x: Option<String>,
        }
        assert!(parse_json::<AllOptional>(b"  ").is_ok());
    }

    #[test]
    fn wrong_types_name_the_field_and_unknown_fields_pass() {
        let e = parse_json::<Body>(br#"{"name":"a","count":"seven"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body.code, "bad_request");
        assert_eq!(
            e.body.details.get("field").and_then(|v| v.as_str()),
            Some("count")
        );
        let ok = parse_json::<Body>(br#"{"name":"a","indexId":"x"}"#).unwrap();
        assert_eq!(ok.name, "a");
        assert_eq!(ok.count, None);
    }

    #[test]
    fn messages_never_echo_values_and_nul_is_refused() {
        #[derive(serde::Deserialize, Debug)]
        struct Secret {
            #[serde(rename = "value")]
            _value: String,
        }
        let e = parse_json::<Secret>(br#"{"value": 987654321}"#).unwrap_err();
        assert!(!e.body.message.contains("987654321"), "{}", e.body.message);
        assert!(e.body.message.contains("expected a string"), "{}", e.body.message);
        let e = parse_json::<Body>(br#"{"name":"a\u0000b"}"#).unwrap_err();
        assert_eq!(e.body.details.get("field").and_then(|v| v.as_str()), Some("name"));
        let e = parse_json::<serde_json::Value>(br#"{"m":{"k":["x","\u0000"]}}"#).unwrap_err();
        assert_eq!(
            e.body.details.get("field").and_then(|v| v.as_str()),
            Some("m.k[1]")
        );
    }

    #[test]
    fn syntax_errors_say_so() {
        let e = parse_json::<Body>(b"{\"name\":").unwrap_err();
        assert!(e.body.message.contains("not valid JSON"), "{}", e.body.message);
    }
}
