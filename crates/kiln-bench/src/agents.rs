//! `agents`: the agent runtime's figures, measured through a real server
//! running in this process (fresh SQLite database in a temp dir, or a fresh
//! schema of a PostgreSQL database with `--database-url`), the SDK over real
//! HTTP, and the fake provider as the project's default model
//! (`openai/fake-model`, answering every turn with one `execute_js` step of
//! `1 + 1` and then a text answer: two model calls and one code block per
//! turn, under any concurrency).
//!
//! * **overhead**: one turn at a time; latency from sending `run` to
//!   receiving `done` through the SDK's stream. Sessions are rotated every
//!   `--turns-per-session` turns so the history a turn loads stays short
//!   (session creation is not timed).
//! * **history**: the same in one long session: latency of its first and
//!   last hundred turns, which shows what a turn pays per turn of history.
//! * **throughput**: C sessions, each running turns back to back for `-d`
//!   seconds after a warm-up: turns/s and latency. Sessions are rotated as
//!   above; the rotation's session creations count in the wall time.
//! * **memory**: resident set size of this process (server, fake and
//!   client together) before and after creating S idle sessions, and before
//!   and after opening K turn streams that sit paused on `await
//!   input('wait')`. A paused stream holds the client's and the server's
//!   ends of one HTTP connection, the turn's task, and its sandbox block,
//!   whose OS thread keeps a QuickJS runtime and context alive while it
//!   waits (a block gives its slot among the server's running blocks back
//!   while it waits, so all K pause with the default settings). This phase
//!   has a server of its own, so its sessions do not weigh on the others.
//!   The CPU this process burns while they wait is reported too. Then every
//!   turn is cancelled and its stream must end with `cancelled`.
//! * **sandbox**: `QuickJsSandbox::run` of `1 + 1` called directly with no
//!   host functions: as a turn pays it (a pooled thread, usually with a
//!   runtime and context made ahead while it idled), and cold (a stack limit
//!   too big for the pool gives each block a thread of its own that creates
//!   its runtime and context inside the call).
//!
//! Everything shares the machine's cores: the fake provider and the client
//! run in this process, next to the server. Each phase reports the cores
//! this process used and the cores the rest of the machine used meanwhile
//! (from `/proc`), so figures taken while something else ran are visible
//! (a PostgreSQL server on the same machine counts in the rest).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use futures::StreamExt;
use hdrhistogram::Histogram;
use kiln_cli::server::{RunningServer, StartOptions, start};
use kiln_core::sandbox::{CancelFlag, HostFunctions, Sandbox, SandboxLimits};
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::CreateSession;
use kiln_sdk::{AgentEventStream, Client, TurnEventKind};
use serde_json::{Value, json};

