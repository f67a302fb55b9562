//! Kiln's session features beyond the contract: the per-session queue,
//! client-side tools (with [`ClientToolHandlers`], which runs the whole
//! call-and-answer loop, like the Octavus server SDK's attach), webhooks
//! and their signature check, and short-lived tokens.
//!
//! ```no_run
//! # async fn demo(client: kiln_sdk::Client) -> Result<(), kiln_sdk::Error> {
//! use kiln_sdk::ClientToolHandlers;
//! use kiln_sdk::api::{ClientTool, CreateSession};
//! use serde_json::json;
//!
//! let session = client
//!     .create_session(&CreateSession {
//!         client_tools: Some(vec![ClientTool {
//!             name: "get_weather".into(),
//!             description: "The weather in a city".into(),
//!             parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
//!         }]),
//!         ..Default::default()
//!     })
//!     .await?;
//! let handlers = ClientToolHandlers::new()
//!     .on("get_weather", |args| async move { Ok(json!({"city": args["city"], "sky": "clear"})) });
//! let events = client.run_with_tools(&session.id, "Weather in Lisbon?", &handlers).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value};

use kiln_api::agent::{FileContent, FileEntry, FileTree};
use kiln_api::token::{CreateToken, TokenCreated};
use kiln_api::webhook::{
    Webhook, WebhookConfig, WebhookDelivery, WebhookDeliveryList, WebhookList, WebhooksUpdate,
};
use kiln_api::{Enqueued, QueueList, QueueOrder, QueuedTurn, RunAgent, ToolResultBody};

use crate::agents::{AgentEventStream, TurnEvent, TurnEventKind};
use crate::client::{Client, segment};
use crate::error::Error;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
type Handler = Box<dyn Fn(Map<String, Value>) -> HandlerFuture + Send + Sync>;

/// Async handlers for a session's client tools, by tool name. A handler
/// gets the model's arguments and returns the result (any JSON) or an
/// error message (the model reads `{"error": …}`).
#[derive(Default)]
pub struct ClientToolHandlers {
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for ClientToolHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("ClientToolHandlers")
            .field("tools", &names)
            .finish()
    }
}

impl ClientToolHandlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `tool` (replacing any earlier one).
    pub fn on<F, Fut>(mut self, tool: &str, handler: F) -> Self
    where
        F: Fn(Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.handlers
            .insert(tool.to_owned(), Box::new(move |args| Box::pin(handler(args))));
        self
    }

    /// Runs the handler of `tool`; a tool without one is an error the
    /// model reads.
    async fn call(&self, tool: &str, args: Map<String, Value>) -> Result<Value, String> {
        match self.handlers.get(tool) {
            Some(handler) => handler(args).await,
            None => Err(format!("the client has no handler for the tool `{tool}`")),
        }
    }
}

/// Stream cuts a tool loop resumes from before it gives up.
const RESUMES: u32 = 3;

impl Client {
    /// `POST /api/sdk/agents/{id}/messages` (Kiln): runs the message as a
    /// turn now when the session is free (`status: "running"`), else
    /// queues it (`status: "queued"` with its `queue_position`). Follow the
    /// output with [`Client::resume_events`]. 409 `queue_full` past 100.
    pub async fn enqueue_message(&self, id: &str, message: &str) -> Result<Enqueued, Error> {
        let body = RunAgent {
            message: message.to_owned(),
        };
        self.with_body(
            Method::POST,
            &format!("/api/sdk/agents/{}/messages", segment(id)),
            &body,
        )
        .await
    }

    /// `GET /api/sdk/agents/{id}/queue` (Kiln): the turns waiting, next first.
    pub async fn list_queue(&self, id: &str) -> Result<Vec<QueuedTurn>, Error> {
        let list: QueueList = self
            .get(&format!("/api/sdk/agents/{}/queue", segment(id)))
            .await?;
        Ok(list.queue)
    }

    /// `PUT /api/sdk/agents/{id}/queue` (Kiln): the listed turns first, in
    /// that order; returns the new queue.
    pub async fn reorder_queue(&self, id: &str, order: &[&str]) -> Result<Vec<QueuedTurn>, Error> {
        let body = QueueOrder {
            order: order.iter().map(|s| (*s).to_owned()).collect(),
        };
        let list: QueueList = self
            .with_body(
                Method::PUT,
                &format!("/api/sdk/agents/{}/queue", segment(id)),
                &body,
            )
            .await?;
        Ok(list.queue)
    }

    /// `DELETE /api/sdk/agents/{id}/queue/{qid}` (Kiln): takes a turn off
    /// the queue before it runs.
    pub async fn cancel_queued(&self, id: &str, queued_id: &str) -> Result<(), Error> {
        self.delete(&format!(
            "/api/sdk/agents/{}/queue/{}",
            segment(id),
            segment(queued_id)
        ))
        .await
    }

    /// `POST /api/sdk/agents/{id}/tool-results` (Kiln): a client tool
    /// call's result (`Ok`) or error (`Err`), by its `call_id`.
    pub async fn submit_tool_result(
        &self,
        id: &str,
        call_id: &str,
        outcome: Result<Value, String>,
    ) -> Result<(), Error> {
        let (result, error) = match outcome {
            Ok(result) => (Some(result), None),
            Err(error) => (None, Some(error)),
        };
        let body = ToolResultBody {
            call_id: call_id.to_owned(),
            result,
            error,
        };
        self.send(
            self.request(
                Method::POST,
                &format!("/api/sdk/agents/{}/tool-results", segment(id)),
            )
            .json(&body),
        )
        .await?;
        Ok(())
    }

