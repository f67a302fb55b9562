//! Requests, responses, streaming deltas and errors shared by every provider.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub fn parse(role: &str) -> Option<Role> {
        match role {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// A tool call the model made; `arguments` is the JSON text the model wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// On assistant messages: the tool calls it made.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// On tool messages: which call this answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A function the model may call; `parameters` is a JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One completion request, with the model name as the provider knows it
/// (the `provider/` prefix already stripped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    /// Messages after `messages`, shared with the session history they
    /// come from (an agent turn's calls; empty elsewhere): a long history
    /// goes out on every call without being copied. Providers read both
    /// through [`ChatRequest::all_messages`].
    #[serde(skip)]
    pub history: SharedMessages,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Passed through as the vendor's `tool_choice` where it has one.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Other OpenAI request fields (`response_format`, `seed`, `n`,
    /// `parallel_tool_calls`, ...), passed through to OpenAI-compatible
    /// providers.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest {
    /// Every message in order: `messages`, then `history`.
    pub fn all_messages(&self) -> impl DoubleEndedIterator<Item = &Message> + Clone {
        self.messages.iter().chain(self.history.as_slice())
    }
}

/// The tail of a list of messages held elsewhere (a session's history),
/// shared, not copied, with a memo of its encoding: messages that can no
/// longer change (`sealed`) are encoded once into one run that later
/// requests of the history copy (see [`SharedMessages::encode_joined`]).
#[derive(Debug, Clone, Default)]
pub struct SharedMessages {
    all: std::sync::Arc<Vec<Message>>,
    from: usize,
    /// `all[..sealed]` no longer change.
    sealed: usize,
    memo: std::sync::Arc<std::sync::Mutex<EncodedRun>>,
}

/// `all[from..upto]` encoded in `format`, comma-separated.
#[derive(Debug, Default)]
pub struct EncodedRun {
    format: &'static str,
    from: usize,
    upto: usize,
    json: Vec<u8>,
}

impl SharedMessages {
    /// `all[from..]`, of which `all[..sealed]` will not change while
    /// `memo` is kept with them (a new list gets a new memo).
    pub fn new(
        all: std::sync::Arc<Vec<Message>>,
        from: usize,
        sealed: usize,
        memo: std::sync::Arc<std::sync::Mutex<EncodedRun>>,
    ) -> Self {
        let from = from.min(all.len());
        let sealed = sealed.clamp(from, all.len());
        SharedMessages {
            all,
            from,
            sealed,
            memo,
        }
    }

    pub fn as_slice(&self) -> &[Message] {
        &self.all[self.from..]
    }

    /// Appends the messages to `out`, comma-separated, each as `encode`
    /// writes it in `format`. The sealed ones come from the memo, which is
    /// extended with those sealed since: a long history costs a copy per
    /// request, and only its new messages are encoded.
    pub fn encode_joined(
        &self,
        format: &'static str,
        out: &mut Vec<u8>,
        encode: impl Fn(&Message, &mut Vec<u8>),
    ) {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if memo.format != format || memo.from != self.from || memo.upto > self.sealed {
            *memo = EncodedRun {
                format,
                from: self.from,
                upto: self.from,
                json: Vec::new(),
            };
        }
        for m in &self.all[memo.upto..self.sealed] {
            if !memo.json.is_empty() {
                memo.json.push(b',');
            }
            encode(m, &mut memo.json);
        }
        memo.upto = self.sealed;
        out.extend_from_slice(&memo.json);
        let mut first = memo.json.is_empty();
        drop(memo);
        for m in &self.all[self.sealed..] {
            if !first {
                out.push(b',');
            }
            encode(m, out);
            first = false;
        }
    }
}

impl PartialEq for SharedMessages {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u32 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
    }
}

/// Why generation stopped, in OpenAI's vocabulary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    #[default]
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that answered, as the provider reports it.
    pub model: String,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// One piece of a streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatDelta {
    /// More text.
    Content(String),
    /// Part of a tool call: the first piece of call `index` carries its id
    /// and name, later pieces append to `arguments`.
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// Generation ended.
    Finish(FinishReason),
    /// Token counts, usually last.
    Usage(Usage),
}

pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<ChatDelta, LlmError>> + Send>>;

/// How a provider call failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status (after retries).
    #[error("{provider} returned {status}: {message}")]
    Upstream {
        provider: String,
        status: u16,
        message: String,
    },
    /// No answer in time: connecting, waiting for the first byte, or
    /// between stream chunks.
    #[error("{provider} timed out {phase}")]
    Timeout { provider: String, phase: &'static str },
    /// The connection failed (after retries).
    #[error("could not reach {provider}: {message}")]
    Connection { provider: String, message: String },
    /// The provider sent something that is not its format, or a stream
    /// ended without finishing.
    #[error("{provider} sent an invalid response: {message}")]
    InvalidResponse { provider: String, message: String },
}

impl LlmError {
    /// The upstream status to report, when there was one.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            LlmError::Upstream { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A vendor client. Dropping a returned future or stream aborts the
/// upstream request.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// The provider's name as used in `provider/model` (`openai`, ...).
    fn name(&self) -> &str;

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError>;
}

/// Vectors for texts, one per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The model that produced them.
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, as the provider reports them.
    pub prompt_tokens: u32,
}