/// The code of every measured turn.
const CODE: &str = "1 + 1";
/// Cancels of the memory phase timed one at a time.
const CANCELS_TIMED_ALONE: usize = 50;
/// The code of the memory phase's paused turns.
const WAIT_CODE: &str = "await input('wait')";
/// Turns timed at each end of the long session.
const HISTORY_WINDOW: usize = 100;
/// Requests in flight while setting up or tearing down many sessions.
const SETUP_CONCURRENCY: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Phase {
    Overhead,
    History,
    Throughput,
    Memory,
    Sandbox,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AgentsArgs {
    /// Phases to run, in the order given. The default runs memory first,
    /// before the other phases have grown the allocator's free lists.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "memory,overhead,history,throughput,sandbox"
    )]
    phases: Vec<Phase>,
    /// Timed turns of the overhead phase.
    #[arg(long, default_value_t = 2000)]
    turns: usize,
    /// Untimed turns before them.
    #[arg(long, default_value_t = 100)]
    warmup_turns: usize,
    /// Turns per session before a fresh one (overhead and throughput).
    #[arg(long, default_value_t = 10)]
    turns_per_session: usize,
    /// Turns of the history phase's one session.
    #[arg(long, default_value_t = 1000)]
    long_session: usize,
    /// Concurrent sessions of the throughput phase (one run per value).
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Measured seconds per throughput run.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds before each throughput run.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Idle sessions created in the memory phase.
    #[arg(long, default_value_t = 2000)]
    idle_sessions: usize,
    /// Turn streams held open, paused on `input()`, in the memory phase.
    #[arg(long, default_value_t = 500)]
    open_streams: usize,
    /// Sandbox blocks timed (each way).
    #[arg(long, default_value_t = 5000)]
    blocks: usize,
    /// The server's database: a fresh SQLite file in a temp dir by default;
    /// a `postgres://` URL gets a fresh schema, dropped at the end.
    #[arg(long)]
    database_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    ensure!(
        args.turns_per_session > 0,
        "--turns-per-session must be at least 1"
    );
    ensure!(
        args.open_streams <= args.idle_sessions,
        "--open-streams runs turns in the idle sessions: at most --idle-sessions"
    );
    let mut report = serde_json::Map::new();
    report.insert(
        "database".into(),
        json!(Database::kind(args.database_url.as_deref())),
    );
    report.insert("code".into(), json!(CODE));
    report.insert("loadavg_at_start".into(), json!(load_average()));
    let say = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    say(format!(
        "agent runtime, in-process server on {}, fake default model, code `{CODE}`; \
         load average at start {}",
        Database::kind(args.database_url.as_deref()),
        load_average()
    ));

    // The memory phase has a server of its own; the others share one.
    let mut shared: Option<Bench> = None;
    for phase in &args.phases {
        let cpu = CpuMeter::start();
        let mut figures = match phase {
            Phase::Memory => {
                let bench = Bench::start(args.database_url.as_deref()).await?;
                let figures = memory(&bench, &args, &say).await;
                bench.stop().await?;
                figures?
            }
            Phase::Sandbox => sandbox(&args, &say).await?,
            Phase::Overhead | Phase::History | Phase::Throughput => {
                if shared.is_none() {
                    shared = Some(Bench::start(args.database_url.as_deref()).await?);
                }
                let bench = shared.as_ref().expect("started above");
                match phase {
                    Phase::Overhead => overhead(bench, &args, &say).await?,
                    Phase::History => history(bench, &args, &say).await?,
                    _ => throughput(bench, &args, &say).await?,
                }
            }
        };
        let cpu = cpu.stop();
        say(format!("  {cpu}\n"));
        figures.insert("cpu".into(), cpu.json());
        report.insert(format!("{phase:?}").to_lowercase(), Value::Object(figures));
    }
    if let Some(bench) = shared {
        bench.stop().await?;
    }
    if args.json {
        println!("{}", Value::Object(report));
    }
    Ok(())
}

/// A server on a fresh database, the fake as its default model, and a client.
pub(crate) struct Bench {
    pub(crate) server: RunningServer,
    pub(crate) client: Client,
    /// The bootstrap key the client uses.
    pub(crate) key: String,
    pub(crate) fake: FakeProvider,
    database: Database,
}

impl Bench {
    pub(crate) async fn start(database_url: Option<&str>) -> anyhow::Result<Bench> {
        Self::start_with(database_url, kiln_cli::server::Extraction::InProcess).await
    }

    /// [`Bench::start`] with documents extracted as given.
    pub(crate) async fn start_with(
        database_url: Option<&str>,
        extraction: kiln_cli::server::Extraction,
    ) -> anyhow::Result<Bench> {
        let fake = FakeProvider::start().await;
        fake.stop_recording();
        fake.set_default(Reply::code_step(CODE, "2"));
        let database = Database::fresh(database_url).await?;
        let mut provider_env = kiln_core::llm::SettingMap::default();
        provider_env.insert("openai_api_key", "bench-key".into());
        provider_env.insert("openai_base_url", fake.openai_base_url());
        provider_env.insert("default_model", "openai/fake-model".into());
        let server = start(StartOptions {
            addr: "127.0.0.1:0".parse()?,
            database_url: database.url.clone(),
            // Secrets on, as a deployment runs (webhook secrets need it).
            kek: Some(kiln_core::crypto::Kek::from_base64(
                &kiln_core::crypto::Kek::generate_base64(),
            )?),
            body_limit: kiln_server::DEFAULT_BODY_LIMIT,
            auth_cache_ttl: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
            provider_env,
            provider_http: Default::default(),
            // The fake listens on 127.0.0.1.
            allow_private_network: true,
            print_banner: false,
            search_dir: database.dir.path().join("search"),
            upload_limit: 64 * 1024 * 1024,
            ingest_workers: 1,
            embeddings: Default::default(),
            runtime: Default::default(),
            fetch: Default::default(),
            mcp: Default::default(),
            evals: Default::default(),
            webhooks: Default::default(),
            // Benchmarks hammer one key on purpose.
            rate_limits: kiln_core::control::rate::RateLimits::OFF,
            extraction,
            server_id: None,
        })
        .await?;
        let key = server
            .bootstrap
            .as_ref()
            .context("a fresh database mints a bootstrap key")?
            .plaintext
            .clone();
        let client = Client::new(&server.base_url(), &key)?;
        Ok(Bench {
            server,
            client,
            key,
            fake,
            database,
        })
    }

