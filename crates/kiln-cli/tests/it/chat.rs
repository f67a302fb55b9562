//! CONTRACT §2.6 and the OpenAI-compatible `/v1`: model routing with keys
//! from the vault or the environment, the offline model, conversations,
//! streaming, tool calls and provider faults, against the fake provider.

use futures::StreamExt;
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::MessageStreamEvent;
use kiln_sdk::api::openai::{ChatCompletionRequest, MessageContent, OpenAiMessage, StreamOptions};
use kiln_sdk::api::{ChatCompletionInput, ChatMessage, CreateConversation, CreateSecretVault, SendMessage};
use serde_json::json;

use crate::backends;
use crate::harness::{Backend, TestApp, TestOptions, api_err};

backends!(
    offline_model_answers_when_nothing_is_configured,
    vault_keys_route_to_the_provider,
    bad_models_and_messages_are_400,
    provider_failures_are_502_with_the_providers_status,
    conversations_keep_history_and_usage,
    openai_compatible_endpoint_streams_and_passes_tool_calls,
    conversation_replies_stream_and_store_only_when_complete,
);

fn user(content: &str) -> ChatMessage {
    ChatMessage {
        role: "user".into(),
        content: content.into(),
    }
}

fn input(model: Option<&str>, messages: Vec<ChatMessage>) -> ChatCompletionInput {
    ChatCompletionInput {
        messages,
        model: model.map(str::to_owned),
        use_rag: None,
        index_id: None,
    }
}

/// Points the project's vault at the fake as its OpenAI-compatible provider.
async fn use_fake_via_vault(app: &TestApp, fake: &FakeProvider, key: &str) -> String {
    let vault = app
        .client
        .create_secret_vault(&CreateSecretVault {
            name: format!("llm-{key}"),
            metadata: None,
        })
        .await
        .unwrap();
    app.client
        .put_secret(&vault.id, "openai_api_key", key)
        .await
        .unwrap();
    app.client
        .put_secret(&vault.id, "openai_base_url", &fake.openai_base_url())
        .await
        .unwrap();
    app.client.set_project_vault(Some(&vault.id)).await.unwrap();
    vault.id
}

async fn offline_model_answers_when_nothing_is_configured(app: &TestApp) {
    let result = app
        .client
        .chat_completion(&input(None, vec![user("What is Kiln?")]))
        .await
        .unwrap();
    assert_eq!(result.model, "kiln/offline");
    assert_eq!(result.object, "chat.completion");
    assert!(result.id.starts_with("chatcmpl-"));
    let reply = &result.choices[0];
    assert_eq!(
        (
            reply.index,
            reply.message.role.as_str(),
            reply.finish_reason.as_str()
        ),
        (0, "assistant", "stop")
    );
    assert!(
        reply.message.content.contains("configure a provider"),
        "{}",
        reply.message.content
    );
    assert!(result.usage.prompt_tokens > 0 && result.usage.completion_tokens > 0);
    assert_eq!(
        result.usage.total_tokens,
        result.usage.prompt_tokens + result.usage.completion_tokens
    );

    let metrics = app.client.get_metrics().await.unwrap();
    assert_eq!(metrics.tokens.request_count, 1);
    assert_eq!(metrics.tokens.total_tokens, result.usage.total_tokens);
    assert_eq!(metrics.tokens.candidate_tokens, result.usage.completion_tokens);
}

