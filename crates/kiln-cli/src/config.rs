//! Configuration: flags over env `KILN_*` over defaults, each documented
//! once (the doc comment is the `--help` text). Every env var Kiln reads is
//! named here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kiln_core::crypto::Kek;

pub const ENV_DATA_DIR: &str = "KILN_DATA_DIR";
pub const ENV_DATABASE_URL: &str = "KILN_DATABASE_URL";
pub const ENV_ADDR: &str = "KILN_ADDR";
pub const ENV_BODY_LIMIT: &str = "KILN_BODY_LIMIT";
pub const ENV_SECRET_KEK: &str = "KILN_SECRET_KEK";
pub const ENV_SECRET_KEK_FILE: &str = "KILN_SECRET_KEK_FILE";
pub const ENV_AUTH_CACHE_TTL_MS: &str = "KILN_AUTH_CACHE_TTL_MS";
pub const ENV_SHUTDOWN_GRACE_SECS: &str = "KILN_SHUTDOWN_GRACE_SECS";
pub const ENV_LOG_FORMAT: &str = "KILN_LOG_FORMAT";
pub const ENV_PROVIDER_CONNECT_TIMEOUT: &str = "KILN_PROVIDER_CONNECT_TIMEOUT_SECS";
pub const ENV_PROVIDER_FIRST_BYTE_TIMEOUT: &str = "KILN_PROVIDER_FIRST_BYTE_TIMEOUT_SECS";
pub const ENV_ALLOW_PRIVATE_NETWORK: &str = "KILN_ALLOW_PRIVATE_NETWORK";
pub const ENV_MCP_CONFIG: &str = "KILN_MCP_CONFIG";
pub const ENV_PROVIDER_RESPONSE_TIMEOUT: &str = "KILN_PROVIDER_RESPONSE_TIMEOUT_SECS";
pub const ENV_PROVIDER_IDLE_TIMEOUT: &str = "KILN_PROVIDER_IDLE_TIMEOUT_SECS";
pub const ENV_PROVIDER_MAX_RETRIES: &str = "KILN_PROVIDER_MAX_RETRIES";
pub const ENV_UPLOAD_LIMIT: &str = "KILN_UPLOAD_LIMIT";
pub const ENV_INGEST_WORKERS: &str = "KILN_INGEST_WORKERS";
pub const ENV_EMBEDDINGS_MODEL: &str = "KILN_EMBEDDINGS_MODEL";
pub const ENV_EMBEDDINGS_BASE_URL: &str = "KILN_EMBEDDINGS_BASE_URL";
pub const ENV_EMBEDDINGS_API_KEY: &str = "KILN_EMBEDDINGS_API_KEY";
pub const ENV_AGENT_MAX_STEPS: &str = "KILN_AGENT_MAX_STEPS";
pub const ENV_AGENT_MAX_TURN_SECS: &str = "KILN_AGENT_MAX_TURN_SECS";
pub const ENV_AGENT_MAX_TURN_TOKENS: &str = "KILN_AGENT_MAX_TURN_TOKENS";
pub const ENV_AGENT_INPUT_TIMEOUT_SECS: &str = "KILN_AGENT_INPUT_TIMEOUT_SECS";
pub const ENV_AGENT_BLOCK_TIMEOUT_SECS: &str = "KILN_AGENT_BLOCK_TIMEOUT_SECS";
pub const ENV_AGENT_BLOCK_MEMORY_MB: &str = "KILN_AGENT_BLOCK_MEMORY_MB";
pub const ENV_AGENT_MAX_CONCURRENT_BLOCKS: &str = "KILN_AGENT_MAX_CONCURRENT_BLOCKS";
pub const ENV_AGENT_MAX_PAUSED_BLOCKS: &str = "KILN_AGENT_MAX_PAUSED_BLOCKS";
pub const ENV_AGENT_HOST_CALLS_IN_FLIGHT: &str = "KILN_AGENT_HOST_CALLS_IN_FLIGHT";
pub const ENV_AGENT_MAX_HOST_CALLS_PER_TURN: &str = "KILN_AGENT_MAX_HOST_CALLS_PER_TURN";
pub const ENV_FETCH_ALLOW_HOSTS: &str = "KILN_FETCH_ALLOW_HOSTS";
pub const ENV_FETCH_DENY_HOSTS: &str = "KILN_FETCH_DENY_HOSTS";
pub const ENV_FETCH_MAX_BYTES: &str = "KILN_FETCH_MAX_BYTES";
pub const ENV_FETCH_TIMEOUT_SECS: &str = "KILN_FETCH_TIMEOUT_SECS";

