//! `kiln-bench`: the load driver Kiln's figures come from.
//!
//! `load` runs N concurrent clients (each with its own keep-alive
//! connection) against a running server for a fixed time after a warm-up,
//! and reports latency percentiles and requests/s. `startup` starts a fresh
//! `kiln serve`, times start to first healthy answer, and reads its idle
//! resident memory. `agents` measures the agent runtime (turn overhead,
//! throughput, memory per session and per open stream, sandbox blocks).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

mod agents;
mod evals;
mod hostile;
mod long_session;
mod mcp;
mod paused;
mod rag;
mod session_features;
mod source;

#[derive(Debug, Parser)]
#[command(name = "kiln-bench", about = "Load and startup figures for a Kiln server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N concurrent clients for a fixed time against a running server.
    Load(LoadArgs),
    /// Start a fresh `kiln serve`: time to first healthy answer and idle RSS.
    Startup(StartupArgs),
    /// Retrieval quality (hit@1, hit@5, MRR) of BM25, vectors and hybrid on the labelled set.
    Retrieval(rag::RetrievalArgs),
    /// Ingest throughput of Markdown (upload to `ready`), MB/s.
    Ingest(rag::IngestArgs),
    /// Hybrid search latency once the index holds N chunks.
    SearchLatency(rag::LatencyArgs),
    /// Agent runtime: turn overhead, throughput, memory per session and per
    /// open stream, and sandbox block cost, against an in-process server.
    Agents(agents::AgentsArgs),
    /// Agents as code: sync of a 50-file agent, deploy of 10 agents, a
    /// session on an agent against an ad-hoc one.
    Source(source::SourceArgs),
    /// MCP: one tool call over streamable HTTP, HTTP+SSE and stdio against a
    /// local server, and `/mcp` tool calls per second against Kiln.
    Mcp(mcp::McpArgs),
    /// Evals and schedules: an eval run of N cases (cases/s, CPU per case),
    /// and the scheduler with 10,000 schedules (idle CPU per minute, firing
    /// delay after the minute starts).
    Evals(evals::EvalsArgs),
    /// Session features: SSE streams and WebSocket subscribers held at once
    /// (memory per connection, fan-out), webhook deliveries per second, and
    /// the queue's drain gap between turns.
    SessionFeatures(session_features::SessionFeaturesArgs),
    /// Hostile tenants: another project's turn and search latency on an
    /// idle server, then while one project runs hostile code and uploads
    /// hostile documents.
    Hostile(hostile::HostileArgs),
    /// Long sessions against the built binary and an out-of-process model:
    /// latency and server CPU per turn by window of a 1,000-turn session,
    /// then turns/s with 16 sessions at once.
    LongSession(long_session::LongSessionArgs),
    /// Turns paused on `input()` at once against the built binary: memory
    /// and threads while they wait, then answers per second.
    PausedTurns(paused::PausedArgs),
    /// Internal: the document extraction worker (as `kiln extract-worker`).
    #[command(hide = true)]
    ExtractWorker { kind: String },
    /// Run the fake LLM provider (instant `ok` replies) until interrupted.
    FakeProvider {
        #[arg(long, default_value = "127.0.0.1:18090")]
        addr: String,
        /// Answer each turn by running its message as the code of one
        /// `execute_js` step, then `Done.` (instead of `ok`).
        #[arg(long)]
        prompt_as_code: bool,
    },
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key sent as X-API-Key (or as a bearer token with --bearer).
    #[arg(long, env = "KILN_API_KEY", default_value = "")]
    key: String,
    /// Send the key as `Authorization: Bearer` (OpenAI style).
    #[arg(long)]
    bearer: bool,
    /// Measure time to the first streamed content chunk instead of the
    /// whole response (for `"stream": true` bodies).
    #[arg(long)]
    ttft: bool,
    /// Path to request.
    #[arg(long, default_value = "/api/sdk/project")]
    path: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// JSON body to send with each request.
    #[arg(long)]
    body: Option<String>,
    /// Concurrent clients (one connection each).
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct StartupArgs {
    /// The kiln binary to start.
    #[arg(long, default_value = "target/release/kiln")]
    kiln: PathBuf,
    /// Runs to take the median over.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds to let the server idle before reading its RSS.
    #[arg(long, default_value_t = 3)]
    idle: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::ExtractWorker { kind } = &cli.command {
        std::process::exit(kiln_extract::isolated::run_worker(kind));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Load(args) => load(args).await,
            Command::Startup(args) => startup(args).await,
            Command::Retrieval(args) => rag::retrieval(args).await,
            Command::Ingest(args) => rag::ingest_throughput(args).await,
            Command::SearchLatency(args) => rag::search_latency(args).await,
            Command::Agents(args) => agents::agents(args).await,
            Command::Source(args) => source::source(args).await,
            Command::Mcp(args) => mcp::mcp(args).await,
            Command::Evals(args) => evals::evals(args).await,
            Command::SessionFeatures(args) => session_features::session_features(args).await,
            Command::Hostile(args) => hostile::hostile(args).await,
            Command::LongSession(args) => long_session::long_session(args).await,
            Command::PausedTurns(args) => paused::paused(args).await,
            Command::ExtractWorker { .. } => unreachable!("handled before the runtime starts"),
            Command::FakeProvider { addr, prompt_as_code } => Ok(
                kiln_providers::fake::FakeProvider::serve_until_interrupted(&addr, prompt_as_code).await?,
            ),
        }
    })
}

