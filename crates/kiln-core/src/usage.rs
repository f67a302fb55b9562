//! The usage log: every LLM call's tokens, for `GET /metrics`. The gateway
//! records calls; the control plane flushes before it counts them. It is a
//! component of its own so neither service needs the other for it.
//!
//! Recording never waits on the database: calls queue for a writer task
//! that commits whatever has queued in one transaction (group commit), so
//! a busy server makes one write per batch, not per call.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::ids::{LlmCallId, ProjectId};
use crate::llm::{ModelRef, Usage};
use crate::time::{Timestamp, now};

/// Which feature made an LLM call, recorded with its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSource {
    Chat,
    Conversation,
    OpenAi,
    Agent,
    /// The eval judge.
    Eval,
    /// Studio analyze.
    Studio,
}

impl CallSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CallSource::Chat => "chat",
            CallSource::Conversation => "conversation",
            CallSource::OpenAi => "openai",
            CallSource::Agent => "agent",
            CallSource::Eval => "eval",
            CallSource::Studio => "studio",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub id: LlmCallId,
    pub project_id: ProjectId,
    pub source: CallSource,
    pub model: ModelRef,
    pub usage: Usage,
    pub created_at: Timestamp,
}

impl LlmCall {
    pub fn new(project_id: &ProjectId, source: CallSource, model: &ModelRef, usage: Usage) -> LlmCall {
        LlmCall {
            id: LlmCallId::generate(),
            project_id: project_id.clone(),
            source,
            model: model.clone(),
            usage,
            created_at: now(),
        }
    }
}

/// The usage log's storage port.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Records LLM calls (a batch, in one transaction).
    async fn record_llm_calls(&self, calls: &[LlmCall]) -> StoreResult<()>;
}

/// The usage log of one server.
pub struct UsageLog {
    store: Arc<dyn UsageStore>,
    /// Started on first use, inside the async runtime.
    writer: OnceLock<UsageWriter>,
}

impl UsageLog {
    pub fn new(store: Arc<dyn UsageStore>) -> UsageLog {
        UsageLog {
            store,
            writer: OnceLock::new(),
        }
    }

    /// Queues the call for the writer.
    pub fn record(&self, call: LlmCall) {
        self.writer
            .get_or_init(|| UsageWriter::spawn(self.store.clone()))
            .record(call);
    }

    /// Waits until every call recorded so far is in the database.
    pub async fn flush(&self) {
        if let Some(writer) = self.writer.get() {
            writer.flush().await;
        }
    }
}

/// The writer task's handle.
struct UsageWriter {
    queue: tokio::sync::mpsc::UnboundedSender<UsageCommand>,
}

enum UsageCommand {
    Record(LlmCall),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Most calls written in one transaction.
const USAGE_BATCH: usize = 1000;

/// How long the writer gathers calls before it writes them: a transaction
/// per call would cost a chat request about as much CPU as the rest of it.
/// Reads of usage (`GET /metrics`) and shutdown flush first, so nothing
/// reads or loses what waits.
const USAGE_LINGER: std::time::Duration = std::time::Duration::from_millis(200);

impl UsageWriter {
    fn spawn(store: Arc<dyn UsageStore>) -> Self {
        let (queue, mut commands) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(first) = commands.recv().await {
                let mut batch = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                let until = tokio::time::Instant::now() + USAGE_LINGER;
                while let Some(command) = next.take() {
                    match command {
                        UsageCommand::Record(call) => batch.push(call),
                        UsageCommand::Flush(done) => flushed.push(done),
                    }
                    if batch.len() < USAGE_BATCH && flushed.is_empty() {
                        next = tokio::time::timeout_at(until, commands.recv())
                            .await
                            .ok()
                            .flatten();
                    }
                }
                if !batch.is_empty()
                    && let Err(e) = store.record_llm_calls(&batch).await
                {
                    tracing::warn!(error = %e, calls = batch.len(), "could not record LLM usage");
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        UsageWriter { queue }
    }

    fn record(&self, call: LlmCall) {
        let _ = self.queue.send(UsageCommand::Record(call));
    }

    async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(UsageCommand::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
