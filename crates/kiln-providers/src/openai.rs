//! OpenAI-compatible chat completions: OpenAI itself, OpenRouter, Ollama,
//! vLLM, llama.cpp, LiteLLM, Azure-style gateways: anything that speaks
//! `POST {base}/chat/completions`, with SSE streaming and tool calls.

use async_trait::async_trait;
use futures::StreamExt;
use kiln_api::openai as wire;
use kiln_core::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, FinishReason, LlmError, LlmProvider, Message, Role,
    ToolCall, Usage,
};

use crate::http::{self, HttpSettings};

pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
pub const OLLAMA_BASE_URL: &str = "http://127.0.0.1:11434/v1";

pub struct OpenAiCompatible {
    name: String,
    base_url: String,
    api_key: Option<String>,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl OpenAiCompatible {
    /// `name` is the provider prefix (`openai`, `openrouter`, `ollama`);
    /// `base_url` ends before `/chat/completions` (e.g. `.../v1`).
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<String>,
        client: reqwest::Client,
        settings: HttpSettings,
    ) -> Self {
        OpenAiCompatible {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            client,
            settings,
        }
    }

    fn post(&self, body: &bytes::Bytes) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(format!("{}/chat/completions", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        request
    }

    /// The request body. A shared history's messages are encoded once and
    /// copied after that (see [`kiln_core::llm::SharedMessages::encode_joined`]).
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<bytes::Bytes, LlmError> {
        let openai_itself = self.name == "openai" && self.base_url == OPENAI_BASE_URL;
        let rest = serde_json::to_vec(&to_wire_without_messages(request, stream, openai_itself))
            .map_err(|e| self.invalid(format!("encoding the request: {e}")))?;
        let mut body = Vec::with_capacity(rest.len() + 4096);
        body.extend_from_slice(b"{\"messages\":[");
        for (i, m) in request.messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            encode_message(m, &mut body);
        }
        if !request.messages.is_empty() && !request.history.as_slice().is_empty() {
            body.push(b',');
        }
        request
            .history
            .encode_joined(WIRE_FORMAT, &mut body, encode_message);
        body.push(b']');
        // `rest` is an object: `{}` or with the model and the rest.
        if rest.len() > 2 {
            body.push(b',');
            body.extend_from_slice(&rest[1..]);
        } else {
            body.push(b'}');
        }
        Ok(body.into())
    }

    fn invalid(&self, message: impl Into<String>) -> LlmError {
        LlmError::InvalidResponse {
            provider: self.name.clone(),
            message: message.into(),
        }
    }
}

/// Names the OpenAI encoding in a shared history's memo.
const WIRE_FORMAT: &str = "openai";

fn encode_message(m: &Message, out: &mut Vec<u8>) {
    // Strings in a fixed shape, into a Vec: encoding cannot fail.
    serde_json::to_writer(out, &to_wire_message(m)).expect("a message encodes as JSON");
}

fn to_wire_message(m: &Message) -> wire::OpenAiMessage {
    wire::OpenAiMessage {
        role: m.role.as_str().to_owned(),
        content: if m.role == Role::Assistant && m.content.is_empty() && !m.tool_calls.is_empty() {
            None
        } else {
            Some(wire::MessageContent::Text(m.content.clone()))
        },
        name: None,
        tool_calls: (!m.tool_calls.is_empty()).then(|| {
            m.tool_calls
                .iter()
                .map(|c| wire::OpenAiToolCall {
                    id: c.id.clone(),
                    kind: "function".into(),
                    function: wire::FunctionCall {
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    },
                })
                .collect()
        }),
        tool_call_id: m.tool_call_id.clone(),
    }
}

/// Everything of the request but its messages, in OpenAI's format:
/// `max_completion_tokens` for OpenAI itself (its reasoning models refuse
/// `max_tokens`), `max_tokens` for other compatible servers.
fn to_wire_without_messages(
    request: &ChatRequest,
    stream: bool,
    openai_itself: bool,
) -> wire::ChatCompletionRequest {
    let tools = (!request.tools.is_empty()).then(|| {
        request
            .tools
            .iter()
            .map(|t| wire::OpenAiTool {
                kind: "function".into(),
                function: wire::FunctionDefinition {
                    name: t.name.clone(),
                    description: (!t.description.is_empty()).then(|| t.description.clone()),
                    parameters: Some(t.parameters.clone()),
                },
            })
            .collect()
    });
    wire::ChatCompletionRequest {
        model: Some(request.model.clone()),
        messages: Vec::new(),
        tools,
        tool_choice: request.tool_choice.clone(),
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_tokens.filter(|_| !openai_itself),
        max_completion_tokens: request.max_tokens.filter(|_| openai_itself),
        stop: (!request.stop.is_empty()).then(|| serde_json::json!(request.stop)),
        stream: stream.then_some(true),
        stream_options: stream.then_some(wire::StreamOptions {
            include_usage: Some(true),
        }),
        extra: request.extra.clone(),
    }
}

