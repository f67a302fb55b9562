//! Every provider client against the fake provider server over real HTTP:
//! replies, streams, tool calls, and each fault path (401, 429 with
//! Retry-After, 5xx retries, timeouts, cut-off and malformed streams,
//! cancellation).

mod mcp;
mod web_search;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::llm::{
    ChatDelta, ChatRequest, FinishReason, LlmError, LlmProvider, Message, ProviderFactory, ProviderKind,
    ProviderSettings, Role, ToolSpec, collect_stream,
};
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_providers::{HttpProviderFactory, HttpSettings};
use serde_json::json;

const VENDORS: [ProviderKind; 3] = [
    ProviderKind::OpenAi,
    ProviderKind::Anthropic,
    ProviderKind::Gemini,
];

fn fast_settings() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_millis(800),
        response_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_millis(400),
        max_retries: 2,
        backoff_base: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(2),
    }
}

fn provider(fake: &FakeProvider, kind: ProviderKind, settings: HttpSettings) -> Arc<dyn LlmProvider> {
    let base_url = match kind {
        ProviderKind::Anthropic => fake.base_url().to_owned(),
        ProviderKind::Gemini => fake.gemini_base_url(),
        _ => fake.openai_base_url(),
    };
    HttpProviderFactory::new(settings, true).build(
        kind,
        &ProviderSettings {
            api_key: Some("sk-fake-key".into()),
            base_url: Some(base_url),
            from_vault: false,
        },
    )
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "test-model".into(),
        messages: vec![
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "Say hello"),
        ],
        ..Default::default()
    }
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