async fn vault_keys_route_to_the_provider(app: &TestApp) {
    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "sk-vault-one").await;
    fake.push(Reply::text("Hi from the fake").usage(30, 4));
    let result = app
        .client
        .chat_completion(&input(Some("openai/my-local-model"), vec![user("hello")]))
        .await
        .unwrap();
    assert_eq!(result.model, "openai/my-local-model");
    assert_eq!(result.choices[0].message.content, "Hi from the fake");
    assert_eq!(
        (result.usage.prompt_tokens, result.usage.completion_tokens),
        (30, 4)
    );
    let sent = fake.requests();
    assert_eq!(sent[0].header("authorization"), Some("Bearer sk-vault-one"));
    assert_eq!(sent[0].body["model"], "my-local-model", "the name passes through");
    assert_eq!(
        sent[0].body["messages"][0],
        json!({"role": "user", "content": "hello"})
    );

    // Without a model, the first configured provider's default is used.
    app.client
        .chat_completion(&input(None, vec![user("again")]))
        .await
        .unwrap();
    assert_eq!(fake.requests()[1].body["model"], "gpt-4o-mini");

    // A key change in the vault applies at once (the cache is invalidated).
    let vault = app.client.get_project().await.unwrap().vault_id.unwrap();
    app.client
        .put_secret(&vault, "openai_api_key", "sk-vault-two")
        .await
        .unwrap();
    app.client
        .chat_completion(&input(Some("gpt-4o"), vec![user("x")]))
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[2].header("authorization"),
        Some("Bearer sk-vault-two")
    );

    // A per-project default model from the vault.
    app.client
        .put_secret(&vault, "default_model", "openai/house-model")
        .await
        .unwrap();
    let result = app
        .client
        .chat_completion(&input(None, vec![user("y")]))
        .await
        .unwrap();
    assert_eq!(result.model, "openai/house-model");

    // Metrics count every call.
    assert_eq!(app.client.get_metrics().await.unwrap().tokens.request_count, 4);
}

async fn bad_models_and_messages_are_400(app: &TestApp) {
    let c = &app.client;
    let err = api_err(
        c.chat_completion(&input(Some("mystery-model"), vec![user("x")]))
            .await,
        400,
        "validation_failed",
    );
    assert_eq!(err.details["configured_providers"], json!(["kiln"]));
    assert!(err.message.contains("mystery-model"), "{}", err.message);
    let err = api_err(
        c.chat_completion(&input(Some("anthropic/claude-x"), vec![user("x")]))
            .await,
        400,
        "validation_failed",
    );
    assert!(err.message.contains("anthropic"), "{}", err.message);

    api_err(
        c.chat_completion(&input(None, vec![])).await,
        400,
        "validation_failed",
    );
    let assistant_last = vec![
        user("q"),
        ChatMessage {
            role: "assistant".into(),
            content: "a".into(),
        },
    ];
    api_err(
        c.chat_completion(&input(None, assistant_last)).await,
        400,
        "validation_failed",
    );
    let bad_role = vec![
        ChatMessage {
            role: "wizard".into(),
            content: "x".into(),
        },
        user("q"),
    ];
    let err = api_err(
        c.chat_completion(&input(None, bad_role)).await,
        400,
        "validation_failed",
    );
    assert_eq!(err.details["field"], "messages[0].role");
    let mut rag = input(None, vec![user("q")]);
    rag.use_rag = Some(true);
    rag.index_id = Some("no-such-index".into());
    api_err(c.chat_completion(&rag).await, 404, "NOT_FOUND");
    assert_eq!(
        c.get_metrics().await.unwrap().tokens.request_count,
        0,
        "refused calls reach no model"
    );
}

async fn provider_failures_are_502_with_the_providers_status(app: &TestApp) {
    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "sk-secret-provider-key").await;
    fake.require_key("a-different-key");
    let err = api_err(
        app.client
            .chat_completion(&input(Some("gpt-4o"), vec![user("x")]))
            .await,
        502,
        "upstream_error",
    );
    assert_eq!(err.details["provider_status"], 401);
    assert_eq!(err.details["provider"], "openai");
    assert!(err.message.contains("invalid api key"), "{}", err.message);
    assert!(!err.message.contains("sk-secret-provider-key"));

    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "k2").await;
    for _ in 0..3 {
        fake.push(Reply::status(500, "boom"));
    }
    let err = api_err(
        app.client
            .chat_completion(&input(Some("gpt-4o"), vec![user("x")]))
            .await,
        502,
        "upstream_error",
    );
    assert_eq!(err.details["provider_status"], 500);
    assert_eq!(fake.request_count(), 3, "bounded retries");

    fake.push(Reply::hang());
    let err = api_err(
        app.client
            .chat_completion(&input(Some("gpt-4o"), vec![user("x")]))
            .await,
        502,
        "upstream_error",
    );
    assert!(err.message.contains("timed out"), "{}", err.message);
}