/// Provider settings read from the environment: `(env var, setting)`. The
/// designated vault's secrets of the same setting names win over these.
pub const PROVIDER_ENV: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "openai_api_key"),
    ("KILN_OPENAI_BASE_URL", "openai_base_url"),
    ("OPENAI_BASE_URL", "openai_base_url"),
    ("ANTHROPIC_API_KEY", "anthropic_api_key"),
    ("ANTHROPIC_BASE_URL", "anthropic_base_url"),
    ("GEMINI_API_KEY", "gemini_api_key"),
    ("GEMINI_BASE_URL", "gemini_base_url"),
    ("OPENROUTER_API_KEY", "openrouter_api_key"),
    ("OPENROUTER_BASE_URL", "openrouter_base_url"),
    ("OLLAMA_BASE_URL", "ollama_base_url"),
    ("KILN_DEFAULT_MODEL", "default_model"),
    ("BRAVE_API_KEY", "brave_api_key"),
    ("KILN_BRAVE_BASE_URL", "brave_base_url"),
    ("KILN_SEARXNG_BASE_URL", "searxng_base_url"),
];

/// The provider settings in this process's environment (the first env var
/// of a setting that is set wins).
pub fn provider_env() -> kiln_core::llm::SettingMap {
    let mut settings = kiln_core::llm::SettingMap::default();
    for (var, name) in PROVIDER_ENV {
        if settings.get(name).is_none()
            && let Ok(value) = std::env::var(var)
        {
            settings.insert(name, value);
        }
    }
    settings
}

/// The file under the data dir holding a generated KEK.
pub const GENERATED_KEK_FILE: &str = "secret.kek";

