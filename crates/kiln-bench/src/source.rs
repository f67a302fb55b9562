//! Agents as code: how long a sync of a 50-file agent (prompt skills only,
//! and with 10 module skills, each run in the sandbox at validation), a
//! deploy of 10 agents, and creating a session on an agent (against an
//! ad-hoc one) take, through the SDK over real HTTP against an in-process
//! server on a fresh database; and what a `require`d skill call adds to a
//! sandbox block, against the same function written inline.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use kiln_core::sandbox::{CancelFlag, HostFunctions, Sandbox, SandboxLimits, SandboxModule};
use serde_json::Value;

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
    /// Timed sandbox blocks of each kind (inline function, skill call).
    #[arg(long, default_value_t = 3000)]
    blocks: usize,
    /// The server's database: a fresh SQLite file by default; a `postgres://`
    /// URL gets a fresh schema.
    #[arg(long)]
    database_url: Option<String>,
}

/// A module skill of ~1 KB: a price table and two functions.
fn module_skill(i: usize) -> String {
    let mut source = format!("// Pricing table {i}.\nexport const PRICES = {{\n");
    for item in 0..40 {
        source.push_str(&format!("  item{item}: {},\n", item * 3 + i));
    }
    source.push_str(
        "};\nexport function quote(items, { coupon } = {}) {\n  \
         const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n  \
         return coupon === \"WELCOME10\" ? total * 0.9 : total;\n}\n\
         export function price(name) { return PRICES[name] ?? null; }\n",
    );
    source
}