#[tokio::test]
async fn text_replies_complete_and_stream_with_usage() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::text("Hello there friend").usage(21, 3));
        let reply = llm.complete(&request()).await.unwrap();
        assert_eq!(reply.content, "Hello there friend", "{kind}");
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        assert_eq!(
            (reply.usage.prompt_tokens, reply.usage.completion_tokens),
            (21, 3),
            "{kind}"
        );

        fake.push(Reply::text("Streaming works fine").usage(8, 3));
        let mut pieces = 0;
        let stream = llm.stream(&request()).await.unwrap();
        let deltas: Vec<ChatDelta> = futures::StreamExt::collect::<Vec<_>>(stream)
            .await
            .into_iter()
            .map(|d| d.unwrap())
            .inspect(|d| pieces += matches!(d, ChatDelta::Content(_)) as usize)
            .collect();
        assert!(pieces >= 3, "{kind}: streamed in pieces, got {deltas:?}");
        let text: String = deltas
            .iter()
            .filter_map(|d| match d {
                ChatDelta::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Streaming works fine", "{kind}");
        assert!(deltas.contains(&ChatDelta::Finish(FinishReason::Stop)), "{kind}");
        assert!(
            deltas.iter().any(
                |d| matches!(d, ChatDelta::Usage(u) if u.prompt_tokens == 8 && u.completion_tokens == 3)
            ),
            "{kind}: {deltas:?}"
        );

        // The request reached the vendor in its own format, with the key in a header.
        let sent = fake.requests();
        let last = sent.last().unwrap();
        match kind {
            ProviderKind::OpenAi => {
                assert_eq!(last.path, "/v1/chat/completions");
                assert_eq!(last.header("authorization"), Some("Bearer sk-fake-key"));
                assert_eq!(last.body["messages"][0]["role"], "system");
                assert_eq!(last.body["stream_options"]["include_usage"], true);
            }
            ProviderKind::Anthropic => {
                assert_eq!(last.path, "/v1/messages");
                assert_eq!(last.header("x-api-key"), Some("sk-fake-key"));
                assert_eq!(last.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(last.body["system"], "Be brief.");
                assert_eq!(last.body["messages"][0]["role"], "user");
                assert_eq!(last.body["max_tokens"], 4096);
            }
            _ => {
                assert_eq!(last.path, "/v1beta/models/test-model:streamGenerateContent");
                assert_eq!(last.header("x-goog-api-key"), Some("sk-fake-key"));
                assert_eq!(last.body["systemInstruction"]["parts"][0]["text"], "Be brief.");
                assert!(
                    !sent.iter().any(|r| r.path.contains("key=")),
                    "keys never travel in URLs"
                );
            }
        }
    }
}

#[tokio::test]
async fn tool_calls_come_back_whole_and_streamed() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        let mut req = request();
        req.tools = vec![weather_tool()];
        fake.push(Reply::tool_calls(vec![
            ("get_weather", json!({"city": "Paris"})),
            ("get_weather", json!({"city": "Oslo"})),
        ]));
        let reply = llm.complete(&req).await.unwrap();
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls, "{kind}");
        assert_eq!(reply.tool_calls.len(), 2, "{kind}");
        assert_eq!(reply.tool_calls[0].name, "get_weather");
        let args: serde_json::Value = serde_json::from_str(&reply.tool_calls[1].arguments).unwrap();
        assert_eq!(args, json!({"city": "Oslo"}), "{kind}");
        assert_ne!(reply.tool_calls[0].id, reply.tool_calls[1].id);

        fake.push(Reply::tool_call("get_weather", json!({"city": "Lima"})));
        let streamed = collect_stream("m", llm.stream(&req).await.unwrap())
            .await
            .unwrap();
        assert_eq!(streamed.finish_reason, FinishReason::ToolCalls, "{kind}");
        assert_eq!(streamed.tool_calls.len(), 1);
        let args: serde_json::Value = serde_json::from_str(&streamed.tool_calls[0].arguments).unwrap();
        assert_eq!(args, json!({"city": "Lima"}), "{kind}");

        // The tool was declared in the vendor's format.
        let body = fake.requests()[0].body.clone();
        let declared = match kind {
            ProviderKind::OpenAi => body["tools"][0]["function"]["name"].clone(),
            ProviderKind::Anthropic => body["tools"][0]["name"].clone(),
            _ => body["tools"][0]["functionDeclarations"][0]["name"].clone(),
        };
        assert_eq!(declared, "get_weather", "{kind}");

        // A tool result goes back in the vendor's format.
        let mut follow = req.clone();
        follow.messages.push(Message {
            tool_calls: streamed.tool_calls.clone(),
            ..Message::new(Role::Assistant, "")
        });
        follow.messages.push(Message {
            tool_call_id: Some(streamed.tool_calls[0].id.clone()),
            ..Message::new(Role::Tool, "{\"temp_c\": 21}")
        });
        fake.push(Reply::text("It is 21 C in Lima"));
        assert_eq!(llm.complete(&follow).await.unwrap().content, "It is 21 C in Lima");
        let body = fake.requests().last().unwrap().body.clone();
        match kind {
            ProviderKind::OpenAi => assert_eq!(
                body["messages"][3]["tool_call_id"],
                streamed.tool_calls[0].id.as_str()
            ),
            ProviderKind::Anthropic => assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result"),
            _ => assert_eq!(
                body["contents"][2]["parts"][0]["functionResponse"]["name"],
                "get_weather"
            ),
        }
    }
}

#[tokio::test]
async fn auth_failures_are_reported_without_retry_or_key() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        fake.require_key("the-right-key");
        let llm = provider(&fake, kind, fast_settings());
        let err = llm.complete(&request()).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Upstream { status: 401, .. }),
            "{kind}: {err:?}"
        );
        assert!(err.to_string().contains("invalid api key"), "{err}");
        assert!(!err.to_string().contains("sk-fake-key"));
        assert_eq!(fake.request_count(), 1, "{kind}: 401 is not retried");
    }
}

