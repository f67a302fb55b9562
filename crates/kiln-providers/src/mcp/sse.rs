//! The HTTP+SSE transport of MCP 2024-11-05, which rmcp no longer ships and
//! many deployed servers still speak: the client opens a `GET` event stream,
//! the server's first event (`endpoint`) names the URL the client `POST`s
//! its JSON-RPC messages to, and every answer arrives on the stream as a
//! `message` event.
//!
//! The endpoint must be on the stream's own origin (a server cannot point
//! the client's requests, token included, anywhere else). Every request goes
//! through the client's guarded `reqwest::Client`. An event larger than
//! `max_event_bytes`, a message that is not JSON-RPC, or the end of the
//! stream closes the transport: the pending request fails and the caller
//! drops the connection, so the next call connects anew.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kiln_api::sse::{SseDecoder, SseEvent};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleClient;
use rmcp::transport::Transport;
use url::Url;

/// Why the transport failed.
#[derive(Debug)]
pub(super) struct SseTransportError(String);

impl std::fmt::Display for SseTransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SseTransportError {}

/// One open HTTP+SSE session with a server.
pub(super) struct SseClientTransport {
    http: reqwest::Client,
    endpoint: Url,
    bearer: Option<String>,
    timeout: Duration,
    events: EventReader,
}

/// The server's event stream, decoded as it arrives.
struct EventReader {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    decoder: SseDecoder,
    ready: VecDeque<SseEvent>,
    /// Bytes received since the last complete event.
    since_event: usize,
    max_event_bytes: usize,
}

impl EventReader {
    /// The next event, or `None` when the stream ends, fails or sends an
    /// event over the size limit.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let chunk = self.body.next().await?.ok()?;
            self.since_event += chunk.len();
            let events = self.decoder.feed(&chunk);
            if !events.is_empty() {
                self.since_event = self.decoder.pending();
            }
            if self.since_event > self.max_event_bytes {
                tracing::debug!(
                    limit = self.max_event_bytes,
                    "an MCP SSE event over the size limit"
                );
                return None;
            }
            self.ready.extend(events);
        }
    }
}

impl SseClientTransport {
    /// Opens the event stream at `url` and waits for the `endpoint` event.
    pub(super) async fn connect(
        http: reqwest::Client,
        url: &str,
        bearer: Option<String>,
        timeout: Duration,
        max_event_bytes: usize,
    ) -> Result<SseClientTransport, SseTransportError> {
        let stream_url =
            Url::parse(url).map_err(|e| SseTransportError(format!("invalid URL `{url}`: {e}")))?;
        let mut request = http
            .get(stream_url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(token) = &bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SseTransportError(format!("cannot open the event stream: {e}")))?;
        if !response.status().is_success() {
            return Err(SseTransportError(format!(
                "the event stream answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let mut events = EventReader {
            body: response.bytes_stream().boxed(),
            decoder: SseDecoder::new(),
            ready: VecDeque::new(),
            since_event: 0,
            max_event_bytes,
        };
        let endpoint = loop {
            let Some(event) = events.next().await else {
                return Err(SseTransportError(
                    "the event stream ended before the server named its endpoint".into(),
                ));
            };
            if event.event == "endpoint" {
                break event.data;
            }
        };
        let endpoint = stream_url
            .join(endpoint.trim())
            .map_err(|e| SseTransportError(format!("the server named an invalid endpoint: {e}")))?;
        if endpoint.origin() != stream_url.origin() {
            return Err(SseTransportError(format!(
                "the server named an endpoint on another origin ({})",
                endpoint.origin().ascii_serialization()
            )));
        }
        Ok(SseClientTransport {
            http,
            endpoint,
            bearer,
            timeout,
            events,
        })
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .json(&item);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| SseTransportError(format!("cannot post to the server: {e}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseTransportError(format!(
                    "the server answered a message with HTTP {}",
                    response.status().as_u16()
                )))
            }
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            let event = self.events.next().await?;
            if !(event.event.is_empty() || event.event == "message") {
                continue;
            }
            return match serde_json::from_str(&event.data) {
                Ok(message) => Some(message),
                Err(error) => {
                    tracing::debug!(%error, "an MCP SSE message that is not JSON-RPC");
                    None
                }
            };
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