async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let method: reqwest::Method = args.method.parse().context("--method")?;
    let url = format!("{}{}", args.url.trim_end_matches('/'), args.path);
    let auth = |request: reqwest::RequestBuilder, key: &str, bearer: bool| {
        if bearer {
            request.bearer_auth(key)
        } else {
            request.header("X-API-Key", key)
        }
    };
    let mut probe = auth(
        reqwest::Client::new().request(method.clone(), &url),
        &args.key,
        args.bearer,
    );
    if let Some(body) = &args.body {
        probe = probe
            .header("Content-Type", "application/json")
            .body(body.clone());
    }
    let probe = probe.send().await.with_context(|| format!("probing {url}"))?;
    if !probe.status().is_success() {
        bail!(
            "probe of {url} answered {}: fix the URL or key first",
            probe.status()
        );
    }

    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (method, url, key, body) = (method.clone(), url.clone(), args.key.clone(), args.body.clone());
        let (bearer, ttft) = (args.bearer, args.ttft);
        let (recording, stop, errors) = (recording.clone(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while !stop.load(Ordering::Relaxed) {
                let mut request = auth(client.request(method.clone(), &url), &key, bearer);
                if let Some(body) = &body {
                    request = request
                        .header("Content-Type", "application/json")
                        .body(body.clone());
                }
                let started = Instant::now();
                let mut first_content = None;
                let ok = match request.send().await {
                    Ok(response) if ttft => {
                        let success = response.status().is_success();
                        let mut body = response.bytes_stream();
                        let mut failed = false;
                        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
                            match chunk {
                                Ok(bytes) => {
                                    if first_content.is_none() && has_text_content(&bytes) {
                                        first_content = Some(started.elapsed());
                                    }
                                }
                                Err(_) => failed = true,
                            }
                        }
                        success && !failed && first_content.is_some()
                    }
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if recording.load(Ordering::Relaxed) {
                    if ok {
                        let latency = first_content.unwrap_or_else(|| started.elapsed());
                        histogram.saturating_record(latency.as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            histogram
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        total.add(task.await?)?;
    }
    let requests = total.len();
    let errors = errors.load(Ordering::Relaxed);
    let rps = requests as f64 / elapsed;
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        println!(
            "{{\"url\":\"{url}\",\"concurrency\":{},\"seconds\":{elapsed:.2},\"requests\":{requests},\"errors\":{errors},\
             \"rps\":{rps:.0},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
            args.concurrency,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            total.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{} {url}  concurrency {}  {elapsed:.1} s",
            args.method, args.concurrency
        );
        println!("  requests  {requests}  (errors {errors})");
        println!("  rps       {rps:.0}");
        println!(
            "  latency   p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            total.max() as f64 / 1000.0
        );
    }
    Ok(())
}

/// Whether an SSE chunk carries non-empty `"content":"…"` (the first token).
fn has_text_content(bytes: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"content\":\"";
    bytes
        .windows(NEEDLE.len() + 1)
        .any(|w| &w[..NEEDLE.len()] == NEEDLE && w[NEEDLE.len()] != b'"')
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resident set size of a process in KiB, from /proc.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status(pid, "VmRSS")
}

/// A number of a process's `/proc/<pid>/status` (`VmRSS`, `Threads`).
pub(crate) fn proc_status(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc (Linux only)")?;
    let prefix = format!("{field}:");
    let line = status
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("no {field}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no {field} value"))?
        .parse()?)
}

async fn startup(args: StartupArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut first_healthy = Vec::new();
    let mut rss = Vec::new();
    for run in 0..args.runs {
        let dir = std::env::temp_dir().join(format!("kiln-bench-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&args.kiln)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", args.kiln.display()))?;
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("kiln did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        first_healthy.push(started.elapsed());
        tokio::time::sleep(Duration::from_secs(args.idle)).await;
        rss.push(rss_kib(child.id().context("child pid")?)?);
        child.start_kill()?;
        child.wait().await?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    first_healthy.sort();
    rss.sort();
    let median_ms = first_healthy[first_healthy.len() / 2].as_secs_f64() * 1000.0;
    let median_rss = rss[rss.len() / 2] as f64 / 1024.0;
    println!(
        "startup over {} runs (fresh data dir each): first healthy answer median {median_ms:.1} ms (min {:.1}, max {:.1})",
        args.runs,
        first_healthy[0].as_secs_f64() * 1000.0,
        first_healthy[first_healthy.len() - 1].as_secs_f64() * 1000.0
    );
    println!("idle RSS after {} s: median {median_rss:.1} MiB", args.idle);
    Ok(())
}
