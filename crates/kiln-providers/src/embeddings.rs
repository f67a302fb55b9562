//! OpenAI-compatible embeddings (`POST {base}/embeddings`) behind the
//! `Embedder` port: OpenAI, or any server speaking its format (vLLM,
//! Ollama, LiteLLM, text-embeddings-inference with the OpenAI router).

use async_trait::async_trait;
use kiln_api::openai as wire;
use kiln_core::llm::{Embedder, Embeddings, LlmError};

use crate::http::{self, HttpSettings};

/// Largest number of inputs sent in one request; longer lists are split.
pub const MAX_BATCH: usize = 256;

pub struct OpenAiEmbedder {
    base_url: String,
    api_key: Option<String>,
    model: String,
    client: reqwest::Client,
    settings: HttpSettings,
}

impl OpenAiEmbedder {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: &str,
        client: reqwest::Client,
        settings: HttpSettings,
    ) -> Self {
        OpenAiEmbedder {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: model.to_owned(),
            client,
            settings,
        }
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u32), LlmError> {
        let body = wire::EmbeddingsRequest {
            model: self.model.clone(),
            input: serde_json::json!(texts),
        };
        let response = http::send(
            &self.settings,
            "openai",
            self.settings.response_timeout,
            self.api_key.as_deref(),
            || {
                let request = self
                    .client
                    .post(format!("{}/embeddings", self.base_url))
                    .json(&body);
                match &self.api_key {
                    Some(key) => request.bearer_auth(key),
                    None => request,
                }
            },
        )
        .await?;
        let bytes = http::read_body(&self.settings, "openai", response).await?;
        let invalid = |message: String| LlmError::InvalidResponse {
            provider: "openai".into(),
            message,
        };
        let parsed: wire::EmbeddingsResponse = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("not an embeddings response: {e}")))?;
        if parsed.data.len() != texts.len() {
            return Err(invalid(format!(
                "{} embeddings for {} inputs",
                parsed.data.len(),
                texts.len()
            )));
        }
        let mut data = parsed.data;
        data.sort_by_key(|e| e.index);
        let dimensions = data.first().map_or(0, |e| e.embedding.len());
        if data
            .iter()
            .any(|e| e.embedding.len() != dimensions || dimensions == 0)
        {
            return Err(invalid("embeddings of differing or zero dimensions".into()));
        }
        Ok((
            data.into_iter().map(|e| e.embedding).collect(),
            parsed.usage.prompt_tokens,
        ))
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn name(&self) -> String {
        format!("openai/{}", self.model)
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut prompt_tokens = 0;
        for batch in texts.chunks(MAX_BATCH) {
            let (batch_vectors, tokens) = self.embed_batch(batch).await?;
            vectors.extend(batch_vectors);
            prompt_tokens += tokens;
        }
        Ok(Embeddings {
            model: self.name(),
            vectors,
            prompt_tokens,
        })
    }
}