/// An agent folder of `files` files (agent.jsonc, persona.md, prompt
/// skills of ~1 KB, the last `modules` of them module skills), its persona
/// marked with `round` so each sync changes.
fn agent_with_modules(id: &str, files: usize, modules: usize, round: usize) -> SourceAgent {
    let mut agent = agent(id, files.saturating_sub(modules), round);
    for i in 0..modules {
        agent.files.push(source_file(
            &format!("skills/m{i:02}.js"),
            module_skill(i).as_bytes(),
        ));
    }
    agent
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

/// The manifest project of the synced agents; the deployed ten have one of
/// their own, so a deploy publishes exactly them.
const PROJECT: &str = "bench";
const DEPLOY_PROJECT: &str = "bench-deploy";

fn manifest(agents: Vec<SourceAgent>) -> SourceSyncManifest {
    manifest_in(PROJECT, agents)
}

fn manifest_in(project: &str, agents: Vec<SourceAgent>) -> SourceSyncManifest {
    SourceSyncManifest {
        project: project.into(),
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
    let mut syncs = histogram();
    for round in 0..args.syncs + 10 {
        let started = Instant::now();
        client
            .sync_source(&manifest(vec![agent_with_modules("modular", 50, 10, round)]))
            .await?;
        if round >= 10 {
            syncs.record(started.elapsed().as_micros() as u64)?;
        }
    }
    println!(
        "sync of one 50-file agent with 10 module skills of ~1 KB ({} syncs): {}",
        syncs.len(),
        percentiles(&syncs).0
    );
    println!("  {}", cpu.stop());

    let cpu = CpuMeter::start();
    let ten: Vec<String> = (0..10).map(|i| format!("agent{i}")).collect();
    let mut deploys = histogram();
    for round in 0..args.deploys + 3 {
        let agents = ten.iter().map(|id| agent(id, 5, round)).collect();
        client.sync_source(&manifest_in(DEPLOY_PROJECT, agents)).await?;
        let started = Instant::now();
        let deployed = client
            .deploy_source(&SourceDeployRequest {
                project: DEPLOY_PROJECT.into(),
                local_agent_id: None,
                ..Default::default()
            })
            .await?;
        if round >= 3 {
            deploys.record(started.elapsed().as_micros() as u64)?;
        }
        anyhow::ensure!(deployed.agents.len() == 10, "the ten agents are deployed");
    }
    println!(
        "deploy of 10 agents ({} deploys): {}",
        deploys.len(),
        percentiles(&deploys).0
    );
    println!("  {}", cpu.stop());

    // A small agent (5 files: 3 prompt skills of ~1 KB) and the 50-file one,
    // whose 48 prompt skills (~48 KB) become each session's system prompt.
    client
        .deploy_source(&SourceDeployRequest {
            project: PROJECT.into(),
            local_agent_id: Some("support".into()),
            ..Default::default()
        })
        .await?;
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
    bench.stop().await?;
    skill_calls(args.blocks).await
}

/// A host with one module skill, which counts skill-call notes as the
/// runtime's would be taken (the runtime's note also writes a step, as any
/// sandbox event does).
struct SkillHost {
    modules: Vec<SandboxModule>,
    notes: Mutex<u64>,
}

#[async_trait]
impl HostFunctions for SkillHost {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    async fn call(&self, name: &str, _args: Value) -> Result<Value, String> {
        Err(format!("`{name}` is not available"))
    }
    fn modules(&self) -> &[SandboxModule] {
        &self.modules
    }
    fn module_called(&self, _module: &str, _function: &str) {
        *self.notes.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
}

/// What a `require`d skill call adds to a block: the same block with the
/// skill's code written inline, against one that requires the ~1 KB module
/// and calls it once, and against one that calls it 100 times.
#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
async fn skill_calls(blocks: usize) -> anyhow::Result<()> {
    let source = module_skill(0);
    let inline_source = source.replace("export ", "");
    let call = "quote([{ price: 5, quantity: 2 }], { coupon: \"WELCOME10\" })";
    let loop_call = "let t = 0; for (let i = 0; i < 100; i++) t += quote([{ price: i, quantity: 2 }]); t";
    let kinds = [
        ("inline, one call", format!("{inline_source}\n{call}")),
        (
            "require + one skill call",
            format!("const {{ quote }} = require(\"pricing\");\n{call}"),
        ),
        ("inline, 100 calls", format!("{inline_source}\n{loop_call}")),
        (
            "require + 100 skill calls",
            format!("const {{ quote }} = require(\"pricing\");\n{loop_call}"),
        ),
    ];
    let host = Arc::new(SkillHost {
        modules: vec![SandboxModule::source("pricing", "skills/pricing.js", &source)],
        notes: Mutex::new(0),
    });
    let sandbox = kiln_sandbox::QuickJsSandbox::new();
    let limits = SandboxLimits::default();
    println!("skill calls: QuickJsSandbox::run called directly, {blocks} blocks of each kind, round robin");
    let cpu = CpuMeter::start();
    let mut histograms: Vec<_> = kinds.iter().map(|_| histogram()).collect();
    for i in 0..blocks + blocks / 10 {
        for ((name, code), h) in kinds.iter().zip(histograms.iter_mut()) {
            let started = Instant::now();
            let outcome = sandbox.run(code, host.clone(), limits, CancelFlag::new()).await;
            let micros = started.elapsed().as_micros() as u64;
            anyhow::ensure!(
                outcome.result.as_ref().is_ok_and(|v| v.is_number()),
                "{name}: {:?}",
                outcome.result
            );
            if i >= blocks / 10 {
                h.record(micros)?;
            }
        }
    }
    let p50 = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.5) as i64;
    for (i, ((name, _), h)) in kinds.iter().zip(&histograms).enumerate() {
        let base = p50(&histograms[i - i % 2]);
        println!(
            "  {name:<28} p50 {} µs  p90 {} µs  p99 {} µs; extra at p50 {} µs",
            p50(h),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            p50(h) - base
        );
    }
    let notes = *host.notes.lock().unwrap_or_else(|e| e.into_inner());
    println!("  skill-call notes taken: {notes}");
    println!("  {}", cpu.stop());
    Ok(())
}
