//! MCP figures: what one tool call costs Kiln's MCP client against a local
//! server (the fake order desk) over streamable HTTP, HTTP+SSE and stdio, and how
//! many `/mcp` tool calls per second Kiln serves to MCP clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::ids::ProjectId;
use kiln_core::mcp::{McpClient, McpServer, McpTransport};
use kiln_providers::fake_mcp::FakeMcpServer;
use kiln_providers::mcp::{McpSettings, RmcpClient, StdioServer};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::agents::{Bench, CpuMeter, histogram};

#[derive(Debug, clap::Args)]
pub(crate) struct McpArgs {
    /// Timed calls per transport.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// The stdio server to start (default: `kiln-fake-mcp` beside this
    /// binary; build it with `cargo build --release -p kiln-providers
    /// --features fake --bin kiln-fake-mcp`).
    #[arg(long)]
    stdio_command: Option<String>,
    /// MCP clients calling `/mcp` at once.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of `/mcp` load.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn mcp(args: McpArgs) -> anyhow::Result<()> {
    println!("MCP, one process on this machine, loopback");
    let server = FakeMcpServer::start(None).await;
    let sse_server = FakeMcpServer::start_sse(None).await;
    let stdio_command = args.stdio_command.clone().or_else(|| {
        let sibling = std::env::current_exe().ok()?.with_file_name("kiln-fake-mcp");
        sibling.exists().then(|| sibling.display().to_string())
    });
    let client = RmcpClient::new(McpSettings {
        allow_private_network: true,
        stdio: stdio_command
            .iter()
            .map(|command| {
                (
                    "orders".to_owned(),
                    StdioServer {
                        command: command.clone(),
                        args: Vec::new(),
                        env: BTreeMap::new(),
                    },
                )
            })
            .collect(),
        ..McpSettings::default()
    });
    let project = ProjectId::from_string("bench");
    let mut servers = vec![(
        "streamable HTTP",
        McpServer {
            name: "orders".into(),
            transport: McpTransport::StreamableHttp,
            url: Some(server.url.clone()),
            bearer: None,
        },
    )];
    servers.push((
        "HTTP+SSE",
        McpServer {
            name: "orders".into(),
            transport: McpTransport::Sse,
            url: Some(sse_server.url.clone()),
            bearer: None,
        },
    ));
    if stdio_command.is_some() {
        servers.push((
            "stdio",
            McpServer {
                name: "orders".into(),
                transport: McpTransport::Stdio,
                url: None,
                bearer: None,
            },
        ));
    } else {
        println!("stdio: skipped (no kiln-fake-mcp beside this binary; pass --stdio-command)");
    }
    for (label, server) in &servers {
        let cpu = CpuMeter::start();
        let mut h = histogram();
        for i in 0..args.calls + 50 {
            let started = Instant::now();
            let result = client
                .call_tool(&project, server, "echo", json!({ "text": "ping" }))
                .await
                .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            anyhow::ensure!(result.text == "ping", "{label}: echo answered {:?}", result.text);
            if i >= 50 {
                h.record(started.elapsed().as_micros() as u64)?;
            }
        }
        println!(
            "one tool call over {label} ({} calls, connection reused): p50 {} µs  p90 {} µs  p99 {} µs",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99)
        );
        println!("  {}", cpu.stop());
    }

    // Kiln's own /mcp: clients calling `list_agents` for a while.
    let bench = Bench::start(None).await?;
    let url = format!("{}/mcp", bench.server.base_url());
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let cpu = CpuMeter::start();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let config =
            StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(bench.key.clone());
        let client = ()
            .serve(StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                config,
            ))
            .await?;
        let client = Arc::new(client);
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            while Instant::now() < deadline {
                let started = Instant::now();
                let params = rmcp::model::CallToolRequestParams::new("list_agents");
                client.call_tool(params).await?;
                h.record(started.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(h)
        }));
    }
    let mut all = histogram();
    for task in tasks {
        all.add(task.await??)?;
    }
    println!(
        "/mcp tools/call list_agents, {} clients for {} s: {:.0} calls/s, p50 {} µs  p99 {} µs",
        args.clients,
        args.seconds,
        all.len() as f64 / args.seconds as f64,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99)
    );
    println!("  {}", cpu.stop());
    bench.stop().await
}
