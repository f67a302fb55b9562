//! What every HTTP provider shares: timeouts, retries, SSE reading.

use std::time::Duration;

use futures::StreamExt;
use kiln_api::sse::{SseDecoder, SseEvent};
use kiln_core::llm::LlmError;
use rand::Rng;

/// Timeouts and retry policy for provider calls.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Establishing the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Streaming calls: from sending the request to the response headers.
    pub first_byte_timeout: Duration,
    /// Non-streaming calls: from sending the request to the response
    /// headers (a non-streamed completion sends its headers only once the
    /// whole answer is generated, so this is long).
    pub response_timeout: Duration,
    /// Longest silence between two chunks of a body or stream.
    pub idle_timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and connection errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry, with jitter.
    pub backoff_base: Duration,
    /// Longest wait honoured from a `Retry-After` header.
    pub max_retry_after: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
            max_retries: 2,
            backoff_base: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

impl HttpSettings {
    /// A client with these timeouts.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("the HTTP client builds")
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let base = self.backoff_base.saturating_mul(1 << attempt.min(6));
        let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        base + Duration::from_millis(jitter)
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    retry_after_of(response.headers(), chrono::Utc::now())
}

/// How long the provider asks to wait: `retry-after-ms` (OpenAI's, in
/// milliseconds) first, then `Retry-After` as seconds or as an HTTP date
/// (a date already past is no wait).
fn retry_after_of(
    headers: &reqwest::header::HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let non_negative = |n: f64| (n.is_finite() && n >= 0.0).then_some(n);
    if let Some(ms) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(non_negative)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text(reqwest::header::RETRY_AFTER.as_str())?;
    if let Some(seconds) = value.parse::<f64>().ok().and_then(non_negative) {
        return Some(Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn is_retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Largest response body read from a provider.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest single SSE line buffered from a provider stream.
pub const MAX_SSE_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// Pulls a human message out of a vendor's error body
/// (`{"error":{"message":…}}`, `{"error":"…"}`, `{"message":…}`). A body
/// in no known format is not echoed (it could be anything the base URL
/// points at). The message is scrubbed of `secret` and of anything shaped
/// like an API key.
pub fn error_message(body: &[u8], secret: Option<&str>) -> String {
    let found = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let candidates = [
                value.pointer("/error/message"),
                value.get("error").filter(|e| e.is_string()),
                value.get("message"),
                value.pointer("/0/error/message"),
            ];
            candidates
                .into_iter()
                .flatten()
                .find_map(|v| v.as_str())
                .map(str::to_owned)
        });
    match found {
        Some(message) => scrub(&message, secret),
        None if body.is_empty() => "no error message".to_owned(),
        None => "the error body was not in the provider's format".to_owned(),
    }
}

/// Removes `secret` and masks words that look like API keys (`sk-…`,
/// `key-…`, long hex or base64 runs), keeping the rest of the message.
pub fn scrub(message: &str, secret: Option<&str>) -> String {
    let mut text = message.to_owned();
    if let Some(secret) = secret.filter(|s| s.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    text.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
            let keyish = core.starts_with("sk-")
                || core.starts_with("sk_")
                || core.starts_with("key-")
                || (core.len() >= 24
                    && core
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_*".contains(c))
                    && core.chars().any(|c| c.is_ascii_digit()));
            if keyish {
                word.replace(core, "[redacted]")
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends the request built by `build` and returns the first successful
/// response. 429, 5xx and connection failures (nothing was sent) are
/// retried with backoff up to `max_retries`; a `Retry-After` longer than
/// `max_retry_after` ends the attempts at once. A timeout is not retried:
/// the provider may be working on (and billing) the request. `secret` is
/// scrubbed from error messages.
pub async fn send(
    settings: &HttpSettings,
    provider: &str,
    header_timeout: Duration,
    secret: Option<&str>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, LlmError> {
    let mut attempt = 0;
    loop {
        let outcome = tokio::time::timeout(header_timeout, build().send()).await;
        let (retryable, error, wait) = match outcome {
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider: provider.to_owned(),
                    phase: "waiting for the response",
                });
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Err(LlmError::Timeout {
                    provider: provider.to_owned(),
                    phase: "connecting",
                });
            }
            Ok(Err(e)) => {
                let error = LlmError::Connection {
                    provider: provider.to_owned(),
                    message: scrub(&connection_message(&e), secret),
                };
                (e.is_connect(), error, None)
            }
            Ok(Ok(response)) if response.status().is_success() => return Ok(response),
            Ok(Ok(response)) => {
                let status = response.status();
                let wait = retry_after(&response);
                let body = tokio::time::timeout(settings.idle_timeout, response.bytes())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let error = LlmError::Upstream {
                    provider: provider.to_owned(),
                    status: status.as_u16(),
                    message: error_message(&body[..body.len().min(64 * 1024)], secret),
                };
                let too_long = wait.is_some_and(|w| w > settings.max_retry_after);
                (is_retryable(status) && !too_long, error, wait)
            }
        };
        if !retryable || attempt >= settings.max_retries {
            return Err(error);
        }
        let delay = settings.backoff(attempt, wait);
        tracing::debug!(provider, attempt, ?delay, error = %error, "retrying provider call");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// A connection error's message with its cause chain, without the URL: the
/// message reaches the tenant, and the URL may be the operator's (an
/// internal model server's address). The operator's log gets the host.
fn connection_message(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        tracing::warn!(host = url.host_str().unwrap_or_default(), error = %message, "a provider call failed");
        message = message
            .replace(&format!(" for url ({})", url.as_str()), "")
            .replace(url.as_str(), "<provider url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

/// Reads a whole body, bounded by the idle timeout between chunks and by
/// the response timeout in all.
pub async fn read_body(
    settings: &HttpSettings,
    provider: &str,
    response: reqwest::Response,
) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    // A body that trickles in (a byte before each idle timeout) is still
    // bounded as a whole.
    let deadline = tokio::time::Instant::now() + settings.response_timeout;
    loop {
        let wait = settings
            .idle_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider: provider.to_owned(),
                    phase: "reading the response",
                });
            }
            Ok(None) => return Ok(body),
            Ok(Some(Ok(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY_BYTES {
                    return Err(LlmError::InvalidResponse {
                        provider: provider.to_owned(),
                        message: format!("response body larger than {MAX_BODY_BYTES} bytes"),
                    });
                }
            }
            Ok(Some(Err(e))) => {
                return Err(LlmError::Connection {
                    provider: provider.to_owned(),
                    message: connection_message(&e),
                });
            }
        }
    }
}

/// The response's SSE events, each bounded by the idle timeout. A body that
/// breaks off mid-stream yields a `Connection` error.
pub fn sse_events(
    settings: &HttpSettings,
    provider: &str,
    response: reqwest::Response,
) -> impl futures::Stream<Item = Result<SseEvent, LlmError>> + Send + 'static {
    let idle = settings.idle_timeout;
    let provider = provider.to_owned();
    let body = response.bytes_stream();
    futures::stream::unfold(
        (body, SseDecoder::new(), std::collections::VecDeque::new(), false),
        move |(mut body, mut decoder, mut ready, done)| {
            let provider = provider.clone();
            async move {
                loop {
                    if let Some(event) = ready.pop_front() {
                        return Some((Ok(event), (body, decoder, ready, done)));
                    }
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(idle, body.next()).await {
                        Err(_) => {
                            let error = LlmError::Timeout {
                                provider,
                                phase: "between stream chunks",
                            };
                            return Some((Err(error), (body, decoder, ready, true)));
                        }
                        Ok(None) => {
                            ready.extend(decoder.finish());
                            if ready.is_empty() {
                                return None;
                            }
                            return ready
                                .pop_front()
                                .map(|event| (Ok(event), (body, decoder, ready, true)));
                        }
                        Ok(Some(Ok(chunk))) => {
                            ready.extend(decoder.feed(&chunk));
                            if decoder.pending() > MAX_SSE_PENDING_BYTES {
                                let error = LlmError::InvalidResponse {
                                    provider,
                                    message: format!(
                                        "a stream line is longer than {MAX_SSE_PENDING_BYTES} bytes"
                                    ),
                                };
                                return Some((Err(error), (body, decoder, ready, true)));
                            }
                        }
                        Ok(Some(Err(e))) => {
                            let error = LlmError::Connection {
                                provider,
                                message: format!("stream broke off: {}", connection_message(&e)),
                            };
                            return Some((Err(error), (body, decoder, ready, true)));
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let of = |pairs: &[(&'static str, &'static str)]| super::retry_after_of(&headers(pairs), now);
        assert_eq!(of(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(of(&[("retry-after", "1.5")]), Some(Duration::from_millis(1500)));
        assert_eq!(
            of(&[("retry-after", "Fri, 04 Dec 2026 10:00:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            of(&[("retry-after", "Fri, 04 Dec 2026 09:59:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            of(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(of(&[("retry-after", "soon")]), None);
        assert_eq!(of(&[("retry-after", "-1")]), None);
        assert_eq!(of(&[]), None);
    }

    use super::*;

    #[tokio::test]
    async fn connection_errors_do_not_show_the_providers_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://127.0.0.1:{port}/internal-llm/v1/chat/completions");
        let client = reqwest::Client::new();
        let settings = HttpSettings {
            max_retries: 0,
            ..HttpSettings::default()
        };
        let error = send(&settings, "openai", Duration::from_secs(5), None, || {
            client.post(&url)
        })
        .await
        .expect_err("nothing listens there");
        let LlmError::Connection { message, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            !message.contains("internal-llm") && !message.contains(&port.to_string()),
            "{message}"
        );
        assert!(message.contains("error sending request"), "{message}");
    }

    #[test]
    fn error_messages_are_scrubbed_and_unknown_bodies_not_echoed() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc1****wxyz. See docs."}}"#;
        let message = error_message(body, Some("sk-proj-abc123secretwxyz"));
        assert_eq!(message, "Incorrect API key provided: [redacted]. See docs.");
        let message = error_message(
            b"{\"message\":\"bad key the-secret-value\"}",
            Some("the-secret-value"),
        );
        assert_eq!(message, "bad key [redacted]");
        assert_eq!(
            error_message(b"<html>internal admin page</html>", None),
            "the error body was not in the provider's format"
        );
    }
}