    async fn session(&self) -> anyhow::Result<String> {
        Ok(self.client.create_session(&CreateSession::default()).await?.id)
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.server.shutdown().await?;
        drop(self.fake);
        self.database.drop_schema().await;
        Ok(())
    }
}

/// Runs one turn through the SDK: its latency from `run` to `done`.
async fn timed_turn(client: &Client, session: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let events = client.run_agent(session, "go").await?.collect_turn().await?;
    let elapsed = started.elapsed();
    match events.last().map(|e| &e.kind) {
        Some(TurnEventKind::Done(_)) => Ok(elapsed),
        Some(TurnEventKind::Error { message, code }) => bail!("the turn failed ({code:?}): {message}"),
        other => bail!("the turn ended without `done`: {other:?}"),
    }
}

/// A session for a run of turns, replaced every `per_session` turns.
struct Rotating<'a> {
    client: &'a Client,
    per_session: usize,
    id: String,
    used: usize,
}

impl<'a> Rotating<'a> {
    fn new(client: &'a Client, per_session: usize) -> Self {
        Rotating {
            client,
            per_session,
            id: String::new(),
            used: per_session,
        }
    }

    async fn next(&mut self) -> anyhow::Result<&str> {
        if self.used >= self.per_session {
            self.id = self.client.create_session(&CreateSession::default()).await?.id;
            self.used = 0;
        }
        self.used += 1;
        Ok(&self.id)
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// p50/p90/p99/max in ms, as text and JSON.
pub(crate) fn percentiles(h: &Histogram<u64>) -> (String, serde_json::Map<String, Value>) {
    let (p50, p90, p99, max) = (
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
    let text = format!("p50 {p50:.3} ms  p90 {p90:.3} ms  p99 {p99:.3} ms  max {max:.3} ms");
    let mut json = serde_json::Map::new();
    json.insert("count".into(), json!(h.len()));
    for (name, value) in [("p50_ms", p50), ("p90_ms", p90), ("p99_ms", p99), ("max_ms", max)] {
        json.insert(name.into(), json!((value * 1000.0).round() / 1000.0));
    }
    (text, json)
}

type Figures = serde_json::Map<String, Value>;

async fn overhead(bench: &Bench, args: &AgentsArgs, say: &impl Fn(String)) -> anyhow::Result<Figures> {
    // Shows the setup works before anything is timed.
    let first = bench.session().await?;
    let events = bench.client.run_agent(&first, "go").await?.collect_turn().await?;
    let result = events.iter().find_map(|e| match &e.kind {
        TurnEventKind::ExecuteJsResult { result, .. } => result.clone(),
        _ => None,
    });
    ensure!(
        result == Some(json!(2)),
        "the first turn did not run `{CODE}` to 2: {events:?}"
    );

    let mut sessions = Rotating::new(&bench.client, args.turns_per_session);
    let mut h = histogram();
    for i in 0..args.warmup_turns + args.turns {
        let session = sessions.next().await?;
        let latency = timed_turn(&bench.client, session).await?;
        if i >= args.warmup_turns {
            h.saturating_record(latency.as_micros() as u64);
        }
    }
    let (text, mut json) = percentiles(&h);
    say(format!(
        "turn overhead: one turn at a time, {} turns after {} warm-up, a fresh session every {} \
         (run → done over HTTP, 2 model calls + 1 block each)",
        args.turns, args.warmup_turns, args.turns_per_session
    ));
    say(format!("  latency   {text}"));
    json.insert("turns_per_session".into(), json!(args.turns_per_session));
    Ok(json)
}

async fn history(bench: &Bench, args: &AgentsArgs, say: &impl Fn(String)) -> anyhow::Result<Figures> {
    ensure!(
        args.long_session >= 2 * HISTORY_WINDOW,
        "--long-session must be at least {}",
        2 * HISTORY_WINDOW
    );
    let session = bench.session().await?;
    let (mut head, mut tail) = (histogram(), histogram());
    for i in 0..args.long_session {
        let latency = timed_turn(&bench.client, &session).await?.as_micros() as u64;
        if i < HISTORY_WINDOW {
            head.saturating_record(latency);
        } else if i >= args.long_session - HISTORY_WINDOW {
            tail.saturating_record(latency);
        }
    }
    let (head_text, head_json) = percentiles(&head);
    let (tail_text, tail_json) = percentiles(&tail);
    say(format!(
        "history: one session of {} turns, one turn at a time (each turn adds 5 events)",
        args.long_session
    ));
    say(format!("  turns 1-{HISTORY_WINDOW}       {head_text}"));
    say(format!(
        "  turns {}-{}  {tail_text}",
        args.long_session - HISTORY_WINDOW + 1,
        args.long_session
    ));
    let mut json = serde_json::Map::new();
    json.insert("turns".into(), json!(args.long_session));
    json.insert("first".into(), Value::Object(head_json));
    json.insert("last".into(), Value::Object(tail_json));
    Ok(json)
}

async fn throughput(bench: &Bench, args: &AgentsArgs, say: &impl Fn(String)) -> anyhow::Result<Figures> {
    let mut runs = Vec::new();
    say(format!(
        "throughput: C sessions running turns back to back, {} s after {} s warm-up, a fresh \
         session every {} turns",
        args.duration, args.warmup, args.turns_per_session
    ));
    for &concurrency in &args.concurrency {
        let recording = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let client = bench.client.clone();
            let per_session = args.turns_per_session;
            let (recording, stop, errors) = (recording.clone(), stop.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut sessions = Rotating::new(&client, per_session);
                let mut h = histogram();
                let mut last_error = None;
                while !stop.load(Ordering::Relaxed) {
                    let turn = match sessions.next().await {
                        Ok(session) => timed_turn(&client, session).await,
                        Err(e) => Err(e),
                    };
                    match turn {
                        Ok(latency) if recording.load(Ordering::Relaxed) => {
                            h.saturating_record(latency.as_micros() as u64);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            last_error = Some(e);
                            // A fresh session next time; do not spin on a failure.
                            sessions.used = per_session;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (h, last_error)
            }));
        }
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        recording.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
        recording.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut total = histogram();
        let mut last_error = None;
        for task in tasks {
            let (h, error) = task.await?;
            total.add(h)?;
            last_error = last_error.or(error);
        }
        let errors = errors.load(Ordering::Relaxed);
        let turns = total.len();
        let rate = turns as f64 / elapsed;
        let (text, mut json) = percentiles(&total);
        say(format!(
            "  C={concurrency:<4} {rate:>7.0} turns/s  ({turns} turns, {errors} errors)  {text}"
        ));
        if let Some(error) = &last_error {
            say(format!("         last error: {error:#}"));
        }
        json.insert("concurrency".into(), json!(concurrency));
        json.insert("seconds".into(), json!((elapsed * 100.0).round() / 100.0));
        json.insert("turns_per_s".into(), json!(rate.round()));
        json.insert("errors".into(), json!(errors));
        runs.push(Value::Object(json));
    }
    let mut json = serde_json::Map::new();
    json.insert("turns_per_session".into(), json!(args.turns_per_session));
    json.insert("runs".into(), Value::Array(runs));
    Ok(json)
}

async fn memory(bench: &Bench, args: &AgentsArgs, say: &impl Fn(String)) -> anyhow::Result<Figures> {
    // Warm up what is made once (pools, caches, the sandbox's threads).
    let warm = bench.session().await?;
    for _ in 0..20 {
        timed_turn(&bench.client, &warm).await?;
    }
    settle().await;

    let before_sessions = rss_bytes()?;
    let ids: Vec<String> = futures::stream::iter(0..args.idle_sessions)
        .map(|_| bench.session())
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    settle().await;
    let after_sessions = rss_bytes()?;
    let per_session = per_item(after_sessions, before_sessions, args.idle_sessions);

    bench.fake.set_default(Reply::code_step(WAIT_CODE, "ok"));
    let before_streams = rss_bytes()?;
    let opened = Instant::now();
    let streams: Vec<AgentEventStream> = futures::stream::iter(ids.iter().take(args.open_streams))
        .map(|id| paused_turn(&bench.client, id))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let opened = opened.elapsed();
    settle().await;
    let after_streams = rss_bytes()?;
    let per_stream = per_item(after_streams, before_streams, args.open_streams);
    let idle_cpu = CpuMeter::start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu = idle_cpu.stop();

    // The first ones one at a time: how long a cancel takes to return with
    // the session `active` again (the turn's end recorded).
    let mut one_cancel = histogram();
    let alone = CANCELS_TIMED_ALONE.min(args.open_streams);
    for id in ids.iter().take(alone) {
        let started = Instant::now();
        bench.client.cancel_session(id).await?;
        one_cancel.record(started.elapsed().as_micros() as u64)?;
    }
    let (cancel_text, cancel_json) = percentiles(&one_cancel);
    let cancelled = Instant::now();
    let cancels: Vec<anyhow::Result<()>> =
        futures::stream::iter(ids.iter().take(args.open_streams).skip(alone))
            .map(|id| async move {
                bench.client.cancel_session(id).await?;
                Ok(())
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect()
            .await;
    cancels.into_iter().collect::<anyhow::Result<()>>()?;
    let mut ended_cancelled = 0;
    let mut ended_otherwise = Vec::new();
    let ends = futures::stream::iter(streams)
        .map(|stream| async move {
            let session = stream.session_id().to_owned();
            let events = tokio::time::timeout(Duration::from_secs(10), stream.collect_turn()).await;
            (session, events)
        })
        .buffer_unordered(args.open_streams.max(1))
        .collect::<Vec<_>>()
        .await;
    for (session, events) in ends {
        match events {
            Ok(Ok(events)) => match events.last().map(|e| &e.kind) {
                Some(TurnEventKind::Error { code: Some(code), .. }) if code == "cancelled" => {
                    ended_cancelled += 1
                }
                other => ended_otherwise.push(format!("{session}: {other:?}")),
            },
            Ok(Err(e)) => ended_otherwise.push(format!("{session}: {e}")),
            Err(_) => ended_otherwise.push(format!("{session}: still open 10 s after its cancel")),
        }
    }
    let cancelled = cancelled.elapsed();
    settle().await;
    let after_cancel = rss_bytes()?;

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    say("memory (RSS of this process: server, fake and client together)".to_owned());
    say(format!(
        "  {} idle sessions: {:.1} → {:.1} MiB, {per_session:.0} bytes per idle session",
        args.idle_sessions,
        mib(before_sessions),
        mib(after_sessions)
    ));
    say(format!(
        "  {} streams paused on input() (opened in {:.2} s): {:.1} → {:.1} MiB, {per_stream:.0} bytes per \
         open stream (HTTP connection both ends, the turn's task, and its sandbox block: an OS thread \
         holding a QuickJS runtime while it waits)",
        args.open_streams,
        opened.as_secs_f64(),
        mib(before_streams),
        mib(after_streams)
    ));
    say(format!("  while they wait: {idle_cpu}"));
    say(format!(
        "  one cancel at a time ({alone}; returns once the session is active again)  {cancel_text}"
    ));
    say(format!(
        "  cancelled the rest in {:.2} s: {ended_cancelled} ended `cancelled`, {} otherwise; RSS after {:.1} MiB",
        cancelled.as_secs_f64(),
        ended_otherwise.len(),
        mib(after_cancel)
    ));
    for line in ended_otherwise.iter().take(5) {
        say(format!("    {line}"));
    }
    let mut json = serde_json::Map::new();
    json.insert("idle_sessions".into(), json!(args.idle_sessions));
    json.insert("rss_before_sessions".into(), json!(before_sessions));
    json.insert("rss_after_sessions".into(), json!(after_sessions));
    json.insert("bytes_per_idle_session".into(), json!(per_session.round() as i64));
    json.insert("open_streams".into(), json!(args.open_streams));
    json.insert("open_seconds".into(), json!(seconds(opened)));
    json.insert("rss_before_streams".into(), json!(before_streams));
    json.insert("rss_after_streams".into(), json!(after_streams));
    json.insert("bytes_per_open_stream".into(), json!(per_stream.round() as i64));
    json.insert("cpu_while_paused".into(), idle_cpu.json());
    json.insert("cancel_seconds".into(), json!(seconds(cancelled)));
    json.insert("cancel_alone".into(), Value::Object(cancel_json));
    json.insert("ended_cancelled".into(), json!(ended_cancelled));
    json.insert("ended_otherwise".into(), json!(ended_otherwise.len()));
    json.insert("rss_after_cancel".into(), json!(after_cancel));
    ensure!(
        ended_otherwise.is_empty(),
        "{} streams did not end `cancelled`: {}",
        ended_otherwise.len(),
        ended_otherwise.join("; ")
    );
    Ok(json)
}

/// Starts a turn that pauses on `input()` and returns its stream once the
/// `input_request` arrived.
pub(crate) async fn paused_turn(client: &Client, session: &str) -> anyhow::Result<AgentEventStream> {
    let mut stream = client.run_agent(session, "wait").await?;
    while let Some(event) = stream.next().await {
        match event?.kind {
            TurnEventKind::InputRequest(_) => return Ok(stream),
            TurnEventKind::Error { message, .. } => bail!("the turn failed before pausing: {message}"),
            TurnEventKind::Done(_) => bail!("the turn ended without pausing"),
            _ => {}
        }
    }
    bail!("the stream ended before the input request")
}

/// Lets in-flight work and deferred frees finish before RSS is read.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Seconds, to the millisecond.
fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub(crate) fn per_item(after: u64, before: u64, items: usize) -> f64 {
    (after as f64 - before as f64) / items.max(1) as f64
}

/// Host functions for a block that calls none.
struct NoHost;

#[async_trait]
impl HostFunctions for NoHost {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn call(&self, name: &str, _args: Value) -> Result<Value, String> {
        Err(format!("`{name}` is not available"))
    }
}

async fn sandbox(args: &AgentsArgs, say: &impl Fn(String)) -> anyhow::Result<Figures> {
    let sandbox = kiln_sandbox::QuickJsSandbox::new();
    let host: Arc<dyn HostFunctions> = Arc::new(NoHost);
    let pooled = SandboxLimits::default();
    // More stack than a pooled thread has: each block gets a thread of its
    // own and creates its runtime and context inside the call.
    let cold = SandboxLimits {
        stack_bytes: 16 * 1024 * 1024,
        ..SandboxLimits::default()
    };
    let warmup = (args.blocks / 10).clamp(1, 500);
    say(format!(
        "sandbox block: QuickJsSandbox::run(`{CODE}`) called directly, no host functions, {} blocks after {warmup} \
         warm-up, one at a time",
        args.blocks
    ));
    let mut json = serde_json::Map::new();
    for (name, limits) in [("pooled", pooled), ("cold", cold)] {
        let mut h = histogram();
        for i in 0..warmup + args.blocks {
            let started = Instant::now();
            let outcome = sandbox.run(CODE, host.clone(), limits, CancelFlag::new()).await;
            let micros = started.elapsed().as_micros() as u64;
            ensure!(
                outcome.result == Ok(json!(2)),
                "`{CODE}` gave {:?}",
                outcome.result
            );
            if i >= warmup {
                h.saturating_record(micros);
            }
        }
        let us = |q: f64| h.value_at_quantile(q);
        let label = match name {
            "pooled" => "pooled (as a turn runs it)",
            _ => "cold (own thread, runtime and context made in the call)",
        };
        say(format!(
            "  {label:<56} p50 {} µs  p90 {} µs  p99 {} µs  max {} µs",
            us(0.5),
            us(0.9),
            us(0.99),
            h.max()
        ));
        json.insert(
            name.into(),
            json!({"count": h.len(), "p50_us": us(0.5), "p90_us": us(0.9), "p99_us": us(0.99), "max_us": h.max()}),
        );
    }
    Ok(json)
}

/// Where the server keeps its data.
struct Database {
    url: String,
    dir: tempfile::TempDir,
    /// `(base URL, schema)` to drop at the end, on PostgreSQL.
    schema: Option<(String, String)>,
}

impl Database {
    fn kind(url: Option<&str>) -> &'static str {
        match url {
            Some(url) if url.starts_with("postgres") => "PostgreSQL (fresh schema)",
            Some(_) => "the given database",
            None => "SQLite (fresh file)",
        }
    }

    async fn fresh(url: Option<&str>) -> anyhow::Result<Database> {
        let dir = tempfile::tempdir()?;
        let Some(base) = url else {
            return Ok(Database {
                url: format!("sqlite://{}", dir.path().join("kiln.db").display()),
                dir,
                schema: None,
            });
        };
        if !base.starts_with("postgres") {
            return Ok(Database {
                url: base.to_owned(),
                dir,
                schema: None,
            });
        }
        let schema = format!(
            "kiln_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        );
        let pool = sqlx::PgPool::connect(base)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .context("creating the bench schema")?;
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Database {
            url: format!("{base}{sep}options[search_path]={schema}"),
            dir,
            schema: Some((base.to_owned(), schema)),
        })
    }

    async fn drop_schema(self) {
        if let Some((base, schema)) = self.schema
            && let Ok(pool) = sqlx::PgPool::connect(&base).await
        {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await;
            if let Err(e) = dropped {
                eprintln!("dropping schema {schema} failed: {e}");
            }
            pool.close().await;
        }
    }
}

/// Resident set size of this process in bytes.
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    Ok(crate::rss_kib(std::process::id())? * 1024)
}

/// `/proc/loadavg`'s three averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU time of this process and of the whole machine over an interval.
pub(crate) struct CpuMeter {
    started: Instant,
    own: Option<u64>,
    machine: Option<u64>,
}

/// What [`CpuMeter`] saw: cores in use on average.
pub(crate) struct CpuUse {
    pub(crate) own_cores: Option<f64>,
    other_cores: Option<f64>,
    load: String,
}

impl CpuMeter {
    pub(crate) fn start() -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            own: own_ticks(),
            machine: machine_busy_ticks(),
        }
    }

    pub(crate) fn stop(self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64();
        // USER_HZ: 100 on the Linux platforms Kiln supports.
        let ticks = 100.0;
        let own = own_ticks()
            .zip(self.own)
            .map(|(now, then)| (now - then) as f64 / ticks / seconds);
        let machine = machine_busy_ticks()
            .zip(self.machine)
            .map(|(now, then)| (now - then) as f64 / ticks / seconds);
        CpuUse {
            own_cores: own,
            other_cores: own.zip(machine).map(|(own, all)| (all - own).max(0.0)),
            load: load_average(),
        }
    }
}

impl CpuUse {
    fn json(&self) -> Value {
        let round = |v: Option<f64>| v.map(|v| (v * 100.0).round() / 100.0);
        json!({"own_cores": round(self.own_cores), "other_cores": round(self.other_cores), "loadavg": self.load})
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.2}"));
        write!(
            f,
            "cpu: this process {} cores, rest of the machine {} cores; load average {}",
            cores(self.own_cores),
            cores(self.other_cores),
            self.load
        )
    }
}

/// utime + stime of this process, in clock ticks.
fn own_ticks() -> Option<u64> {
    process_ticks("self")
}

/// utime + stime of process `pid` (or `self`), in clock ticks (USER_HZ:
/// 100 on the Linux platforms Kiln supports).
pub(crate) fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of the whole line, are at 11 and 12 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Busy ticks of all CPUs (everything but idle and iowait).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let (idle, iowait) = (*values.get(3)?, *values.get(4)?);
    // guest and guest_nice (8, 9) are already counted in user and nice.
    Some(values.iter().take(8).sum::<u64>() - idle - iowait)
}
