//! Reading an OpenAI-style SSE response into typed chunks.

use futures_core::Stream;
use futures_util::StreamExt;
use kiln_api::openai::ChatCompletionChunk;
use kiln_api::sse::SseDecoder;

use crate::error::{ApiError, Error};

/// The `data:` lines of `response` as chunks, until `[DONE]`.
pub(crate) fn chunks(
    response: reqwest::Response,
) -> impl Stream<Item = Result<ChatCompletionChunk, Error>> + Send + 'static {
    let body = response.bytes_stream();
    futures_util::stream::unfold(
        (body, SseDecoder::new(), std::collections::VecDeque::new(), false),
        |(mut body, mut decoder, mut ready, mut done)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    let event: kiln_api::sse::SseEvent = event;
                    if event.data.trim() == "[DONE]" {
                        return None;
                    }
                    let item = match serde_json::from_str::<ChatCompletionChunk>(&event.data) {
                        Ok(chunk) => Ok(chunk),
                        Err(_) => {
                            // An in-stream error: `{"error": {"message", "code"}}`.
                            let value: serde_json::Value =
                                serde_json::from_str(&event.data).unwrap_or_default();
                            let message = value
                                .pointer("/error/message")
                                .and_then(|m| m.as_str())
                                .unwrap_or("malformed stream chunk")
                                .to_owned();
                            let code = value
                                .pointer("/error/code")
                                .and_then(|c| c.as_str())
                                .unwrap_or("");
                            done = true;
                            ready.clear();
                            Err(Error::Api(ApiError {
                                status: 502,
                                code: code.to_owned(),
                                message,
                                details: Default::default(),
                            }))
                        }
                    };
                    return Some((item, (body, decoder, ready, done)));
                }
                if done {
                    return None;
                }
                match body.next().await {
                    Some(Ok(bytes)) => ready.extend(decoder.feed(&bytes)),
                    Some(Err(e)) => {
                        done = true;
                        return Some((Err(Error::Transport(e)), (body, decoder, ready, done)));
                    }
                    None => {
                        done = true;
                        ready.extend(decoder.finish());
                    }
                }
            }
        },
    )
}