async fn conversations_keep_history_and_usage(app: &TestApp) {
    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "sk-conv").await;
    let c = &app.client;
    let conversation = c
        .create_conversation(&CreateConversation {
            title: Some("Support".into()),
            system_prompt: Some("You are terse.".into()),
            model: Some("openai/conv-model".into()),
            metadata: Some(json!({"ticket": 42, "tags": ["a"]})),
        })
        .await
        .unwrap();
    assert_eq!(
        conversation.metadata,
        json!({"ticket": 42, "tags": ["a"]}),
        "echoed exactly"
    );
    assert_eq!(conversation.project_id, conversation.app_id);
    let fresh = c.get_conversation(&conversation.id).await.unwrap();
    assert!(fresh.messages.is_empty());
    assert_eq!(fresh.token_usage, None, "null before the first model call");

    fake.push(Reply::text("First answer").usage(10, 2));
    let first = c
        .send_message(
            &conversation.id,
            &SendMessage {
                content: "First question".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (first.user_message.role.as_str(), first.message.role.as_str()),
        ("user", "assistant")
    );
    assert_eq!(first.message.content, "First answer");
    assert_eq!(first.token_usage.total_tokens, 12);

    fake.push(Reply::text("Second answer").usage(20, 3));
    let second = c
        .send_message(
            &conversation.id,
            &SendMessage {
                content: "Second question".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.token_usage.total_tokens, 23, "this call only");

    // The model saw the system prompt and the whole history.
    let sent = &fake.requests()[1].body;
    assert_eq!(sent["model"], "conv-model");
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(sent["messages"][2]["content"], "First answer");

    let detail = c.get_conversation(&conversation.id).await.unwrap();
    let contents: Vec<&str> = detail.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        [
            "First question",
            "First answer",
            "Second question",
            "Second answer"
        ]
    );
    let usage = detail.token_usage.unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        (30, 5, 35)
    );

    // Two messages racing: the one answered second finds the history
    // changed and is refused (409), so the stored order is never mixed.
    fake.push(Reply::text("slow answer").delay(std::time::Duration::from_millis(600)));
    fake.push(Reply::text("fast answer"));
    let slow_input = SendMessage {
        content: "slow".into(),
        ..Default::default()
    };
    let slow = c.send_message(&conversation.id, &slow_input);
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        c.send_message(
            &conversation.id,
            &SendMessage {
                content: "fast".into(),
                ..Default::default()
            },
        )
        .await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(fast.unwrap().message.content, "fast answer");
    api_err(slow, 409, "conflict");
    let contents: Vec<String> = c
        .get_conversation(&conversation.id)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents[4..], ["fast".to_owned(), "fast answer".to_owned()]);

    // A failed model call stores nothing; empty content is 400.
    fake.push(Reply::status(400, "bad request upstream"));
    api_err(
        c.send_message(
            &conversation.id,
            &SendMessage {
                content: "x".into(),
                ..Default::default()
            },
        )
        .await,
        502,
        "upstream_error",
    );
    assert_eq!(
        c.get_conversation(&conversation.id).await.unwrap().messages.len(),
        6
    );
    api_err(
        c.send_message(
            &conversation.id,
            &SendMessage {
                content: "  ".into(),
                ..Default::default()
            },
        )
        .await,
        400,
        "validation_failed",
    );

    // Listing is newest first and paged; delete is 204 then 404.
    let other = c
        .create_conversation(&CreateConversation::default())
        .await
        .unwrap();
    assert_eq!(other.metadata, json!({}));
    let listed: Vec<String> = c
        .list_conversations(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, [other.id.clone(), conversation.id.clone()]);
    assert_eq!(
        c.list_conversations(Some(1), Some(1)).await.unwrap()[0].id,
        conversation.id
    );
    c.delete_conversation(&conversation.id).await.unwrap();
    api_err(c.get_conversation(&conversation.id).await, 404, "NOT_FOUND");
    api_err(c.delete_conversation(&conversation.id).await, 404, "NOT_FOUND");
    api_err(
        c.send_message(
            &conversation.id,
            &SendMessage {
                content: "x".into(),
                ..Default::default()
            },
        )
        .await,
        404,
        "NOT_FOUND",
    );

    // Another project's key cannot see it.
    let (_, intruder) = app.key_for("intruder").await;
    api_err(intruder.get_conversation(&other.id).await, 404, "NOT_FOUND");
    assert!(intruder.list_conversations(None, None).await.unwrap().is_empty());
}

