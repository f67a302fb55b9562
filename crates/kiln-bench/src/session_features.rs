//! Session features: connections held at once, webhook delivery, queue
//! drain, against an in-process server on a fresh database with the fake
//! provider as its model (the client runs in this process too, so memory
//! figures count both ends of each connection).
//!
//! * **connections**: N SSE readers (`GET /agents/:id/events`) on sessions
//!   whose turn sits paused on `input()`, then N realtime WebSocket
//!   subscribers (each following one of those sessions and the project):
//!   resident memory per connection, this process's CPU while they idle,
//!   and how long one turn's events take to reach every subscriber of its
//!   session.
//! * **webhooks**: S sessions with a webhook to a local receiver run T turns
//!   each (two deliveries per turn: `session.started`, `session.completed`):
//!   deliveries per second from the first turn to the last delivery, and
//!   this process's CPU per delivery.
//! * **queue**: K messages queued at once on one session with an instant
//!   model: the gap between one turn's `done` and the next turn's first
//!   event, as a realtime subscriber sees them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;
use kiln_providers::fake::Reply;
use kiln_sdk::api::CreateSession;
use kiln_sdk::api::realtime::ServerMessage;
use kiln_sdk::api::webhook::WebhookConfig;
use kiln_sdk::{AgentEventStream, Realtime};

use crate::agents::{Bench, CpuMeter, histogram, paused_turn, per_item, percentiles, rss_bytes, settle};

const SETUP_CONCURRENCY: usize = 32;

