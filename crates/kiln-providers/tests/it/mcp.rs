//! The MCP client against the fake order-desk server, a real rmcp server:
//! over streamable HTTP (with and without its bearer token, and behind the
//! private-network guard) and over stdio (the `kiln-fake-mcp` process, as
//! an operator declares it): listing, calls, tool errors, timeouts, size
//! limits, and a process that must be started again.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_core::ids::ProjectId;
use kiln_core::mcp::{McpClient, McpError, McpServer, McpTransport};
use kiln_providers::fake_mcp::FakeMcpServer;
use kiln_providers::mcp::{McpSettings, RmcpClient, StdioServer};
use serde_json::json;

fn http(url: &str, bearer: Option<&str>) -> McpServer {
    McpServer {
        name: "orders".into(),
        transport: McpTransport::StreamableHttp,
        url: Some(url.to_owned()),
        bearer: bearer.map(str::to_owned),
    }
}

fn local() -> McpSettings {
    McpSettings {
        allow_private_network: true,
        timeout: Duration::from_secs(2),
        max_result_bytes: 64 * 1024,
        ..McpSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_servers_list_and_call_tools_with_their_token() {
    let server = FakeMcpServer::start(Some("s3cret")).await;
    let client = RmcpClient::new(local());
    let project = ProjectId::from_string("p1");
    let orders = http(&server.url, Some("s3cret"));

    let tools = client.list_tools(&project, &orders).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["lookup_order", "echo", "fail", "crash", "slow", "flood"]);
    assert_eq!(tools[0].input_schema["required"], json!(["id"]));
    assert!(tools[0].description.starts_with("Looks up an order"));

    let found = client
        .call_tool(&project, &orders, "lookup_order", json!({ "id": "A-7" }))
        .await
        .unwrap();
    assert_eq!(found.text, "Order A-7 has shipped.");
    assert_eq!(
        found.structured,
        Some(json!({ "id": "A-7", "status": "shipped", "total": 42.5 }))
    );

    // A tool error and an unknown tool are errors carrying the server's message.
    let failed = client.call_tool(&project, &orders, "fail", json!({})).await;
    assert_eq!(failed, Err(McpError::Tool("the order service is down".into())));
    let unknown = client.call_tool(&project, &orders, "nope", json!({})).await;
    assert!(
        matches!(&unknown, Err(McpError::Tool(m)) if m.contains("no tool named nope")),
        "{unknown:?}"
    );

    // Limits: a result over the size limit, a call past the timeout; the
    // connection is rebuilt and the next call works.
    let flood = client
        .call_tool(&project, &orders, "flood", json!({ "bytes": 200_000 }))
        .await;
    assert!(
        matches!(flood, Err(McpError::TooLarge | McpError::Unreachable(_))),
        "{flood:?}"
    );
    let slow = client
        .call_tool(&project, &orders, "slow", json!({ "ms": 5000 }))
        .await;
    assert_eq!(slow.map(|r| r.text), Err(McpError::Timeout));
    let echo = client
        .call_tool(&project, &orders, "echo", json!({ "text": "back" }))
        .await;
    assert_eq!(echo.unwrap().text, "back");

    // Without the token the server refuses to talk.
    let anonymous = client.list_tools(&project, &http(&server.url, None)).await;
    assert!(
        matches!(anonymous, Err(McpError::Unreachable(_))),
        "{anonymous:?}"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allows_them() {
    let server = FakeMcpServer::start(None).await;
    let guarded = RmcpClient::new(McpSettings::default());
    let refused = guarded
        .list_tools(&ProjectId::from_string("p1"), &http(&server.url, None))
        .await;
    assert!(matches!(refused, Err(McpError::Refused(_))), "{refused:?}");
    // A stdio server the operator did not declare.
    let undeclared = McpServer {
        name: "files".into(),
        transport: McpTransport::Stdio,
        url: None,
        bearer: None,
    };
    let unknown = guarded
        .list_tools(&ProjectId::from_string("p1"), &undeclared)
        .await;
    assert_eq!(unknown, Err(McpError::UnknownServer("files".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_servers_run_as_the_operator_declared_them() {
    let mut settings = local();
    settings.stdio = BTreeMap::from([(
        "orders".to_owned(),
        StdioServer {
            command: env!("CARGO_BIN_EXE_kiln-fake-mcp").to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
        },
    )]);
    let client = RmcpClient::new(settings);
    let server = McpServer {
        name: "orders".into(),
        transport: McpTransport::Stdio,
        url: None,
        bearer: None,
    };
    let project = ProjectId::from_string("p1");
    let tools = client.list_tools(&project, &server).await.unwrap();
    assert_eq!(tools.len(), 6);
    let echo = client
        .call_tool(&project, &server, "echo", json!({ "text": "over stdio" }))
        .await
        .unwrap();
    assert_eq!(echo.text, "over stdio");
    // Each project gets a process of its own.
    let other = ProjectId::from_string("p2");
    let found = client
        .call_tool(&other, &server, "lookup_order", json!({ "id": "B-1" }))
        .await
        .unwrap();
    assert_eq!(found.structured.unwrap()["id"], "B-1");

    // The process dies in the middle of a call: an error for that call, and
    // the next one starts the server again.
    let crashed = client.call_tool(&project, &server, "crash", json!({})).await;
    assert!(matches!(crashed, Err(McpError::Unreachable(_))), "{crashed:?}");
    let again = client
        .call_tool(&project, &server, "echo", json!({ "text": "back again" }))
        .await
        .unwrap();
    assert_eq!(again.text, "back again");
}

/// A server that answers every request with `body` (200, JSON).
async fn answering(body: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_errors_not_hangs() {
    let client = RmcpClient::new(local());
    let project = ProjectId::from_string("p1");
    for body in [
        r#"{"not": "json-rpc"}"#,
        "this is not json",
        r#"{"jsonrpc":"2.0","id":0,"result":42}"#,
    ] {
        let url = answering(body).await;
        let listed = tokio::time::timeout(
            Duration::from_secs(20),
            client.list_tools(&project, &http(&url, None)),
        )
        .await
        .unwrap_or_else(|_| panic!("{body}: an error, not a hang"));
        assert!(listed.is_err(), "{body}: {listed:?}");
    }
}

fn sse(url: &str, bearer: Option<&str>) -> McpServer {
    McpServer {
        transport: McpTransport::Sse,
        ..http(url, bearer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_servers_list_and_call_tools_with_their_token() {
    let server = FakeMcpServer::start_sse(Some("s3cret")).await;
    let client = RmcpClient::new(local());
    let project = ProjectId::from_string("p1");
    let orders = sse(&server.url, Some("s3cret"));

    let tools = client.list_tools(&project, &orders).await.unwrap();
    assert_eq!(tools.len(), 6);
    assert_eq!(tools[0].name, "lookup_order");
    let found = client
        .call_tool(&project, &orders, "lookup_order", json!({ "id": "S-1" }))
        .await
        .unwrap();
    assert_eq!(found.text, "Order S-1 has shipped.");
    assert_eq!(found.structured.unwrap()["status"], "shipped");
    let failed = client.call_tool(&project, &orders, "fail", json!({})).await;
    assert_eq!(failed, Err(McpError::Tool("the order service is down".into())));

    // Over the size limit and past the timeout: errors, then a new connection.
    let flood = client
        .call_tool(&project, &orders, "flood", json!({ "bytes": 200_000 }))
        .await;
    assert!(
        matches!(flood, Err(McpError::TooLarge | McpError::Unreachable(_))),
        "{flood:?}"
    );
    let slow = client
        .call_tool(&project, &orders, "slow", json!({ "ms": 5000 }))
        .await;
    assert_eq!(slow.map(|r| r.text), Err(McpError::Timeout));
    let echo = client
        .call_tool(&project, &orders, "echo", json!({ "text": "still here" }))
        .await;
    assert_eq!(echo.unwrap().text, "still here");

    let anonymous = client.list_tools(&project, &sse(&server.url, None)).await;
    assert!(
        matches!(&anonymous, Err(McpError::Unreachable(m)) if m.contains("401")),
        "{anonymous:?}"
    );
}

/// An HTTP+SSE server that names `endpoint` on its stream, then sends
/// `then` after the first message is posted.
async fn sse_answering(endpoint: &'static str, then: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (posted, _) = tokio::sync::broadcast::channel::<()>(4);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let posted = posted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if buf[..n].starts_with(b"GET") {
                    let mut waiting = posted.subscribe();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent: endpoint\ndata: {endpoint}\n\n"
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = waiting.recv().await;
                    let _ = socket.write_all(then.as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                } else {
                    let _ = posted.send(());
                    let _ = socket
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                }
            });
        }
    });
    format!("http://{addr}/sse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_servers_that_misbehave_are_errors_not_hangs() {
    let client = RmcpClient::new(local());
    let project = ProjectId::from_string("p1");

    // The endpoint must be on the stream's origin: the token stays there.
    let elsewhere = sse_answering("http://127.0.0.2:1/steal", "").await;
    let refused = client.list_tools(&project, &sse(&elsewhere, Some("t"))).await;
    assert!(
        matches!(&refused, Err(McpError::Unreachable(m)) if m.contains("another origin")),
        "{refused:?}"
    );

    for then in [
        "event: message\ndata: this is not json\n\n",
        "event: message\ndata: {\"not\": \"json-rpc\"}\n\n",
    ] {
        let url = sse_answering("/messages?sessionId=1", then).await;
        let listed = tokio::time::timeout(
            Duration::from_secs(20),
            client.list_tools(&project, &sse(&url, None)),
        )
        .await
        .unwrap_or_else(|_| panic!("{then}: an error, not a hang"));
        assert!(
            matches!(listed, Err(McpError::Unreachable(_))),
            "{then}: {listed:?}"
        );
    }
}
