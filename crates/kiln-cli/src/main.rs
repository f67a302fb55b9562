//! `kiln`: the one binary. `serve` runs the API; `keys` and `projects`
//! administer the same data dir or database directly, whether or not a
//! server is running.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiln_cli::config::{
    ENV_SECRET_KEK, KekSource, LogFormat, ServeArgs, StoreArgs, create_private_dir, kek_exposure, resolve_kek,
};
use kiln_cli::server::{StartOptions, start};
use kiln_core::control::{ControlConfig, ControlPlane};
use kiln_core::ids::ApiKeyId;
use kiln_core::usage::UsageLog;
use kiln_store::SqlStore;
use tracing_subscriber::EnvFilter;

mod agents;
mod code;
mod docs;
mod evals;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: a self-hosted agent platform in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Chat in the terminal over a stored conversation, streaming replies.
    Chat(ChatArgs),
    /// Create, list and delete RAG indexes.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Upload files into an index (waits until they are searchable).
    Upload(docs::UploadArgs),
    /// List and delete documents.
    #[command(subcommand)]
    Docs(docs::DocsCommand),
    /// Search the project's (or one index's) documents.
    Search(docs::SearchArgs),
    /// Run one agent turn, streaming its steps as they happen (creates a session unless --session).
    Run(agents::RunArgs),
    /// Show a session's steps in full: code, results, inputs, timings, tokens.
    Trace(agents::TraceArgs),
    /// Replay a session from a step into a new session, streamed like `run`.
    Replay(agents::ReplayArgs),
    /// List, show and delete agent sessions.
    #[command(subcommand)]
    Sessions(agents::SessionsCommand),
    /// Create a project folder with a working example agent.
    Init(code::InitArgs),
    /// Sync the project folder and publish each agent as a new version.
    Deploy(code::DeployArgs),
    /// Sync the project folder to the drafts on every change.
    Dev(code::DevArgs),
    /// List and show the project's agents and their versions.
    #[command(subcommand)]
    Agents(code::AgentsCommand),
    /// MCP: the tools an agent sees, and how to connect a client to Kiln.
    #[command(subcommand)]
    Mcp(code::McpCommand),
    /// Run an agent's eval suite (a CI gate) and show runs.
    #[command(subcommand)]
    Eval(evals::EvalCommand),
    /// Write the server's agents back into the project folder.
    Pull(code::PullArgs),
    /// Rename an agent's local id on the server (before renaming its folder).
    Rename(code::RenameArgs),
    /// Delete an agent with its versions, drafts and sessions.
    Delete(code::DeleteArgs),
    /// Internal: extract one document's text from stdin (the server runs
    /// this in a child process with memory and CPU limits).
    #[command(hide = true)]
    ExtractWorker {
        /// `pdf`, `docx`, `html`, `markdown`, `text` or `csv`.
        kind: String,
    },
}

/// Where a remote verb sends its requests.
#[derive(Debug, Clone, clap::Args)]
struct RemoteArgs {
    /// Server URL.
    #[arg(long, env = "KILN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (kiln_...).
    #[arg(long, env = "KILN_API_KEY", hide_env_values = true)]
    api_key: String,
}

