//! RAG figures, measured through the real server (in process, on a fresh
//! SQLite database in a temp dir) and the SDK, so they include HTTP, the
//! database and the pipeline exactly as a user meets them:
//!
//! * `retrieval`: hit@1, hit@5 and MRR of BM25 alone, vectors alone and
//!   hybrid on the labelled set in `crates/kiln-bench/retrieval`.
//! * `ingest`: MB/s of Markdown from the first upload to the last `ready`.
//! * `search-latency`: p50/p99 of hybrid search (one client) once the
//!   index holds N chunks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use kiln_cli::server::{RunningServer, StartOptions, start};
use kiln_sdk::api::{CreateIndex, SearchRequest};
use kiln_sdk::{Client, UploadOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct RetrievalArgs {
    /// The labelled set: `docs/*.md` and `questions.json`.
    #[arg(long, default_value = "crates/kiln-bench/retrieval")]
    set: PathBuf,
    /// Print each question's rank per mode.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// Megabytes of Markdown to ingest.
    #[arg(long, default_value_t = 20)]
    mb: usize,
    /// Ingestion workers.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LatencyArgs {
    /// Chunks in the index when latency is measured (one run per value).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    chunks: Vec<usize>,
    /// Queries timed per run.
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Search modes timed (`hybrid`, `bm25`, `vector`).
    #[arg(long, value_delimiter = ',', default_value = "hybrid")]
    modes: Vec<String>,
}

/// A fresh server in a temp dir and a client for its bootstrap key.
async fn fresh_server(workers: usize) -> anyhow::Result<(RunningServer, Client, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let server = start(StartOptions {
        addr: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", dir.path().join("kiln.db").display()),
        kek: None,
        body_limit: kiln_server::DEFAULT_BODY_LIMIT,
        auth_cache_ttl: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(5),
        provider_env: Default::default(),
        provider_http: Default::default(),
        allow_private_network: false,
        print_banner: false,
        search_dir: dir.path().join("search"),
        upload_limit: 64 * 1024 * 1024,
        ingest_workers: workers,
        embeddings: Default::default(),
        runtime: Default::default(),
        fetch: Default::default(),
        mcp: Default::default(),
        evals: Default::default(),
        webhooks: Default::default(),
        // Benchmarks hammer one key on purpose.
        rate_limits: kiln_core::control::rate::RateLimits::OFF,
        extraction: kiln_cli::server::Extraction::InProcess,
        server_id: None,
    })
    .await?;
    let key = server
        .bootstrap
        .as_ref()
        .context("fresh database")?
        .plaintext
        .clone();
    let client = Client::new(&server.base_url(), &key)?;
    Ok((server, client, dir))
}

async fn new_index(client: &Client, name: &str) -> anyhow::Result<String> {
    Ok(client
        .create_index(&CreateIndex {
            name: name.into(),
            ..Default::default()
        })
        .await?
        .id)
}

/// Uploads `(filename, bytes)` pairs and waits until every one is settled.
async fn ingest(client: &Client, index: &str, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for (name, bytes) in files {
        ids.push(
            client
                .upload_document_bytes(index, &name, bytes, &UploadOptions::default())
                .await?
                .id,
        );
    }
    for id in ids {
        let doc = client.wait_for_document(&id, Duration::from_secs(3600)).await?;
        anyhow::ensure!(
            doc.status == "ready",
            "{} ended `{}`: {:?}",
            doc.filename,
            doc.status,
            doc.error_message
        );
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Question {
    question: String,
    answer: String,
    #[serde(default)]
    style: String,
}

pub(crate) async fn retrieval(args: RetrievalArgs) -> anyhow::Result<()> {
    let questions: Vec<Question> = serde_json::from_slice(
        &std::fs::read(args.set.join("questions.json")).context("reading questions.json")?,
    )?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(args.set.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push((file_name(&path), std::fs::read(&path)?));
        }
    }
    let (server, client, _dir) = fresh_server(1).await?;
    let index = new_index(&client, "retrieval").await?;
    let docs = files.len();
    ingest(&client, &index, files).await?;
    println!(
        "{docs} documents, {} questions (hit: one of the top k chunks contains the answer)",
        questions.len()
    );
    println!(
        "{:<8} {:>7} {:>7} {:>7}   by style (hit@5)",
        "mode", "hit@1", "hit@5", "MRR"
    );
    for mode in ["bm25", "vector", "hybrid"] {
        let (mut hit1, mut hit5, mut rr) = (0usize, 0usize, 0.0f64);
        let mut by_style: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for q in &questions {
            let hits = client
                .search_index(
                    &index,
                    &SearchRequest {
                        query: q.question.clone(),
                        top_k: Some(5),
                        mode: Some(mode.into()),
                        ..Default::default()
                    },
                )
                .await?;
            let rank = hits.iter().position(|h| h.content.contains(&q.answer));
            if args.verbose {
                println!(
                    "  {mode:<7} {:>4} {}",
                    rank.map_or("-".to_owned(), |r| (r + 1).to_string()),
                    q.question
                );
            }
            hit1 += usize::from(rank == Some(0));
            hit5 += usize::from(rank.is_some());
            rr += rank.map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
            let entry = by_style.entry(q.style.clone()).or_default();
            entry.0 += usize::from(rank.is_some());
            entry.1 += 1;
        }
        let n = questions.len() as f64;
        let styles: Vec<String> = by_style
            .iter()
            .map(|(s, (h, t))| format!("{s} {h}/{t}"))
            .collect();
        println!(
            "{mode:<8} {:>7.3} {:>7.3} {:>7.3}   {}",
            hit1 as f64 / n,
            hit5 as f64 / n,
            rr / n,
            styles.join(", ")
        );
    }
    server.shutdown().await?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Deterministic English-like Markdown: `sections` sections of three
/// paragraphs each, words drawn with a Zipf-like skew from a vocabulary of
/// 100 domain words (the queries' words) and 5,000 generated ones.
fn synthetic_markdown(seed: u64, sections: usize) -> String {
    const WORDS: &[&str] = &[
        "account",
        "password",
        "reset",
        "billing",
        "invoice",
        "refund",
        "plan",
        "limit",
        "team",
        "admin",
        "project",
        "task",
        "export",
        "import",
        "webhook",
        "token",
        "key",
        "rate",
        "request",
        "error",
        "settings",
        "security",
        "login",
        "session",
        "device",
        "mobile",
        "notification",
        "email",
        "slack",
        "github",
        "integration",
        "workspace",
        "member",
        "role",
        "permission",
        "owner",
        "guest",
        "storage",
        "upload",
        "file",
        "folder",
        "archive",
        "search",
        "filter",
        "label",
        "comment",
        "mention",
        "due",
        "date",
        "reminder",
        "calendar",
        "report",
        "dashboard",
        "chart",
        "metric",
        "usage",
        "quota",
        "trial",
        "subscription",
        "payment",
        "card",
        "currency",
        "tax",
        "receipt",
        "support",
        "ticket",
        "response",
        "time",
        "hours",
        "days",
        "week",
        "month",
        "year",
        "data",
        "retention",
        "privacy",
        "policy",
        "audit",
        "log",
        "event",
        "history",
        "version",
        "release",
        "feature",
        "update",
        "browser",
        "desktop",
        "app",
        "offline",
        "sync",
        "conflict",
        "merge",
        "template",
        "automation",
        "rule",
        "trigger",
        "action",
    ];
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ren", "tas", "vo", "qui", "bel", "dor", "fen", "gar", "hul", "ix", "jo", "nep",
        "or", "pra", "sil", "tum", "ul", "vek", "wis", "yar", "zo", "cha", "dre", "ell", "fro", "gri", "hap",
    ];
    const GENERATED: usize = 5000;
    const FILLER: usize = 20;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let generated = |i: usize| -> String {
        let n = SYLLABLES.len();
        format!(
            "{}{}{}",
            SYLLABLES[i % n],
            SYLLABLES[(i / n) % n],
            SYLLABLES[(i / (n * n)) % n]
        )
    };
    let word = |next: &mut dyn FnMut() -> u64| -> String {
        // Zipf-like: rank ~ 1/uniform, capped to the vocabulary.
        let r = (next() % 1_000_000) as f64 / 1_000_000.0;
        let rank = ((1.0 / (r + 0.0002)) as usize).saturating_sub(1) % (WORDS.len() + GENERATED);
        // The 20 most frequent words are filler (like "the", "of"); the
        // domain words follow at ranks 20 to 119, so one is in a few percent
        // to a fifth of the chunks, as content words are in real text.
        match rank {
            r if r < FILLER => generated(r),
            r if r < FILLER + WORDS.len() => WORDS[r - FILLER].to_owned(),
            r => generated(r - WORDS.len()),
        }
    };
    let mut out = format!("# Document {seed}\n\n");
    for s in 0..sections {
        out.push_str(&format!("## Section {s} {}\n\n", word(&mut next)));
        for _ in 0..3 {
            let n = 40 + (next() % 30) as usize;
            let sentence: Vec<String> = (0..n).map(|_| word(&mut next)).collect();
            out.push_str(&sentence.join(" "));
            out.push_str(".\n\n");
        }
    }
    out
}

pub(crate) async fn ingest_throughput(args: IngestArgs) -> anyhow::Result<()> {
    let (server, client, _dir) = fresh_server(args.workers).await?;
    let index = new_index(&client, "ingest").await?;
    // ~100 KB files.
    let mut files = Vec::new();
    let mut bytes = 0usize;
    let mut seed = 1;
    while bytes < args.mb * 1_000_000 {
        let text = synthetic_markdown(seed, 60);
        bytes += text.len();
        files.push((format!("doc-{seed}.md"), text.into_bytes()));
        seed += 1;
    }
    let count = files.len();
    let started = Instant::now();
    ingest(&client, &index, files).await?;
    let elapsed = started.elapsed();
    let chunks: i64 = client
        .list_index_documents(
            &index,
            &kiln_sdk::DocumentQuery {
                limit: Some(200),
                ..Default::default()
            },
        )
        .await?
        .data
        .iter()
        .map(|d| d.chunk_count)
        .sum();
    println!(
        "ingested {:.1} MB of Markdown in {count} files ({} workers) in {:.2} s: {:.2} MB/s (first 200 files: {chunks} chunks)",
        bytes as f64 / 1e6,
        args.workers,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    server.shutdown().await?;
    Ok(())
}

pub(crate) async fn search_latency(args: LatencyArgs) -> anyhow::Result<()> {
    for &target in &args.chunks {
        let (server, client, _dir) = fresh_server(2).await?;
        let index = new_index(&client, "latency").await?;
        // A 100-section file makes about 153 chunks.
        let files_needed = target.div_ceil(153);
        let files: Vec<(String, Vec<u8>)> = (1..=files_needed as u64)
            .map(|seed| {
                (
                    format!("doc-{seed}.md"),
                    synthetic_markdown(seed, 100).into_bytes(),
                )
            })
            .collect();
        let started = Instant::now();
        ingest(&client, &index, files).await?;
        let chunks: i64 = {
            let mut total = 0;
            let mut offset = 0;
            loop {
                let page = client
                    .list_index_documents(
                        &index,
                        &kiln_sdk::DocumentQuery {
                            limit: Some(200),
                            offset: Some(offset),
                            ..Default::default()
                        },
                    )
                    .await?;
                total += page.data.iter().map(|d| d.chunk_count).sum::<i64>();
                if !page.has_more {
                    break total;
                }
                offset += 200;
            }
        };
        let ingest_secs = started.elapsed().as_secs_f64();
        let queries = [
            "reset password for admin account",
            "refund invoice payment",
            "webhook rate limit error",
            "export data retention policy",
            "mobile notification settings",
            "slack integration token",
        ];
        for mode in &args.modes {
            let mut hist = Histogram::<u64>::new(3)?;
            for i in 0..args.queries + 20 {
                let request = SearchRequest {
                    query: queries[i % queries.len()].into(),
                    mode: Some(mode.clone()),
                    ..Default::default()
                };
                let t = Instant::now();
                let hits = client.search_index(&index, &request).await?;
                let micros = t.elapsed().as_micros() as u64;
                anyhow::ensure!(!hits.is_empty(), "no hits");
                if i >= 20 {
                    hist.record(micros)?;
                }
            }
            println!(
                "{chunks} chunks (ingested in {ingest_secs:.1} s): {mode} top-10 over HTTP, 1 client: p50 {:.2} ms, p99 {:.2} ms",
                hist.value_at_quantile(0.5) as f64 / 1000.0,
                hist.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
        server.shutdown().await?;
    }
    Ok(())
}
