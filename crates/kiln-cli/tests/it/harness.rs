//! `TestApp`: a running server, its database, and an SDK client for the
//! bootstrap key of project `default`.

use std::sync::Arc;
use std::time::Duration;

use kiln_cli::server::{RunningServer, StartOptions, start};
use kiln_core::crypto::Kek;
use kiln_sdk::Client;

pub const TEST_DATABASE_ENV: &str = "KILN_TEST_DATABASE_URL";
/// Small enough that tests can exceed it cheaply.
pub const TEST_BODY_LIMIT: usize = 128 * 1024;
pub const TEST_AUTH_CACHE_TTL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub server: RunningServer,
    pub client: Client,
    pub key: String,
    pub database_url: String,
    _dir: tempfile::TempDir,
    pg_schema: Option<(String, String)>,
}

/// Options a test may change before the server starts.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub with_kek: bool,
    /// Server-wide provider settings (what env vars would give).
    pub provider_env: Vec<(&'static str, String)>,
    /// The fake provider listens on 127.0.0.1, so tests that configure it
    /// through a vault need private addresses allowed.
    pub allow_private_network: bool,
    /// Largest accepted upload.
    pub upload_limit: u64,
    /// Ingestion workers (0: documents stay pending on this server).
    pub ingest_workers: usize,
    /// The agent runtime's limits.
    pub runtime: kiln_core::runtime::RuntimeConfig,
    /// Eval runs.
    pub evals: kiln_core::evals::EvalSettings,
    /// Webhook retries (fast, so retry tests end quickly).
    pub webhooks: kiln_core::webhooks::WebhookConfig,
    /// How long a provider may take to answer (short, so tests of hung
    /// providers end quickly).
    pub provider_timeout: Duration,
    /// Per-key rate limits (off unless a test sets them).
    pub rate_limits: kiln_core::control::rate::RateLimits,
}

/// Small enough that tests can exceed it cheaply.
pub const TEST_UPLOAD_LIMIT: u64 = 256 * 1024;

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            with_kek: true,
            provider_env: Vec::new(),
            allow_private_network: true,
            upload_limit: TEST_UPLOAD_LIMIT,
            ingest_workers: 1,
            runtime: kiln_core::runtime::RuntimeConfig::default(),
            evals: kiln_core::evals::EvalSettings::default(),
            webhooks: kiln_core::webhooks::WebhookConfig {
                max_attempts: 4,
                first_backoff: Duration::from_millis(100),
                poll: Duration::from_millis(50),
            },
            provider_timeout: Duration::from_millis(800),
            rate_limits: kiln_core::control::rate::RateLimits::OFF,
        }
    }
}

impl TestApp {
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, TestOptions::default()).await
    }

    /// `None` (with a message) when the backend is Postgres and
    /// `KILN_TEST_DATABASE_URL` is unset. Panics when it is set but the
    /// server cannot be reached: CI must fail, not skip.
    pub async fn start_with(backend: Backend, options: TestOptions) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, pg_schema) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("kiln.db").display()), None),
            Backend::Postgres => {
                let (url, base, schema) = postgres_schema().await?;
                (url, Some((base, schema)))
            }
        };
        let server = start_server(&database_url, dir.path(), &options).await;
        let key = server
            .bootstrap
            .as_ref()
            .expect("a fresh database bootstraps project `default`")
            .plaintext
            .clone();
        let client = Client::new(&server.base_url(), &key).unwrap();
        Some(TestApp {
            server,
            client,
            key,
            database_url,
            _dir: dir,
            pg_schema,
        })
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// A client with another key (or garbage).
    pub fn client_with_key(&self, key: &str) -> Client {
        Client::new(&self.base_url(), key).unwrap()
    }

    /// Mints a key for `project` (created when missing), as `kiln keys create` does.
    pub async fn key_for(&self, project: &str) -> (kiln_core::ids::ApiKeyId, Client) {
        let created = self.server.control.create_key(project, "test").await.unwrap();
        let client = self.client_with_key(&created.plaintext);
        (created.key.id, client)
    }

    /// A plain HTTP client for requests the SDK would never send.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// A second, independent connection to the same database (another
    /// process's view, like the CLI's).
    pub async fn second_store(&self) -> Arc<kiln_store::SqlStore> {
        Arc::new(kiln_store::SqlStore::connect(&self.database_url).await.unwrap())
    }

    /// Another server on the same database, with its own (empty) search
    /// directory: a replica. Its client uses this app's key.
    pub async fn replica(&self, ingest_workers: usize) -> (RunningServer, Client, tempfile::TempDir) {
        self.replica_with(TestOptions {
            ingest_workers,
            ..TestOptions::default()
        })
        .await
    }

    /// A replica started with `options` (the same providers, say).
    pub async fn replica_with(&self, options: TestOptions) -> (RunningServer, Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start_server(&self.database_url, dir.path(), &options).await;
        let client = Client::new(&server.base_url(), &self.key).unwrap();
        (server, client, dir)
    }

    /// Stops the server and drops the Postgres schema.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
        if let Some((base, schema)) = self.pg_schema {
            drop_postgres_schema(&base, &schema).await;
        }
    }
}