impl RemoteArgs {
    fn client(&self) -> anyhow::Result<kiln_sdk::Client> {
        Ok(kiln_sdk::Client::new(&self.url, &self.api_key)?)
    }
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Create an index.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List indexes.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete an index (by name or id) and everything in it.
    Delete {
        name_or_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ChatArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Model as `provider/model` for a new conversation (default: the project's default).
    #[arg(long)]
    model: Option<String>,
    /// Continue this conversation instead of starting a new one.
    #[arg(long)]
    conversation: Option<String>,
    /// System prompt for a new conversation.
    #[arg(long)]
    system: Option<String>,
    /// Retrieve passages from this index (name or id) for every message.
    #[arg(long)]
    rag: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Mint a key for a project (created if missing). The key is printed once, alone on the last stdout line.
    Create {
        #[arg(long, default_value = "default")]
        project: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (never their values).
    List {
        /// Only this project's keys.
        #[arg(long)]
        project: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id; requests with it then get 401.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// List every project.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The extraction worker needs no runtime: it reads, extracts, exits.
    if let Command::ExtractWorker { kind } = &cli.command {
        std::process::exit(kiln_extract::isolated::run_worker(kind));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ExtractWorker { kind } => std::process::exit(kiln_extract::isolated::run_worker(&kind)),
        Command::Serve(args) => serve(*args).await,
        Command::Keys(command) => {
            init_logging(LogFormat::Text, "warn");
            keys(command).await
        }
        Command::Chat(args) => {
            init_logging(LogFormat::Text, "warn");
            chat(args).await
        }
        Command::Index(command) => {
            init_logging(LogFormat::Text, "warn");
            index(command).await
        }
        Command::Upload(args) => {
            init_logging(LogFormat::Text, "warn");
            docs::upload(args).await
        }
        Command::Docs(command) => {
            init_logging(LogFormat::Text, "warn");
            docs::docs(command).await
        }
        Command::Search(args) => {
            init_logging(LogFormat::Text, "warn");
            docs::search(args).await
        }
        Command::Run(args) => {
            init_logging(LogFormat::Text, "warn");
            agents::run(args).await
        }
        Command::Init(args) => code::init(args),
        Command::Deploy(args) => {
            init_logging(LogFormat::Text, "warn");
            code::deploy(args).await
        }
        Command::Dev(args) => {
            init_logging(LogFormat::Text, "warn");
            code::dev(args).await
        }
        Command::Agents(command) => {
            init_logging(LogFormat::Text, "warn");
            code::agents(command).await
        }
        Command::Pull(args) => {
            init_logging(LogFormat::Text, "warn");
            code::pull(args).await
        }
        Command::Mcp(command) => {
            init_logging(LogFormat::Text, "warn");
            code::mcp(command).await
        }
        Command::Trace(args) => {
            init_logging(LogFormat::Text, "warn");
            agents::trace(args).await
        }
        Command::Replay(args) => {
            init_logging(LogFormat::Text, "warn");
            agents::replay(args).await
        }
        Command::Eval(command) => {
            init_logging(LogFormat::Text, "warn");
            evals::eval(command).await
        }
        Command::Rename(args) => {
            init_logging(LogFormat::Text, "warn");
            code::rename(args).await
        }
        Command::Delete(args) => {
            init_logging(LogFormat::Text, "warn");
            code::delete(args).await
        }
        Command::Sessions(command) => {
            init_logging(LogFormat::Text, "warn");
            agents::sessions(command).await
        }
        Command::Projects(ProjectsCommand::List { json, store }) => {
            init_logging(LogFormat::Text, "warn");
            let (control, sql) = open_local(&store).await?;
            let projects = control.list_projects().await;
            sql.close().await;
            let projects = projects?;
            if json {
                let rows: Vec<_> = projects
                    .iter()
                    .map(|p| {
                        serde_json::json!({"id": p.id.as_str(), "name": p.name.as_str(), "slug": p.slug,
                            "vault_id": p.vault_id.as_ref().map(|v| v.as_str()), "created_at": p.created_at})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut table = vec![vec![
                    "ID".to_owned(),
                    "NAME".into(),
                    "SLUG".into(),
                    "CREATED".into(),
                ]];
                for p in &projects {
                    table.push(vec![
                        p.id.to_string(),
                        p.name.as_str().into(),
                        p.slug.clone(),
                        short_time(&p.created_at),
                    ]);
                }
                print_table(&table);
            }
            Ok(())
        }
    }
}

/// Opens the store for the local admin verbs (no KEK needed: they never
/// touch secrets).
async fn open_local(store: &StoreArgs) -> anyhow::Result<(ControlPlane, Arc<SqlStore>)> {
    if store.database_url.is_none() {
        create_private_dir(&store.data_dir)?;
    }
    let url = store.database_url();
    let sql = Arc::new(
        SqlStore::connect(&url)
            .await
            .with_context(|| format!("opening {}", kiln_store::redact_url(&url)))?,
    );
    let usage = Arc::new(UsageLog::new(sql.clone()));
    Ok((
        ControlPlane::new(sql.clone(), usage, ControlConfig::default()),
        sql,
    ))
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { project, name, store } => {
            let (control, sql) = open_local(&store).await?;
            let created = control.create_key(&project, &name).await;
            sql.close().await;
            let created = created?;
            if created.project_created {
                eprintln!(
                    "created project `{}` ({})",
                    created.project.name.as_str(),
                    created.project.id
                );
            }
            eprintln!(
                "API key {} for project `{}`; it is shown once, store it now:",
                created.key.id,
                created.project.name.as_str()
            );
            println!("{}", created.plaintext);
            Ok(())
        }
        KeysCommand::List { project, json, store } => {
            let (control, sql) = open_local(&store).await?;
            let keys = control.list_keys(project.as_deref()).await;
            sql.close().await;
            let keys = keys?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({"id": k.key.id.as_str(), "project": k.project_name, "name": k.key.name,
                            "prefix": k.key.prefix, "created_at": k.key.created_at,
                            "last_used_at": k.key.last_used_at, "revoked_at": k.key.revoked_at})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut table = vec![
                    [
                        "ID",
                        "PROJECT",
                        "NAME",
                        "PREFIX",
                        "CREATED",
                        "LAST USED",
                        "STATUS",
                    ]
                    .map(String::from)
                    .to_vec(),
                ];
                for k in &keys {
                    table.push(vec![
                        k.key.id.to_string(),
                        k.project_name.clone(),
                        k.key.name.clone(),
                        format!("{}…", k.key.prefix),
                        short_time(&k.key.created_at),
                        k.key
                            .last_used_at
                            .as_ref()
                            .map(short_time)
                            .unwrap_or_else(|| "never".into()),
                        if k.key.revoked_at.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]);
                }
                print_table(&table);
            }
            Ok(())
        }
        KeysCommand::Revoke { id, store } => {
            let (control, sql) = open_local(&store).await?;
            let revoked = control.revoke_key(&ApiKeyId::from_string(id.clone())).await;
            sql.close().await;
            if revoked? {
                eprintln!("revoked key {id}");
            } else {
                eprintln!("key {id} was already revoked");
            }
            Ok(())
        }
    }
}

/// The `kiln chat` REPL: one line in, the reply streamed out. `/exit` or
/// end of input quits.
async fn chat(args: ChatArgs) -> anyhow::Result<()> {
    use std::io::Write;

    use futures::StreamExt;
    use kiln_sdk::MessageStreamEvent;
    use kiln_sdk::api::{CreateConversation, SendMessage};
    use tokio::io::AsyncBufReadExt;

    let client = args.remote.client()?;
    let conversation = match &args.conversation {
        Some(id) => {
            let detail = client.get_conversation(id).await?;
            if args.model.is_some() || args.system.is_some() {
                eprintln!("note: --model and --system apply to new conversations; continuing {id} as it is");
            }
            eprintln!(
                "continuing conversation {id} ({} messages)",
                detail.messages.len()
            );
            detail.conversation
        }
        None => {
            let created = client
                .create_conversation(&CreateConversation {
                    title: Some(format!(
                        "kiln chat {}",
                        chrono::Utc::now().format("%Y-%m-%d %H:%M")
                    )),
                    system_prompt: args.system.clone(),
                    model: args.model.clone(),
                    metadata: None,
                })
                .await?;
            eprintln!(
                "conversation {} (resume with --conversation {})",
                created.id, created.id
            );
            created
        }
    };
    let rag_index = match &args.rag {
        Some(name) => Some(docs::resolve_index(&client, name).await?.id),
        None => None,
    };
    let interactive = std::io::stdin().is_terminal();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        if interactive {
            eprint!("you> ");
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/exit" || line == "/quit" {
            break;
        }
        let input = SendMessage {
            content: line.to_owned(),
            use_rag: rag_index.as_ref().map(|_| true),
            index_id: rag_index.clone(),
            stream: None,
        };
        let mut events = match client.send_message_stream(&conversation.id, &input).await {
            Ok(events) => Box::pin(events),
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        let mut stdout = std::io::stdout();
        while let Some(event) = events.next().await {
            match event {
                Ok(MessageStreamEvent::Delta(text)) => {
                    print!("{text}");
                    stdout.flush()?;
                }
                Ok(MessageStreamEvent::Done(done)) => {
                    println!();
                    let u = done.token_usage;
                    eprintln!(
                        "[{} tokens: {} prompt + {} completion]",
                        u.total_tokens, u.prompt_tokens, u.completion_tokens
                    );
                }
                Err(e) => {
                    println!();
                    eprintln!("error: {e}");
                }
            }
        }
    }
    Ok(())
}

async fn index(command: IndexCommand) -> anyhow::Result<()> {
    match command {
        IndexCommand::Create {
            name,
            description,
            metadata,
            remote,
        } => {
            let metadata = match metadata {
                Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    _ => anyhow::bail!("--metadata must be a JSON object"),
                },
                None => None,
            };
            let index = remote
                .client()?
                .create_index(&kiln_sdk::api::CreateIndex {
                    name,
                    description,
                    metadata,
                })
                .await?;
            eprintln!("created index `{}`", index.name);
            println!("{}", index.id);
        }
        IndexCommand::List { json, remote } => {
            let indexes = remote.client()?.list_indexes().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&indexes)?);
            } else {
                let mut table = vec![
                    ["ID", "NAME", "DESCRIPTION", "CREATED"]
                        .map(String::from)
                        .to_vec(),
                ];
                for i in &indexes {
                    table.push(vec![
                        i.id.clone(),
                        i.name.clone(),
                        i.description.clone(),
                        short_time(&i.created_at),
                    ]);
                }
                print_table(&table);
            }
        }
        IndexCommand::Delete { name_or_id, remote } => {
            let client = remote.client()?;
            let index = docs::resolve_index(&client, &name_or_id).await?;
            client.delete_index(&index.id).await?;
            eprintln!("deleted index `{}` ({})", index.name, index.id);
        }
    }
    Ok(())
}

