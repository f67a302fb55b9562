//! `kiln/offline`: the built-in model that needs no network. It is not an
//! LLM and says so. Asked anything, it answers with a short explanation of
//! how to configure a provider; given retrieved passages (in the format of
//! `kiln_core::llm::format_passages`) it answers by quoting the best ones
//! with their document names.
//!
//! Agent mode: when the request offers the `execute_js` tool (the agent
//! runtime's sandbox), a conversation ending with a user message gets a
//! tool call whose code searches the knowledge base for that message
//! (`await search(question, { top_k: 3 })`, errors returned as
//! `{ error }`). A conversation ending with the tool's result (its JSON,
//! `Console:\n…\n\nResult:\n<json>`, or `Error: …`) gets a final answer:
//! the hits quoted with their sources, a note that no passages matched, or,
//! when the search failed, why, followed by [`NO_PROVIDER_ANSWER`].
//!
//! A user message holding a fenced JavaScript block (```` ```js ````) gets
//! that block as its code instead of the search, and the tool's result is
//! answered by quoting it: the sandbox (`input()`, `data`, cancel, limits)
//! can be tried, and tested, without any provider.
//! Streaming produces the same reply as `complete`.
//!
//! Deterministic: the same input gives the same output. Token counts are
//! estimates (one token per four characters, rounded up), reported like any
//! provider's.

use async_trait::async_trait;
use kiln_core::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, FinishReason, LlmError, LlmProvider, Role, ToolCall,
    Usage, parse_passages,
};
use serde_json::Value;

/// How many passages the offline model quotes, and how much of each.
const QUOTED_PASSAGES: usize = 3;
const QUOTE_CHARS: usize = 400;
/// How much of a failed search's message is repeated.
const ERROR_CHARS: usize = 300;

/// The agent runtime's code tool; offering it turns on agent mode.
pub const EXECUTE_JS: &str = "execute_js";

/// What the offline model says alongside its search tool call.
pub const SEARCH_CALL_CONTENT: &str = "Let me search the knowledge base.";

/// What it says alongside running the user's own code.
pub const CODE_CALL_CONTENT: &str = "Running your code.";

/// The first fenced JavaScript block of `message` (```` ```js ````,
/// ```` ```javascript ```` or ```` ```ts ````), if any.
pub fn fenced_code(message: &str) -> Option<&str> {
    let mut rest = message;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let line_end = after.find('\n')?;
        let lang = after[..line_end].trim().to_ascii_lowercase();
        let body = &after[line_end + 1..];
        let close = body.find("```")?;
        if matches!(lang.as_str(), "js" | "javascript" | "ts" | "typescript") {
            return Some(body[..close].trim_end());
        }
        rest = &body[close + 3..];
    }
    None
}

pub const NO_PROVIDER_ANSWER: &str = "This is Kiln's built-in offline model (`kiln/offline`). It is not a language model and cannot \
answer questions. To get real answers, configure a provider: store `openai_api_key` (or `anthropic_api_key`, \
`gemini_api_key`, `openrouter_api_key`, `ollama_base_url`) in a secret vault and designate it with \
`PUT /api/sdk/project/vault`, or set `OPENAI_API_KEY` (or `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, \
`OPENROUTER_API_KEY`, `OLLAMA_BASE_URL`) in the server's environment. Then ask for a model such as \
`openai/gpt-4o-mini`.";

#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineModel;

/// One token per four characters, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

/// The offline model's reply: text, possibly with one tool call.
struct Reply {
    content: String,
    tool_call: Option<ToolCall>,
}

impl OfflineModel {
    /// The reply to `request` outside agent mode: the retrieved passages
    /// quoted, or how to configure a provider.
    pub fn answer(request: &ChatRequest) -> String {
        let passages: Vec<(String, String)> = request
            .all_messages()
            .filter(|m| m.role == Role::System)
            .flat_map(|m| parse_passages(&m.content))
            .collect();
        if passages.is_empty() {
            return NO_PROVIDER_ANSWER.to_owned();
        }
        quote_passages(&passages)
    }

    /// The search code the offline model runs for `question`.
    pub fn search_code(question: &str) -> String {
        let literal = serde_json::to_string(question.trim())
            .expect("a string serialises")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
        format!(
            "try {{\n  return await search({literal}, {{ top_k: {QUOTED_PASSAGES} }});\n}} catch (e) {{\n  \
             return {{ error: String(e && e.message || e) }};\n}}"
        )
    }

