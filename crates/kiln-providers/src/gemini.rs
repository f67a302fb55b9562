//! Google's Gemini API: `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, with function calling. The key goes in
//! the `x-goog-api-key` header, never in the URL.

use async_trait::async_trait;
use futures::StreamExt;
use kiln_core::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, FinishReason, LlmError, LlmProvider, Role, ToolCall,
    Usage,
};
use serde_json::{Value, json};

use crate::http::{self, HttpSettings};

pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

pub struct Gemini {
    base_url: String,
    api_key: String,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl Gemini {
    pub fn new(base_url: &str, api_key: String, client: reqwest::Client, settings: HttpSettings) -> Self {
        Gemini {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            client,
            settings,
        }
    }

    fn post(&self, model: &str, stream: bool, body: &Value) -> reqwest::RequestBuilder {
        let url = if stream {
            format!("{}/models/{model}:streamGenerateContent?alt=sse", self.base_url)
        } else {
            format!("{}/models/{model}:generateContent", self.base_url)
        };
        self.client
            .post(url)
            .header("x-goog-api-key", &self.api_key)
            .json(body)
    }

    fn invalid(message: impl Into<String>) -> LlmError {
        LlmError::InvalidResponse {
            provider: "gemini".into(),
            message: message.into(),
        }
    }
}

/// The neutral request in Gemini's format.
pub fn to_wire(request: &ChatRequest) -> Value {
    let system: Vec<&str> = request
        .all_messages()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    // Tool results name the function, not the call id: map ids to names.
    let names: std::collections::HashMap<&str, &str> = request
        .all_messages()
        .flat_map(|m| m.tool_calls.iter())
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    for m in request.all_messages().filter(|m| m.role != Role::System) {
        let (role, parts) = match m.role {
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() {
                    parts.push(json!({"text": m.content}));
                }
                for call in &m.tool_calls {
                    let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let name = names.get(id).copied().unwrap_or(id);
                let response: Value =
                    serde_json::from_str(&m.content).unwrap_or_else(|_| json!({ "result": m.content }));
                let response = if response.is_object() {
                    response
                } else {
                    json!({ "result": response })
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            Role::User | Role::System => ("user", vec![json!({"text": m.content})]),
        };
        match contents.last_mut() {
            Some((last, existing)) if last == role => existing.extend(parts),
            _ => contents.push((role.to_owned(), parts)),
        }
    }
    let mut body = json!({
        "contents": contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    let mut config = serde_json::Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(m) = request.max_tokens {
        config.insert("maxOutputTokens".into(), json!(m));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(request.stop));
    }
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    body
}

fn finish_reason(reason: Option<&str>, has_calls: bool) -> FinishReason {
    match reason {
        _ if has_calls => FinishReason::ToolCalls,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn usage(response: &Value) -> Option<Usage> {
    let u = response.get("usageMetadata")?;
    Some(Usage {
        prompt_tokens: u.get("promptTokenCount").and_then(Value::as_u64).unwrap_or(0) as u32,
        completion_tokens: (u.get("candidatesTokenCount").and_then(Value::as_u64).unwrap_or(0)
            + u.get("thoughtsTokenCount").and_then(Value::as_u64).unwrap_or(0))
            as u32,
    })
}

/// Text and calls of the first candidate; call ids are made up, as Gemini has none.
fn parts(response: &Value, call_offset: usize) -> (String, Vec<ToolCall>, Option<String>) {
    let candidate = response.pointer("/candidates/0").cloned().unwrap_or_default();
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            calls.push(ToolCall {
                // Gemini has no call ids; make ones unique across rounds.
                id: format!("call_{}_{:08x}", call_offset + calls.len(), rand::random::<u32>()),
                name: call.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                arguments: call
                    .get("args")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            });
        }
    }
    let reason = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (text, calls, reason)
}

#[async_trait]
impl LlmProvider for Gemini {
    fn name(&self) -> &str {
        "gemini"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = to_wire(request);
        let response = http::send(
            &self.settings,
            "gemini",
            self.settings.response_timeout,
            Some(self.api_key.as_str()),
            || self.post(&request.model, false, &body),
        )
        .await?;
        let bytes = http::read_body(&self.settings, "gemini", response).await?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| Self::invalid(format!("not a response: {e}")))?;
        if value.get("candidates").is_none() {
            return Err(Self::invalid("no candidates in the response"));
        }
        let (content, tool_calls, reason) = parts(&value, 0);
        Ok(ChatResponse {
            model: value
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or(&request.model)
                .to_owned(),
            finish_reason: finish_reason(reason.as_deref(), !tool_calls.is_empty()),
            content,
            tool_calls,
            usage: usage(&value).unwrap_or_default(),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let body = to_wire(request);
        let response = http::send(
            &self.settings,
            "gemini",
            self.settings.first_byte_timeout,
            Some(self.api_key.as_str()),
            || self.post(&request.model, true, &body),
        )
        .await?;
        let events = http::sse_events(&self.settings, "gemini", response);
        let mut calls_seen = 0usize;
        let mut finished = false;
        let mut failed = false;
        let mut last_usage = None;
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
                    None if failed => return Vec::new(),
                    None if !finished => {
                        return vec![Err(Self::invalid("stream ended without a finish reason"))];
                    }
                    None => {
                        return last_usage
                            .take()
                            .map(|u| vec![Ok(ChatDelta::Usage(u))])
                            .unwrap_or_default();
                    }
                };
                let value: Value = match serde_json::from_str(&event.data) {
                    Ok(v) => v,
                    Err(e) => {
                        failed = true;
                        return vec![Err(Self::invalid(format!("malformed stream chunk: {e}")))];
                    }
                };
                if let Some(error) = value.get("error") {
                    failed = true;
                    return vec![Err(LlmError::Upstream {
                        provider: "gemini".into(),
                        status: error.get("code").and_then(Value::as_u64).unwrap_or(500) as u16,
                        message: error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("stream error")
                            .to_owned(),
                    })];
                }
                let (text, calls, reason) = parts(&value, calls_seen);
                let mut out = Vec::new();
                if !text.is_empty() {
                    out.push(Ok(ChatDelta::Content(text)));
                }
                let had_calls = !calls.is_empty() || calls_seen > 0;
                for call in calls {
                    out.push(Ok(ChatDelta::ToolCall {
                        index: calls_seen as u32,
                        id: Some(call.id),
                        name: Some(call.name),
                        arguments: call.arguments,
                    }));
                    calls_seen += 1;
                }
                if let Some(u) = usage(&value) {
                    last_usage = Some(u);
                }
                if let Some(reason) = reason {
                    finished = true;
                    out.push(Ok(ChatDelta::Finish(finish_reason(Some(&reason), had_calls))));
                }
                out
            })
            .flat_map(futures::stream::iter);
        Ok(Box::pin(deltas))
    }
}
