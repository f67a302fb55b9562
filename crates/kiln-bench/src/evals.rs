//! Evals and schedules: an eval run of N cases with the instant fake as the
//! agent and the judge (cases per second at the default concurrency, and
//! this process's CPU per case), and the scheduler with many schedules
//! (CPU per minute while none is due, and how late after the minute starts
//! the due ones fire), against an in-process server on a fresh database.

use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use kiln_providers::fake::Reply;
use kiln_sdk::api::{
    CreateScheduledRun, CreateSession, SourceAgent, SourceDeployRequest, SourceSyncManifest,
};
use kiln_sdk::source_dir::source_file;

use crate::agents::{Bench, CpuMeter, histogram, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct EvalsArgs {
    /// Cases in the suite.
    #[arg(long, default_value_t = 100)]
    cases: usize,
    /// Schedules that are never due while measured (yearly).
    #[arg(long, default_value_t = 10_000)]
    schedules: usize,
    /// Of them, due every minute (each fires a turn into its own session).
    #[arg(long, default_value_t = 50)]
    due: usize,
    /// Skip the scheduler part (it waits for a minute to start twice).
    #[arg(long)]
    no_scheduler: bool,
    /// The server's database: a fresh SQLite file by default; a `postgres://`
    /// URL gets a fresh schema.
    #[arg(long)]
    database_url: Option<String>,
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn evals(args: EvalsArgs) -> anyhow::Result<()> {
    let bench = Bench::start(args.database_url.as_deref()).await?;
    // The agent's answer and the judge's verdict alike.
    bench.fake.set_default(Reply::text(
        "{\"score\": 8, \"reason\": \"It answers the question.\"}",
    ));
    let cases: Vec<String> = (0..args.cases)
        .map(|i| format!("{{\"name\": \"case-{i}\", \"prompt\": \"Question {i}?\", \"criteria\": \"Answers question {i}\"}}"))
        .collect();
    let manifest = SourceSyncManifest {
        project: "bench".into(),
        environment: None,
        source_hash: "sha256:bench".into(),
        agents: vec![SourceAgent {
            id: "support".into(),
            source_hash: "sha256:support".into(),
            files: vec![
                source_file("agent.jsonc", br#"{ "id": "support" }"#),
                source_file("persona.md", b"You answer questions."),
                source_file("evals/cases.json", format!("[{}]", cases.join(",")).as_bytes()),
            ],
        }],
        generated_at: None,
    };
    let c = &bench.client;
    let synced = c.sync_source(&manifest).await?;
    c.deploy_source(&SourceDeployRequest {
        project: "bench".into(),
        ..Default::default()
    })
    .await?;
    let agent = synced.agents[0].agent_id.clone();
    println!(
        "eval run: {} llm_judge cases, instant fake as agent and judge, default concurrency (4)",
        args.cases
    );
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let run = c.start_eval_run(&agent, false).await?;
    let detail = loop {
        let detail = c.get_eval_run(&run.id).await?;
        if !matches!(detail.run.status.as_str(), "pending" | "running") {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let used = cpu.stop();
    anyhow::ensure!(
        detail.run.status == "passed" && detail.results.len() == args.cases,
        "the run ended {} with {} results: {} {:?}",
        detail.run.status,
        detail.results.len(),
        detail.run.error,
        detail.results.first().map(|r| &r.error)
    );
    let cores = used.own_cores.unwrap_or(0.0);
    println!(
        "  {} cases in {:.2} s: {:.1} cases/s; {:.2} ms of this process's CPU per case (server and in-process fake)",
        args.cases,
        elapsed.as_secs_f64(),
        args.cases as f64 / elapsed.as_secs_f64(),
        cores * elapsed.as_secs_f64() * 1000.0 / args.cases as f64
    );
    println!("  {used}");
    if !args.no_scheduler {
        scheduler(&bench, args.schedules, args.due).await?;
    }
    bench.stop().await
}

/// Waits until the next minute starts (plus `slack`).
async fn next_minute(slack: Duration) -> chrono::DateTime<Utc> {
    let now = Utc::now();
    let start = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a whole minute")
        + chrono::Duration::minutes(1);
    let wait = (start - now).to_std().unwrap_or_default() + slack;
    tokio::time::sleep(wait).await;
    start
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
async fn scheduler(bench: &Bench, idle: usize, due: usize) -> anyhow::Result<()> {
    let c = &bench.client;
    println!("scheduler: {idle} schedules never due, then {due} due every minute");
    let sessions: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..due.max(1) {
            ids.push(c.create_session(&CreateSession::default()).await?.id);
        }
        ids
    };
    for i in 0..idle {
        c.create_scheduled_run(&CreateScheduledRun {
            agent_session_id: sessions[i % sessions.len()].clone(),
            name: Some(format!("yearly {i}")),
            cron_expression: "0 0 1 1 *".into(),
            message: "Happy new year.".into(),
        })
        .await?;
    }
    // A minute with nothing due.
    next_minute(Duration::ZERO).await;
    let cpu = CpuMeter::start();
    let started = Instant::now();
    next_minute(Duration::ZERO).await;
    let used = cpu.stop();
    let per_minute = used.own_cores.unwrap_or(0.0) * started.elapsed().as_secs_f64();
    println!("  idle minute: {per_minute:.3} CPU-seconds of this process ({used})");
    let mut every_minute = Vec::new();
    for session in sessions.iter().take(due) {
        every_minute.push(
            c.create_scheduled_run(&CreateScheduledRun {
                agent_session_id: session.clone(),
                name: Some("every minute".into()),
                cron_expression: "* * * * *".into(),
                message: "Tick.".into(),
            })
            .await?
            .id,
        );
    }
    let minute = next_minute(Duration::from_secs(5)).await;
    let mut late = histogram();
    for id in &every_minute {
        let schedule = c.get_scheduled_run(id).await?;
        let fired = schedule
            .last_run_at
            .ok_or_else(|| anyhow::anyhow!("schedule {id} did not fire within 5 s of the minute"))?;
        anyhow::ensure!(fired >= minute, "schedule {id} fired before the minute");
        late.record(((fired - minute).num_microseconds().unwrap_or(0)).max(1) as u64)?;
    }
    let (text, _) = percentiles(&late);
    println!("  firing after the minute starts ({due} schedules among {idle}): {text}");
    Ok(())
}