    fn reply(request: &ChatRequest) -> Reply {
        let agent_mode = request.tools.iter().any(|tool| tool.name == EXECUTE_JS);
        match request.all_messages().next_back() {
            Some(last) if agent_mode && last.role == Role::User => {
                let calls_so_far = request.all_messages().map(|m| m.tool_calls.len()).sum::<usize>();
                let (content, code) = match fenced_code(&last.content) {
                    Some(code) => (CODE_CALL_CONTENT, code.to_owned()),
                    None => (SEARCH_CALL_CONTENT, Self::search_code(&last.content)),
                };
                let arguments = serde_json::json!({ "code": code });
                Reply {
                    content: content.to_owned(),
                    tool_call: Some(ToolCall {
                        id: format!("call_offline_{}", calls_so_far + 1),
                        name: EXECUTE_JS.to_owned(),
                        arguments: arguments.to_string(),
                    }),
                }
            }
            Some(last) if agent_mode && last.role == Role::Tool => Reply {
                content: if ran_user_code(request) {
                    answer_from_code_result(&last.content)
                } else {
                    answer_from_tool_result(&last.content)
                },
                tool_call: None,
            },
            _ => Reply {
                content: Self::answer(request),
                tool_call: None,
            },
        }
    }

    fn usage(request: &ChatRequest, reply: &Reply) -> Usage {
        Usage {
            prompt_tokens: request
                .all_messages()
                .map(|m| estimate_tokens(&m.content) + 4)
                .sum(),
            completion_tokens: estimate_tokens(&reply.content)
                + reply
                    .tool_call
                    .as_ref()
                    .map_or(0, |call| estimate_tokens(&call.arguments)),
        }
    }
}

/// Quotes the first passages `(source, text)` with their sources.
fn quote_passages(passages: &[(String, String)]) -> String {
    let mut answer = String::from(
        "Kiln's offline model cannot write an answer, but these passages from your documents look relevant:\n",
    );
    for (source, text) in passages.iter().take(QUOTED_PASSAGES) {
        let mut quote: String = text.chars().take(QUOTE_CHARS).collect();
        if text.chars().count() > QUOTE_CHARS {
            quote.push('…');
        }
        let quote = quote.replace('\n', "\n> ");
        answer.push_str(&format!("\n> {quote}\n— {source}\n"));
    }
    answer
}

/// What the search code's result says, read from an `execute_js` tool
/// message.
#[derive(Debug, PartialEq)]
enum SearchOutcome {
    /// Hits as `(source, content)`.
    Hits(Vec<(String, String)>),
    NoHits,
    Failed(String),
    /// Not a search result the offline model can read.
    Unreadable,
}

fn read_tool_result(content: &str) -> SearchOutcome {
    let content = content.trim();
    if let Some(error) = content.strip_prefix("Error:") {
        // `Error: <message>`, possibly followed by the console output.
        let message = error.split("\n\nConsole:\n").next().unwrap_or_default();
        return SearchOutcome::Failed(message.trim().to_owned());
    }
    let json = match content.rfind("\n\nResult:\n") {
        Some(at) if content.starts_with("Console:\n") => &content[at + "\n\nResult:\n".len()..],
        _ => content,
    };
    let Ok(value) = serde_json::from_str::<Value>(json.trim()) else {
        return SearchOutcome::Unreadable;
    };
    match value {
        Value::Array(items) if items.is_empty() => SearchOutcome::NoHits,
        Value::Array(items) => {
            let hits: Vec<(String, String)> = items.iter().filter_map(hit).collect();
            if hits.is_empty() {
                SearchOutcome::Unreadable
            } else {
                SearchOutcome::Hits(hits)
            }
        }
        Value::Object(object) => match object.get("error") {
            Some(Value::String(message)) => SearchOutcome::Failed(message.trim().to_owned()),
            Some(other) => SearchOutcome::Failed(other.to_string()),
            None => SearchOutcome::Unreadable,
        },
        _ => SearchOutcome::Unreadable,
    }
}