async fn conversation_replies_stream_and_store_only_when_complete(app: &TestApp) {
    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "sk-stream").await;
    let c = &app.client;
    let conversation = c
        .create_conversation(&CreateConversation::default())
        .await
        .unwrap();
    fake.push(Reply::text("streamed reply in pieces").usage(6, 4));
    let input = SendMessage {
        content: "go".into(),
        ..Default::default()
    };
    let events: Vec<_> = c
        .send_message_stream(&conversation.id, &input)
        .await
        .unwrap()
        .collect()
        .await;
    let events: Vec<MessageStreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            MessageStreamEvent::Delta(t) => Some(t.as_str()),
            MessageStreamEvent::Done(_) => None,
        })
        .collect();
    assert_eq!(text, "streamed reply in pieces");
    assert!(events.len() >= 5, "pieces arrive one by one: {events:?}");
    let MessageStreamEvent::Done(done) = events.last().unwrap() else {
        panic!("ends with done")
    };
    assert_eq!(done.message.content, "streamed reply in pieces");
    assert_eq!(done.token_usage.total_tokens, 10);
    assert_eq!(
        c.get_conversation(&conversation.id).await.unwrap().messages.len(),
        2
    );

    // The raw stream uses the contract's framing: `event:` before `data:`.
    fake.push(Reply::text("raw"));
    let raw = app
        .http()
        .post(app.url(&format!("/api/sdk/conversations/{}/messages", conversation.id)))
        .header("X-API-Key", &app.key)
        .json(&json!({"content": "again", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with("event: delta\ndata: {\"content\":\"raw\"}\n\n"),
        "{raw}"
    );
    assert!(raw.contains("event: done\ndata: {"), "{raw}");

    // A stream cut off upstream ends with an error and stores nothing.
    fake.push(Reply::cut_off("this will break off", 2));
    let events: Vec<_> = c
        .send_message_stream(&conversation.id, &input)
        .await
        .unwrap()
        .collect()
        .await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.api().unwrap().code, "upstream_error", "{err}");
    assert_eq!(
        c.get_conversation(&conversation.id).await.unwrap().messages.len(),
        4
    );
}

