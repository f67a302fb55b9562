//! Reading SSE responses: OpenAI-style chunks and streamed message replies.

use futures_core::Stream;
use futures_util::StreamExt;
use kiln_api::openai::ChatCompletionChunk;
use kiln_api::sse::{SseDecoder, SseEvent};
use kiln_api::{ErrorBody, MessageDelta, SendMessageResult};

use crate::error::{ApiError, Error};

/// What a streamed conversation message yields.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageStreamEvent {
    /// More of the reply's text.
    Delta(String),
    /// The stored exchange (the stream ends after it).
    Done(Box<SendMessageResult>),
}

/// The response body's SSE events.
fn sse_events(response: reqwest::Response) -> impl Stream<Item = Result<SseEvent, Error>> + Send + 'static {
    let body = response.bytes_stream();
    futures_util::stream::unfold(
        (body, SseDecoder::new(), std::collections::VecDeque::new(), false),
        |(mut body, mut decoder, mut ready, mut done)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((Ok(event), (body, decoder, ready, done)));
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

fn stream_error(code: &str, message: String) -> Error {
    Error::Api(ApiError {
        status: 502,
        code: code.to_owned(),
        message,
        details: Default::default(),
    })
}

/// The `data:` lines of an OpenAI-style stream as chunks, until `[DONE]`.
/// An in-stream `{"error": …}` ends the stream with `Error::Api`.
pub(crate) fn chunks(
    response: reqwest::Response,
) -> impl Stream<Item = Result<ChatCompletionChunk, Error>> + Send + 'static {
    sse_events(response)
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .scan(false, |done, event| {
            // `[DONE]` ends the stream; the body ending without it is an error.
            let item = match event {
                _ if *done => None,
                Some(Ok(e)) if e.data.trim() == "[DONE]" => {
                    *done = true;
                    None
                }
                Some(item) => Some(Some(item)),
                None => Some(Some(Err(stream_error(
                    "",
                    "the stream ended before [DONE]".into(),
                )))),
            };
            futures_util::future::ready(item.map(|i| i.into_iter()))
        })
        .flat_map(futures_util::stream::iter)
        .map(|event| {
            let event = event?;
            let value: serde_json::Value = serde_json::from_str(&event.data)
                .map_err(|_| stream_error("", "malformed stream chunk".to_owned()))?;
            if let Some(error) = value.get("error") {
                let message = error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("stream error");
                let code = error.get("code").and_then(|c| c.as_str()).unwrap_or("");
                return Err(stream_error(code, message.to_owned()));
            }
            serde_json::from_value::<ChatCompletionChunk>(value)
                .map_err(|e| stream_error("", format!("malformed stream chunk: {e}")))
        })
        .scan(false, |failed, item| {
            // Stop after the first error.
            if *failed {
                return futures_util::future::ready(None);
            }
            *failed = item.is_err();
            futures_util::future::ready(Some(item))
        })
}

/// A streamed `POST /conversations/{id}/messages` reply.
pub(crate) fn message_events(
    response: reqwest::Response,
) -> impl Stream<Item = Result<MessageStreamEvent, Error>> + Send + 'static {
    sse_events(response)
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .map(|event| {
            // The body ending before `done` or `error` is an error.
            let Some(event) = event else {
                return Err(stream_error(
                    "",
                    "the stream ended before the reply was complete".into(),
                ));
            };
            let event = event?;
            match event.event.as_str() {
                "delta" => serde_json::from_str::<MessageDelta>(&event.data)
                    .map(|d| MessageStreamEvent::Delta(d.content))
                    .map_err(|e| Error::Decode(e.to_string())),
                "done" => serde_json::from_str::<SendMessageResult>(&event.data)
                    .map(|done| MessageStreamEvent::Done(Box::new(done)))
                    .map_err(|e| Error::Decode(e.to_string())),
                _ => {
                    let body: Option<ErrorBody> = serde_json::from_str(&event.data).ok();
                    Err(match body {
                        Some(body) => Error::Api(ApiError {
                            status: 502,
                            code: body.code,
                            message: body.message,
                            details: body.details,
                        }),
                        None => stream_error("", format!("unexpected event `{}`", event.event)),
                    })
                }
            }
        })
        .scan(false, |ended, item| {
            if *ended {
                return futures_util::future::ready(None);
            }
            *ended = !matches!(item, Ok(MessageStreamEvent::Delta(_)));
            futures_util::future::ready(Some(item))
        })
}
