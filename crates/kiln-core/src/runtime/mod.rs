//! The agent runtime: sessions, turns, the step loop, the sandbox's
//! primitives, human input, cancel, and the durable event log readers
//! follow.
//!
//! A turn runs in a task of its own, so a dropped connection does not stop
//! it; `cancel` does. Every event is appended to the session's log (durable,
//! numbered per session) before anyone sees it; readers (the `run` stream,
//! `GET /agents/:id/events`) read the log from a cursor and are woken by
//! the in-process hub, which on PostgreSQL also relays other servers'
//! notifications. So a client that drops reconnects with its last sequence
//! number and misses nothing, and a reader on one server follows a turn
//! running on another.

pub mod event;
pub mod fetch;
pub mod files;
pub mod session;
pub mod store;
pub mod web_search;

pub use event::{EventBody, EventKind, StoredEvent, TurnErrorCode};
pub use session::{Session, SessionStatus, Step};

pub mod client_tools;
mod history;
mod host;
pub(crate) mod hub;
pub mod news;
pub mod prompt;
pub mod queue;
pub mod replay;
pub mod sessions;
mod slots;
mod turn;

pub use sessions::{CreateSession, EventFollow, FollowItem, Reap};

use std::sync::Arc;
use std::time::Duration;

use crate::agents::AgentConfigs;
use crate::control::ControlPlane;
use crate::gateway::LlmGateway;
use crate::rag::Rag;
use crate::sandbox::{Sandbox, SandboxLimits};
use store::AgentStore;

/// The bounds of a turn and of what it may do. Every one ends the turn with
/// an `error` event when hit, never a hang.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Model calls per turn (each code block or tool round is one).
    pub max_steps: u32,
    /// Wall-clock time of a turn, time spent waiting for `input()` excluded.
    pub max_turn_time: Duration,
    /// Prompt plus completion tokens per turn, `ai()` sub-calls included.
    pub max_turn_tokens: u64,
    /// How long `input()` waits for an answer.
    pub input_timeout: Duration,
    /// Each code block's bounds.
    pub sandbox: SandboxLimits,
    /// Code blocks running at once on this server; more wait their turn,
    /// a freed slot going to the project that holds fewest, and no project
    /// holds more than three quarters.
    pub max_concurrent_blocks: usize,
    /// Code blocks waiting for `input()` answers on this server (each is
    /// suspended, without thread or heap, once it has waited 50 ms), half
    /// of them at most per project; past it `input()` rejects.
    pub max_paused_blocks: usize,
    /// Host calls (`ai`, `fetch`, `search`, `data.set`, …) one turn may
    /// make, all its blocks together; later calls reject.
    pub max_host_calls_per_turn: u32,
    /// History sent to the model, by model; older messages drop first.
    pub history: HistoryBudget,
    /// Heartbeat comments on idle event streams.
    pub heartbeat: Duration,
    /// How long a turn's claim lasts without renewal (a server that died
    /// mid-turn is detected after this).
    pub turn_lease: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_steps: 10,
            max_turn_time: Duration::from_secs(300),
            max_turn_tokens: 200_000,
            input_timeout: Duration::from_secs(600),
            sandbox: SandboxLimits::default(),
            max_concurrent_blocks: 16,
            max_paused_blocks: 20_000,
            max_host_calls_per_turn: 256,
            history: HistoryBudget::default(),
            heartbeat: Duration::from_secs(15),
            turn_lease: Duration::from_secs(20),
        }
    }
}

/// How much of a session's history goes to its model, in tokens: the
/// first of `models` that names the model (a whole `provider/model`, or a
/// provider: `ollama`), else `default_tokens`. Tokens are counted high,
/// one per [`HistoryBudget::BYTES_PER_TOKEN`] bytes, as no tokenizer of
/// every provider is at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryBudget {
    pub default_tokens: usize,
    pub models: Vec<(String, usize)>,
}

impl HistoryBudget {
    pub const BYTES_PER_TOKEN: usize = 3;

    /// Tokens of history for `model`.
    pub fn tokens_for(&self, model: &crate::llm::ModelRef) -> usize {
        let full = model.to_string();
        self.models
            .iter()
            .find(|(name, _)| *name == full)
            .or_else(|| self.models.iter().find(|(name, _)| name == model.provider.name()))
            .map_or(self.default_tokens, |(_, tokens)| *tokens)
    }

    /// The same, in bytes of message text.
    pub(crate) fn bytes_for(&self, model: &crate::llm::ModelRef) -> usize {
        self.tokens_for(model)
            .saturating_mul(Self::BYTES_PER_TOKEN)
            .max(1)
    }
}

impl Default for HistoryBudget {
    /// 32,000 tokens (within every current hosted model's window, with room
    /// for the prompt and the answer); Ollama's servers default to a small
    /// window, so 3,000 there.
    fn default() -> Self {
        HistoryBudget {
            default_tokens: 32_000,
            models: vec![("ollama".to_owned(), 3_000)],
        }
    }
}

/// What the runtime is built from.
pub struct RuntimeSetup {
    pub sandbox: Arc<dyn Sandbox>,
    pub fetch: Arc<dyn fetch::WebFetch>,
    pub web_search: Arc<dyn web_search::WebSearch>,
    pub config: RuntimeConfig,
}