/// Where state lives; shared by `serve` and the local admin verbs.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the generated key-encryption key.
    #[arg(long, env = ENV_DATA_DIR, default_value = "./kiln-data")]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite at DATA_DIR/kiln.db.
    #[arg(long, env = ENV_DATABASE_URL, hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("kiln.db").display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `kiln serve` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = ENV_ADDR, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Largest accepted JSON request body in bytes (larger: 413 payload_too_large).
    #[arg(long, env = ENV_BODY_LIMIT, default_value_t = kiln_server::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// File holding the base64 key-encryption key (alternative to KILN_SECRET_KEK).
    #[arg(long, env = ENV_SECRET_KEK_FILE)]
    pub secret_kek_file: Option<PathBuf>,
    /// How long an authenticated API key is trusted before it is looked up again, in ms.
    /// A key revoked by another process stops working within this time. 0 disables the cache.
    #[arg(long, env = ENV_AUTH_CACHE_TTL_MS, default_value_t = 2000)]
    pub auth_cache_ttl_ms: u64,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, env = ENV_SHUTDOWN_GRACE_SECS, default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// LLM providers: seconds to establish a connection.
    #[arg(long, env = ENV_PROVIDER_CONNECT_TIMEOUT, default_value_t = 10)]
    pub provider_connect_timeout_secs: u64,
    /// LLM providers, streaming calls: seconds from request to response headers.
    #[arg(long, env = ENV_PROVIDER_FIRST_BYTE_TIMEOUT, default_value_t = 60)]
    pub provider_first_byte_timeout_secs: u64,
    /// LLM providers, non-streaming calls: seconds from request to the (whole) response.
    #[arg(long, env = ENV_PROVIDER_RESPONSE_TIMEOUT, default_value_t = 600)]
    pub provider_response_timeout_secs: u64,
    /// LLM providers: longest silence between two chunks of a response, in seconds.
    #[arg(long, env = ENV_PROVIDER_IDLE_TIMEOUT, default_value_t = 60)]
    pub provider_idle_timeout_secs: u64,
    /// LLM providers: retries after the first attempt on 429, 5xx, timeouts and connection errors.
    #[arg(long, env = ENV_PROVIDER_MAX_RETRIES, default_value_t = 2)]
    pub provider_max_retries: u32,
    /// Let URLs that projects configure (provider base URLs in a vault) reach private, loopback and
    /// link-local addresses. For development against local model servers; never in production.
    #[arg(long, env = ENV_ALLOW_PRIVATE_NETWORK)]
    pub allow_private_network: bool,
    /// A JSON file declaring the MCP servers that run as local processes (stdio), which agents
    /// name in `agent.jsonc → mcp` without a `url`: `{"mcpServers": {"<name>": {"command": "…",
    /// "args": […], "env": {…}}}}` (the shape desktop MCP clients use). Projects cannot declare
    /// processes.
    #[arg(long, env = ENV_MCP_CONFIG)]
    pub mcp_config: Option<PathBuf>,
    /// The model that judges `llm_judge` eval cases (`provider/model`) when the agent's suite
    /// names none (`evalSuite.judgeModel`); without either, the agent's own model judges.
    #[arg(long, env = "KILN_JUDGE_MODEL")]
    pub judge_model: Option<String>,
    /// Cases of one eval run that run at once.
    #[arg(long, env = "KILN_EVAL_CONCURRENCY", default_value_t = 4)]
    pub eval_concurrency: usize,
    /// One eval case's time limit in seconds, from its prompt to the agent's answer.
    #[arg(long, env = "KILN_EVAL_CASE_TIMEOUT", default_value_t = 120)]
    pub eval_case_timeout: u64,
    /// Largest accepted document upload in bytes (larger: 413 payload_too_large).
    #[arg(long, env = ENV_UPLOAD_LIMIT, default_value_t = kiln_core::rag::documents::DEFAULT_MAX_UPLOAD_BYTES)]
    pub upload_limit: u64,
    /// Documents ingested at once (extract, chunk, embed) by this server; 0 leaves ingestion to
    /// other servers on the same database.
    #[arg(long, env = ENV_INGEST_WORKERS, default_value_t = 2)]
    pub ingest_workers: usize,
    /// Agent runs (`run` and queued messages) per API key per minute on this server, a quarter of
    /// them at once; 0: no limit. Over it: 429 rate_limited with retry_after_seconds.
    #[arg(long, env = "KILN_RATE_LIMIT_RUNS", default_value_t = 1200)]
    pub rate_limit_runs: u32,
    /// Chat completions per API key per minute (`/chat/completions`, `/v1/chat/completions`,
    /// conversation messages), a quarter at once; 0: no limit.
    #[arg(long, env = "KILN_RATE_LIMIT_CHAT", default_value_t = 3000)]
    pub rate_limit_chat: u32,
    /// Document uploads per API key per minute, a quarter at once; 0: no limit.
    #[arg(long, env = "KILN_RATE_LIMIT_UPLOADS", default_value_t = 1200)]
    pub rate_limit_uploads: u32,
    /// Document extraction (PDF, DOCX, HTML) runs in a child process: its heap, in MiB.
    #[arg(long, env = "KILN_EXTRACT_MEMORY_MB", default_value_t = 1024)]
    pub extract_memory_mb: u64,
    /// … and its CPU seconds per document.
    #[arg(long, env = "KILN_EXTRACT_CPU_SECS", default_value_t = 100)]
    pub extract_cpu_secs: u64,
    /// Embedding model for RAG: `builtin` (kiln/hash-384: no model file, no network) or a model
    /// name served by an OpenAI-compatible `/embeddings` endpoint (e.g. `text-embedding-3-small`).
    #[arg(long, env = ENV_EMBEDDINGS_MODEL, default_value = "builtin")]
    pub embeddings_model: String,
    /// Base URL of the OpenAI-compatible embeddings endpoint (key: KILN_EMBEDDINGS_API_KEY, else OPENAI_API_KEY).
    #[arg(long, env = ENV_EMBEDDINGS_BASE_URL, default_value = "https://api.openai.com/v1")]
    pub embeddings_base_url: String,
    /// Log format on stderr (`RUST_LOG` sets the level).
    #[arg(long, env = ENV_LOG_FORMAT, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub agents: AgentArgs,
}

