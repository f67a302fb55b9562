//! `kiln/offline`: the built-in model that needs no network. It is not an
//! LLM and says so. Asked anything, it answers with a short explanation of
//! how to configure a provider; given retrieved passages (in the format of
//! `kiln_core::llm::format_passages`) it answers by quoting the best ones
//! with their document names. Deterministic: the same input gives the same
//! output. Token counts are estimates (one token per four characters,
//! rounded up), reported like any provider's.

use async_trait::async_trait;
use kiln_core::llm::{
    ChatDelta, ChatRequest, ChatResponse, DeltaStream, FinishReason, LlmError, LlmProvider, Role, Usage,
    parse_passages,
};

/// How many passages the offline model quotes, and how much of each.
const QUOTED_PASSAGES: usize = 3;
const QUOTE_CHARS: usize = 400;

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

impl OfflineModel {
    /// The reply to `request`.
    pub fn answer(request: &ChatRequest) -> String {
        let passages: Vec<(String, String)> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .flat_map(|m| parse_passages(&m.content))
            .collect();
        if passages.is_empty() {
            return NO_PROVIDER_ANSWER.to_owned();
        }
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

    fn usage(request: &ChatRequest, answer: &str) -> Usage {
        Usage {
            prompt_tokens: request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content) + 4)
                .sum(),
            completion_tokens: estimate_tokens(answer),
        }
    }
}

#[async_trait]
impl LlmProvider for OfflineModel {
    fn name(&self) -> &str {
        "kiln"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let content = Self::answer(request);
        Ok(ChatResponse {
            model: "offline".into(),
            usage: Self::usage(request, &content),
            content,
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let content = Self::answer(request);
        let usage = Self::usage(request, &content);
        let mut deltas: Vec<Result<ChatDelta, LlmError>> = content
            .split_inclusive(' ')
            .map(|piece| Ok(ChatDelta::Content(piece.to_owned())))
            .collect();
        deltas.push(Ok(ChatDelta::Finish(FinishReason::Stop)));
        deltas.push(Ok(ChatDelta::Usage(usage)));
        Ok(Box::pin(futures::stream::iter(deltas)))
    }
}

#[cfg(test)]
mod tests {
    use kiln_core::llm::{Message, collect_stream, format_passages};

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
}
