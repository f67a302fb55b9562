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
    /// From sending the request to the response headers.
    pub first_byte_timeout: Duration,
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
            return wait.min(self.max_retry_after);
        }
        let base = self.backoff_base.saturating_mul(1 << attempt.min(6));
        let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        base + Duration::from_millis(jitter)
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn is_retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Pulls a human message out of a vendor's error body
/// (`{"error":{"message":…}}`, `{"error":"…"}`, `{"message":…}`), else the
/// body's first 300 characters.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            value.pointer("/error/message"),
            value.get("error").filter(|e| e.is_string()),
            value.get("message"),
            value.pointer("/0/error/message"),
        ];
        if let Some(text) = candidates.into_iter().flatten().find_map(|v| v.as_str()) {
            return text.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error message".to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

/// Sends the request built by `build`, retrying 429/5xx/connection errors
/// with backoff, and returns the first successful response. Error bodies
/// are read (with the idle timeout) for their message.
pub async fn send(
    settings: &HttpSettings,
    provider: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, LlmError> {
    let mut attempt = 0;
    loop {
        let outcome = tokio::time::timeout(settings.first_byte_timeout, build().send()).await;
        let (retryable, error, wait) = match outcome {
            Err(_) => (
                true,
                LlmError::Timeout {
                    provider: provider.to_owned(),
                    phase: "waiting for the first byte",
                },
                None,
            ),
            Ok(Err(e)) => {
                let error = if e.is_timeout() {
                    LlmError::Timeout {
                        provider: provider.to_owned(),
                        phase: "connecting",
                    }
                } else {
                    LlmError::Connection {
                        provider: provider.to_owned(),
                        message: connection_message(&e),
                    }
                };
                (true, error, None)
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
                    message: error_message(&body),
                };
                (is_retryable(status), error, wait)
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

/// A connection error's message with its cause chain. Keys never travel in
/// URLs (every client sends them as headers), so the URL may stay.
fn connection_message(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

/// Reads a whole body, bounded by the idle timeout between chunks.
pub async fn read_body(
    settings: &HttpSettings,
    provider: &str,
    response: reqwest::Response,
) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        match tokio::time::timeout(settings.idle_timeout, stream.next()).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider: provider.to_owned(),
                    phase: "reading the response",
                });
            }
            Ok(None) => return Ok(body),
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => {
                return Err(LlmError::Connection {
                    provider: provider.to_owned(),
                    message: e.to_string(),
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
                        Ok(Some(Ok(chunk))) => ready.extend(decoder.feed(&chunk)),
                        Ok(Some(Err(e))) => {
                            let error = LlmError::Connection {
                                provider,
                                message: format!("stream broke off: {e}"),
                            };
                            return Some((Err(error), (body, decoder, ready, true)));
                        }
                    }
                }
            }
        },
    )
}