/// The agent runtime's limits. Hitting one ends the turn with an `error`
/// event whose `code` names it.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Agent turns: model calls per turn (each code block or tool round is one); then `step_limit`.
    #[arg(long, env = ENV_AGENT_MAX_STEPS, default_value_t = 10)]
    pub agent_max_steps: u32,
    /// Agent turns: seconds a turn may run, time waiting for `input()` excluded; then `time_limit`.
    #[arg(long, env = ENV_AGENT_MAX_TURN_SECS, default_value_t = 300)]
    pub agent_max_turn_secs: u64,
    /// Agent turns: prompt plus completion tokens per turn, `ai()` included; then `token_limit`.
    #[arg(long, env = ENV_AGENT_MAX_TURN_TOKENS, default_value_t = 200_000)]
    pub agent_max_turn_tokens: u64,
    /// Agent turns: seconds `input()` waits for `POST /agents/:id/input`; then `input_timeout`.
    #[arg(long, env = ENV_AGENT_INPUT_TIMEOUT_SECS, default_value_t = 600)]
    pub agent_input_timeout_secs: u64,
    /// Agent turns: the history sent to the model, in tokens (counted high: 3 bytes each); past it
    /// the oldest messages are left out, down to half, and the model is told.
    #[arg(long, env = "KILN_AGENT_HISTORY_TOKENS", default_value_t = 32_000)]
    pub agent_history_tokens: usize,
    /// Agent turns: the same for particular models, as MODEL=TOKENS, comma-separated; MODEL is a
    /// whole `provider/model` or a provider (`ollama`, built in at 3000).
    #[arg(long, env = "KILN_AGENT_MODEL_HISTORY_TOKENS", value_delimiter = ',', value_parser = model_tokens)]
    pub agent_model_history_tokens: Vec<(String, usize)>,
    /// Sandbox: seconds one code block may run (host calls included, input waits excluded).
    #[arg(long, env = ENV_AGENT_BLOCK_TIMEOUT_SECS, default_value_t = 30)]
    pub agent_block_timeout_secs: u64,
    /// Sandbox: heap of one code block, in MiB.
    #[arg(long, env = ENV_AGENT_BLOCK_MEMORY_MB, default_value_t = 64)]
    pub agent_block_memory_mb: usize,
    /// Sandbox: code blocks running at once on this server; more wait for a slot.
    #[arg(long, env = ENV_AGENT_MAX_CONCURRENT_BLOCKS, default_value_t = 16)]
    pub agent_max_concurrent_blocks: usize,
    /// Sandbox: code blocks waiting for `input()` answers on this server (half per project); more
    /// `input()` calls reject. A waiting block holds no thread or heap once it has waited 50 ms.
    #[arg(long, env = ENV_AGENT_MAX_PAUSED_BLOCKS, default_value_t = 20_000)]
    pub agent_max_paused_blocks: usize,
    /// Sandbox: host calls (`ai`, `fetch`, `search`, …) one block runs at once; more wait in the block.
    #[arg(long, env = ENV_AGENT_HOST_CALLS_IN_FLIGHT, default_value_t = 16)]
    pub agent_host_calls_in_flight: u32,
    /// Agent turns: host calls one turn may make, all its blocks together; later calls reject.
    #[arg(long, env = ENV_AGENT_MAX_HOST_CALLS_PER_TURN, default_value_t = 256)]
    pub agent_max_host_calls_per_turn: u32,
    /// Sandbox `fetch()`: the only hosts code may reach, comma-separated (`*.example.com` matches
    /// subdomains). Empty: any public host.
    #[arg(long, env = ENV_FETCH_ALLOW_HOSTS, value_delimiter = ',')]
    pub fetch_allow_hosts: Vec<String>,
    /// Sandbox `fetch()`: hosts code may never reach, comma-separated; checked first.
    #[arg(long, env = ENV_FETCH_DENY_HOSTS, value_delimiter = ',')]
    pub fetch_deny_hosts: Vec<String>,
    /// Sandbox `fetch()`: response bytes kept; the rest is cut (`truncated: true`).
    #[arg(long, env = ENV_FETCH_MAX_BYTES, default_value_t = 5 * 1024 * 1024)]
    pub fetch_max_bytes: usize,
    /// Sandbox `fetch()`: seconds per request, redirects included.
    #[arg(long, env = ENV_FETCH_TIMEOUT_SECS, default_value_t = 30)]
    pub fetch_timeout_secs: u64,
}

