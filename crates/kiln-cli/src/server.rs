//! Building and running the server: store, KEK, service, router, listener,
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kiln_core::agents::AgentConfigs;
use kiln_core::agents::mcp::McpServers;
use kiln_core::agents::modules::ModuleChecker;
use kiln_core::control::{ControlConfig, ControlPlane, CreatedKey};
use kiln_core::crypto::Kek;
use kiln_core::evals::{EvalSettings, Evals};
use kiln_core::gateway::{LlmGateway, LlmSetup};
use kiln_core::llm::{Embedder, SettingMap};
use kiln_core::rag::{Rag, RagSetup};
use kiln_core::runtime::{AgentRuntime, RuntimeSetup};
use kiln_core::sandbox::Sandbox;
use kiln_core::schedules::Schedules;
use kiln_core::studio::Studio;
use kiln_core::usage::UsageLog;
use kiln_core::webhooks::{WebhookConfig, Webhooks};
use kiln_providers::{HttpProviderFactory, HttpSettings};
use kiln_server::{AppState, ServerConfig, Services};
use kiln_store::{DatabaseKind, SqlStore};

use crate::config::EmbeddingsConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything `start` needs, already resolved.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub addr: SocketAddr,
    pub database_url: String,
    pub kek: Option<Kek>,
    pub body_limit: usize,
    pub auth_cache_ttl: Duration,
    pub shutdown_grace: Duration,
    /// Server-wide provider settings (normally from the environment).
    pub provider_env: SettingMap,
    /// Provider timeouts and retries.
    pub provider_http: HttpSettings,
    /// Let project-configured provider URLs reach private and local
    /// addresses (development only).
    pub allow_private_network: bool,
    /// Print the first-start key banner to stderr (before the server
    /// answers its first request).
    pub print_banner: bool,
    /// Where this server keeps its search index (a cache rebuilt from the
    /// database when missing): normally `DATA_DIR/search`.
    pub search_dir: PathBuf,
    /// Largest accepted document upload, in bytes.
    pub upload_limit: u64,
    /// Documents ingested at once; 0: this server does not ingest (another
    /// replica on the database does).
    pub ingest_workers: usize,
    pub embeddings: EmbeddingsConfig,
    /// The agent runtime's limits.
    pub runtime: kiln_core::runtime::RuntimeConfig,
    /// What the sandbox's `fetch()` may reach.
    pub fetch: kiln_providers::web::FetchPolicy,
    /// The MCP client: the operator's stdio servers, limits.
    pub mcp: kiln_providers::mcp::McpSettings,
    /// Eval runs: cases at once, a case's time limit, the judge model.
    pub evals: EvalSettings,
    /// Webhook retries and the sender's pace (`allow_private_network`
    /// also lets webhooks reach http:// and private addresses).
    pub webhooks: WebhookConfig,
    /// Per-key limits on runs, chat completions and uploads.
    pub rate_limits: kiln_core::control::rate::RateLimits,
    /// Where documents' text is extracted.
    pub extraction: Extraction,
    /// This server's id on the claims it takes, the same across restarts
    /// (`kiln serve` keeps it in `DATA_DIR/server-id`) so that a restarted
    /// server releases its own claims at once; `None`: a new one.
    pub server_id: Option<String>,
}

/// Where documents' text is extracted.
#[derive(Debug, Clone)]
pub enum Extraction {
    /// In the server's process (benchmarks of the pipeline alone).
    InProcess,
    /// PDF, DOCX and HTML in a child process per document, `program
    /// extract-worker <kind>` (the `kiln` binary), within `limits`.
    Worker {
        program: PathBuf,
        limits: kiln_extract::WorkerLimits,
    },
}

/// A server accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub control: Arc<ControlPlane>,
    pub gateway: Arc<LlmGateway>,
    pub rag: Arc<Rag>,
    pub agents: Arc<AgentConfigs>,
    pub runtime: Arc<AgentRuntime>,
    pub evals: Arc<Evals>,
    pub schedules: Arc<Schedules>,
    pub store: Arc<SqlStore>,
    usage: Arc<UsageLog>,
    /// The key minted on first start with an empty store, if this was it.
    pub bootstrap: Option<CreatedKey>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token that starts the graceful shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), then closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the shutdown token fires and the server has drained.
    pub async fn wait(self) -> anyhow::Result<()> {
        let RunningServer {
            task,
            shutdown,
            grace,
            store,
            runtime,
            usage,
            workers,
            ..
        } = self;
        let mut task = task;
        tokio::select! {
            result = &mut task => { result.context("server task panicked")??; }
            () = async {
                shutdown.cancelled().await;
                // Turns still running end with an `interrupted` event, which
                // closes their streams so the server can drain.
                runtime.interrupt_turns(Duration::from_secs(2)).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
                task.abort();
            }
        }
        // The server may have drained before every turn ended (turns run
        // detached from requests): end them before the store closes.
        runtime.interrupt_turns(Duration::from_secs(2)).await;
        // An interrupted ingestion is claimed again: at the next start on
        // SQLite, after its lease on PostgreSQL.
        for worker in workers {
            worker.abort();
        }
        usage.flush().await;
        store.close().await;
        Ok(())
    }
}

