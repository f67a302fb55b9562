//! Hostile tenants (issue 15): how much one project's hostile code and
//! documents slow another project down. An in-process server (the fake as
//! its instant model, PDF/DOCX/HTML extracted by this binary's worker
//! process, as `kiln serve` does) first serves the victim project alone:
//! agent turns (one code step each, `1 + 1`) and hybrid searches, one after
//! another, latency from the SDK. Then again while the attacker project
//! keeps `--attackers` turns of hostile code running (endless loops, memory
//! bombs, regex backtracking, `Promise.all` floods, in turn) and uploads a
//! decompression bomb and a pathological HTML file every second. The
//! figures: the victim's p50/p99 in both phases and their ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use kiln_providers::fake::Reply;
use kiln_sdk::Client;
use kiln_sdk::api::{CreateIndex, CreateSession, SearchRequest};

use crate::agents::{Bench, histogram, percentiles};

/// The attacks, by name; the code ones run round robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Attack {
    /// `while (true) {}`
    Spin,
    /// Fill the heap with 1 MiB strings until it is full.
    Memory,
    /// Catastrophic regex backtracking.
    Regex,
    /// `Promise.all` over 20,000 `data.get` calls.
    Flood,
    /// A decompression bomb and a deeply nested HTML file every second.
    Uploads,
}

impl Attack {
    const ALL: [Attack; 5] = [
        Attack::Spin,
        Attack::Memory,
        Attack::Regex,
        Attack::Flood,
        Attack::Uploads,
    ];

