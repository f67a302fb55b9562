//! Client-side tools (Kiln extension): a session declares tools the
//! client runs; the model's call streams as `tool_call` with a `call_id`,
//! the session waits in `awaiting_tool`, and `POST /agents/:id/tool-results`
//! resumes it. The SDK's `run_with_tools` runs the whole loop.

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::{ClientTool, CreateSession};
use kiln_sdk::{ClientToolHandlers, TurnEvent, TurnEventKind};
use serde_json::{Value, json};

use crate::agents::read_until;
use crate::harness::{TestApp, api_err};

fn weather_tool() -> ClientTool {
    ClientTool {
        name: "get_weather".into(),
        description: "The weather in a city, from the user's device".into(),
        parameters: json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"]
        }),
    }
}

async fn tool_session(app: &TestApp) -> String {
    app.client
        .create_session(&CreateSession {
            client_tools: Some(vec![weather_tool()]),
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

fn kinds(events: &[TurnEvent]) -> Vec<&str> {
    events.iter().map(|e| e.raw.kind.as_str()).collect()
}

/// The tool messages the model was sent in its last request.
fn tool_messages_sent(fake: &FakeProvider) -> Vec<Value> {
    let last = fake.requests().pop().expect("the model was called");
    last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect()
}

pub(crate) async fn client_tools_pause_the_turn_until_the_client_answers(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = tool_session(app).await;

    fake.push(Reply::tool_call("get_weather", json!({ "city": "Lisbon" })));
    fake.push(Reply::text("Sunny in Lisbon."));
    let mut stream = c.run_agent(&id, "Weather in Lisbon?").await.unwrap();
    let before = read_until(&mut stream, |e| e.raw.kind == "tool_call").await;
    let call = before.last().unwrap();
    let call_id = match &call.kind {
        TurnEventKind::ToolCall { tool, args, call_id } => {
            assert_eq!(tool, "get_weather");
            assert_eq!(Value::Object(args.clone()), json!({ "city": "Lisbon" }));
            call_id.clone().expect("a client tool call has a call_id")
        }
        other => panic!("{other:?}"),
    };
    // The model was offered the declared tool with its schema.
    let offered = &fake.requests()[0].body["tools"];
    let declared = offered
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "get_weather")
        .expect("the client tool is offered to the model");
    assert_eq!(declared["function"]["parameters"]["required"], json!(["city"]));
    assert_eq!(c.get_session(&id).await.unwrap().session.status, "awaiting_tool");

    // Bad answers change nothing.
    api_err(
        c.submit_tool_result(&id, "call-unknown", Ok(json!(1))).await,
        404,
        "tool_call_not_found",
    );
    api_err(
        c.submit_tool_result(&id, "", Ok(json!(1))).await,
        400,
        "validation_failed",
    );
    let huge = "x".repeat(kiln_core::runtime::client_tools::MAX_TOOL_RESULT_BYTES + 1);
    api_err(
        c.submit_tool_result(&id, &call_id, Ok(json!(huge))).await,
        413,
        "payload_too_large",
    );
    api_err(
        c.submit_tool_result("missing", &call_id, Ok(json!(1))).await,
        404,
        "NOT_FOUND",
    );
    // Another project's key cannot answer it.
    let (_, other) = app.key_for("client-tools-other").await;
    api_err(
        other.submit_tool_result(&id, &call_id, Ok(json!(1))).await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(c.get_session(&id).await.unwrap().session.status, "awaiting_tool");

    c.submit_tool_result(&id, &call_id, Ok(json!({ "sky": "clear", "c": 21 })))
        .await
        .unwrap();
    let rest = read_until(&mut stream, TurnEvent::is_terminal).await;
    assert_eq!(kinds(&rest), ["tool_result", "response", "done"]);
    match &rest[0].kind {
        TurnEventKind::ToolResult { tool, result, .. } => {
            assert_eq!(tool, "get_weather");
            assert_eq!(result.as_ref().unwrap(), &json!({ "sky": "clear", "c": 21 }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest[0].raw.call_id.as_deref(), Some(call_id.as_str()));
    // The model read the client's result as the call's answer.
    let sent = tool_messages_sent(fake);
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["content"].as_str().unwrap().contains("clear"));
    assert_eq!(c.get_session(&id).await.unwrap().session.status, "active");
    // Answered twice: refused, and the first answer stands.
    api_err(
        c.submit_tool_result(&id, &call_id, Ok(json!("again"))).await,
        400,
        "tool_call_already_resolved",
    );

    // An error result reaches the model as `{"error": …}`.
    fake.push(Reply::tool_call("get_weather", json!({ "city": "Oslo" })));
    fake.push(Reply::text("I could not get it."));
    let mut stream = c.run_agent(&id, "And Oslo?").await.unwrap();
    let call = read_until(&mut stream, |e| e.raw.kind == "tool_call").await;
    let call_id = call.last().unwrap().raw.call_id.clone().unwrap();
    c.submit_tool_result(&id, &call_id, Err("location permission denied".into()))
        .await
        .unwrap();
    let rest = read_until(&mut stream, TurnEvent::is_terminal).await;
    match &rest[0].kind {
        TurnEventKind::ToolResult { result, .. } => assert_eq!(
            result.as_ref().unwrap(),
            &json!({ "error": "location permission denied" })
        ),
        other => panic!("{other:?}"),
    }

    // Declarations are checked on create.
    for (tools, field) in [
        (
            vec![ClientTool {
                name: "execute_js".into(),
                ..weather_tool()
            }],
            "server tool",
        ),
        (vec![weather_tool(), weather_tool()], "declared twice"),
        (
            vec![ClientTool {
                parameters: json!({ "type": "string" }),
                ..weather_tool()
            }],
            "describe an object",
        ),
        (
            vec![ClientTool {
                name: "has space".into(),
                ..weather_tool()
            }],
            "must be 1-64",
        ),
    ] {
        let err = api_err(
            c.create_session(&CreateSession {
                client_tools: Some(tools),
                ..Default::default()
            })
            .await,
            400,
            "validation_failed",
        );
        assert!(
            err.message.contains(field) || format!("{:?}", err.details).contains(field),
            "{field}: {err:?}"
        );
    }
}

pub(crate) async fn run_with_tools_answers_every_call(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = tool_session(app).await;
    fake.push(Reply::tool_calls(vec![
        ("get_weather", json!({ "city": "Porto" })),
        ("get_weather", json!({ "city": "Faro" })),
    ]));
    fake.push(Reply::text("Both sunny."));
    let handlers = ClientToolHandlers::new().on("get_weather", |args| async move {
        Ok(json!({ "city": args["city"], "sky": "sunny" }))
    });
    let events = c.run_with_tools(&id, "Porto and Faro?", &handlers).await.unwrap();
    let kinds: Vec<&str> = kinds(&events)
        .into_iter()
        .filter(|k| *k != "sandbox_event")
        .collect();
    assert_eq!(
        kinds,
        [
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "response",
            "done"
        ]
    );
    let results: Vec<Value> = events
        .iter()
        .filter_map(|e| match &e.kind {
            TurnEventKind::ToolResult { result, .. } => result.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [
            json!({ "city": "Porto", "sky": "sunny" }),
            json!({ "city": "Faro", "sky": "sunny" })
        ]
    );
    assert_eq!(tool_messages_sent(fake).len(), 2);

    // A tool without a handler: the model reads an error, the turn ends.
    fake.push(Reply::tool_call("get_weather", json!({ "city": "Braga" })));
    fake.push(Reply::text("No weather."));
    let events = c
        .run_with_tools(&id, "Braga?", &ClientToolHandlers::new())
        .await
        .unwrap();
    assert!(matches!(events.last().unwrap().kind, TurnEventKind::Done(_)));
    let sent = tool_messages_sent(fake);
    assert!(
        sent.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("no handler"),
        "{sent:?}"
    );
}

pub(crate) async fn an_unanswered_client_tool_times_out(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let id = tool_session(app).await;
    fake.push(Reply::tool_call("get_weather", json!({ "city": "Lisbon" })));
    let mut stream = c.run_agent(&id, "Weather?").await.unwrap();
    let events = read_until(&mut stream, TurnEvent::is_terminal).await;
    let call_id = events
        .iter()
        .find(|e| e.raw.kind == "tool_call")
        .and_then(|e| e.raw.call_id.clone())
        .unwrap();
    match &events.last().unwrap().kind {
        TurnEventKind::Error { code, .. } => assert_eq!(code.as_deref(), Some("tool_timeout")),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get_session(&id).await.unwrap().session.status, "error");
    // Too late: the turn has ended.
    api_err(
        c.submit_tool_result(&id, &call_id, Ok(json!(1))).await,
        400,
        "tool_call_expired",
    );
}
