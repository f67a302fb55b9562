//! Turns paused on `input()` at once (issue 17, part 2), against the built
//! `kiln` and an out-of-process model: `--turns` sessions each start a turn
//! whose code awaits `input()`, and every turn's event stream stays open.
//! With all of them waiting, the server's resident memory and thread count
//! (from `/proc`) and its CPU while they idle; then every question is
//! answered, `--concurrency` at a time, each turn followed on its open
//! stream to its `done`: answers per second to the last `done`, and the
//! server's CPU per answered turn. Each turn holds a connection at both
//! ends: `ulimit -n` must be above `--turns` plus a hundred.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kiln_sdk::{AgentEventStream, Client, TurnEventKind};
use tokio::sync::Semaphore;

use crate::agents::{histogram, percentiles};
use crate::long_session::{Served, cpu_ms, new_session};

#[derive(Debug, clap::Args)]
pub(crate) struct PausedArgs {
    /// The kiln binary to serve with.
    #[arg(long, default_value = "target/release/kiln")]
    kiln: PathBuf,
    /// Turns paused on `input()` at once.
    #[arg(long, default_value_t = 10_000)]
    turns: usize,
    /// Requests in flight while turns are started and answered.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long the paused turns idle before memory is read, in seconds.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// The server's database (a fresh SQLite file by default).
    #[arg(long)]
    database_url: Option<String>,
    /// Close each turn's stream once it asked (and follow it again from
    /// its cursor when answering): the paused turns' memory alone.
    #[arg(long)]
    close_streams: bool,
}

/// The code each turn runs (the fake model runs the message as code).
const CODE: &str = r#"const name = await input("What is your name?"); "hello " + name"#;

/// A turn waiting on its question, its stream open.
struct Waiting {
    session: String,
    request: String,
    /// `None` once closed: followed again after `seq`.
    stream: Option<AgentEventStream>,
    seq: i64,
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn paused(args: PausedArgs) -> anyhow::Result<()> {
    let extra = vec![
        "--agent-max-paused-blocks".to_owned(),
        (args.turns * 2 + 16).to_string(),
    ];
    let served = Served::start(&args.kiln, args.database_url.as_deref(), &extra).await?;
    let (client, pid) = (served.client.clone(), served.pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_idle, threads_idle) = (crate::rss_kib(pid)?, crate::proc_status(pid, "Threads")?);
    println!(
        "paused turns: {} turns awaiting input() at once, {}; kiln and the model in separate processes",
        args.turns,
        if args.close_streams {
            "their event streams closed"
        } else {
            "each with its event stream open"
        }
    );
    println!(
        "server before: {:.1} MiB resident, {threads_idle} threads",
        rss_idle as f64 / 1024.0
    );

    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let cpu_before = cpu_ms(pid)?;
    let mut tasks = Vec::with_capacity(args.turns);
    for _ in 0..args.turns {
        let (client, gate) = (client.clone(), gate.clone());
        let close = args.close_streams;
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            start_paused(&client, close).await
        }));
    }
    let mut waiting = Vec::with_capacity(args.turns);
    for task in tasks {
        waiting.push(task.await??);
    }
    let start_secs = started.elapsed().as_secs_f64();
    println!(
        "started and paused: {:.1} s ({:.0} turns/s), server CPU {:.2} ms per turn",
        start_secs,
        args.turns as f64 / start_secs,
        (cpu_ms(pid)? - cpu_before) / args.turns as f64
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = cpu_ms(pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_cores = (cpu_ms(pid)? - cpu_before) / (args.idle_secs as f64 * 1000.0);
    let (rss, threads_paused) = (crate::rss_kib(pid)?, crate::proc_status(pid, "Threads")?);
    println!(
        "while {} wait: {:.1} MiB resident ({:.1} KiB per paused turn and its stream above the idle server), {threads_paused} threads, {:.3} cores",
        args.turns,
        rss as f64 / 1024.0,
        (rss.saturating_sub(rss_idle)) as f64 / args.turns as f64,
        idle_cores
    );

    let started = Instant::now();
    let cpu_before = cpu_ms(pid)?;
    let mut tasks = Vec::with_capacity(args.turns);
    for turn in waiting {
        let (client, gate) = (client.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let asked = Instant::now();
            answer(&client, turn).await?;
            drop(permit);
            anyhow::Ok(asked.elapsed())
        }));
    }
    let mut latency = histogram();
    for task in tasks {
        latency.record(task.await??.as_micros() as u64)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "answered all: {:.2} s, {:.0} answers/s to the last done; server CPU {:.2} ms per answered turn; answer to done {}",
        secs,
        args.turns as f64 / secs,
        (cpu_ms(pid)? - cpu_before) / args.turns as f64,
        percentiles(&latency).0
    );
    served.stop().await
}

/// A new session whose turn is waiting on `input()`, its stream open.
async fn start_paused(client: &Client, close: bool) -> anyhow::Result<Waiting> {
    let session = new_session(client).await?;
    let mut stream = client.run_agent(&session, CODE).await?;
    while let Some(event) = stream.next().await {
        let event = event?;
        match event.kind {
            TurnEventKind::InputRequest(request) => {
                return Ok(Waiting {
                    session,
                    request: request.request_id,
                    seq: event.seq.context("the input request has no id")?,
                    stream: (!close).then_some(stream),
                });
            }
            _ if event.is_terminal() => bail!("the turn ended before it asked: {:?}", event.raw),
            _ => {}
        }
    }
    bail!("the stream ended before the turn asked")
}

/// Answers the turn's question and reads its stream to `done`.
async fn answer(client: &Client, mut turn: Waiting) -> anyhow::Result<()> {
    client
        .respond_to_input(&turn.session, &turn.request, serde_json::json!("Ada"))
        .await?;
    let mut stream = match turn.stream.take() {
        Some(stream) => stream,
        None => client.resume_events(&turn.session, turn.seq).await?,
    };
    while let Some(event) = stream.next().await {
        let event = event?;
        if event.is_terminal() {
            if event.raw.kind == "done" {
                return Ok(());
            }
            bail!("the turn failed: {:?}", event.raw);
        }
    }
    bail!("the stream ended before the turn's done")
}