/// Binds, opens the store, bootstraps an empty one and starts serving. The
/// port is bound first so a busy port fails before a first key is minted
/// (a key minted but never shown would be lost).
pub async fn start(options: StartOptions) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("binding {}", options.addr))?;
    let addr = listener.local_addr()?;
    let store = Arc::new(
        SqlStore::connect_as(
            &options.database_url,
            &options
                .server_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        )
        .await
        .with_context(|| format!("opening {}", kiln_store::redact_url(&options.database_url)))?,
    );
    // The services, each over its own port of the one store, each holding
    // exactly the siblings it uses.
    let usage = Arc::new(UsageLog::new(store.clone()));
    let control = Arc::new(ControlPlane::new(
        store.clone(),
        usage.clone(),
        ControlConfig {
            kek: options.kek.clone(),
            auth_cache_ttl: options.auth_cache_ttl,
            rate_limits: options.rate_limits,
        },
    ));
    let rag = Arc::new(Rag::new(store.clone(), rag_setup(&options)?));
    let gateway = Arc::new(LlmGateway::new(
        control.clone(),
        rag.clone(),
        store.clone(),
        usage.clone(),
        LlmSetup {
            factory: Arc::new(HttpProviderFactory::new(
                options.provider_http.clone(),
                options.allow_private_network,
            )),
            env: options.provider_env.clone(),
        },
    ));
    let sandbox: Arc<dyn Sandbox> = Arc::new(kiln_sandbox::QuickJsSandbox::new());
    let agents = Arc::new(AgentConfigs::new(
        store.clone(),
        rag.clone(),
        ModuleChecker::new(
            sandbox.clone(),
            options.runtime.sandbox,
            kiln_core::runtime::prompt::reserved_names(),
        ),
        McpServers::new(
            Arc::new(kiln_providers::mcp::RmcpClient::new(options.mcp.clone())),
            control.clone(),
        ),
    ));
    let runtime = Arc::new(AgentRuntime::new(
        store.clone(),
        gateway.clone(),
        rag.clone(),
        agents.clone(),
        control.clone(),
        RuntimeSetup {
            sandbox,
            fetch: Arc::new(kiln_providers::web::GuardedFetch::new(options.fetch.clone())),
            web_search: Arc::new(kiln_providers::web_search::HttpWebSearch::new(
                options.allow_private_network,
            )),
            config: options.runtime.clone(),
        },
    ));
    let evals = Arc::new(Evals::new(
        store.clone(),
        agents.clone(),
        runtime.clone(),
        gateway.clone(),
        options.evals.clone(),
    ));
    let schedules = Arc::new(Schedules::new(store.clone(), runtime.clone(), control.clone()));
    let webhooks = Arc::new(Webhooks::new(
        store.clone(),
        runtime.clone(),
        options.kek.clone(),
        Arc::new(kiln_providers::webhook::HttpWebhookTransport::new(
            options.allow_private_network,
        )),
        options.webhooks.clone(),
    ));
    let bootstrap = control
        .bootstrap()
        .await
        .context("creating the default project")?;
    if let Some(created) = bootstrap.as_ref().filter(|_| options.print_banner) {
        print_banner(created, &format!("http://{addr}"));
    }
    let router = kiln_server::router(
        AppState::new(Services {
            control: control.clone(),
            gateway: gateway.clone(),
            rag: rag.clone(),
            agents: agents.clone(),
            runtime: runtime.clone(),
            evals: evals.clone(),
            schedules: schedules.clone(),
            studio: Arc::new(Studio::new(runtime.clone(), gateway.clone())),
            webhooks: webhooks.clone(),
        }),
        &ServerConfig {
            body_limit: options.body_limit,
            upload_limit: usize::try_from(options.upload_limit).unwrap_or(usize::MAX),
        },
    );
    let shutdown = CancellationToken::new();
    // One server per SQLite file: whatever a previous run claimed was
    // interrupted. On PostgreSQL, what this server (by its id) claimed
    // before it stopped is released now; other servers' turns whose claim
    // is no longer renewed are ended here and by every server's upkeep
    // later.
    let sqlite = store.kind() == DatabaseKind::Sqlite;
    let released = rag.release_ingest_claims(!sqlite).await?;
    if released > 0 {
        tracing::info!(documents = released, "resuming interrupted ingestion");
    }
    let reaped = runtime
        .reap_turns(if sqlite {
            kiln_core::runtime::Reap::All
        } else {
            kiln_core::runtime::Reap::Mine
        })
        .await
        .context("ending interrupted agent turns")?;
    if reaped > 0 {
        tracing::warn!(turns = reaped, "ended agent turns interrupted by a previous stop");
    }
    let abandoned = evals.recover().await.context("ending abandoned eval runs")?;
    if abandoned > 0 {
        tracing::warn!(runs = abandoned, "ended eval runs whose server stopped");
    }
    let mut workers = Vec::new();
    for _ in 0..options.ingest_workers {
        workers.push(tokio::spawn(
            rag.clone().run_ingest_worker(shutdown.clone().cancelled_owned()),
        ));
    }
    workers.push(tokio::spawn(
        runtime
            .clone()
            .run_agent_upkeep(shutdown.clone().cancelled_owned()),
    ));
    workers.push(tokio::spawn(
        schedules
            .clone()
            .run_scheduler(shutdown.clone().cancelled_owned()),
    ));
    workers.push(tokio::spawn(
        webhooks.clone().run_sender(shutdown.clone().cancelled_owned()),
    ));
    // Load the search structures now rather than on the first search.
    let warm = rag.clone();
    workers.push(tokio::spawn(async move {
        if let Err(e) = warm.catch_up_search().await {
            tracing::warn!(error = %e, "loading the search index failed; the next search retries");
        }
    }));
    // Streams write small events; without TCP_NODELAY, Nagle's algorithm and
    // delayed ACKs hold the second event ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // `into_make_service` prepares the routes once; a bare `Router` given to
    // `serve` deep-copies its whole route table for every connection
    // (axum 0.8: `Router::with_state` on a shared router), about 190 KiB
    // held by each open event stream and the CPU to copy it.
    let task = tokio::spawn(
        axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    Ok(RunningServer {
        addr,
        control,
        gateway,
        rag,
        agents,
        runtime,
        evals,
        schedules,
        store,
        usage,
        bootstrap,
        shutdown,
        task,
        workers,
        grace: options.shutdown_grace,
    })
}