#[derive(Debug, clap::Args)]
pub(crate) struct SessionFeaturesArgs {
    /// SSE readers, then WebSocket subscribers, held at once.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Sessions (each with a paused turn) the connections spread over.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Sessions with a webhook.
    #[arg(long, default_value_t = 20)]
    webhook_sessions: usize,
    /// Turns each of them runs.
    #[arg(long, default_value_t = 25)]
    webhook_turns: usize,
    /// Messages sent at once (the first runs, the rest queue: at most 100).
    #[arg(long, default_value_t = 100)]
    queued: usize,
    /// The server's database: a fresh SQLite file by default; a `postgres://`
    /// URL gets a fresh schema.
    #[arg(long)]
    database_url: Option<String>,
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn session_features(args: SessionFeaturesArgs) -> anyhow::Result<()> {
    let bench = Bench::start(args.database_url.as_deref()).await?;
    connections(&bench, &args).await?;
    webhooks(&bench, &args).await?;
    queue(&bench, &args).await?;
    bench.stop().await
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
async fn connections(bench: &Bench, args: &SessionFeaturesArgs) -> anyhow::Result<()> {
    let c = &bench.client;
    bench
        .fake
        .set_default(Reply::code_step("await input('wait')", "ok"));
    let mut sessions = Vec::new();
    let mut runs: Vec<AgentEventStream> = Vec::new();
    for _ in 0..args.sessions.max(1) {
        let id = c.create_session(&CreateSession::default()).await?.id;
        runs.push(paused_turn(c, &id).await?);
        sessions.push(id);
    }
    settle().await;
    println!(
        "connections: {} at once over {} sessions paused on input()",
        args.connections,
        sessions.len()
    );

    let before = rss_bytes()?;
    let readers: Vec<AgentEventStream> = futures::stream::iter(0..args.connections)
        .map(|i| c.resume_events(&sessions[i % sessions.len()], 0))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    settle().await;
    let after = rss_bytes()?;
    let idle = CpuMeter::start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = idle.stop();
    println!(
        "  SSE readers: {:.1} KiB per open stream (both ends); idle: {idle}",
        per_item(after, before, args.connections) / 1024.0
    );
    drop(readers);
    settle().await;

    let before = rss_bytes()?;
    let subscribers: Vec<(usize, Realtime)> = futures::stream::iter(0..args.connections)
        .map(|i| {
            let id = sessions[i % sessions.len()].clone();
            async move {
                let mut rt = c.realtime().await?;
                rt.subscribe_project().await?;
                rt.subscribe_session(&id, None).await?;
                Ok::<_, kiln_sdk::Error>((i, rt))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    settle().await;
    let after = rss_bytes()?;
    let idle = CpuMeter::start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = idle.stop();
    println!(
        "  WebSocket subscribers (project + one session each): {:.1} KiB per connection (both ends); idle: {idle}",
        per_item(after, before, args.connections) / 1024.0
    );

    // Fan-out: answer one session's input; every subscriber of it must see
    // its `done`.
    let target = &sessions[0];
    // (Opened in any order: each knows the session it follows by its index.)
    let followers: Vec<Realtime> = subscribers
        .into_iter()
        .filter(|(i, _)| i % sessions.len() == 0)
        .map(|(_, rt)| rt)
        .collect();
    let count = followers.len();
    let detail = c.get_session(target).await?;
    let request_id = detail
        .steps
        .iter()
        .find(|s| s.step_type == "input_request")
        .and_then(|s| s.tool_args["request_id"].as_str().map(str::to_owned))
        .context("the paused turn's input request")?;
    let started = Instant::now();
    c.respond_to_input(target, &request_id, serde_json::json!("go"))
        .await?;
    let mut latencies = histogram();
    let waits = followers.into_iter().map(|mut rt| async move {
        loop {
            match rt.next().await {
                Some(Ok(ServerMessage::Event { event, .. })) if event.kind == "done" => {
                    return Ok(started.elapsed());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(anyhow::anyhow!(e)),
                None => anyhow::bail!("a subscriber's connection closed"),
            }
        }
    });
    for latency in futures::future::join_all(waits).await {
        latencies.record(latency?.as_micros() as u64)?;
    }
    let (line, _) = percentiles(&latencies);
    println!("  one turn's end reaching its {count} subscribers (from the answer): {line}");
    for id in &sessions {
        let _ = c.cancel_session(id).await;
    }
    drop(runs);
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
#[allow(clippy::disallowed_methods, reason = "a bench's own receiver, not the API")]
async fn webhooks(bench: &Bench, args: &SessionFeaturesArgs) -> anyhow::Result<()> {
    let c = &bench.client;
    bench.fake.set_default(Reply::text("ok"));
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app.into_make_service()).await });

    let mut sessions = Vec::new();
    for _ in 0..args.webhook_sessions.max(1) {
        let id = c
            .create_session(&CreateSession {
                webhooks: Some(vec![WebhookConfig {
                    url: url.clone(),
                    events: None,
                    secret: Some("bench-secret".into()),
                }]),
                ..Default::default()
            })
            .await?
            .id;
        sessions.push(id);
    }
    let expected = sessions.len() * args.webhook_turns * 2;
    println!(
        "webhooks: {} sessions x {} turns, 2 signed deliveries per turn ({expected}) to a local receiver",
        sessions.len(),
        args.webhook_turns
    );
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let turns = sessions.iter().map(|id| async move {
        for _ in 0..args.webhook_turns {
            c.run_agent(id, "hi").await?.collect_turn().await?;
        }
        Ok::<_, kiln_sdk::Error>(())
    });
    for result in futures::future::join_all(turns).await {
        result?;
    }
    let turns_done = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::SeqCst) < expected {
        ensure!(
            Instant::now() < deadline,
            "only {} of {expected} deliveries arrived",
            received.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let used = cpu.stop();
    println!(
        "  {expected} deliveries in {:.2} s ({:.0}/s; the turns took {:.2} s); {:.2} ms of this process's CPU per delivery, turns included",
        elapsed.as_secs_f64(),
        expected as f64 / elapsed.as_secs_f64(),
        turns_done.as_secs_f64(),
        used.own_cores.unwrap_or(0.0) * elapsed.as_secs_f64() * 1000.0 / expected as f64
    );
    println!("  {used}");
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
async fn queue(bench: &Bench, args: &SessionFeaturesArgs) -> anyhow::Result<()> {
    let c = &bench.client;
    bench.fake.set_default(Reply::text("ok"));
    let id = c.create_session(&CreateSession::default()).await?.id;
    let mut rt = c.realtime().await?;
    rt.subscribe_session(&id, None).await?;
    println!(
        "queue: {} messages queued at once on one session, instant model",
        args.queued
    );
    // The first turn takes a while, so every other message waits in the queue.
    bench
        .fake
        .push(Reply::text("first").delay(Duration::from_secs(2)));
    for i in 0..args.queued {
        c.enqueue_message(&id, &format!("message {i}")).await?;
    }
    let mut gaps = histogram();
    let mut last_done: Option<Instant> = None;
    let mut done = 0;
    while done < args.queued {
        let message = tokio::time::timeout(Duration::from_secs(30), rt.next())
            .await
            .context("the queue stalled")?
            .context("the connection closed")??;
        if let ServerMessage::Event { event, .. } = message {
            if event.kind == "user_message"
                && let Some(at) = last_done.take()
            {
                gaps.record(at.elapsed().as_micros() as u64)?;
            }
            if event.kind == "done" || event.kind == "error" {
                done += 1;
                last_done = Some(Instant::now());
            }
        }
    }
    let (line, _) = percentiles(&gaps);
    println!("  from one turn's done to the next turn's start: {line}");
    Ok(())
}
