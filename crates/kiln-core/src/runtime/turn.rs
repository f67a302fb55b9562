//! One turn: the step loop (model → code → sandbox → model … → answer),
//! bounded by steps, time and tokens, stoppable from outside, every event
//! appended to the log under the turn's claim before anyone sees it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::agents::config::ModuleSkill;
use crate::auth::AuthContext;
use crate::ids::TurnId;
use crate::llm::{ChatRequest, ChatResponse, LlmProvider, Message, ModelRef, Role, ToolSpec, Usage};
use crate::runtime::event::{
    EventBody, MAX_EVENT_CONTENT_BYTES, TurnErrorCode, bounded_result, render_value, truncate_text,
};
use crate::runtime::hub::{Stop, TurnControl, Wake};
use crate::runtime::store::{NewEvent, TurnTotals};
use crate::runtime::{AgentRuntime, Session, SessionStatus, history, prompt};
use crate::sandbox::{CancelFlag, SandboxModule, SandboxOutcome};
use crate::time::now;
use crate::usage::CallSource;
use TurnErrorCode::*;

impl Stop {
    pub(crate) fn new(code: TurnErrorCode, message: impl Into<String>, status: SessionStatus) -> Stop {
        Stop {
            code,
            message: message.into(),
            status,
        }
    }

    pub(crate) fn cancelled() -> Stop {
        Stop::new(Cancelled, "the turn was cancelled", SessionStatus::Active)
    }

    fn failed(code: TurnErrorCode, message: impl Into<String>) -> Stop {
        Stop::new(code, message, SessionStatus::Error)
    }

    /// The turn no longer holds its session (ended elsewhere, or deleted).
    pub(crate) fn lost() -> Stop {
        Stop::failed(Interrupted, "the turn was ended elsewhere")
    }
}

/// What changes while the turn runs.
struct TurnState {
    usage: Usage,
    steps: i64,
    last_event: Instant,
    /// The session's messages so far (the model's history), and the last
    /// event in them.
    history: history::History,
    history_seq: i64,
    paused_total: Duration,
    /// Since when at least one `input()` waits, and how many do.
    paused_since: Option<Instant>,
    pauses: usize,
    /// The session's status as the turn last recorded it.
    status: SessionStatus,
    /// Host calls the turn's blocks have made.
    host_calls: u32,
    /// Tokens held for `ai()` calls in flight, and how many hold some.
    reserved_tokens: u64,
    reservations: usize,
}

/// The most an `ai()` call may answer (its `max_tokens`) while the turn's
/// token budget has room for it.
const AI_MAX_OUTPUT_TOKENS: u64 = 4096;
/// The fewest answer tokens an `ai()` call is started with; with less room
/// left the turn has spent its budget.
const AI_MIN_OUTPUT_TOKENS: u64 = 16;

/// Tokens held for one `ai()` call from before it starts until its usage
/// is counted; dropping it gives them back.
pub(crate) struct TokenReservation<'a> {
    turn: &'a Turn,
    tokens: u64,
    /// The call's `max_tokens`.
    pub(crate) max_output: u32,
}

impl Drop for TokenReservation<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.turn.state();
            state.reserved_tokens = state.reserved_tokens.saturating_sub(self.tokens);
            state.reservations = state.reservations.saturating_sub(1);
        }
        self.turn.tokens_freed.notify_waiters();
    }
}

/// Holds the turn's clock while a person is asked; dropping it (also when
/// the asking call is aborted) lets the clock run again.
pub(crate) struct Paused<'a>(&'a Turn);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.pauses = state.pauses.saturating_sub(1);
        if state.pauses == 0
            && let Some(since) = state.paused_since.take()
        {
            state.paused_total += since.elapsed();
        }
    }
}

/// A model call the reply asked for.
enum Call {
    Code {
        code: String,
        call_id: Option<String>,
    },
    Native {
        tool: String,
        args: Map<String, Value>,
        call_id: String,
    },
}

pub(crate) struct Turn {
    pub(crate) runtime: Arc<AgentRuntime>,
    pub(crate) ctx: AuthContext,
    pub(crate) session: Session,
    pub(crate) turn_id: TurnId,
    pub(crate) control: TurnControl,
    pub(crate) model: ModelRef,
    pub(crate) provider: Arc<dyn LlmProvider>,
    /// The session's skill modules, as the sandbox takes them.
    pub(crate) modules: Vec<SandboxModule>,
    started: Instant,
    state: Mutex<TurnState>,
    /// Woken when an `ai()` call gives its reserved tokens back.
    tokens_freed: tokio::sync::Notify,
}