/// The RAG parts: extraction, the embedder, and the search index on local
/// disk (a cache of the database, rebuilt when missing or stale).
fn rag_setup(options: &StartOptions) -> anyhow::Result<RagSetup> {
    let embedder: Arc<dyn Embedder> = match &options.embeddings {
        EmbeddingsConfig::Builtin => Arc::new(kiln_search::HashEmbedder::new()),
        EmbeddingsConfig::OpenAi {
            base_url,
            model,
            api_key,
        } => Arc::new(kiln_providers::embeddings::OpenAiEmbedder::new(
            base_url,
            api_key.clone(),
            model,
            reqwest::Client::new(),
            options.provider_http.clone(),
        )),
    };
    let lexical = kiln_search::TantivyIndex::open(&options.search_dir)
        .with_context(|| format!("opening the search index in {}", options.search_dir.display()))?;
    Ok(RagSetup {
        extractor: match &options.extraction {
            Extraction::InProcess => Arc::new(kiln_extract::Extractor),
            Extraction::Worker { program, limits } => Arc::new(kiln_extract::IsolatedExtractor::new(
                program.clone(),
                &["extract-worker"],
                *limits,
            )),
        },
        embedder,
        lexical: Arc::new(lexical),
        vectors: Arc::new(kiln_search::MemoryVectors::new()),
        chunking: Default::default(),
        max_upload_bytes: options.upload_limit,
        ingest_lease: kiln_core::rag::engine::INGEST_LEASE,
    })
}

/// The first-start banner: the only time the bootstrap key is shown.
fn print_banner(created: &CreatedKey, base_url: &str) {
    let rule = "=".repeat(72);
    eprintln!(
        "\n{rule}\n  Kiln: first start. Created project `{}` and an API key.\n  \
         The key is shown ONCE; store it now:\n\n    {}\n\n  \
         Console: {base_url}/console (sign in with the key)\n  \
         Try: curl -H \"X-API-Key: {}\" {base_url}/api/sdk/project\n  \
         More keys: kiln keys create --project NAME\n{rule}\n",
        created.project.name.as_str(),
        created.plaintext,
        created.plaintext,
    );
}