/// The gap between the fake's first and second request.
fn gap(fake: &FakeProvider) -> Duration {
    let requests = fake.requests();
    requests[1].at.duration_since(requests[0].at)
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_bounds() {
    for kind in VENDORS {
        // Each form of the wait is honoured: the retry comes no sooner
        // (the fast settings' own backoff is 10 ms).
        for (reply, wait) in [
            (
                Reply::status(429, "slow down").retry_after(1),
                Duration::from_secs(1),
            ),
            (
                Reply::status(429, "slow down").header("retry-after-ms", "600"),
                Duration::from_millis(600),
            ),
        ] {
            let fake = FakeProvider::start().await;
            let llm = provider(&fake, kind, fast_settings());
            fake.push(reply);
            fake.push(Reply::text("after the wait"));
            assert_eq!(llm.complete(&request()).await.unwrap().content, "after the wait");
            assert_eq!(fake.request_count(), 2);
            assert!(gap(&fake) >= wait, "{kind}: waited {:?} of {wait:?}", gap(&fake));
        }

        // 5xx three times: two retries, then the error; bounded.
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        for _ in 0..3 {
            fake.push(Reply::status(503, "overloaded"));
        }
        fake.push(Reply::text("never reached"));
        let err = llm.complete(&request()).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Upstream { status: 503, message, .. } if message == "overloaded"),
            "{kind}: {err:?}"
        );
        assert_eq!(fake.request_count(), 3, "{kind}: 1 + 2 retries");
        assert_eq!(fake.pending(), 1);

        // A wait beyond what we would wait ends the attempts at once, in
        // seconds or as an HTTP date.
        let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        for reply in [
            Reply::status(429, "come back in a minute").retry_after(60),
            Reply::status(429, "come back in a minute").header("retry-after", in_a_minute.clone()),
        ] {
            let fake = FakeProvider::start().await;
            let llm = provider(&fake, kind, fast_settings());
            fake.push(reply);
            fake.push(Reply::text("never reached"));
            let err = llm.complete(&request()).await.unwrap_err();
            assert!(
                matches!(err, LlmError::Upstream { status: 429, .. }),
                "{kind}: {err:?}"
            );
            assert_eq!(fake.request_count(), 1, "{kind}: not retried");
        }
    }
}

/// An error event in the middle of a stream, in each vendor's format, ends
/// the stream with that error after the text that came before it.
#[tokio::test]
async fn errors_inside_streams_end_them() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::stream_error("Partial answer", "the model is overloaded"));
        let stream = llm.stream(&request()).await.unwrap();
        let items: Vec<Result<ChatDelta, LlmError>> = futures::StreamExt::collect(stream).await;
        let text: String = items
            .iter()
            .filter_map(|d| match d {
                Ok(ChatDelta::Content(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Partial answer", "{kind}");
        let error = items
            .iter()
            .find_map(|d| d.as_ref().err())
            .unwrap_or_else(|| panic!("{kind}: no error in {items:?}"));
        assert!(
            error.to_string().contains("the model is overloaded"),
            "{kind}: {error}"
        );
    }
}

/// The fake refuses what the vendor would (here: Anthropic without
/// `max_tokens`, a tool result without its call), so Kiln's requests are
/// checked by every test that reaches it.
#[tokio::test]
async fn the_fake_refuses_requests_the_vendor_would() {
    let fake = FakeProvider::start().await;
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/v1/messages", fake.base_url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("max_tokens"),
        "{body}"
    );
    let response = http
        .post(format!("{}/chat/completions", fake.openai_base_url()))
        .json(&json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_9", "content": "42"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Kiln's own requests pass: a tool round through each vendor.
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::text("fine"));
        assert_eq!(llm.complete(&request()).await.unwrap().content, "fine", "{kind}");
    }
}

#[tokio::test]
async fn timeouts_fire_for_first_byte_and_idle_stream() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::hang());
        let err = llm.complete(&request()).await.unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::Timeout {
                    phase: "waiting for the response",
                    ..
                }
            ),
            "{kind}: {err:?}"
        );
        assert_eq!(
            fake.request_count(),
            1,
            "{kind}: a timed-out request is not retried (it may be billed)"
        );

        fake.push(Reply::text("one two three four").chunk_delay(Duration::from_millis(1500)));
        let err = collect_stream("m", llm.stream(&request()).await.unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::Timeout {
                    phase: "between stream chunks",
                    ..
                }
            ),
            "{kind}: {err:?}"
        );
    }
}