fn short_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

#[allow(clippy::print_stdout, reason = "the table is the command's output")]
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format, "info,sqlx=warn,tower_http=warn");
    let started = std::time::Instant::now();
    if args.store.database_url.is_none() {
        create_private_dir(&args.store.data_dir)?;
    }
    let (kek, source) = resolve_kek(
        std::env::var(ENV_SECRET_KEK).ok(),
        args.secret_kek_file.as_deref(),
        &args.store.data_dir,
    )?;
    match &source {
        KekSource::Env => tracing::info!(
            kek_id = kek.id(),
            "secrets: key-encryption key from {ENV_SECRET_KEK}"
        ),
        KekSource::File(path) => {
            tracing::info!(kek_id = kek.id(), path = %path.display(), "secrets: key-encryption key from file")
        }
        KekSource::Generated(path) | KekSource::DataDir(path)
            if args.store.database_url().starts_with("postgres") =>
        {
            tracing::warn!(
                kek_id = kek.id(),
                path = %path.display(),
                "secrets: using a key-encryption key from this machine's data dir with a shared PostgreSQL \
                 database; every replica must use the same KEK: pass it in {ENV_SECRET_KEK}"
            )
        }
        KekSource::Generated(path) | KekSource::DataDir(path) => tracing::warn!(
            kek_id = kek.id(),
            path = %path.display(),
            "secrets: using a key-encryption key {} the data dir; production must pass its own in {ENV_SECRET_KEK}",
            if matches!(source, KekSource::Generated(_)) { "just generated into" } else { "generated earlier in" }
        ),
    }
    if let Some(warning) = kek_exposure(&source) {
        tracing::warn!("secrets: {warning}");
    }
    let server = start(StartOptions {
        addr: args.addr,
        database_url: args.store.database_url(),
        kek: Some(kek),
        body_limit: args.body_limit,
        auth_cache_ttl: args.auth_cache_ttl(),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        provider_env: kiln_cli::config::provider_env(),
        provider_http: args.provider_http(),
        allow_private_network: args.allow_private_network,
        print_banner: true,
        search_dir: args.store.data_dir.join("search"),
        upload_limit: args.upload_limit,
        ingest_workers: args.ingest_workers,
        embeddings: args.embeddings(),
        runtime: args.agents.runtime(),
        fetch: args.agents.fetch_policy(args.allow_private_network),
        mcp: args.mcp_settings()?,
        evals: args.eval_settings(),
        webhooks: Default::default(),
        rate_limits: args.rate_limits(),
        extraction: kiln_cli::server::Extraction::Worker {
            program: std::env::current_exe().context("finding the kiln binary for its extraction worker")?,
            limits: args.extract_limits(),
        },
        server_id: Some(kiln_cli::config::server_id(&args.store.data_dir)?),
    })
    .await?;
    if args.allow_private_network {
        tracing::warn!(
            "--allow-private-network: project-configured URLs may reach private and local addresses"
        );
    }
    tracing::info!(
        addr = %server.addr,
        database = ?server.store.kind(),
        startup_ms = started.elapsed().as_millis() as u64,
        "kiln listening on {}; console at {}/console",
        server.base_url(),
        server.base_url()
    );
    let token = server.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        token.cancel();
    });
    server.wait().await?;
    tracing::info!("kiln stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}