fn openai_request(model: &str, text: &str) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: Some(model.into()),
        messages: vec![OpenAiMessage {
            role: "user".into(),
            content: Some(MessageContent::Text(text.into())),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn openai_compatible_endpoint_streams_and_passes_tool_calls(app: &TestApp) {
    let fake = FakeProvider::start().await;
    use_fake_via_vault(app, &fake, "sk-v1").await;

    // Bearer auth and OpenAI's shapes, over raw HTTP.
    fake.push(Reply::text("plain answer").usage(5, 2));
    let raw: serde_json::Value = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["object"], "chat.completion");
    assert_eq!(raw["choices"][0]["message"]["content"], "plain answer");
    assert_eq!(raw["choices"][0]["finish_reason"], "stop");
    assert_eq!(raw["usage"]["total_tokens"], 7);
    assert_eq!(
        fake.requests()[0].body["messages"][0]["content"],
        "hi",
        "content parts flattened"
    );

    // Streaming through the SDK: pieces arrive as chunks, usage last.
    fake.push(Reply::text("one two three four").usage(9, 4));
    let mut request = openai_request("openai/gpt-4o", "count");
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
    });
    let chunks: Vec<_> = app
        .client
        .openai_chat_stream(&request)
        .await
        .unwrap()
        .collect()
        .await;
    let chunks: Vec<_> = chunks.into_iter().map(|c| c.unwrap()).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "one two three four");
    assert!(chunks.len() >= 6, "streamed in pieces: {}", chunks.len());
    assert_eq!(chunks[0].choices[0].delta.role.as_deref(), Some("assistant"));
    assert!(
        chunks
            .iter()
            .any(|c| c.choices.first().and_then(|ch| ch.finish_reason.as_deref()) == Some("stop"))
    );
    assert_eq!(chunks.last().unwrap().usage.as_ref().unwrap().total_tokens, 13);

    // Tool calls pass through both ways.
    fake.push(Reply::tool_call("lookup", json!({"q": "kiln"})));
    let mut request = openai_request("openai/gpt-4o", "use the tool");
    request.tools = Some(vec![
        serde_json::from_value(json!({"type": "function", "function": {
        "name": "lookup", "description": "search", "parameters": {"type": "object"}}}))
        .unwrap(),
    ]);
    let completion = app.client.openai_chat_completion(&request).await.unwrap();
    let calls = completion.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls[0].function.name, "lookup");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&calls[0].function.arguments).unwrap(),
        json!({"q": "kiln"})
    );
    assert_eq!(completion.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        fake.requests().last().unwrap().body["tools"][0]["function"]["name"],
        "lookup"
    );

    fake.push(Reply::tool_call("lookup", json!({"q": "streamed"})));
    let chunks: Vec<_> = app
        .client
        .openai_chat_stream(&request)
        .await
        .unwrap()
        .collect()
        .await;
    let args: String = chunks
        .iter()
        .filter_map(|c| c.as_ref().ok()?.choices.first()?.delta.tool_calls.clone())
        .flatten()
        .filter_map(|t| t.function?.arguments)
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args).unwrap(),
        json!({"q": "streamed"})
    );

    // A stream that breaks off upstream ends with an in-stream error.
    fake.push(Reply::cut_off("this stream breaks", 2));
    let chunks: Vec<_> = app
        .client
        .openai_chat_stream(&openai_request("openai/gpt-4o", "x"))
        .await
        .unwrap()
        .collect()
        .await;
    let err = chunks.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.api().unwrap().code, "upstream_error", "{err}");

    // A client that goes away mid-stream aborts the upstream request.
    fake.push(Reply::text("a b c d e f g h i j").chunk_delay(std::time::Duration::from_millis(100)));
    let abandoned_before = fake.abandoned();
    let mut stream = Box::pin(
        app.client
            .openai_chat_stream(&openai_request("openai/gpt-4o", "x"))
            .await
            .unwrap(),
    );
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fake.abandoned() == abandoned_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream request outlived its client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // OpenAI-only fields pass through to OpenAI-compatible providers.
    fake.push(Reply::text("{\"ok\":true}"));
    let response = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(
            &json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "json please"}],
                      "response_format": {"type": "json_object"}, "seed": 7}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = fake.requests().last().unwrap().body.clone();
    assert_eq!(
        (sent["response_format"]["type"].as_str(), sent["seed"].as_i64()),
        (Some("json_object"), Some(7))
    );

    // A provider's 4xx keeps its status on /v1 (OpenAI clients retry 5xx).
    fake.push(Reply::status(400, "context length exceeded"));
    let response = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&openai_request("openai/gpt-4o", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context length exceeded"),
        "{body}"
    );

    // A provider failure mid-request is an OpenAI-shaped error.
    fake.push(Reply::status(503, "upstream down"));
    fake.push(Reply::status(503, "upstream down"));
    fake.push(Reply::status(503, "upstream down"));
    let response = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&openai_request("openai/gpt-4o", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream down"),
        "{body}"
    );
    assert_eq!(body["error"]["type"], "api_error");

    // Unauthenticated: 401 in OpenAI's shape.
    let response = app
        .http()
        .get(app.url("/v1/models"))
        .bearer_auth("kiln_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    let models = app.client.list_models().await.unwrap();
    let ids: Vec<String> = models.data.into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["openai/gpt-4o-mini", "kiln/offline"]);
}

/// Environment settings are the fallback when the vault has no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_keys_are_the_fallback() {
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        provider_env: vec![
            ("anthropic_api_key", "sk-ant-env".to_owned()),
            ("anthropic_base_url", fake.base_url().to_owned()),
        ],
        ..Default::default()
    };
    let app = TestApp::start_with(Backend::Sqlite, options).await.unwrap();
    fake.push(Reply::text("claude says hi").usage(7, 3));
    let result = app
        .client
        .chat_completion(&input(Some("claude-sonnet-4-5"), vec![user("hi")]))
        .await
        .unwrap();
    assert_eq!(result.model, "anthropic/claude-sonnet-4-5");
    assert_eq!(result.choices[0].message.content, "claude says hi");
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-env"));
    // Fields Anthropic cannot honour are refused, not dropped.
    let response = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
                      "response_format": {"type": "json_object"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(fake.request_count(), 1, "nothing sent upstream");
    // With no model given, the configured provider's default is used, not the offline model.
    fake.push(Reply::text("default"));
    let result = app
        .client
        .chat_completion(&input(None, vec![user("hi")]))
        .await
        .unwrap();
    assert_eq!(result.model, "anthropic/claude-3-5-haiku-latest");
    app.stop().await;
}

