//! Anthropic's Messages API (`POST {base}/v1/messages`), with streaming
//! (`message_start` … `message_stop`) and tool use.

use async_trait::async_trait;
use futures::StreamExt;
use kiln_core::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, FinishReason, LlmError, LlmProvider, Role, ToolCall,
    Usage,
};
use serde_json::{Value, json};

use crate::http::{self, HttpSettings};

pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is used when the caller sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    base_url: String,
    api_key: String,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl Anthropic {
    pub fn new(base_url: &str, api_key: String, client: reqwest::Client, settings: HttpSettings) -> Self {
        Anthropic {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            client,
            settings,
        }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body)
    }

    fn invalid(message: impl Into<String>) -> LlmError {
        LlmError::InvalidResponse {
            provider: "anthropic".into(),
            message: message.into(),
        }
    }
}

/// The neutral request in Anthropic's format: system messages become the
/// `system` field, tool results become `tool_result` blocks in a user turn,
/// consecutive same-role turns are merged.
pub fn to_wire(request: &ChatRequest, stream: bool) -> Value {
    let system: Vec<&str> = request
        .all_messages()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for m in request.all_messages().filter(|m| m.role != Role::System) {
        let (role, blocks) = match m.role {
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for call in &m.tool_calls {
                    let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                    blocks
                        .push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                ("assistant", blocks)
            }
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                })],
            ),
            Role::User | Role::System => ("user", vec![json!({"type": "text", "text": m.content})]),
        };
        if blocks.is_empty() {
            // Anthropic refuses empty turns (an empty stored reply, say).
            continue;
        }
        match messages.last_mut() {
            Some((last, existing)) if last == role => existing.extend(blocks),
            _ => messages.push((role.to_owned(), blocks)),
        }
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if let Some(choice) = request.tool_choice.as_ref().and_then(tool_choice) {
        body["tool_choice"] = choice;
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = request.top_p {
        body["top_p"] = json!(p);
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// OpenAI's `tool_choice` in Anthropic's terms.
fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::Object(_) => {
            let name = choice.pointer("/function/name").and_then(Value::as_str)?;
            Some(json!({"type": "tool", "name": name}))
        }
        _ => None,
    }
}

/// Input tokens including prompt-cache reads and writes.
fn input_tokens(usage: &Value) -> u32 {
    tokens(usage, "input_tokens")
        + tokens(usage, "cache_creation_input_tokens")
        + tokens(usage, "cache_read_input_tokens")
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn tokens(value: &Value, key: &str) -> u32 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0) as u32
}

#[async_trait]
impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = to_wire(request, false);
        let response = http::send(
            &self.settings,
            "anthropic",
            self.settings.response_timeout,
            Some(self.api_key.as_str()),
            || self.post(&body),
        )
        .await?;
        let bytes = http::read_body(&self.settings, "anthropic", response).await?;
        let message: Value =
            serde_json::from_slice(&bytes).map_err(|e| Self::invalid(format!("not a message: {e}")))?;
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| Self::invalid("no content in the message"))?;
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => content.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => tool_calls.push(ToolCall {
                    id: block.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                    name: block.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                    arguments: block
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                }),
                _ => {}
            }
        }
        let usage = message.get("usage").cloned().unwrap_or_default();
        Ok(ChatResponse {
            model: message
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&request.model)
                .to_owned(),
            content,
            tool_calls,
            finish_reason: finish_reason(message.get("stop_reason").and_then(Value::as_str)),
            usage: Usage {
                prompt_tokens: input_tokens(&usage),
                completion_tokens: tokens(&usage, "output_tokens"),
            },
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let body = to_wire(request, true);
        let response = http::send(
            &self.settings,
            "anthropic",
            self.settings.first_byte_timeout,
            Some(self.api_key.as_str()),
            || self.post(&body),
        )
        .await?;
        let events = http::sse_events(&self.settings, "anthropic", response);
        // Anthropic numbers content blocks; tool calls are numbered apart.
        let mut tool_index_of_block = std::collections::HashMap::<u64, u32>::new();
        let mut usage = Usage::default();
        let mut stopped = false;
        let mut failed = false;
        let deltas = events
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .map(move |event| -> Vec<Result<ChatDelta, LlmError>> {
                let event = match event {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => {
                        failed = true;
                        return vec![Err(e)];
                    }
                    None if stopped || failed => return Vec::new(),
                    None => return vec![Err(Self::invalid("stream ended before message_stop"))],
                };
                let data: Value = match serde_json::from_str(&event.data) {
                    Ok(d) => d,
                    Err(e) => {
                        failed = true;
                        return vec![Err(Self::invalid(format!("malformed stream event: {e}")))];
                    }
                };
                let kind = data
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or(event.event.as_str());
                match kind {
                    "message_start" => {
                        if let Some(u) = data.pointer("/message/usage") {
                            usage.prompt_tokens = input_tokens(u);
                            usage.completion_tokens = tokens(u, "output_tokens");
                        }
                        Vec::new()
                    }
                    "content_block_start" => {
                        let block = data.get("content_block").cloned().unwrap_or_default();
                        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                            let index = tool_index_of_block.len() as u32;
                            tool_index_of_block
                                .insert(data.get("index").and_then(Value::as_u64).unwrap_or(0), index);
                            return vec![Ok(ChatDelta::ToolCall {
                                index,
                                id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                                name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                                arguments: String::new(),
                            })];
                        }
                        match block.get("text").and_then(Value::as_str) {
                            Some(text) if !text.is_empty() => vec![Ok(ChatDelta::Content(text.to_owned()))],
                            _ => Vec::new(),
                        }
                    }
                    "content_block_delta" => {
                        let delta = data.get("delta").cloned().unwrap_or_default();
                        match delta.get("type").and_then(Value::as_str) {
                            Some("text_delta") => {
                                let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                                vec![Ok(ChatDelta::Content(text.to_owned()))]
                            }
                            Some("input_json_delta") => {
                                let block = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                                let index = tool_index_of_block.get(&block).copied().unwrap_or(0);
                                let partial = delta.get("partial_json").and_then(Value::as_str).unwrap_or("");
                                vec![Ok(ChatDelta::ToolCall {
                                    index,
                                    id: None,
                                    name: None,
                                    arguments: partial.to_owned(),
                                })]
                            }
                            _ => Vec::new(),
                        }
                    }
                    "message_delta" => {
                        let mut out = Vec::new();
                        if let Some(u) = data.get("usage") {
                            usage.completion_tokens = tokens(u, "output_tokens");
                            if u.get("input_tokens").is_some() {
                                usage.prompt_tokens = input_tokens(u);
                            }
                        }
                        if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                            out.push(Ok(ChatDelta::Finish(finish_reason(Some(reason)))));
                        }
                        out
                    }
                    "message_stop" => {
                        stopped = true;
                        vec![Ok(ChatDelta::Usage(usage))]
                    }
                    "error" => {
                        failed = true;
                        let message = data
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("stream error")
                            .to_owned();
                        vec![Err(LlmError::Upstream {
                            provider: "anthropic".into(),
                            status: 500,
                            message,
                        })]
                    }
                    _ => Vec::new(),
                }
            })
            .flat_map(futures::stream::iter);
        Ok(Box::pin(deltas))
    }
}