    /// The attacker's code, for the attacks that are code.
    fn code(self) -> Option<&'static str> {
        Some(match self {
            Attack::Spin => "while (true) {}",
            Attack::Memory => "const a = []; for (;;) a.push('x'.repeat(1 << 20));",
            Attack::Regex => "/^(a+)+$/.test('a'.repeat(40) + 'b')",
            Attack::Flood => "await Promise.all(Array.from({ length: 20000 }, (_, i) => data.get('k' + i)))",
            Attack::Uploads => return None,
        })
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct HostileArgs {
    /// The victim's turns per phase (and as many searches).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Attacker turns kept running at once.
    #[arg(long, default_value_t = 24)]
    attackers: usize,
    /// The server's database: a fresh SQLite file by default; a `postgres://`
    /// URL gets a fresh schema.
    #[arg(long)]
    database_url: Option<String>,
    /// Which attacks run (comma-separated); all by default.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = Attack::ALL)]
    attacks: Vec<Attack>,
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn hostile(args: HostileArgs) -> anyhow::Result<()> {
    let worker = kiln_cli::server::Extraction::Worker {
        program: std::env::current_exe().context("finding this binary for the extraction worker")?,
        limits: Default::default(),
    };
    let bench = Bench::start_with(args.database_url.as_deref(), worker).await?;
    bench.fake.set_default(Reply::prompt_as_code("Done."));
    let victim = bench
        .server
        .control
        .create_key("victim", "bench")
        .await
        .context("a key for the victim project")?;
    let victim = Client::new(&bench.server.base_url(), &victim.plaintext)?;
    let index = victim
        .create_index(&CreateIndex {
            name: "handbook".into(),
            description: None,
            metadata: None,
        })
        .await?
        .id;
    for i in 0..20 {
        let doc = victim
            .upload_document_bytes(
                &index,
                &format!("policy-{i}.md"),
                format!("# Policy {i}\n\nAnnual leave rule {i}: staff take {i} extra days in winter.")
                    .into_bytes(),
                &Default::default(),
            )
            .await?;
        victim
            .wait_for_document(&doc.id, std::time::Duration::from_secs(60))
            .await?;
    }

    println!(
        "hostile tenants: {} victim turns and searches per phase, {} attacker turns at once, attacks {:?}",
        args.requests, args.attackers, args.attacks
    );
    let idle = victim_phase(&victim, args.requests).await?;
    print_phase("idle server", &idle);

    let stop = Arc::new(AtomicBool::new(false));
    let blocks = Arc::new(AtomicUsize::new(0));
    let mut attack = Vec::new();
    let code: Vec<&'static str> = args.attacks.iter().filter_map(|a| a.code()).collect();
    if !code.is_empty() {
        for slot in 0..args.attackers {
            attack.push(tokio::spawn(attacker_turns(
                bench.client.clone(),
                code.clone(),
                slot,
                stop.clone(),
                blocks.clone(),
            )));
        }
    }
    if args.attacks.contains(&Attack::Uploads) {
        attack.push(tokio::spawn(attacker_uploads(bench.client.clone(), stop.clone())));
    }
    // Let the attack fill the sandbox before measuring.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let attacked = victim_phase(&victim, args.requests).await?;
    stop.store(true, Ordering::SeqCst);
    print_phase("under attack", &attacked);
    for (what, i) in [("turn", 0), ("search", 1)] {
        let ratio =
            |q: f64| attacked[i].value_at_quantile(q) as f64 / idle[i].value_at_quantile(q).max(1) as f64;
        println!(
            "  victim {what}: p50 {:.2}x, p99 {:.2}x of idle",
            ratio(0.5),
            ratio(0.99)
        );
    }
    println!(
        "  attacker blocks ended meanwhile: {}",
        blocks.load(Ordering::SeqCst)
    );
    for task in attack {
        task.abort();
    }
    bench.stop().await
}

/// The victim's turns, then its searches, one at a time: two histograms (µs).
async fn victim_phase(client: &Client, requests: usize) -> anyhow::Result<[hdrhistogram::Histogram<u64>; 2]> {
    let mut turns = histogram();
    let mut searches = histogram();
    let session = client.create_session(&CreateSession::default()).await?.id;
    for i in 0..requests {
        // A fresh session every 20 turns keeps the history short.
        let session = if i % 20 == 0 {
            client.create_session(&CreateSession::default()).await?.id
        } else {
            session.clone()
        };
        let started = Instant::now();
        let events = client.run_agent(&session, "1 + 1").await?.collect_turn().await?;
        anyhow::ensure!(
            events.last().is_some_and(|e| e.raw.kind == "done"),
            "a victim turn failed: {:?}",
            events.last()
        );
        turns.record(started.elapsed().as_micros() as u64)?;
    }
    for i in 0..requests {
        let started = Instant::now();
        let hits = client
            .search(&SearchRequest {
                query: format!("annual leave rule {}", i % 20),
                ..Default::default()
            })
            .await?;
        anyhow::ensure!(!hits.is_empty(), "a victim search found nothing");
        searches.record(started.elapsed().as_micros() as u64)?;
    }
    Ok([turns, searches])
}

fn print_phase(name: &str, phase: &[hdrhistogram::Histogram<u64>; 2]) {
    #[allow(clippy::print_stdout, reason = "the figures are the command's output")]
    {
        println!("{name}:");
        println!("  victim turn:   {}", percentiles(&phase[0]).0);
        println!("  victim search: {}", percentiles(&phase[1]).0);
    }
}

async fn attacker_turns(
    client: Client,
    code: Vec<&'static str>,
    slot: usize,
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicUsize>,
) {
    let mut n = slot;
    while !stop.load(Ordering::SeqCst) {
        let Ok(session) = client.create_session(&CreateSession::default()).await else {
            continue;
        };
        if let Ok(stream) = client.run_agent(&session.id, code[n % code.len()]).await {
            let _ = stream.collect_turn().await;
            ended.fetch_add(1, Ordering::SeqCst);
        }
        n += 1;
    }
}

async fn attacker_uploads(client: Client, stop: Arc<AtomicBool>) {
    let Ok(index) = client
        .create_index(&CreateIndex {
            name: "hostile".into(),
            description: None,
            metadata: None,
        })
        .await
    else {
        return;
    };
    let bomb = kiln_extract::fixtures::zip_bomb(300 << 20);
    let html = format!("{}x{}", "<div>".repeat(50_000), "</div>".repeat(50_000)).into_bytes();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let _ = client
            .upload_document_bytes(
                &index.id,
                &format!("bomb-{i}.docx"),
                bomb.clone(),
                &Default::default(),
            )
            .await;
        let _ = client
            .upload_document_bytes(
                &index.id,
                &format!("nested-{i}.html"),
                html.clone(),
                &Default::default(),
            )
            .await;
        i += 1;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
