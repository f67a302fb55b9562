//! `kiln-fake-provider`: the fake model vendor as a process of its own, the
//! model that `kiln-bench long-session`, `paused-turns` and `hostile` run
//! beside the built `kiln`. It is `kiln-bench fake-provider` with mimalloc
//! as its allocator: the fake parses every request into a JSON tree, and at
//! a long session's 100 KB requests glibc's malloc and free were 40% of its
//! time (mimalloc halves the model process's CPU per turn there), which is
//! the stand-in's cost, not Kiln's. Kiln itself and the in-process
//! benchmarks keep the system allocator.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "The fake LLM provider, served until interrupted")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18090")]
    addr: String,
    /// Answer each turn by running its message as the code of one
    /// `execute_js` step, then `Done.` (instead of `ok`).
    #[arg(long)]
    prompt_as_code: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    kiln_providers::fake::FakeProvider::serve_until_interrupted(&args.addr, args.prompt_as_code).await
}