impl AgentArgs {
    pub fn runtime(&self) -> kiln_core::runtime::RuntimeConfig {
        let defaults = kiln_core::runtime::RuntimeConfig::default();
        kiln_core::runtime::RuntimeConfig {
            max_steps: self.agent_max_steps.max(1),
            max_turn_time: Duration::from_secs(self.agent_max_turn_secs.max(1)),
            max_turn_tokens: self.agent_max_turn_tokens,
            input_timeout: Duration::from_secs(self.agent_input_timeout_secs.max(1)),
            sandbox: kiln_core::sandbox::SandboxLimits {
                memory_bytes: self.agent_block_memory_mb.max(1) * 1024 * 1024,
                time: Duration::from_secs(self.agent_block_timeout_secs.max(1)),
                host_calls_in_flight: self.agent_host_calls_in_flight.max(1),
                ..defaults.sandbox
            },
            max_concurrent_blocks: self.agent_max_concurrent_blocks.max(1),
            max_host_calls_per_turn: self.agent_max_host_calls_per_turn,
            max_paused_blocks: self.agent_max_paused_blocks.max(1),
            history: kiln_core::runtime::HistoryBudget {
                default_tokens: self.agent_history_tokens.max(1),
                // Named ones first: the first match wins.
                models: self
                    .agent_model_history_tokens
                    .iter()
                    .cloned()
                    .chain(defaults.history.models.iter().cloned())
                    .collect(),
            },
            ..defaults
        }
    }

    /// The `fetch()` policy; private networks follow `--allow-private-network`.
    pub fn fetch_policy(&self, allow_private_network: bool) -> kiln_providers::web::FetchPolicy {
        kiln_providers::web::FetchPolicy {
            allow_private_network,
            allow_hosts: self
                .fetch_allow_hosts
                .iter()
                .filter(|h| !h.trim().is_empty())
                .cloned()
                .collect(),
            deny_hosts: self
                .fetch_deny_hosts
                .iter()
                .filter(|h| !h.trim().is_empty())
                .cloned()
                .collect(),
            max_response_bytes: self.fetch_max_bytes,
            timeout: Duration::from_secs(self.fetch_timeout_secs.max(1)),
            ..Default::default()
        }
    }
}

/// `MODEL=TOKENS` of `--agent-model-history-tokens`.
fn model_tokens(text: &str) -> Result<(String, usize), String> {
    let (model, tokens) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not MODEL=TOKENS"))?;
    let tokens: usize = tokens
        .trim()
        .parse()
        .map_err(|_| format!("`{tokens}` in `{text}` is not a number of tokens"))?;
    if model.trim().is_empty() || tokens == 0 {
        return Err(format!("`{text}` needs a model and a number of tokens above 0"));
    }
    Ok((model.trim().to_owned(), tokens))
}

/// Which embedder the RAG pipeline uses (one per deployment). `Debug`
/// never prints the API key.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum EmbeddingsConfig {
    /// `kiln/hash-384`, built in.
    #[default]
    Builtin,
    /// An OpenAI-compatible `/embeddings` endpoint.
    OpenAi {
        base_url: String,
        model: String,
        api_key: Option<String>,
    },
}

