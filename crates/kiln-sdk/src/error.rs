//! Errors the SDK returns: the server's typed error, or a transport failure.

use serde_json::{Map, Value};

/// An error response from the server, as the contract defines it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    /// Stable machine-readable kind (`NOT_FOUND`, `unauthorized`, ...).
    pub code: String,
    pub message: String,
    /// Every top-level key of the body except `message` and `code`.
    pub details: Map<String, Value>,
}

/// The details of a `version_conflict` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionConflict {
    /// The latest live version; 0 when the server sent none.
    pub current_version: i64,
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// `Some` when this is a 409 `version_conflict`.
    pub fn as_version_conflict(&self) -> Option<VersionConflict> {
        (self.status == 409 && self.code == "version_conflict").then(|| VersionConflict {
            current_version: self
                .details
                .get("current_version")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        })
    }

    /// Builds the error from a status and a body that may or may not be the
    /// contract's JSON; a non-JSON body falls back to the status text.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
        let mut details = parsed.unwrap_or_default();
        // OpenAI-shaped errors (`/v1`): {"error": {"message", "type", "code"}}.
        if let Some(Value::Object(inner)) = details.get("error").cloned()
            && !details.contains_key("message")
        {
            for key in ["message", "code"] {
                if let Some(value) = inner.get(key) {
                    details.insert(key.to_owned(), value.clone());
                }
            }
        }
        let message = match details.remove("message") {
            Some(Value::String(m)) => m,
            _ => reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_owned(),
        };
        let code = match details.remove("code") {
            Some(Value::String(c)) => c,
            _ => String::new(),
        };
        ApiError {
            status,
            code,
            message,
            details,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The request did not complete (connection, timeout, TLS).
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// A 2xx response whose body did not match the expected type.
    #[error("unexpected response body: {0}")]
    Decode(String),
    /// The base URL or an argument could not form a request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An agent turn's event stream ended (server restart, dropped
    /// connection) before the turn's `done` or `error` event. The turn may
    /// still be running: [`Client::resume_events`](crate::Client::resume_events)
    /// with [`StreamCut::last_seq`] picks it up where the stream stopped.
    #[error(transparent)]
    StreamCut(#[from] StreamCut),
    /// The realtime channel's WebSocket failed (connect, read or write).
    #[error("realtime connection: {0}")]
    Realtime(String),
}

/// The details of [`Error::StreamCut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCut {
    /// The session whose turn was being streamed.
    pub session_id: String,
    /// The sequence number (`id:`) of the last event received; for a
    /// resumed stream with no new event, the cursor it started from. `None`
    /// when a `run` stream was cut before its first event.
    pub last_seq: Option<i64>,
    /// The transport error that cut the stream, when there was one (none
    /// when the body simply ended).
    pub cause: Option<String>,
}

impl std::fmt::Display for StreamCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream ended before the turn finished")?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        match self.last_seq {
            Some(seq) => write!(f, "; resume with resume_events(\"{}\", {seq})", self.session_id),
            None => write!(
                f,
                "; no event arrived, so there is no sequence number to resume session {} from",
                self.session_id
            ),
        }
    }
}

impl std::error::Error for StreamCut {}

impl Error {
    /// The API error, if the server sent one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }

    pub fn is_unauthorized(&self) -> bool {
        self.api().is_some_and(ApiError::is_unauthorized)
    }

    pub fn as_version_conflict(&self) -> Option<VersionConflict> {
        self.api().and_then(ApiError::as_version_conflict)
    }

    /// `Some` when an agent event stream ended before its turn did.
    pub fn as_stream_cut(&self) -> Option<&StreamCut> {
        match self {
            Error::StreamCut(cut) => Some(cut),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn details_hold_every_other_key() {
        let e = ApiError::from_response(
            409,
            br#"{"error":"version_conflict","message":"stale","code":"version_conflict","current_version":7}"#,
        );
        assert_eq!(e.message, "stale");
        assert_eq!(e.as_version_conflict().unwrap().current_version, 7);
        assert!(e.details.contains_key("error"));
        assert!(!e.details.contains_key("message"));
    }

    #[test]
    fn client_debug_hides_the_key() {
        let client = crate::Client::new("http://127.0.0.1:1", "kiln_supersecretvalue").unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("supersecret"), "{debug}");
        assert!(debug.contains("127.0.0.1:1"));
    }

    #[test]
    fn openai_shaped_errors_are_read_too() {
        let e = ApiError::from_response(
            429,
            br#"{"error":{"message":"slow down","type":"rate_limit_error","code":"upstream_error"}}"#,
        );
        assert_eq!(
            (e.message.as_str(), e.code.as_str()),
            ("slow down", "upstream_error")
        );
    }

    #[test]
    fn non_json_bodies_fall_back_to_status_text() {
        let e = ApiError::from_response(502, b"<html>bad gateway</html>");
        assert_eq!(e.message, "Bad Gateway");
        assert_eq!(e.code, "");
        assert!(e.as_version_conflict().is_none());
    }
}