impl Turn {
    pub(crate) fn new(
        runtime: Arc<AgentRuntime>,
        ctx: AuthContext,
        session: Session,
        turn_id: TurnId,
        control: TurnControl,
        (model, provider): (ModelRef, Arc<dyn LlmProvider>),
        (history, history_seq): (history::History, i64),
    ) -> Turn {
        let started = Instant::now();
        let modules = session
            .modules
            .iter()
            .map(ModuleSkill::sandbox_module)
            .chain(session.mcp_servers.iter().map(|server| {
                SandboxModule::host(
                    &server.name,
                    server.tools.iter().map(|t| t.name.clone()).collect(),
                )
            }))
            .collect();
        Turn {
            modules,
            runtime,
            ctx,
            session,
            turn_id,
            control,
            model,
            provider,
            started,
            state: Mutex::new(TurnState {
                usage: Usage::default(),
                steps: 0,
                last_event: started,
                history,
                history_seq,
                paused_total: Duration::ZERO,
                paused_since: None,
                pauses: 0,
                status: SessionStatus::Running,
                host_calls: 0,
                reserved_tokens: 0,
                reservations: 0,
            }),
            tokens_freed: tokio::sync::Notify::new(),
        }
    }

    /// The history as the turn left it, compacted, and its last event: the
    /// next turn of the session starts from it.
    pub(crate) fn take_history(&self) -> (history::History, i64) {
        let mut state = self.state();
        let mut history = std::mem::take(&mut state.history);
        history.compact(self.runtime.config.history.bytes_for(&self.model));
        (history, state.history_seq)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time spent waiting for `input()` answers so far.
    pub(crate) fn paused(&self) -> Duration {
        let state = self.state();
        state.paused_total + state.paused_since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Stops the turn's clocks until the guard is dropped.
    pub(crate) fn pause(&self) -> Paused<'_> {
        let mut state = self.state();
        state.pauses += 1;
        if state.paused_since.is_none() {
            state.paused_since = Some(Instant::now());
        }
        Paused(self)
    }

    /// Appends `body` to the log, then wakes the readers. Returns the
    /// event's sequence number.
    pub(crate) async fn emit(&self, body: EventBody, status: Option<SessionStatus>) -> Result<i64, Stop> {
        let duration_ms = {
            let mut state = self.state();
            let elapsed = state.last_event.elapsed();
            state.last_event = Instant::now();
            elapsed.as_millis() as i64
        };
        let event = NewEvent {
            body: body.clone(),
            duration_ms,
            at: now(),
            status,
            totals: None,
        };
        let seq = self.append(event).await?;
        let mut state = self.state();
        if body.step_fields().is_some() && body.is_streamed() {
            state.steps += 1;
        }
        state.history.push(&body);
        state.history_seq = state.history_seq.max(seq);
        if let Some(status) = status
            && status != state.status
        {
            state.status = status;
            drop(state);
            self.note_patched();
        }
        Ok(seq)
    }

    /// Tells realtime watchers the session changed (status, totals).
    fn note_patched(&self) {
        self.runtime.news.note(
            crate::runtime::news::SessionChange::Patched,
            &self.ctx.project.id,
            &self.session.id,
            None,
        );
    }

    async fn append(&self, event: NewEvent) -> Result<i64, Stop> {
        let stored = self
            .runtime
            .store
            .append_event(&self.ctx.project.id, &self.session.id, &self.turn_id, &event)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, session = %self.session.id, "appending a turn event failed");
                Stop::failed(Internal, "the turn could not be recorded")
            })?
            .ok_or_else(Stop::lost)?;
        let seq = stored.seq;
        self.runtime
            .hub
            .publish(&self.session.id, Wake::Event(Arc::new(stored)));
        Ok(seq)
    }

    /// Counts a model call's tokens against the turn's limit.
    pub(crate) async fn add_usage(&self, usage: Usage) -> Result<(), Stop> {
        self.runtime
            .gateway
            .record_call(&self.ctx.project.id, CallSource::Agent, &self.model, usage);
        let total = {
            let mut state = self.state();
            state.usage += usage;
            u64::from(state.usage.total())
        };
        let limit = self.runtime.config.max_turn_tokens;
        if total > limit {
            return Err(Stop::failed(
                TokenLimit,
                format!("the turn used {total} tokens, over its limit of {limit}"),
            ));
        }
        Ok(())
    }

    /// Counts one host call against the turn's limit; past it the call is
    /// refused with a message for the code.
    pub(crate) fn count_host_call(&self) -> Result<(), String> {
        let limit = self.runtime.config.max_host_calls_per_turn;
        let mut state = self.state();
        if state.host_calls >= limit {
            return Err(format!(
                "this turn has made {limit} host calls (ai, fetch, search, data, files, input, tools), \
                 its limit; do the rest in the answer or in fewer, larger calls"
            ));
        }
        state.host_calls += 1;
        Ok(())
    }

    /// Holds tokens for an `ai()` call of `prompt` before it starts, so
    /// calls in flight together cannot spend past the turn's budget: the
    /// prompt (estimated high, a token per 3 bytes) and the answer's
    /// `max_tokens`, [`AI_MAX_OUTPUT_TOKENS`] or what is left. While other
    /// calls hold what is missing, it waits for them; when nothing is held
    /// and too little is left, the turn has spent its budget.
    pub(crate) async fn reserve_tokens(&self, prompt: &str) -> Result<TokenReservation<'_>, Stop> {
        let limit = self.runtime.config.max_turn_tokens;
        let prompt_tokens = prompt.len() as u64 / 3 + 16;
        loop {
            let freed = self.tokens_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state();
                let room = limit
                    .saturating_sub(u64::from(state.usage.total()))
                    .saturating_sub(state.reserved_tokens);
                let output = if room >= prompt_tokens + AI_MAX_OUTPUT_TOKENS {
                    Some(AI_MAX_OUTPUT_TOKENS)
                } else if state.reservations > 0 {
                    None
                } else if room >= prompt_tokens + AI_MIN_OUTPUT_TOKENS {
                    Some(room - prompt_tokens)
                } else {
                    let used = state.usage.total();
                    return Err(Stop::failed(
                        TokenLimit,
                        format!(
                            "the turn used {used} of its {limit} tokens; too few are left for an ai() call \
                             (a prompt of about {prompt_tokens} tokens)"
                        ),
                    ));
                };
                if let Some(output) = output {
                    let tokens = prompt_tokens + output;
                    state.reserved_tokens += tokens;
                    state.reservations += 1;
                    return Ok(TokenReservation {
                        turn: self,
                        tokens,
                        max_output: u32::try_from(output).unwrap_or(u32::MAX),
                    });
                }
            }
            freed.await;
        }
    }

    /// One model call with the session's model.
    pub(crate) async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, Stop> {
        let mut request = request;
        request.model = self.model.model.clone();
        let response = self.provider.complete(&request).await.map_err(|e| {
            tracing::warn!(error = %e, session = %self.session.id, "the model failed mid-turn");
            Stop::failed(UpstreamError, e.to_string())
        })?;
        self.add_usage(response.usage).await?;
        Ok(response)
    }

    /// Runs the turn to its end and records the end. Never fails: whatever
    /// happens becomes the terminal event.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut stop_rx = self.control.stop.subscribe();
        let outcome = tokio::select! {
            outcome = self.clone().steps() => outcome,
            stop = stop_rx.wait_for(Option::is_some) => Err(stop
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_else(Stop::cancelled)),
            stop = self.deadline() => Err(stop),
        };
        self.finish(outcome).await;
        self.runtime.hub.unregister(&self.session.id, &self.turn_id);
    }

    /// Records the turn's end: the answer and `done` together, or the
    /// `error`, either way releasing the claim.
    async fn finish(&self, outcome: Result<EventBody, Stop>) {
        let mut events = Vec::with_capacity(2);
        let (body, status) = match outcome {
            Ok(response) => {
                let duration_ms = self.state().last_event.elapsed().as_millis() as i64;
                events.push(NewEvent {
                    body: response,
                    duration_ms,
                    at: now(),
                    status: None,
                    totals: None,
                });
                let (usage, steps) = {
                    let state = self.state();
                    (state.usage, state.steps + 1)
                };
                (EventBody::Done { steps, tokens: usage }, SessionStatus::Active)
            }
            Err(stop) => (
                EventBody::Error {
                    message: stop.message,
                    code: stop.code,
                },
                stop.status,
            ),
        };
        let usage = self.state().usage;
        let elapsed = self.started.elapsed().saturating_sub(self.paused());
        events.push(NewEvent {
            body,
            duration_ms: 0,
            at: now(),
            status: Some(status),
            totals: Some(TurnTotals {
                usage,
                duration_ms: elapsed.as_millis() as i64,
            }),
        });
        match self
            .runtime
            .store
            .append_events(&self.ctx.project.id, &self.session.id, &self.turn_id, &events)
            .await
        {
            Ok(Some(stored)) => {
                for event in stored {
                    self.runtime
                        .hub
                        .publish(&self.session.id, Wake::Event(Arc::new(event)));
                }
                self.note_patched();
            }
            // The end was already recorded elsewhere.
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, session = %self.session.id, "recording a turn's end failed")
            }
        }
    }

    /// Resolves when the turn has run past its time (pauses not counted).
    async fn deadline(&self) -> Stop {
        let limit = self.runtime.config.max_turn_time;
        loop {
            let due = self.started + limit + self.paused();
            if Instant::now() >= due && self.state().paused_since.is_none() {
                return Stop::failed(
                    TimeLimit,
                    format!("the turn ran past its time limit of {} s", limit.as_secs()),
                );
            }
            tokio::time::sleep_until(due.max(Instant::now() + Duration::from_millis(10)).into()).await;
        }
    }

    /// The step loop; its answer is the turn's `response`.
    async fn steps(self: Arc<Self>) -> Result<EventBody, Stop> {
        let config = &self.runtime.config;
        let mut tools = vec![prompt::execute_js_tool()];
        tools.extend(self.session.tools.iter().filter_map(|t| prompt::native_tool(t)));
        tools.extend(self.session.client_tools.iter().cloned());
        let system = Message::new(
            Role::System,
            self.runtime.agent_prompt(&self.ctx, &self.session).await,
        );
        for _ in 0..config.max_steps {
            let response = self.call_model(&system, &tools).await?;
            let (text, calls) = calls_of(&response);
            // The call's tokens go on the first event that closes it.
            let mut tokens = Some(response.usage);
            if calls.is_empty() {
                // Written with `done`, in one transaction.
                let content = truncate_text(&response.content, MAX_EVENT_CONTENT_BYTES);
                return Ok(EventBody::Response { content, tokens });
            }
            self.narrate(&text, &calls, &mut tokens).await?;
            for call in calls {
                self.clone().run_call(call, &mut tokens).await?;
            }
        }
        Err(Stop::failed(
            StepLimit,
            format!(
                "the turn reached its limit of {} steps without an answer",
                config.max_steps
            ),
        ))
    }

    /// One model call over the system prompt and the history so far.
    async fn call_model(&self, system: &Message, tools: &[ToolSpec]) -> Result<ChatResponse, Stop> {
        let budget = self.runtime.config.history.bytes_for(&self.model);
        let (note, history) = self.state().history.messages(budget);
        let mut messages = vec![system.clone()];
        messages.extend(note);
        self.complete(ChatRequest {
            messages,
            history,
            tools: tools.to_vec(),
            ..Default::default()
        })
        .await
    }

    /// The model's text before its calls, as an `llm` sandbox event (always
    /// when a function-call tool comes first, which has no event of its own
    /// to carry the call's tokens).
    async fn narrate(&self, text: &str, calls: &[Call], tokens: &mut Option<Usage>) -> Result<(), Stop> {
        let native_first = matches!(calls.first(), Some(Call::Native { .. }));
        if text.trim().is_empty() && !native_first {
            return Ok(());
        }
        let summary = match (prompt::summary_line(text), calls.first()) {
            (s, Some(Call::Native { tool, .. })) if s.is_empty() => format!("calling {tool}"),
            (s, _) => s,
        };
        let tokens_here = if native_first { tokens.take() } else { None };
        self.emit(
            EventBody::SandboxEvent {
                kind: "llm".into(),
                summary,
                content: truncate_text(text, MAX_EVENT_CONTENT_BYTES),
                tokens: tokens_here,
            },
            None,
        )
        .await?;
        Ok(())
    }

    /// Runs one call of the model's reply: a code block in the sandbox, or
    /// a function-call tool; each as its call event and its result event.
    async fn run_call(self: Arc<Self>, call: Call, tokens: &mut Option<Usage>) -> Result<(), Stop> {
        match call {
            Call::Code { code, call_id } => {
                self.emit(
                    EventBody::ExecuteJs {
                        code: code.clone(),
                        tokens: tokens.take(),
                        call_id,
                    },
                    None,
                )
                .await?;
                let outcome = self.clone().run_block(&code).await;
                // `running` again, should the block have ended while an
                // `input()` waited.
                self.emit(block_result(outcome), Some(SessionStatus::Running))
                    .await?;
            }
            Call::Native { tool, args, .. } if self.is_client_tool(&tool) => {
                self.call_client_tool(tool, args).await?;
            }
            Call::Native { tool, args, call_id } => {
                self.emit(
                    EventBody::ToolCall {
                        tool: tool.clone(),
                        args: args.clone(),
                        call_id: Some(call_id),
                        client: false,
                    },
                    None,
                )
                .await?;
                let result = match self.native_tool(&tool, Value::Object(args)).await {
                    Ok(value) => value,
                    Err(message) => serde_json::json!({ "error": message }),
                };
                let content = truncate_text(&render_value(&result), MAX_EVENT_CONTENT_BYTES);
                self.emit(
                    EventBody::ToolResult {
                        tool,
                        result: bounded_result(result),
                        content,
                        call_id: None,
                    },
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Runs one block in the sandbox, waiting for a slot.
    async fn run_block(self: Arc<Self>, code: &str) -> SandboxOutcome {
        let runtime = &self.runtime;
        let slot = runtime.blocks.acquire(&self.ctx.project.id).await;
        let host = Arc::new(super::host::TurnHost::new(self.clone(), Some(slot)));
        let limits = crate::sandbox::SandboxLimits {
            cpu_group: cpu_group(&self.ctx.project.id),
            ..runtime.config.sandbox
        };
        let outcome = runtime
            .sandbox
            .run(code, host.clone(), limits, CancelFlag::new())
            .await;
        // A turn that is stopping drops the last notes; it ends anyway.
        let _ = host.emit_skill_calls().await;
        outcome
    }
}

/// The text and the calls of a reply: tool calls when it made any, else
/// the first fenced js block of its text.
fn calls_of(response: &ChatResponse) -> (String, Vec<Call>) {
    if !response.tool_calls.is_empty() {
        let calls = response
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let call_id = if call.id.is_empty() {
                    format!("call_{i}")
                } else {
                    call.id.clone()
                };
                let args: Option<Map<String, Value>> = serde_json::from_str(&call.arguments).ok();
                if call.name == prompt::EXECUTE_JS {
                    // Some models send the code itself instead of `{"code": …}`.
                    let code = args
                        .as_ref()
                        .and_then(|a| a.get("code"))
                        .and_then(Value::as_str)
                        .map_or_else(|| call.arguments.clone(), str::to_owned);
                    Call::Code {
                        code,
                        call_id: Some(call_id),
                    }
                } else {
                    Call::Native {
                        tool: call.name.clone(),
                        args: args.unwrap_or_default(),
                        call_id,
                    }
                }
            })
            .collect();
        return (response.content.clone(), calls);
    }
    match prompt::fenced_code(&response.content) {
        Some((before, code)) => (before, vec![Call::Code { code, call_id: None }]),
        None => (response.content.clone(), Vec::new()),
    }
}

/// The `execute_js_result` of a block.
fn block_result(outcome: SandboxOutcome) -> EventBody {
    let mut console = outcome.console;
    if outcome.console_truncated {
        console.push_str("\n[console output truncated]");
    }
    let with_console = |text: String| {
        if console.is_empty() {
            text
        } else {
            format!("Console:\n{console}\n\nResult:\n{text}")
        }
    };
    match outcome.result {
        Ok(value) => EventBody::ExecuteJsResult {
            content: truncate_text(&with_console(render_value(&value)), MAX_EVENT_CONTENT_BYTES),
            result: bounded_result(value),
            error: None,
        },
        Err(error) => {
            let message = error.to_string();
            let content = if console.is_empty() {
                format!("Error: {message}")
            } else {
                format!("Error: {message}\n\nConsole:\n{console}")
            };
            EventBody::ExecuteJsResult {
                content: truncate_text(&content, MAX_EVENT_CONTENT_BYTES),
                result: Value::Null,
                error: Some(message),
            }
        }
    }
}

/// The sandbox's CPU group of a project: its blocks share one fair part of
/// the cores.
fn cpu_group(project: &crate::ids::ProjectId) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    project.as_str().hash(&mut hasher);
    hasher.finish()
}