impl std::fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbeddingsConfig::Builtin => f.write_str("Builtin"),
            EmbeddingsConfig::OpenAi {
                base_url,
                model,
                api_key,
            } => f
                .debug_struct("OpenAi")
                .field("base_url", base_url)
                .field("model", model)
                .field("api_key", &api_key.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

impl ServeArgs {
    /// The MCP client's settings: the operator's stdio servers from
    /// `--mcp-config`; private networks follow `--allow-private-network`.
    /// `--judge-model`, `--eval-concurrency`, `--eval-case-timeout`.
    pub fn eval_settings(&self) -> kiln_core::evals::EvalSettings {
        kiln_core::evals::EvalSettings {
            concurrency: self.eval_concurrency.max(1),
            case_timeout: std::time::Duration::from_secs(self.eval_case_timeout.max(1)),
            judge_model: self.judge_model.clone().filter(|m| !m.trim().is_empty()),
        }
    }

    pub fn mcp_settings(&self) -> anyhow::Result<kiln_providers::mcp::McpSettings> {
        let mut settings = kiln_providers::mcp::McpSettings {
            allow_private_network: self.allow_private_network,
            ..Default::default()
        };
        if let Some(path) = &self.mcp_config {
            #[derive(serde::Deserialize)]
            struct McpConfig {
                #[serde(rename = "mcpServers")]
                mcp_servers: std::collections::BTreeMap<String, kiln_providers::mcp::StdioServer>,
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the MCP configuration {}", path.display()))?;
            let config: McpConfig = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected {{\"mcpServers\": {{\"<name>\": {{\"command\": \"…\", \"args\": […]}}}}}}",
                    path.display()
                )
            })?;
            settings.stdio = config.mcp_servers;
        }
        Ok(settings)
    }

    pub fn embeddings(&self) -> EmbeddingsConfig {
        if self.embeddings_model.trim().is_empty() || self.embeddings_model == "builtin" {
            return EmbeddingsConfig::Builtin;
        }
        let api_key = [ENV_EMBEDDINGS_API_KEY, "OPENAI_API_KEY"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
        EmbeddingsConfig::OpenAi {
            base_url: self.embeddings_base_url.clone(),
            model: self.embeddings_model.clone(),
            api_key,
        }
    }

    pub fn rate_limits(&self) -> kiln_core::control::rate::RateLimits {
        use kiln_core::control::rate::{RateLimit, RateLimits};
        RateLimits {
            run: RateLimit::per_minute(self.rate_limit_runs),
            chat: RateLimit::per_minute(self.rate_limit_chat),
            upload: RateLimit::per_minute(self.rate_limit_uploads),
        }
    }

    pub fn extract_limits(&self) -> kiln_extract::WorkerLimits {
        kiln_extract::WorkerLimits {
            memory_bytes: self.extract_memory_mb.max(64) * 1024 * 1024,
            cpu_seconds: self.extract_cpu_secs.max(1),
        }
    }

    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.auth_cache_ttl_ms)
    }

    pub fn provider_http(&self) -> kiln_providers::HttpSettings {
        kiln_providers::HttpSettings {
            connect_timeout: Duration::from_secs(self.provider_connect_timeout_secs),
            first_byte_timeout: Duration::from_secs(self.provider_first_byte_timeout_secs),
            response_timeout: Duration::from_secs(self.provider_response_timeout_secs),
            idle_timeout: Duration::from_secs(self.provider_idle_timeout_secs),
            max_retries: self.provider_max_retries,
            ..Default::default()
        }
    }
}

/// Where the KEK came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
    DataDir(PathBuf),
}