/// Without --allow-private-network, a provider URL from a project's vault
/// cannot point at the server's own network; the operator's can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_urls_to_private_networks_are_refused() {
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        allow_private_network: false,
        ..Default::default()
    };
    let app = TestApp::start_with(Backend::Sqlite, options).await.unwrap();
    use_fake_via_vault(&app, &fake, "sk-private").await;
    let err = api_err(
        app.client
            .chat_completion(&input(Some("openai/x"), vec![user("hi")]))
            .await,
        502,
        "upstream_error",
    );
    assert!(err.message.contains("private"), "{}", err.message);
    assert_eq!(fake.request_count(), 0);
    app.stop().await;
}

/// Per-key token buckets on runs, chat completions and uploads: the burst
/// passes, the next call is 429 `rate_limited` with `retry_after_seconds`
/// and `Retry-After` (OpenAI's error shape on `/v1`), other keys are not
/// touched, and nothing runs for the refused call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_each_key_to_its_budget() {
    use kiln_core::control::rate::{RateLimit, RateLimits};
    let one_a_minute = RateLimit {
        per_minute: 1,
        burst: 2,
    };
    let options = TestOptions {
        rate_limits: RateLimits {
            run: one_a_minute,
            chat: one_a_minute,
            upload: one_a_minute,
        },
        ..Default::default()
    };
    let app = TestApp::start_with(Backend::Sqlite, options).await.unwrap();
    let c = &app.client;

    // Runs: two pass (offline model), the third is refused and starts nothing.
    let session = c
        .create_session(&kiln_sdk::api::CreateSession::default())
        .await
        .unwrap()
        .id;
    for _ in 0..2 {
        c.run_agent(&session, "hi")
            .await
            .unwrap()
            .collect_turn()
            .await
            .unwrap();
    }
    let refused = api_err(c.run_agent(&session, "hi").await, 429, "rate_limited");
    let wait = refused.details["retry_after_seconds"].as_u64().unwrap();
    assert!((1..=60).contains(&wait), "{refused:?}");
    // Queued messages and MCP's run_agent draw on the same budget.
    api_err(c.enqueue_message(&session, "later").await, 429, "rate_limited");
    let mcp = crate::mcp::mcp_client(&app, &app.key).await;
    let refused = crate::mcp::mcp_call(
        &mcp,
        "run_agent",
        json!({ "session_id": session, "message": "hi" }),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    let text = serde_json::to_string(&refused.content).unwrap();
    assert!(text.contains("too many agent runs for this API key"), "{text}");
    mcp.cancel().await.unwrap();
    let detail = c.get_session(&session).await.unwrap();
    let turns = detail
        .steps
        .iter()
        .filter(|s| s.step_type == "user_message")
        .count();
    assert_eq!(turns, 2);
    let response = app
        .http()
        .post(app.url(&format!("/api/sdk/agents/{session}/run")))
        .header("X-API-Key", &app.key)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&header));

    // Chat, on /v1 in OpenAI's shape.
    for _ in 0..2 {
        c.chat_completion(&input(None, vec![user("hi")])).await.unwrap();
    }
    let response = app
        .http()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // Another key has its own buckets.
    let (_, other) = app.key_for("default").await;
    other
        .chat_completion(&input(None, vec![user("hi")]))
        .await
        .unwrap();

    // Uploads.
    let index = c
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "limited".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap()
        .id;
    for i in 0..2 {
        c.upload_document_bytes(
            &index,
            &format!("doc{i}.md"),
            b"# Hi".to_vec(),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    api_err(
        c.upload_document_bytes(&index, "doc3.md", b"# Hi".to_vec(), &Default::default())
            .await,
        429,
        "rate_limited",
    );
    app.stop().await;
}