/// A search hit `{content, source, ...}` as `(source, content)`.
fn hit(item: &Value) -> Option<(String, String)> {
    let content = item.get("content")?.as_str()?.trim();
    let source = ["source", "document_id"]
        .iter()
        .find_map(|key| item.get(*key).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("an unnamed document");
    Some((source.to_owned(), content.to_owned()))
}

/// Whether the last tool call ran the user's fenced code (not a search).
fn ran_user_code(request: &ChatRequest) -> bool {
    request
        .all_messages()
        .rev()
        .find(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
        .and_then(|m| m.tool_calls.last())
        .and_then(|call| serde_json::from_str::<Value>(&call.arguments).ok())
        .and_then(|args| args.get("code").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|code| !code.starts_with("try {\n  return await search("))
}

/// The user's code's outcome, quoted.
fn answer_from_code_result(content: &str) -> String {
    format!(
        "Your code ran. What it gave back:\n\n```\n{}\n```",
        content.trim()
    )
}

fn answer_from_tool_result(content: &str) -> String {
    match read_tool_result(content) {
        SearchOutcome::Hits(hits) => quote_passages(&hits),
        SearchOutcome::NoHits => format!(
            "Kiln's offline model searched your documents, but no passages matched the question.\n\n{NO_PROVIDER_ANSWER}"
        ),
        SearchOutcome::Failed(message) => {
            let mut why: String = message.chars().take(ERROR_CHARS).collect();
            if message.chars().count() > ERROR_CHARS {
                why.push('…');
            }
            let why = why.trim_end_matches('.');
            let why = if why.is_empty() { "no reason given" } else { why };
            format!("Searching your documents was unavailable ({why}).\n\n{NO_PROVIDER_ANSWER}")
        }
        SearchOutcome::Unreadable => {
            format!("Kiln's offline model could not read the search result.\n\n{NO_PROVIDER_ANSWER}")
        }
    }
}

#[async_trait]
impl LlmProvider for OfflineModel {
    fn name(&self) -> &str {
        "kiln"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let reply = Self::reply(request);
        let usage = Self::usage(request, &reply);
        let finish_reason = if reply.tool_call.is_some() {
            FinishReason::ToolCalls
        } else {
            FinishReason::Stop
        };
        Ok(ChatResponse {
            model: "offline".into(),
            usage,
            content: reply.content,
            tool_calls: reply.tool_call.into_iter().collect(),
            finish_reason,
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let reply = Self::reply(request);
        let usage = Self::usage(request, &reply);
        let mut deltas: Vec<Result<ChatDelta, LlmError>> = reply
            .content
            .split_inclusive(' ')
            .map(|piece| Ok(ChatDelta::Content(piece.to_owned())))
            .collect();
        let finish_reason = match reply.tool_call {
            Some(call) => {
                deltas.push(Ok(ChatDelta::ToolCall {
                    index: 0,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                }));
                FinishReason::ToolCalls
            }
            None => FinishReason::Stop,
        };
        deltas.push(Ok(ChatDelta::Finish(finish_reason)));
        deltas.push(Ok(ChatDelta::Usage(usage)));
        Ok(Box::pin(futures::stream::iter(deltas)))
    }
}

#[cfg(test)]
mod tests {
    use kiln_core::llm::{Message, ToolSpec, collect_stream, format_passages};

    use super::*;

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "offline".into(),
            messages,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn without_passages_it_explains_how_to_configure_a_provider() {
        let req = request(vec![Message::new(Role::User, "What is the capital of France?")]);
        let reply = OfflineModel.complete(&req).await.unwrap();
        assert_eq!(reply.content, NO_PROVIDER_ANSWER);
        assert_eq!(reply.usage.completion_tokens, estimate_tokens(NO_PROVIDER_ANSWER));
        assert!(reply.usage.prompt_tokens > 0);
        let streamed = collect_stream("offline", OfflineModel.stream(&req).await.unwrap())
            .await
            .unwrap();
        assert_eq!(streamed.content, reply.content);
        assert_eq!(streamed.usage, reply.usage);
    }

    #[tokio::test]
    async fn with_passages_it_quotes_the_best_with_their_sources() {
        let passages = vec![
            (
                "reset.md".to_owned(),
                "Open Settings, then Security, then Reset password.".to_owned(),
            ),
            ("billing.md".to_owned(), "Invoices are sent monthly.".to_owned()),
            ("a.md".to_owned(), "third".to_owned()),
            ("b.md".to_owned(), "fourth, not quoted".to_owned()),
        ];
        let req = request(vec![
            Message::new(Role::System, format_passages(&passages)),
            Message::new(Role::User, "How do I reset my password?"),
        ]);
        let reply = OfflineModel.complete(&req).await.unwrap().content;
        assert!(
            reply.contains("> Open Settings, then Security, then Reset password.\n— reset.md"),
            "{reply}"
        );
        assert!(reply.find("reset.md").unwrap() < reply.find("billing.md").unwrap());
        assert!(!reply.contains("b.md"));
        assert_eq!(
            reply,
            OfflineModel.complete(&req).await.unwrap().content,
            "deterministic"
        );
    }

    fn agent_request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "offline".into(),
            messages,
            tools: vec![ToolSpec {
                name: EXECUTE_JS.into(),
                description: "Run JavaScript.".into(),
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": { "code": { "type": "string" } },
                    "required": ["code"],
                }),
            }],
            ..Default::default()
        }
    }

    /// A conversation after the offline model's search call, ending with
    /// the tool result `result`.
    fn after_search(result: &str) -> ChatRequest {
        let question = "How do I reset my password?";
        let mut call = Message::new(Role::Assistant, SEARCH_CALL_CONTENT);
        call.tool_calls = vec![ToolCall {
            id: "call_offline_1".into(),
            name: EXECUTE_JS.into(),
            arguments: serde_json::json!({ "code": OfflineModel::search_code(question) }).to_string(),
        }];
        let mut tool = Message::new(Role::Tool, result);
        tool.tool_call_id = Some("call_offline_1".into());
        agent_request(vec![
            Message::new(Role::System, "You are an agent running on Kiln."),
            Message::new(Role::User, question),
            call,
            tool,
        ])
    }

    /// `complete` and `stream` give the same response.
    async fn both(req: &ChatRequest) -> ChatResponse {
        let reply = OfflineModel.complete(req).await.unwrap();
        let streamed = collect_stream("offline", OfflineModel.stream(req).await.unwrap())
            .await
            .unwrap();
        assert_eq!(streamed, reply);
        reply
    }

    #[test]
    fn the_first_javascript_fence_is_the_code() {
        assert_eq!(
            fenced_code("Run\n```js\nawait input('Name?')\n```\nthanks"),
            Some("await input('Name?')")
        );
        assert_eq!(
            fenced_code("```sh\nls\n```\n```javascript\n1 + 1\n```"),
            Some("1 + 1")
        );
        assert_eq!(fenced_code("```js\nunclosed"), None);
        assert_eq!(fenced_code("no code here"), None);
    }

    /// A fenced block runs as written, and its result is quoted back.
    #[tokio::test]
    async fn agent_mode_runs_a_fenced_block_and_quotes_its_result() {
        let message = "Try this:\n```js\nreturn 6 * 7\n```";
        let mut conversation = vec![
            Message::new(Role::System, "You are an agent running on Kiln."),
            Message::new(Role::User, message),
        ];
        let reply = both(&agent_request(conversation.clone())).await;
        assert_eq!(reply.content, CODE_CALL_CONTENT);
        let call = reply.tool_calls[0].clone();
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args["code"], "return 6 * 7");
        let mut assistant = Message::new(Role::Assistant, CODE_CALL_CONTENT);
        assistant.tool_calls = vec![call];
        let mut tool = Message::new(Role::Tool, "42");
        tool.tool_call_id = Some("call_offline_1".into());
        conversation.extend([assistant, tool]);
        let answer = both(&agent_request(conversation)).await;
        assert_eq!(
            answer.content,
            "Your code ran. What it gave back:\n\n```\n42\n```"
        );
        assert!(answer.tool_calls.is_empty());
    }

    #[tokio::test]
    async fn agent_mode_answers_a_question_with_a_search_call() {
        let question = "What does \"reset\" do?\nTell me";
        let req = agent_request(vec![
            Message::new(Role::System, "You are an agent running on Kiln."),
            Message::new(Role::User, question),
        ]);
        let reply = both(&req).await;
        assert_eq!(reply.content, SEARCH_CALL_CONTENT);
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
        assert_eq!(reply.tool_calls.len(), 1);
        let call = &reply.tool_calls[0];
        assert_eq!(call.id, "call_offline_1");
        assert_eq!(call.name, EXECUTE_JS);
        let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
        let code = arguments["code"].as_str().unwrap();
        assert_eq!(
            code,
            "try {\n  return await search(\"What does \\\"reset\\\" do?\\nTell me\", { top_k: 3 });\n} catch (e) {\n  \
             return { error: String(e && e.message || e) };\n}"
        );
        assert_eq!(
            reply.usage.completion_tokens,
            estimate_tokens(SEARCH_CALL_CONTENT) + estimate_tokens(&call.arguments)
        );
        assert!(reply.usage.prompt_tokens > 0);

        // A later question in the same conversation gets the next call id.
        let mut later = after_search("[]");
        later
            .messages
            .push(Message::new(Role::Assistant, "No passages matched."));
        later.messages.push(Message::new(Role::User, "And billing?"));
        let reply = both(&later).await;
        assert_eq!(reply.tool_calls[0].id, "call_offline_2");
        assert_eq!(
            reply,
            OfflineModel.complete(&later).await.unwrap(),
            "deterministic"
        );
    }

    #[tokio::test]
    async fn agent_mode_quotes_the_hits_of_the_search() {
        let hits = serde_json::json!([
            {
                "content": "Open Settings, then Security, then Reset password.",
                "score": 0.91,
                "source": "reset.md",
                "document_id": "doc_1",
                "index_id": "idx_1",
            },
            { "content": "Invoices are sent monthly.", "score": 0.5, "source": "billing.md",
              "document_id": "doc_2", "index_id": "idx_1" },
            { "content": "third", "score": 0.4, "source": "", "document_id": "doc_3", "index_id": "idx_1" },
            { "content": "fourth, not quoted", "score": 0.3, "source": "d.md", "document_id": "doc_4",
              "index_id": "idx_1" },
        ]);
        let plain = both(&after_search(&hits.to_string())).await;
        assert_eq!(plain.finish_reason, FinishReason::Stop);
        assert!(plain.tool_calls.is_empty());
        assert!(
            plain
                .content
                .contains("> Open Settings, then Security, then Reset password.\n— reset.md"),
            "{}",
            plain.content
        );
        assert!(plain.content.find("reset.md").unwrap() < plain.content.find("billing.md").unwrap());
        assert!(plain.content.contains("> third\n— doc_3"), "{}", plain.content);
        assert!(!plain.content.contains("d.md"));

        // With console output, the JSON follows `Result:`.
        let pretty = serde_json::to_string_pretty(&hits).unwrap();
        let logged = both(&after_search(&format!(
            "Console:\nsearching\n\nResult:\n{pretty}"
        )))
        .await;
        assert_eq!(logged.content, plain.content);
    }

    #[tokio::test]
    async fn agent_mode_says_when_nothing_matched() {
        for result in ["[]", "Console:\n0 hits\n\nResult:\n[]"] {
            let reply = both(&after_search(result)).await;
            assert_eq!(reply.finish_reason, FinishReason::Stop);
            assert!(reply.tool_calls.is_empty());
            assert!(
                reply.content.starts_with(
                    "Kiln's offline model searched your documents, but no passages matched the question."
                ),
                "{}",
                reply.content
            );
            assert!(reply.content.ends_with(NO_PROVIDER_ANSWER));
        }
    }

    #[tokio::test]
    async fn agent_mode_explains_a_failed_search() {
        for (result, why) in [
            (
                r#"{"error":"this session has no knowledge index"}"#,
                "this session has no knowledge index",
            ),
            (
                "Console:\ntrying\n\nResult:\n{\"error\": \"search timed out.\"}",
                "search timed out",
            ),
            (
                "Error: ReferenceError: search is not defined",
                "ReferenceError: search is not defined",
            ),
            ("Error: out of memory\n\nConsole:\nstarted", "out of memory"),
        ] {
            let reply = both(&after_search(result)).await;
            assert_eq!(reply.finish_reason, FinishReason::Stop);
            assert!(reply.tool_calls.is_empty());
            assert_eq!(
                reply.content,
                format!("Searching your documents was unavailable ({why}).\n\n{NO_PROVIDER_ANSWER}"),
                "{result}"
            );
            assert_eq!(reply.usage.completion_tokens, estimate_tokens(&reply.content));
        }
        let unreadable = both(&after_search("42")).await;
        assert!(unreadable.content.ends_with(NO_PROVIDER_ANSWER));
        assert!(unreadable.tool_calls.is_empty());
    }

    #[tokio::test]
    async fn the_stream_emits_the_tool_call_then_finish_and_usage() {
        use futures::StreamExt;
        let req = agent_request(vec![Message::new(Role::User, "Where is the handbook?")]);
        let deltas: Vec<ChatDelta> = OfflineModel
            .stream(&req)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let reply = OfflineModel.complete(&req).await.unwrap();
        let n = deltas.len();
        assert_eq!(
            deltas[n - 3],
            ChatDelta::ToolCall {
                index: 0,
                id: Some("call_offline_1".into()),
                name: Some(EXECUTE_JS.into()),
                arguments: reply.tool_calls[0].arguments.clone(),
            }
        );
        assert_eq!(deltas[n - 2], ChatDelta::Finish(FinishReason::ToolCalls));
        assert_eq!(deltas[n - 1], ChatDelta::Usage(reply.usage));
    }

    #[tokio::test]
    async fn without_the_tool_nothing_changes() {
        // Other tools, or a tool message without execute_js, keep the old answer.
        let mut req = request(vec![Message::new(Role::User, "Hello?")]);
        req.tools = vec![ToolSpec {
            name: "get_weather".into(),
            description: String::new(),
            parameters: serde_json::json!({ "type": "object" }),
        }];
        let reply = both(&req).await;
        assert_eq!(reply.content, NO_PROVIDER_ANSWER);
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.finish_reason, FinishReason::Stop);
    }
}