/// Resolves the KEK: `KILN_SECRET_KEK`, else `--secret-kek-file`, else the
/// generated file under the data dir (created with mode 0600 on first use).
pub fn resolve_kek(
    env_value: Option<String>,
    kek_file: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(Kek, KekSource)> {
    if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
        let kek = Kek::from_base64(&value).with_context(|| format!("{ENV_SECRET_KEK} is invalid"))?;
        return Ok((kek, KekSource::Env));
    }
    if let Some(path) = kek_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let kek = Kek::from_base64(&text).with_context(|| format!("{} is invalid", path.display()))?;
        return Ok((kek, KekSource::File(path.to_owned())));
    }
    let path = data_dir.join(GENERATED_KEK_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let kek = Kek::from_base64(&text).with_context(|| format!("{} is invalid", path.display()))?;
        return Ok((kek, KekSource::DataDir(path)));
    }
    create_private_dir(data_dir)?;
    // Write a private temp file, then hard-link it into place: the link
    // fails if another process got there first, and then its KEK is used.
    let temp = data_dir.join(format!("{GENERATED_KEK_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    write_private(&temp, &Kek::generate_base64())?;
    let linked = std::fs::hard_link(&temp, &path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((Kek::from_base64(&text)?, KekSource::Generated(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let kek = Kek::from_base64(&text).with_context(|| format!("{} is invalid", path.display()))?;
            Ok((kek, KekSource::DataDir(path)))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Creates `dir` (and its parents) readable only by this user when it does
/// not exist yet: it holds the database and, by default, the KEK.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// A warning when the KEK file at `path` (or, for the generated one, its
/// data dir) can be read by other users.
pub fn kek_exposure(source: &KekSource) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (path, dir) = match source {
            KekSource::Env => return None,
            KekSource::File(path) => (path, None),
            KekSource::Generated(path) | KekSource::DataDir(path) => (path, path.parent()),
        };
        let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777);
        if let Some(mode) = mode(path).filter(|m| m & 0o077 != 0) {
            return Some(format!(
                "{} holds the key-encryption key and is readable by other users (mode {mode:o}): chmod 600 it",
                path.display()
            ));
        }
        if let Some(dir) = dir
            && let Some(mode) = mode(dir).filter(|m| m & 0o077 != 0)
        {
            return Some(format!(
                "the data dir {} holds the key-encryption key beside the database and is open to other users \
                 (mode {mode:o}): chmod 700 it, or pass the KEK in {ENV_SECRET_KEK}",
                dir.display()
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = source;
        None
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

/// This server's id, kept in `DATA_DIR/server-id` (created at the first
/// start): the same across restarts, so a restarted server releases the
/// claims it held when it stopped (see `StartOptions::server_id`).
pub fn server_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_settings_never_print_their_key() {
        let config = EmbeddingsConfig::OpenAi {
            base_url: "https://api.openai.com/v1".into(),
            model: "text-embedding-3-small".into(),
            api_key: Some("sk-live-secret".into()),
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk-live-secret"), "{printed}");
        assert!(printed.contains("text-embedding-3-small") && printed.contains("<redacted>"));
    }

    #[cfg(unix)]
    #[test]
    fn a_new_data_dir_is_private_and_an_exposed_kek_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("kiln-data").join("nested");
        let (_, source) = resolve_kek(None, None, &data).unwrap();
        for dir in [&data, &root.path().join("kiln-data")] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        assert_eq!(kek_exposure(&source), None);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let warning = kek_exposure(&source).expect("an open data dir is named");
        assert!(
            warning.contains("chmod 700") && warning.contains("755"),
            "{warning}"
        );
        let file = root.path().join("kek.txt");
        std::fs::write(&file, Kek::generate_base64()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = kek_exposure(&KekSource::File(file)).expect("a readable KEK file is named");
        assert!(warning.contains("chmod 600"), "{warning}");
        assert_eq!(kek_exposure(&KekSource::Env), None);
    }

    #[test]
    fn generated_kek_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = resolve_kek(None, None, dir.path()).unwrap();
        let path = dir.path().join(GENERATED_KEK_FILE);
        assert_eq!(source, KekSource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (second, source) = resolve_kek(None, None, dir.path()).unwrap();
        assert_eq!(source, KekSource::DataDir(path));
        assert_eq!(first.id(), second.id());
    }

    #[test]
    fn env_kek_wins_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let encoded = Kek::generate_base64();
        let (kek, source) = resolve_kek(Some(encoded.clone()), None, dir.path()).unwrap();
        assert_eq!(source, KekSource::Env);
        assert_eq!(kek.id(), Kek::from_base64(&encoded).unwrap().id());
        assert!(!dir.path().join(GENERATED_KEK_FILE).exists());
        let err = resolve_kek(Some("short".into()), None, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(ENV_SECRET_KEK));
    }
}