#[tokio::test]
async fn broken_and_malformed_answers_are_errors_not_hangs() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::cut_off("this stream will stop early", 2));
        let err = collect_stream("m", llm.stream(&request()).await.unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::InvalidResponse { .. } | LlmError::Connection { .. }
            ),
            "{kind}: {err:?}"
        );

        fake.push(Reply::malformed());
        let err = llm.complete(&request()).await.unwrap_err();
        assert!(matches!(err, LlmError::InvalidResponse { .. }), "{kind}: {err:?}");

        fake.push(Reply::malformed());
        let err = collect_stream("m", llm.stream(&request()).await.unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::InvalidResponse { .. }), "{kind}: {err:?}");

        fake.push(Reply::cut_off("a truncated json body", 1));
        assert!(llm.complete(&request()).await.is_err(), "{kind}");
    }
}

#[tokio::test]
async fn dropping_a_stream_aborts_the_upstream_request() {
    for kind in VENDORS {
        let fake = FakeProvider::start().await;
        let llm = provider(&fake, kind, fast_settings());
        fake.push(Reply::text("a b c d e f g h").chunk_delay(Duration::from_millis(100)));
        let mut stream = llm.stream(&request()).await.unwrap();
        let first = futures::StreamExt::next(&mut stream).await;
        assert!(first.is_some());
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(3);
        while fake.abandoned() == 0 {
            assert!(
                Instant::now() < deadline,
                "{kind}: the fake never saw the client go away"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_embedder_batches_and_keeps_input_order() {
    use kiln_core::llm::Embedder;
    use kiln_providers::embeddings::{MAX_BATCH, OpenAiEmbedder};
    let fake = FakeProvider::start().await;
    let settings = fast_settings();
    let embedder = OpenAiEmbedder::new(
        &fake.openai_base_url(),
        Some("sk-embed".into()),
        "text-embedding-3-small",
        settings.client(),
        settings,
    );
    assert_eq!(embedder.name(), "openai/text-embedding-3-small");
    let texts: Vec<String> = (0..MAX_BATCH + 3).map(|i| format!("text number {i}")).collect();
    let embeddings = embedder.embed(&texts).await.unwrap();
    assert_eq!(embeddings.vectors.len(), texts.len());
    assert_eq!(
        embeddings.vectors[MAX_BATCH + 2],
        kiln_providers::fake::fake_embedding(&texts[MAX_BATCH + 2])
    );
    assert_eq!(fake.request_count(), 2, "split into batches");
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer sk-embed")
    );
    assert_eq!(fake.requests()[0].body["model"], "text-embedding-3-small");
    assert_eq!(embeddings.prompt_tokens, 3 * texts.len() as u32);

    fake.push(Reply::status(401, "bad key"));
    let err = embedder.embed(&texts[..1]).await.unwrap_err();
    assert!(matches!(err, LlmError::Upstream { status: 401, .. }), "{err:?}");
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let fake = FakeProvider::start().await;
    let client = reqwest::Client::new();
    let response: serde_json::Value = client
        .post(format!("{}/embeddings", fake.openai_base_url()))
        .json(&json!({"model": "e", "input": ["alpha beta", "gamma"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first: Vec<f32> = serde_json::from_value(response["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(first, kiln_providers::fake::fake_embedding("alpha beta"));
    let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_eq!(response["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn project_configured_urls_cannot_reach_private_networks() {
    let fake = FakeProvider::start().await;
    let guarded = HttpProviderFactory::new(fast_settings(), false);
    let settings = |from_vault| ProviderSettings {
        api_key: Some("k".into()),
        base_url: Some(fake.openai_base_url()),
        from_vault,
    };
    // From a vault: the loopback fake is refused before any request.
    let err = guarded
        .build(ProviderKind::OpenAi, &settings(true))
        .complete(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Connection { message, .. } if message.contains("private")),
        "{err:?}"
    );
    assert_eq!(fake.request_count(), 0);
    // From the operator's environment: allowed.
    guarded
        .build(ProviderKind::OpenAi, &settings(false))
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(fake.request_count(), 1);
    // A hostname is checked after resolution: one that resolves only to
    // loopback is refused by the resolver itself.
    use reqwest::dns::Resolve;
    let resolved = kiln_providers::guard::PublicOnlyResolver
        .resolve("localhost".parse().unwrap())
        .await;
    let err = resolved.err().expect("localhost resolves only to loopback");
    assert!(err.to_string().contains("private"), "{err}");
}
