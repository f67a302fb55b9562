//! Agents as code: how long a sync of a 50-file agent, a deploy of 10
//! agents, and creating a session on an agent (against an ad-hoc one) take,
//! through the SDK over real HTTP against an in-process server on a fresh
//! database.

use std::time::Instant;

use kiln_sdk::api::{CreateSession, SourceAgent, SourceDeployRequest, SourceSyncManifest};
use kiln_sdk::source_dir::source_file;

use crate::agents::{Bench, CpuMeter, histogram, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct SourceArgs {
    /// Timed syncs of the 50-file agent.
    #[arg(long, default_value_t = 300)]
    syncs: usize,
    /// Timed deploys of 10 agents.
    #[arg(long, default_value_t = 50)]
    deploys: usize,
    /// Timed session creations of each kind.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// The server's database: a fresh SQLite file by default; a `postgres://`
    /// URL gets a fresh schema.
    #[arg(long)]
    database_url: Option<String>,
}

/// An agent folder of `files` files (agent.jsonc, persona.md, prompt
/// skills of ~1 KB), its persona marked with `round` so each sync changes.
fn agent(id: &str, files: usize, round: usize) -> SourceAgent {
    let mut list = vec![
        source_file(
            "agent.jsonc",
            format!("{{\"id\": \"{id}\", \"model\": \"kiln/offline\"}}").as_bytes(),
        ),
        source_file("persona.md", format!("You are {id}, round {round}.").as_bytes()),
    ];
    for i in 0..files.saturating_sub(2) {
        let text = format!("Skill {i}: ").repeat(100);
        list.push(source_file(&format!("skills/s{i:02}.md"), text.as_bytes()));
    }
    SourceAgent {
        id: id.to_owned(),
        source_hash: format!("sha256:{id}-{round}"),
        files: list,
    }
}

fn manifest(agents: Vec<SourceAgent>) -> SourceSyncManifest {
    SourceSyncManifest {
        project: "bench".into(),
        environment: None,
        source_hash: "sha256:bench".into(),
        agents,
        generated_at: None,
    }
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn source(args: SourceArgs) -> anyhow::Result<()> {
    let bench = Bench::start(args.database_url.as_deref()).await?;
    let client = &bench.client;
    println!("agents as code, in-process server, SDK over HTTP");

    let cpu = CpuMeter::start();
    let mut syncs = histogram();
    for round in 0..args.syncs + 10 {
        let started = Instant::now();
        client
            .sync_source(&manifest(vec![agent("support", 50, round)]))
            .await?;
        if round >= 10 {
            syncs.record(started.elapsed().as_micros() as u64)?;
        }
    }
    println!(
        "sync of one 50-file agent ({} syncs): {}",
        syncs.len(),
        percentiles(&syncs).0
    );
    println!("  {}", cpu.stop());

    let cpu = CpuMeter::start();
    let ten: Vec<String> = (0..10).map(|i| format!("agent{i}")).collect();
    let mut deploys = histogram();
    for round in 0..args.deploys + 3 {
        let agents = ten.iter().map(|id| agent(id, 5, round)).collect();
        client.sync_source(&manifest(agents)).await?;
        let started = Instant::now();
        let deployed = client
            .deploy_source(&SourceDeployRequest {
                project: "bench".into(),
                local_agent_id: None,
                ..Default::default()
            })
            .await?;
        if round >= 3 {
            deploys.record(started.elapsed().as_micros() as u64)?;
        }
        anyhow::ensure!(deployed.agents.len() >= 10, "every agent is deployed");
    }
    println!(
        "deploy of 10 agents ({} deploys): {}",
        deploys.len(),
        percentiles(&deploys).0
    );
    println!("  {}", cpu.stop());

    // A small agent (5 files: 3 prompt skills of ~1 KB) and the 50-file one,
    // whose 48 prompt skills (~48 KB) become each session's system prompt.
    let agents = client.list_agent_configs().await?;
    let id_of = |local: &str| {
        agents
            .iter()
            .find(|a| a.code_first_local_id.as_deref() == Some(local))
            .map(|a| a.id.clone())
    };
    let on = |id: Option<String>| CreateSession {
        agent_id: id,
        ..Default::default()
    };
    let kinds = [
        ("ad hoc", on(None)),
        ("on a 5-file agent", on(id_of("agent0"))),
        ("on the 50-file agent", on(id_of("support"))),
    ];
    let cpu = CpuMeter::start();
    let mut histograms = [histogram(), histogram(), histogram()];
    for i in 0..args.sessions + 50 {
        // Round robin, so drift hits every kind alike.
        for ((_, input), h) in kinds.iter().zip(histograms.iter_mut()) {
            let started = Instant::now();
            client.create_session(input).await?;
            if i >= 50 {
                h.record(started.elapsed().as_micros() as u64)?;
            }
        }
    }
    let base = histograms[0].value_at_quantile(0.5) as f64;
    for ((name, _), h) in kinds.iter().zip(&histograms) {
        let extra = h.value_at_quantile(0.5) as f64 - base;
        println!(
            "create a session {name} ({}): {}; extra at p50 {:.3} ms",
            h.len(),
            percentiles(h).0,
            extra / 1000.0
        );
    }
    println!("  {}", cpu.stop());
    bench.stop().await
}
