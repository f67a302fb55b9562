//! Builds the services as the composition root does, over a fresh SQLite
//! file, with the fake provider as the project's model.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kiln_core::auth::AuthContext;
use kiln_core::control::{ControlConfig, ControlPlane};
use kiln_core::gateway::{LlmGateway, LlmSetup};
use kiln_core::llm::SettingMap;
use kiln_core::rag::{Rag, RagSetup};
use kiln_core::runtime::{
    AgentRuntime, CreateSession, EventBody, FollowItem, RuntimeConfig, RuntimeSetup, Session,
};
use kiln_core::usage::UsageLog;
use kiln_providers::fake::FakeProvider;
use kiln_providers::{HttpProviderFactory, HttpSettings};
use kiln_store::SqlStore;

pub(crate) struct Engines {
    pub(crate) control: Arc<ControlPlane>,
    pub(crate) rag: Arc<Rag>,
    pub(crate) agents: Arc<kiln_core::agents::AgentConfigs>,
    pub(crate) runtime: Arc<AgentRuntime>,
    pub(crate) ctx: AuthContext,
    pub(crate) fake: FakeProvider,
    _dir: tempfile::TempDir,
}

/// How the RAG engine reads documents, where a test needs other than the
/// server's defaults.
pub(crate) struct Reading {
    pub(crate) extractor: Arc<dyn kiln_core::rag::TextExtractor>,
    pub(crate) ingest_lease: Duration,
}

impl Default for Reading {
    fn default() -> Self {
        Reading {
            extractor: Arc::new(kiln_extract::Extractor),
            ingest_lease: kiln_core::rag::engine::INGEST_LEASE,
        }
    }
}

impl Engines {
    pub(crate) async fn start(config: RuntimeConfig) -> Engines {
        Engines::start_with(config, Reading::default()).await
    }

    pub(crate) async fn start_with(config: RuntimeConfig, reading: Reading) -> Engines {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("kiln.db").display());
        let store = Arc::new(SqlStore::connect(&url).await.expect("open sqlite"));
        let usage = Arc::new(UsageLog::new(store.clone()));
        let control = Arc::new(ControlPlane::new(
            store.clone(),
            usage.clone(),
            ControlConfig::default(),
        ));
        let lexical = kiln_search::TantivyIndex::open(&dir.path().join("search")).expect("search dir");
        let rag = Arc::new(Rag::new(
            store.clone(),
            RagSetup {
                extractor: reading.extractor,
                embedder: Arc::new(kiln_search::HashEmbedder::new()),
                lexical: Arc::new(lexical),
                vectors: Arc::new(kiln_search::MemoryVectors::new()),
                chunking: Default::default(),
                max_upload_bytes: 1024 * 1024,
                ingest_lease: reading.ingest_lease,
            },
        ));
        let fake = FakeProvider::start().await;
        let mut env = SettingMap::default();
        env.insert("openai_api_key", "test-key".to_owned());
        env.insert("openai_base_url", fake.openai_base_url());
        env.insert("default_model", "openai/gpt-test".to_owned());
        let gateway = Arc::new(LlmGateway::new(
            control.clone(),
            rag.clone(),
            store.clone(),
            usage,
            LlmSetup {
                // The fake listens on 127.0.0.1.
                factory: Arc::new(HttpProviderFactory::new(HttpSettings::default(), true)),
                env,
            },
        ));
        let sandbox: Arc<dyn kiln_core::sandbox::Sandbox> = Arc::new(kiln_sandbox::QuickJsSandbox::new());
        let agents = Arc::new(kiln_core::agents::AgentConfigs::new(
            store.clone(),
            rag.clone(),
            kiln_core::agents::modules::ModuleChecker::new(
                sandbox.clone(),
                config.sandbox,
                kiln_core::runtime::prompt::reserved_names(),
            ),
            kiln_core::agents::mcp::McpServers::new(
                Arc::new(kiln_providers::mcp::RmcpClient::new(Default::default())),
                control.clone(),
            ),
        ));
        let runtime = Arc::new(AgentRuntime::new(
            store,
            gateway,
            rag.clone(),
            agents.clone(),
            control.clone(),
            RuntimeSetup {
                sandbox,
                fetch: Arc::new(kiln_providers::web::GuardedFetch::new(Default::default())),
                web_search: Arc::new(kiln_providers::web_search::HttpWebSearch::new(false)),
                config,
            },
        ));
        let created = control.create_key("engines", "test").await.expect("a key");
        let ctx = control
            .authenticate(&created.plaintext)
            .await
            .expect("the key works");
        Engines {
            control,
            rag,
            agents,
            runtime,
            ctx,
            fake,
            _dir: dir,
        }
    }

    pub(crate) async fn session(&self) -> Session {
        self.runtime
            .create_session(
                &self.ctx,
                CreateSession {
                    system_prompt: Some("You are a test agent.".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("create session")
    }

    /// Runs a turn and returns its events, up to and with the terminal one.
    pub(crate) async fn turn(&self, session: &Session, message: &str) -> Vec<EventBody> {
        let (_, events) = self
            .runtime
            .run_turn(&self.ctx, &session.id, message)
            .await
            .expect("the turn starts");
        collect(events).await
    }
}

/// The events of a stream up to and with its terminal one (30 s at most).
pub(crate) async fn collect(mut events: kiln_core::runtime::EventFollow) -> Vec<EventBody> {
    let mut bodies = Vec::new();
    let read = async {
        while let Some(item) = events.next().await {
            if let FollowItem::Event(event) = item {
                let terminal = event.body.is_terminal();
                bodies.push(event.body.clone());
                if terminal {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the turn ends within 30 s");
    bodies
}

/// The terminal event's code, `None` when the turn ended with `done`.
pub(crate) fn end_code(events: &[EventBody]) -> Option<kiln_core::runtime::TurnErrorCode> {
    match events.last() {
        Some(EventBody::Error { code, .. }) => Some(*code),
        Some(EventBody::Done { .. }) => None,
        other => panic!("the turn did not end: last event {other:?}"),
    }
}