/// A fresh schema in the database of `KILN_TEST_DATABASE_URL`: `(the URL
/// to it, the base URL, the schema)`. `None` (with a message) when the
/// variable is unset; panics when it is set but the server cannot be
/// reached: CI must fail, not skip.
pub async fn postgres_schema() -> Option<(String, String, String)> {
    let Some(base) = std::env::var(TEST_DATABASE_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("skipping the PostgreSQL run: {TEST_DATABASE_ENV} is not set");
        return None;
    };
    let schema = format!("kiln_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{TEST_DATABASE_ENV} is set but PostgreSQL is unreachable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create test schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}options[search_path]={schema}"), base, schema))
}

pub async fn drop_postgres_schema(base: &str, schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

/// Starts a server on `database_url` with its search index under `dir`.
async fn start_server(database_url: &str, dir: &std::path::Path, options: &TestOptions) -> RunningServer {
    let kek = options
        .with_kek
        .then(|| Kek::from_base64(&Kek::generate_base64()).unwrap());
    start(StartOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_owned(),
        kek,
        body_limit: TEST_BODY_LIMIT,
        auth_cache_ttl: TEST_AUTH_CACHE_TTL,
        shutdown_grace: Duration::from_secs(5),
        provider_env: {
            let mut env = kiln_core::llm::SettingMap::default();
            for (name, value) in &options.provider_env {
                env.insert(name, value.clone());
            }
            env
        },
        print_banner: false,
        allow_private_network: options.allow_private_network,
        search_dir: dir.join("search"),
        upload_limit: options.upload_limit,
        ingest_workers: options.ingest_workers,
        embeddings: Default::default(),
        runtime: options.runtime.clone(),
        fetch: kiln_providers::web::FetchPolicy {
            allow_private_network: options.allow_private_network,
            ..Default::default()
        },
        evals: options.evals.clone(),
        webhooks: options.webhooks.clone(),
        rate_limits: options.rate_limits,
        // As `kiln serve` does: the built binary's worker, default limits.
        extraction: kiln_cli::server::Extraction::Worker {
            program: env!("CARGO_BIN_EXE_kiln").into(),
            limits: Default::default(),
        },
        server_id: None,
        mcp: kiln_providers::mcp::McpSettings {
            allow_private_network: options.allow_private_network,
            timeout: Duration::from_secs(3),
            ..Default::default()
        },
        provider_http: kiln_providers::HttpSettings {
            first_byte_timeout: options.provider_timeout,
            response_timeout: options.provider_timeout,
            idle_timeout: Duration::from_secs(2),
            backoff_base: Duration::from_millis(10),
            ..Default::default()
        },
    })
    .await
    .expect("server starts")
}

/// Generates one `#[tokio::test]` per backend for each `async fn(TestApp)`.
#[macro_export]
macro_rules! backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::harness::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::start(Backend::Sqlite).await.unwrap();
                super::$name(&app).await;
                app.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = TestApp::start(Backend::Postgres).await else { return };
                super::$name(&app).await;
                app.stop().await;
            }
        }
    )*};
}

/// Asserts an SDK result is the given API error and returns it.
#[track_caller]
pub fn api_err<T: std::fmt::Debug>(
    result: Result<T, kiln_sdk::Error>,
    status: u16,
    code: &str,
) -> kiln_sdk::ApiError {
    let err = result.expect_err("expected an API error");
    let api = err
        .api()
        .unwrap_or_else(|| panic!("expected an API error, got {err}"))
        .clone();
    assert_eq!((api.status, api.code.as_str()), (status, code), "{api:?}");
    assert!(!api.message.is_empty(), "error bodies carry a message");
    api
}