pub fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn usage(u: Option<&wire::CompletionUsage>) -> Usage {
    u.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    })
    .unwrap_or_default()
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.body(request, false)?;
        let response = http::send(
            &self.settings,
            &self.name,
            self.settings.response_timeout,
            self.api_key.as_deref(),
            || self.post(&body),
        )
        .await?;
        let bytes = http::read_body(&self.settings, &self.name, response).await?;
        let completion: wire::ChatCompletion = serde_json::from_slice(&bytes)
            .map_err(|e| self.invalid(format!("not a chat completion: {e}")))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| self.invalid("no choices in the response"))?;
        Ok(ChatResponse {
            model: completion.model,
            content: choice.message.content.unwrap_or_default(),
            tool_calls: choice
                .message
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect(),
            finish_reason: finish_reason(choice.finish_reason.as_deref()),
            usage: usage(completion.usage.as_ref()),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let body = self.body(request, true)?;
        let response = http::send(
            &self.settings,
            &self.name,
            self.settings.first_byte_timeout,
            self.api_key.as_deref(),
            || self.post(&body),
        )
        .await?;
        let provider = self.name.clone();
        let secret = self.api_key.clone();
        let events = http::sse_events(&self.settings, &self.name, response);
        let deltas = events
            .map(move |event| -> Vec<Result<ChatDelta, LlmError>> {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => return vec![Err(e)],
                };
                if event.data.trim() == "[DONE]" {
                    return Vec::new();
                }
                let parsed = serde_json::from_str::<serde_json::Value>(&event.data).and_then(|value| {
                    if value.get("error").is_some() {
                        // Some servers report errors in-stream.
                        return Ok(Err(http::error_message(event.data.as_bytes(), secret.as_deref())));
                    }
                    serde_json::from_value::<wire::ChatCompletionChunk>(value).map(Ok)
                });
                let chunk = match parsed {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(message)) => {
                        return vec![Err(LlmError::Upstream {
                            provider: provider.clone(),
                            status: 500,
                            message,
                        })];
                    }
                    Err(e) => {
                        return vec![Err(LlmError::InvalidResponse {
                            provider: provider.clone(),
                            message: format!("malformed stream chunk: {e}"),
                        })];
                    }
                };
                let mut out = Vec::new();
                for choice in chunk.choices {
                    if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                        out.push(Ok(ChatDelta::Content(text)));
                    }
                    for call in choice.delta.tool_calls.unwrap_or_default() {
                        let (name, arguments) = match call.function {
                            Some(f) => (f.name, f.arguments.unwrap_or_default()),
                            None => (None, String::new()),
                        };
                        out.push(Ok(ChatDelta::ToolCall {
                            index: call.index,
                            id: call.id,
                            name,
                            arguments,
                        }));
                    }
                    if let Some(reason) = choice.finish_reason {
                        out.push(Ok(ChatDelta::Finish(finish_reason(Some(&reason)))));
                    }
                }
                if let Some(u) = chunk.usage {
                    out.push(Ok(ChatDelta::Usage(usage(Some(&u)))));
                }
                out
            })
            .flat_map(futures::stream::iter);
        // A stream that ends without `[DONE]` or a finish reason was cut off.
        let name = self.name.clone();
        let checked = deltas.map(Some).chain(futures::stream::once(async move {
            None::<Result<ChatDelta, LlmError>>
        }));
        let mut finished = false;
        let mut failed = false;
        let stream = checked.filter_map(move |item| {
            let out = match item {
                Some(Ok(delta)) => {
                    if matches!(delta, ChatDelta::Finish(_)) {
                        finished = true;
                    }
                    Some(Ok(delta))
                }
                Some(Err(e)) => {
                    failed = true;
                    Some(Err(e))
                }
                None if !finished && !failed => Some(Err(LlmError::InvalidResponse {
                    provider: name.clone(),
                    message: "stream ended before the completion finished".into(),
                })),
                None => None,
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(stream))
    }
}