/// An embedding model (remote, like an OpenAI-compatible `/embeddings`
/// endpoint, or built in). The RAG pipeline embeds chunks and queries
/// through this port.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// A stable name recorded with an index's vectors (`openai/text-embedding-3-small`).
    fn name(&self) -> String;

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError>;

    /// How much hybrid search trusts this embedder's ranking next to BM25's
    /// (1.0: as much). Weak embedders (hashed n-grams) say less.
    fn hybrid_weight(&self) -> f64 {
        1.0
    }
}

/// Folds a delta stream into a whole response (for callers that stream
/// upstream but answer at once, and for tests).
pub async fn collect_stream(model: &str, mut stream: DeltaStream) -> Result<ChatResponse, LlmError> {
    use std::future::poll_fn;
    let mut response = ChatResponse {
        model: model.to_owned(),
        content: String::new(),
        tool_calls: Vec::new(),
        finish_reason: FinishReason::Stop,
        usage: Usage::default(),
    };
    while let Some(delta) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match delta? {
            ChatDelta::Content(text) => response.content.push_str(&text),
            ChatDelta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let index = index as usize;
                while response.tool_calls.len() <= index {
                    response.tool_calls.push(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut response.tool_calls[index];
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name = name;
                }
                call.arguments.push_str(&arguments);
            }
            ChatDelta::Finish(reason) => response.finish_reason = reason,
            ChatDelta::Usage(usage) => response.usage = usage,
        }
    }
    Ok(response)
}

/// Retrieved passages travel to the model inside a system message in this
/// format, so any model can read them and the offline model can quote them:
///
/// ```text
/// Retrieved passages (most relevant first):
/// <passage source="handbook.md">
/// ...text...
/// </passage>
/// ```
pub const PASSAGES_HEADER: &str = "Retrieved passages (most relevant first):";

/// Renders passages `(source name, text)` as one system message body.
pub fn format_passages(passages: &[(String, String)]) -> String {
    let mut out = String::from(PASSAGES_HEADER);
    for (source, text) in passages {
        let source = source.replace('"', "'");
        out.push_str(&format!(
            "\n<passage source=\"{source}\">\n{}\n</passage>",
            text.trim()
        ));
    }
    out
}

/// The passages in a message body written by [`format_passages`].
pub fn parse_passages(body: &str) -> Vec<(String, String)> {
    let Some(start) = body.find(PASSAGES_HEADER) else {
        return Vec::new();
    };
    let mut rest = &body[start + PASSAGES_HEADER.len()..];
    let mut passages = Vec::new();
    while let Some(open) = rest.find("<passage source=\"") {
        let after = &rest[open + "<passage source=\"".len()..];
        let Some(quote) = after.find("\">") else { break };
        let source = after[..quote].to_owned();
        let text_start = &after[quote + 2..];
        let Some(close) = text_start.find("</passage>") else {
            break;
        };
        passages.push((source, text_start[..close].trim().to_owned()));
        rest = &text_start[close + "</passage>".len()..];
    }
    passages
}

#[cfg(test)]
mod passage_tests {
    use super::*;

    #[test]
    fn passages_round_trip() {
        let passages = vec![
            ("guide.md".to_owned(), "Reset it from Settings.".to_owned()),
            ("faq \"2\".md".to_owned(), "Line one\nline two".to_owned()),
        ];
        let body = format!("You are helpful.\n\n{}", format_passages(&passages));
        let parsed = parse_passages(&body);
        assert_eq!(parsed[0], passages[0]);
        assert_eq!(
            parsed[1],
            ("faq '2'.md".to_owned(), "Line one\nline two".to_owned())
        );
        assert!(parse_passages("no passages here").is_empty());
    }
}

#[cfg(test)]
mod shared_messages_tests {
    use std::cell::Cell;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn joined(shared: &SharedMessages, encodes: &Cell<usize>) -> String {
        let mut out = Vec::new();
        shared.encode_joined("test", &mut out, |m, out| {
            encodes.set(encodes.get() + 1);
            serde_json::to_writer(out, &m.content).unwrap();
        });
        String::from_utf8(out).unwrap()
    }

    /// The sealed messages are encoded once however often the history is
    /// sent; those after them every time; the result is the same join.
    #[test]
    fn a_shared_history_encodes_its_sealed_messages_once() {
        let memo = Arc::new(Mutex::new(EncodedRun::default()));
        let mut all: Vec<Message> = (0..5).map(|n| Message::new(Role::User, n.to_string())).collect();
        let encodes = Cell::new(0);
        let shared = SharedMessages::new(Arc::new(all.clone()), 1, 4, memo.clone());
        assert_eq!(joined(&shared, &encodes), r#""1","2","3","4""#);
        assert_eq!(encodes.get(), 4);
        assert_eq!(joined(&shared, &encodes), r#""1","2","3","4""#);
        assert_eq!(encodes.get(), 5, "only the unsealed one again");
        // Two more, all sealed: only the new ones are encoded.
        all.push(Message::new(Role::User, "5"));
        all.push(Message::new(Role::User, "6"));
        let shared = SharedMessages::new(Arc::new(all.clone()), 1, 7, memo.clone());
        assert_eq!(joined(&shared, &encodes), r#""1","2","3","4","5","6""#);
        assert_eq!(encodes.get(), 8);
        // Cut to start later: a new run.
        let shared = SharedMessages::new(Arc::new(all), 3, 7, memo);
        assert_eq!(joined(&shared, &encodes), r#""3","4","5","6""#);
        assert_eq!(encodes.get(), 12);
    }
}
