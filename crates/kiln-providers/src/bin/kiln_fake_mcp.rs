//! `kiln-fake-mcp`: the fake order-desk MCP server over stdio, for tests
//! of Kiln's stdio MCP client (an operator-declared server).

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(error) = kiln_providers::fake_mcp::serve_stdio().await {
        eprintln!("kiln-fake-mcp: {error}");
        std::process::exit(1);
    }
}