    /// `PUT /api/sdk/agents/{id}/webhooks` (Kiln): replaces the session's
    /// webhooks whole (`&[]` removes them); returns them as stored.
    pub async fn set_webhooks(&self, id: &str, webhooks: &[WebhookConfig]) -> Result<Vec<Webhook>, Error> {
        let body = WebhooksUpdate {
            webhooks: webhooks.to_vec(),
        };
        let list: WebhookList = self
            .with_body(
                Method::PUT,
                &format!("/api/sdk/agents/{}/webhooks", segment(id)),
                &body,
            )
            .await?;
        Ok(list.webhooks)
    }

    /// `GET /api/sdk/agents/{id}/webhooks` (Kiln): never their secrets.
    pub async fn list_webhooks(&self, id: &str) -> Result<Vec<Webhook>, Error> {
        let list: WebhookList = self
            .get(&format!("/api/sdk/agents/{}/webhooks", segment(id)))
            .await?;
        Ok(list.webhooks)
    }

    /// `GET /api/sdk/agents/{id}/webhook-deliveries` (Kiln): newest first.
    pub async fn list_webhook_deliveries(&self, id: &str) -> Result<Vec<WebhookDelivery>, Error> {
        let list: WebhookDeliveryList = self
            .get(&format!("/api/sdk/agents/{}/webhook-deliveries", segment(id)))
            .await?;
        Ok(list.deliveries)
    }

    /// `GET /api/sdk/agents/{id}/files` (Kiln): the files the session's
    /// code saved (`files.write`), by path.
    pub async fn list_files(&self, id: &str) -> Result<Vec<FileEntry>, Error> {
        let tree: FileTree = self
            .get(&format!("/api/sdk/agents/{}/files", segment(id)))
            .await?;
        Ok(tree.tree)
    }

    /// `GET /api/sdk/agents/{id}/files/{path}` (Kiln): one file, `raw` text
    /// or `base64`.
    pub async fn read_file(&self, id: &str, path: &str) -> Result<FileContent, Error> {
        // The whole path as one encoded segment (`/` as %2F): the server
        // decodes it, and `..` parts reach it (and are refused) instead of
        // the URL being normalised around them.
        self.get(&format!(
            "/api/sdk/agents/{}/files/{}",
            segment(id),
            segment(path)
        ))
        .await
    }

    /// `POST /api/sdk/tokens` (Kiln): a short-lived token acting as this
    /// client's key, for `ttl_seconds` (default 900, at most 86400), for one
    /// session only when `session_id` is given. Hand it to a browser; use it
    /// with [`Client::new`] like a key.
    pub async fn create_token(
        &self,
        ttl_seconds: Option<i64>,
        session_id: Option<&str>,
    ) -> Result<TokenCreated, Error> {
        let body = CreateToken {
            ttl_seconds,
            session_id: session_id.map(str::to_owned),
        };
        self.with_body(Method::POST, "/api/sdk/tokens", &body).await
    }

    /// Runs a turn and answers its client tool calls with `handlers` until
    /// it ends; returns its events, the terminal one last.
    pub async fn run_with_tools(
        &self,
        id: &str,
        message: &str,
        handlers: &ClientToolHandlers,
    ) -> Result<Vec<TurnEvent>, Error> {
        let events = self.run_agent(id, message).await?;
        self.drive_client_tools(events, handlers).await
    }

    /// Reads a turn's stream to its end, answering each client tool call
    /// with `handlers` as it comes (a queued turn: open its stream with
    /// [`Client::resume_events`]). A cut stream is resumed from its last
    /// event, up to three times.
    pub async fn drive_client_tools(
        &self,
        mut events: AgentEventStream,
        handlers: &ClientToolHandlers,
    ) -> Result<Vec<TurnEvent>, Error> {
        let session_id = events.session_id().to_owned();
        let mut seen = Vec::new();
        let mut resumes = 0;
        loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if let TurnEventKind::ToolCall {
                        tool,
                        args,
                        call_id: Some(call_id),
                    } = &event.kind
                    {
                        let outcome = handlers.call(tool, args.clone()).await;
                        self.submit_tool_result(&session_id, call_id, outcome).await?;
                    }
                    let last = event.is_terminal();
                    seen.push(event);
                    if last {
                        return Ok(seen);
                    }
                }
                Some(Err(Error::StreamCut(cut))) if resumes < RESUMES => {
                    resumes += 1;
                    events = self.resume_events(&session_id, cut.last_seq.unwrap_or(0)).await?;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(seen),
            }
        }
    }
}

/// Checks a webhook delivery in a receiver: `signature_header` is the
/// `X-Kiln-Signature` value, `body` the raw request body (before any JSON
/// parsing), `tolerance` how far its timestamp may be from this machine's
/// clock (5 minutes is usual; older ones are replays).
///
/// ```
/// let body = br#"{"event_type":"session.completed"}"#;
/// let now = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_secs() as i64;
/// let header = kiln_sdk::api::webhook::signature_header("whsec", now, body);
/// kiln_sdk::verify_webhook_signature("whsec", &header, body, std::time::Duration::from_secs(300)).unwrap();
/// assert!(kiln_sdk::verify_webhook_signature("other", &header, body, std::time::Duration::from_secs(300)).is_err());
/// ```
pub fn verify_webhook_signature(
    secret: &str,
    signature_header: &str,
    body: &[u8],
    tolerance: std::time::Duration,
) -> Result<(), kiln_api::webhook::SignatureError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    kiln_api::webhook::verify_signature(
        secret,
        signature_header,
        body,
        now,
        i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX),
    )
}
