//! Agents as code from the terminal: `kiln init` writes a working project
//! folder, `kiln deploy` syncs it and publishes versions (`--dry-run` only
//! validates), `kiln dev` syncs every save, `kiln agents` shows what the
//! server holds, `kiln pull` writes it back, `kiln rename` and `kiln delete`
//! change the bindings. The folder → manifest code is the SDK's
//! (`kiln_sdk::source_dir`), shared with the tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use kiln_sdk::api::{
    AgentConfig, SourceDeleteRequest, SourceDeployRequest, SourceRenameRequest, SourceSyncManifest,
    SourceValidationIssue,
};
use kiln_sdk::source_dir;
use kiln_sdk::{ApiError, Client, Error};

use crate::{RemoteArgs, print_table, short_time};

/// Where the project folder is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DirArgs {
    /// The project folder (holding kiln.jsonc).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The environment whose drafts are synced and deployed.
    #[arg(long = "env", value_name = "NAME")]
    environment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The folder to create (its name is the project's).
    name: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// Deploy only this agent (its local id); default: every agent.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Validate only: print the issues, sync and deploy nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start each deployed agent's advisory eval run and wait for it (exits 1 when one does
    /// not pass; the deploy stays). Default: `agent.jsonc → deploy.runEvals`, without waiting.
    #[arg(long)]
    run_evals: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// How often the folder is looked at, in milliseconds.
    #[arg(long, default_value_t = 300)]
    poll_ms: u64,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsCommand {
    /// List the project's agents.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one agent (by local id or id) as JSON.
    Show {
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List an agent's versions, newest first.
    Versions {
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum McpCommand {
    /// List the MCP tools an agent sees: each server of its live version
    /// (or draft) and the tools it listed at the last sync or deploy.
    Tools {
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print how to connect an MCP client (a desktop app, an IDE) to this
    /// Kiln server's `/mcp` endpoint with this key.
    ServeInfo {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct PullArgs {
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RenameArgs {
    old: String,
    new: String,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// The agent's local id.
    agent: String,
    /// Required: the agent's versions, drafts and sessions go too.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

const AGENT_JSONC: &str = r#"{
  // The agent's local id: its folder's name.
  "id": "support",
  "name": "Support",
  "description": "Answers customer questions",
  // "provider/model"; left out, the project's default model is used
  // (the built-in kiln/offline when no provider is configured).
  // "model": "openai/gpt-4o-mini",
  // The indexes its search() reads, by name or id.
  "indexes": [],
  // Function-call tools beside the JavaScript sandbox: search, fetch, list_stores.
  "tools": []
}
"#;

const PERSONA_MD: &str = "You are Support, the help desk of this product. Answer briefly and kindly. \
When you do not know, say so and suggest where to look.\n";

const EVAL_JSON: &str = r#"{
  "name": "greets",
  "prompt": "Hello!",
  "type": "contains",
  "config": { "value": "hello", "ignore_case": true }
}
"#;

const HOURS_JS: &str = r#"// When the help desk is staffed (UTC).
export const HOURS = { open: 9, close: 17, days: "Monday to Friday" };

// Whether a person can take over at `when` (an ISO date; now by default).
export function isOpen(when) {
  const at = when ? new Date(when) : new Date();
  const day = at.getUTCDay();
  const hour = at.getUTCHours();
  return day >= 1 && day <= 5 && hour >= HOURS.open && hour < HOURS.close;
}
"#;

/// `kiln init NAME`.
pub(crate) fn init(args: InitArgs) -> anyhow::Result<()> {
    let root = &args.name;
    let project = root
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| kiln_core::agents::source::is_plain_name(n))
        .with_context(|| {
            format!(
                "`{}`: name the folder with letters, digits, `.`, `_` and `-`",
                root.display()
            )
        })?
        .to_owned();
    if root.exists() && std::fs::read_dir(root)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", root.display());
    }
    let agent = root.join(source_dir::AGENTS_DIR).join("support");
    let files: [(PathBuf, String); 6] = [
        (
            root.join(source_dir::PROJECT_FILE),
            format!(
                "{{\n  // The project: the agents' namespace on the server.\n  \"project\": \"{project}\"\n}}\n"
            ),
        ),
        (agent.join("agent.jsonc"), AGENT_JSONC.to_owned()),
        (agent.join("persona.md"), PERSONA_MD.to_owned()),
        (
            agent.join("skills/tone.md"),
            "Keep a warm, plain tone; no jargon.\n".to_owned(),
        ),
        (agent.join("skills/hours.js"), HOURS_JS.to_owned()),
        (agent.join("evals/greets.json"), EVAL_JSON.to_owned()),
    ];
    for (path, content) in files {
        std::fs::create_dir_all(path.parent().expect("files are in folders"))?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "created {}: kiln.jsonc and kiln/agents/support/ (agent.jsonc, persona.md, skills/, evals/)\n\
         next: cd {} && kiln deploy && kiln run --agent support \"Hello!\"",
        root.display(),
        root.display()
    );
    Ok(())
}

fn manifest(dir: &DirArgs, only: Option<&str>) -> anyhow::Result<SourceSyncManifest> {
    Ok(source_dir::manifest_from_dir(
        &dir.dir,
        dir.environment.as_deref(),
        only,
    )?)
}

/// Issues as a compiler prints them: `kiln/agents/<id>/<file>:line:col:`.
fn print_issues(dir: &Path, issues: &[SourceValidationIssue]) {
    for issue in issues {
        let mut place = match &issue.file {
            Some(file) => dir.join(source_dir::AGENTS_DIR).join(file).display().to_string(),
            None => dir.join(source_dir::PROJECT_FILE).display().to_string(),
        };
        if let Some(line) = issue.line {
            place.push_str(&format!(":{line}"));
            if let Some(column) = issue.column {
                place.push_str(&format!(":{column}"));
            }
        }
        let level = if issue.severity == "fatal" {
            "error"
        } else {
            "warning"
        };
        eprintln!("{place}: {level}[{}]: {}", issue.code, issue.message);
        if let Some(hint) = &issue.hint {
            eprintln!("  hint: {hint}");
        }
    }
}

/// The issues of a 422 `source_invalid`, if that is what `error` is.
fn refused_issues(error: &Error) -> Option<Vec<SourceValidationIssue>> {
    let api: &ApiError = error.api()?;
    (api.code == "source_invalid")
        .then(|| serde_json::from_value(api.details.get("serverIssues")?.clone()).ok())
        .flatten()
}

/// Syncs the folder; prints the issues; `Ok(false)` when it was refused.
async fn sync(client: &Client, dir: &DirArgs, only: Option<&str>) -> anyhow::Result<bool> {
    let manifest = manifest(dir, only)?;
    match client.sync_source(&manifest).await {
        Ok(result) => {
            print_issues(&dir.dir, &result.server_issues);
            let names: Vec<&str> = result.agents.iter().map(|a| a.local_id.as_str()).collect();
            eprintln!("synced {} ({})", names.join(", "), manifest.project);
            Ok(true)
        }
        Err(e) => match refused_issues(&e) {
            Some(issues) => {
                print_issues(&dir.dir, &issues);
                eprintln!("sync refused: fix the errors above");
                Ok(false)
            }
            None => Err(e.into()),
        },
    }
}

/// `kiln deploy`.
#[allow(clippy::print_stdout, reason = "the versions are the command's output")]
pub(crate) async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let only = args.agent.as_deref();
    if args.dry_run {
        let issues = client.validate_source(&manifest(&args.dir, only)?).await?;
        print_issues(&args.dir.dir, &issues);
        let fatal = issues.iter().filter(|i| i.severity == "fatal").count();
        anyhow::ensure!(fatal == 0, "{fatal} error(s); nothing was synced or deployed");
        eprintln!("valid: {} warning(s)", issues.len());
        return Ok(());
    }
    anyhow::ensure!(sync(&client, &args.dir, only).await?, "nothing was deployed");
    let project = source_dir::project_name(&args.dir.dir)?;
    let deployed = match client
        .deploy_source(&SourceDeployRequest {
            project,
            environment: args.dir.environment.clone(),
            local_agent_id: args.agent.clone(),
            run_evals: args.run_evals.then_some(true),
        })
        .await
    {
        Ok(deployed) => deployed,
        Err(e) => match refused_issues(&e) {
            Some(issues) => {
                print_issues(&args.dir.dir, &issues);
                anyhow::bail!("deploy refused: fix the errors above");
            }
            None => return Err(e.into()),
        },
    };
    for agent in &deployed.agents {
        println!("{}  {}  {}", agent.local_id, agent.semver, agent.version_id);
    }
    if !args.run_evals {
        return Ok(());
    }
    let mut failed = Vec::new();
    for agent in &deployed.agents {
        let Some(run) = &agent.eval_run_id else {
            eprintln!("{}: no eval run started (see the server's log)", agent.local_id);
            failed.push(agent.local_id.clone());
            continue;
        };
        eprintln!("evals of {} (run {run}):", agent.local_id);
        let detail = crate::evals::follow(&client, run, true).await?;
        if let Err(e) = crate::evals::report(&detail) {
            eprintln!("{}: {e}", agent.local_id);
            failed.push(agent.local_id.clone());
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "deployed, but the evals of {} did not pass",
        failed.join(", ")
    );
    Ok(())
}

/// `kiln dev`: syncs once, then after every change to the folder (a
/// change is synced once the folder has stayed the same for one poll).
pub(crate) async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let poll = Duration::from_millis(args.poll_ms.max(50));
    let fingerprint = |dir: &DirArgs| manifest(dir, None).map(|m| m.source_hash).ok();
    let mut synced = fingerprint(&args.dir);
    sync(&client, &args.dir, None).await?;
    eprintln!(
        "watching {} (Ctrl-C to stop)",
        args.dir.dir.join(source_dir::AGENTS_DIR).display()
    );
    let mut seen = synced.clone();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(poll) => {}
        }
        let now = fingerprint(&args.dir);
        // Debounce: sync once two looks in a row agree and differ from the
        // last sync.
        if now == seen && now != synced && now.is_some() {
            if let Err(e) = sync(&client, &args.dir, None).await {
                eprintln!("sync failed: {e:#}");
            }
            synced = now.clone();
        }
        seen = now;
    }
}

/// The agent named by local id or id.
pub(crate) async fn find_agent(client: &Client, name: &str) -> anyhow::Result<AgentConfig> {
    let agents = client.list_agent_configs().await?;
    agents
        .into_iter()
        .find(|a| a.id == name || a.code_first_local_id.as_deref() == Some(name))
        .with_context(|| format!("no agent `{name}` in this project (kiln agents list)"))
}

/// `kiln agents …`.
#[allow(clippy::print_stdout, reason = "the listing is the command's output")]
pub(crate) async fn agents(command: AgentsCommand) -> anyhow::Result<()> {
    match command {
        AgentsCommand::List { json, remote } => {
            let agents = remote.client()?.list_agent_configs().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
                return Ok(());
            }
            let mut rows = vec![vec![
                "LOCAL ID".to_owned(),
                "PROJECT".to_owned(),
                "LIVE".to_owned(),
                "MODEL".to_owned(),
                "ID".to_owned(),
            ]];
            for a in agents {
                rows.push(vec![
                    a.code_first_local_id.unwrap_or_default(),
                    a.code_first_project.unwrap_or_default(),
                    a.published_at.as_ref().map_or("-".to_owned(), short_time),
                    if a.provider.is_empty() {
                        "default".to_owned()
                    } else {
                        format!("{}/{}", a.provider, a.model)
                    },
                    a.id,
                ]);
            }
            print_table(&rows);
        }
        AgentsCommand::Show { agent, remote } => {
            let agent = find_agent(&remote.client()?, &agent).await?;
            println!("{}", serde_json::to_string_pretty(&agent)?);
        }
        AgentsCommand::Versions { agent, remote } => {
            let client = remote.client()?;
            let agent = find_agent(&client, &agent).await?;
            let mut rows = vec![vec!["SEMVER".to_owned(), "CREATED".to_owned(), "ID".to_owned()]];
            for v in client.list_agent_versions(&agent.id).await? {
                let live = if agent.active_version_id.as_deref() == Some(v.id.as_str()) {
                    " (live)"
                } else {
                    ""
                };
                rows.push(vec![
                    format!("{}{live}", v.semver),
                    short_time(&v.created_at),
                    v.id,
                ]);
            }
            print_table(&rows);
        }
    }
    Ok(())
}

/// `kiln mcp …`.
#[allow(clippy::print_stdout, reason = "the listing is the command's output")]
pub(crate) async fn mcp(command: McpCommand) -> anyhow::Result<()> {
    match command {
        McpCommand::Tools { agent, remote } => {
            let client = remote.client()?;
            let agent = find_agent(&client, &agent).await?;
            let mut rows = vec![vec![
                "SERVER".to_owned(),
                "TOOL".to_owned(),
                "DESCRIPTION".to_owned(),
            ]];
            for skill in client.list_skills().await? {
                if skill.kind != kiln_sdk::api::skill_types::MCP
                    || skill.config["agent_id"] != agent.id.as_str()
                {
                    continue;
                }
                let tools = skill.config["tools"].as_array().cloned().unwrap_or_default();
                if tools.is_empty() {
                    rows.push(vec![
                        skill.name.clone(),
                        "-".to_owned(),
                        "(no tools listed: was the server up at the last sync?)".to_owned(),
                    ]);
                }
                for tool in tools {
                    let description = tool["description"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("");
                    rows.push(vec![
                        skill.name.clone(),
                        tool["name"].as_str().unwrap_or("").to_owned(),
                        description.chars().take(80).collect(),
                    ]);
                }
            }
            if rows.len() == 1 {
                println!(
                    "agent `{}` declares no MCP servers (agent.jsonc → mcp)",
                    agent.code_first_local_id.unwrap_or(agent.id)
                );
            } else {
                print_table(&rows);
            }
        }
        McpCommand::ServeInfo { remote } => {
            let url = format!("{}/mcp", remote.url.trim_end_matches('/'));
            let key = &remote.api_key;
            let with_url = serde_json::json!({
                "mcpServers": { "kiln": { "url": url, "headers": { "Authorization": format!("Bearer {key}") } } }
            });
            let bridged = serde_json::json!({
                "mcpServers": { "kiln": {
                    "command": "npx",
                    "args": ["mcp-remote", url, "--header", format!("Authorization: Bearer {key}")]
                } }
            });
            println!("Kiln's MCP endpoint: {url}");
            println!(
                "(streamable HTTP; the API key as `X-API-Key` or `Authorization: Bearer`; tools: search, list_agents, run_agent, answer_input)"
            );
            println!();
            println!("Clients that take a URL and headers (Cursor, VS Code, Claude Code):");
            println!("{}", serde_json::to_string_pretty(&with_url)?);
            println!();
            println!("Clients that only start processes (Claude Desktop), through the mcp-remote bridge:");
            println!("{}", serde_json::to_string_pretty(&bridged)?);
        }
    }
    Ok(())
}

/// `kiln pull`.
pub(crate) async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let project = source_dir::project_name(&args.dir.dir)?;
    let export = args.remote.client()?.export_source(&project).await?;
    let written = source_dir::write_export(&args.dir.dir, &export)?;
    eprintln!(
        "wrote {} file(s) of {} agent(s)",
        written.len(),
        export.agents.len()
    );
    Ok(())
}

/// `kiln rename OLD NEW`: moves the server's binding; rename the folder and
/// `agent.jsonc` → `id` after it.
pub(crate) async fn rename(args: RenameArgs) -> anyhow::Result<()> {
    let project = source_dir::project_name(&args.dir.dir)?;
    let renamed = args
        .remote
        .client()?
        .rename_source(&SourceRenameRequest {
            project,
            old_local_id: args.old.clone(),
            new_local_id: args.new.clone(),
        })
        .await?;
    eprintln!(
        "agent {} is `{}` now: rename kiln/agents/{} to kiln/agents/{} and its `id`",
        renamed.agent_id, args.new, args.old, args.new
    );
    Ok(())
}

/// `kiln delete ID --force`.
pub(crate) async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.force,
        "deleting `{}` removes its versions, drafts and sessions for good: add --force",
        args.agent
    );
    let project = source_dir::project_name(&args.dir.dir)?;
    let deleted = args
        .remote
        .client()?
        .delete_source(&SourceDeleteRequest {
            project,
            local_id: args.agent,
            force: true,
        })
        .await?;
    eprintln!("deleted agent {} ({})", deleted.local_id, deleted.agent_id);
    Ok(())
}