/// The agent runtime of one server. It uses the LLM gateway (model
/// resolution, usage), RAG (`search`, the indexes in the prompt), the
/// agent configs (sessions on agents) and the control plane (a queued
/// turn acts as the key that queued it), and nothing else; turns hold it,
/// never a whole application.
pub struct AgentRuntime {
    pub(crate) store: Arc<dyn AgentStore>,
    pub(crate) gateway: Arc<LlmGateway>,
    pub(crate) rag: Arc<Rag>,
    /// Sessions on agents start from their versions.
    pub(crate) agents: Arc<AgentConfigs>,
    pub(crate) control: Arc<ControlPlane>,
    pub(crate) sandbox: Arc<dyn Sandbox>,
    pub(crate) fetch: Arc<dyn fetch::WebFetch>,
    pub(crate) web_search: Arc<dyn web_search::WebSearch>,
    pub(crate) config: RuntimeConfig,
    pub(crate) hub: hub::Hub,
    /// Session news for realtime watchers.
    pub(crate) news: news::Newsroom,
    /// Slots for running blocks, shared fairly between projects; a block
    /// waiting for `input()` gives its slot back while it waits.
    pub(crate) blocks: Arc<slots::BlockSlots>,
    /// Places for blocks waiting for `input()`.
    pub(crate) paused_blocks: Arc<slots::PausedBlocks>,
    /// Sessions' histories as their last turn here left them.
    pub(crate) histories: history::HistoryCache,
    /// Set at shutdown: no queued turn starts here any more.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Whether other servers share the store (PostgreSQL): their wake-ups
    /// come through signals that can be lost, so waiting readers and
    /// `input()` calls also look at the database now and then. Alone on
    /// its store (SQLite) every wake-up is in process and they need not.
    /// Until the upkeep has asked the store, assumed.
    pub(crate) shared_store: std::sync::atomic::AtomicBool,
}

/// How often a turn waiting for an answer (`input()`, a client tool's
/// result) looks at the database when it is alone on its store: every
/// answer wakes it in process, so this only backs that up, and ten thousand
/// waiting turns make 33 looks a second.
const ANSWER_POLL_ALONE: std::time::Duration = std::time::Duration::from_secs(300);

impl AgentRuntime {
    /// See [`AgentRuntime::shared_store`].
    pub(crate) fn shared_store(&self) -> bool {
        self.shared_store.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How often a turn waiting for an answer looks at the database:
    /// `shared` (a missed signal costs at most this) when other servers
    /// share the store, else [`ANSWER_POLL_ALONE`].
    pub(crate) fn answer_poll(&self, shared: std::time::Duration) -> std::time::Duration {
        if self.shared_store() {
            shared
        } else {
            ANSWER_POLL_ALONE
        }
    }

    pub fn new(
        store: Arc<dyn AgentStore>,
        gateway: Arc<LlmGateway>,
        rag: Arc<Rag>,
        agents: Arc<AgentConfigs>,
        control: Arc<ControlPlane>,
        setup: RuntimeSetup,
    ) -> AgentRuntime {
        AgentRuntime {
            store,
            gateway,
            rag,
            agents,
            control,
            blocks: Arc::new(slots::BlockSlots::new(setup.config.max_concurrent_blocks)),
            paused_blocks: Arc::new(slots::PausedBlocks::new(setup.config.max_paused_blocks)),
            histories: history::HistoryCache::default(),
            sandbox: setup.sandbox,
            fetch: setup.fetch,
            web_search: setup.web_search,
            config: setup.config,
            hub: hub::Hub::default(),
            news: news::Newsroom::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            shared_store: std::sync::atomic::AtomicBool::new(true),
        }
    }
    /// `project`'s use of this server's sandbox now.
    pub fn sandbox_use(&self, project: &crate::ids::ProjectId) -> SandboxUse {
        let (running_blocks, waiting_blocks, running_blocks_limit) = self.blocks.use_by(project);
        let (paused_blocks, paused_blocks_limit) = self.paused_blocks.use_by(project);
        SandboxUse {
            running_blocks,
            waiting_blocks,
            running_blocks_limit,
            paused_blocks,
            paused_blocks_limit,
        }
    }
}

/// A project's code blocks on one server, now, and its share of the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUse {
    /// Holding a slot (running, or waiting on host calls).
    pub running_blocks: usize,
    /// Waiting for a slot.
    pub waiting_blocks: usize,
    pub running_blocks_limit: usize,
    /// Paused on `input()`.
    pub paused_blocks: usize,
    pub paused_blocks_limit: usize,
}

#[cfg(test)]
mod budget_tests {
    use super::HistoryBudget;
    use crate::llm::ModelRef;

    #[test]
    fn a_models_budget_is_named_by_its_whole_name_or_its_provider() {
        let budget = HistoryBudget {
            default_tokens: 1_000,
            models: vec![("openai/gpt-4o".into(), 50_000), ("ollama".into(), 3_000)],
        };
        let tokens = |m: &str| budget.tokens_for(&ModelRef::parse(m).unwrap());
        assert_eq!(tokens("openai/gpt-4o"), 50_000);
        assert_eq!(tokens("gpt-4o"), 50_000, "a bare name is its provider's");
        assert_eq!(tokens("openai/gpt-4o-mini"), 1_000);
        assert_eq!(tokens("ollama/llama3.2"), 3_000);
        assert_eq!(budget.bytes_for(&ModelRef::parse("ollama/x").unwrap()), 9_000);
    }
}
