//! Evals: advisory runs of an agent's suite (CONTRACT §2.8, §2.12, §4.4).
//!
//! A run is a row that moves `pending` → `running` → `passed` | `failed`
//! (the share of passing cases against the suite's threshold), or
//! `cancelled`, or `error` when the run itself broke. Each case is a real
//! session on the chosen version (live or draft) of the agent, a turn with
//! the case's prompt under a time limit; its answer is scored by a check
//! (contains, regex, json_schema, tool_use: 10 or 0) or by the judge model
//! (0–10, read as JSON from its message, asked again once when malformed).
//! Several cases run at once. Results are written as each case ends, so a
//! reader sees a run progress and a cancelled run keeps what finished.
//!
//! The server running a run holds a lease on it, renewed as it goes; at
//! start, runs whose lease ran out (their server stopped) end as `error`.
//! Cancel works from any server: the run's row says `cancelled` and the
//! runner stops starting cases when it sees that.

pub mod score;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::agents::suites::{EvalCase, EvalPlan};
use crate::agents::{AgentConfigs, Target};
use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Refusal, Result};
use crate::gateway::LlmGateway;
use crate::ids::{AgentId, EvalResultId, EvalRunId, ProjectId, SessionId};
use crate::llm::ChatRequest;
use crate::runtime::{AgentRuntime, CreateSession, EventBody, FollowItem};
use crate::time::{Timestamp, now};
use crate::usage::CallSource;
use score::Judgement;
use store::{EvalStore, RunChange};

/// How runs behave on this server.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Cases of one run at once.
    pub concurrency: usize,
    /// One case's turn, from the prompt to the answer.
    pub case_timeout: Duration,
    /// The deployment's judge (`provider/model`); else the suite's, else
    /// the agent's own model.
    pub judge_model: Option<String>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            concurrency: 4,
            case_timeout: Duration::from_secs(120),
            judge_model: None,
        }
    }
}

/// How long a run's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(20);

/// `EvalRun.status` (CONTRACT §4.4 #33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Pending,
    Running,
    /// Agent-scoped run at or above the suite threshold.
    Passed,
    /// Below it.
    Failed,
    /// Stopped by a caller; the results so far are kept.
    Cancelled,
    /// The run itself broke (not a case: a case's error fails that case).
    Error,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Passed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    pub id: EvalRunId,
    pub project_id: ProjectId,
    pub agent_id: AgentId,
    pub suite_id: String,
    /// The suite version the cases came from; `None` for a draft's cases.
    pub suite_version: Option<String>,
    /// `live` or `draft`.
    pub target: String,
    pub status: RunStatus,
    pub total_cases: i64,
    pub passed: i64,
    pub failed: i64,
    /// Mean case score so far, 0–10.
    pub average_score: f64,
    /// 0–1, from the suite.
    pub threshold: f64,
    pub judge_model: String,
    /// Why the run ended as `error`.
    pub error: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    pub id: EvalResultId,
    pub run_id: EvalRunId,
    pub case_id: String,
    pub case_name: String,
    pub set_name: String,
    /// 0–10.
    pub score: i64,
    pub pass: bool,
    pub reasoning: String,
    pub response: String,
    /// `[{name, args?}]`: the model's tool calls and the sandbox's
    /// primitive, skill and MCP calls, in order.
    pub tool_calls: Value,
    pub duration_ms: i64,
    /// Empty unless the case errored (it then scores 0).
    pub error: String,
    /// The session the case ran in.
    pub session_id: String,
    pub created_at: Timestamp,
}

/// The evals service.
pub struct Evals {
    store: Arc<dyn EvalStore>,
    agents: Arc<AgentConfigs>,
    runtime: Arc<AgentRuntime>,
    gateway: Arc<LlmGateway>,
    settings: EvalSettings,
    /// Runs of this server: set to stop one at once.
    running: Mutex<HashMap<EvalRunId, tokio::sync::watch::Sender<bool>>>,
}

/// A case's turn, read from its events.
struct CaseTurn {
    response: String,
    tool_calls: Vec<Value>,
    names: Vec<String>,
}

impl Evals {
    pub fn new(
        store: Arc<dyn EvalStore>,
        agents: Arc<AgentConfigs>,
        runtime: Arc<AgentRuntime>,
        gateway: Arc<LlmGateway>,
        settings: EvalSettings,
    ) -> Evals {
        Evals {
            store,
            agents,
            runtime,
            gateway,
            settings,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Ends runs whose server stopped (their lease ran out); call at start.
    pub async fn recover(&self) -> Result<u64> {
        Ok(self.store.fail_abandoned_runs(now()).await?)
    }

    /// `POST /agent-configs/:id/eval-runs`: starts a run of the agent's
    /// pinned suite on its live version or its draft and returns it
    /// `pending`; the cases run in the background.
    pub async fn start_run(
        self: &Arc<Self>,
        ctx: &AuthContext,
        agent_id: &AgentId,
        target: Target,
    ) -> Result<EvalRun> {
        let plan = self.agents.eval_plan(ctx, agent_id, target).await?;
        let judge = plan
            .suite
            .judge_model
            .clone()
            .or_else(|| self.settings.judge_model.clone())
            .or_else(|| Some(plan.agent_model.clone()).filter(|m| !m.is_empty()));
        // Resolved now: a judge that is not configured fails the request.
        let (judge_ref, _) = self.gateway.resolve_model(ctx, judge.as_deref()).await?;
        let at = now();
        let run = EvalRun {
            id: EvalRunId::generate(),
            project_id: ctx.project.id.clone(),
            agent_id: plan.agent.id.clone(),
            suite_id: plan.suite.id.clone(),
            suite_version: plan.suite_version.clone(),
            target: target.as_str().to_owned(),
            status: RunStatus::Pending,
            total_cases: plan.cases.len() as i64,
            passed: 0,
            failed: 0,
            average_score: 0.0,
            threshold: plan.suite.threshold,
            judge_model: judge_ref.to_string(),
            error: String::new(),
            created_at: at,
            started_at: None,
            finished_at: None,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::EVAL_RUN_START,
            run.id.as_str(),
        )
        .meta("agent_id", run.agent_id.as_str())
        .meta("target", run.target.clone())
        .meta("cases", run.total_cases);
        self.store.insert_run(&run, &audit).await?;
        self.store.renew_lease(&run.id, at + LEASE).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        self.lock_running().insert(run.id.clone(), stop);
        let evals = self.clone();
        let (ctx, started) = (ctx.clone(), run.clone());
        tokio::spawn(async move {
            let id = started.id.clone();
            let project = started.project_id.clone();
            if let Err(error) = evals.execute(&ctx, started, plan, stopped).await {
                tracing::warn!(run = %id, %error, "an eval run failed");
                let _ = evals
                    .store
                    .transition_run(
                        &project,
                        &id,
                        &RunChange {
                            from: &[RunStatus::Pending, RunStatus::Running],
                            to: RunStatus::Error,
                            error: &error.to_string(),
                            at: now(),
                        },
                        None,
                    )
                    .await;
            }
            evals.lock_running().remove(&id);
        });
        Ok(run)
    }

    fn lock_running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<EvalRunId, tokio::sync::watch::Sender<bool>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the cases, `concurrency` at once, and ends the run.
    async fn execute(
        self: &Arc<Self>,
        ctx: &AuthContext,
        run: EvalRun,
        plan: EvalPlan,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        let project = &ctx.project.id;
        let start = RunChange {
            from: &[RunStatus::Pending],
            to: RunStatus::Running,
            error: "",
            at: now(),
        };
        if !self.store.transition_run(project, &run.id, &start, None).await? {
            return Ok(()); // cancelled before it started
        }
        let target = run.target.clone();
        let mut cases = plan.cases.into_iter();
        // Each case is a task of its own: a case must keep going (it may
        // hold a database connection) while this loop records another.
        let mut in_flight = tokio::task::JoinSet::new();
        let mut lease = tokio::time::interval(LEASE / 3);
        lease.tick().await;
        let mut cancelled = false;
        loop {
            while !cancelled && in_flight.len() < self.settings.concurrency.max(1) {
                let Some(case) = cases.next() else { break };
                let evals = self.clone();
                let (ctx, target, judge, run_id) = (
                    ctx.clone(),
                    target.clone(),
                    run.judge_model.clone(),
                    run.id.clone(),
                );
                in_flight.spawn(async move { evals.run_case(&ctx, &run_id, &target, &judge, case).await });
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = in_flight.join_next() => {
                    let result = joined.map_err(|e| {
                        Error::Store(crate::StoreError::Database(format!("an eval case's task failed: {e}")))
                    })?;
                    self.store.add_result(project, &result).await?;
                }
                _ = lease.tick() => {
                    self.store.renew_lease(&run.id, now() + LEASE).await?;
                    // Another server may have cancelled it.
                    let current = self.store.get_run(project, &run.id).await?;
                    cancelled |= current.is_none_or(|r| r.status == RunStatus::Cancelled);
                }
                _ = stopped.changed() => {
                    cancelled = true;
                }
            }
            if cancelled {
                // Cases in flight are abandoned; what finished stays.
                in_flight.abort_all();
                break;
            }
        }
        if cancelled {
            return Ok(());
        }
        let done = self
            .store
            .get_run(project, &run.id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::EvalRun, &run.id))?;
        let share = if done.total_cases == 0 {
            1.0
        } else {
            done.passed as f64 / done.total_cases as f64
        };
        let end = if share + 1e-9 >= done.threshold {
            RunStatus::Passed
        } else {
            RunStatus::Failed
        };
        let change = RunChange {
            from: &[RunStatus::Running],
            to: end,
            error: "",
            at: now(),
        };
        self.store.transition_run(project, &run.id, &change, None).await?;
        Ok(())
    }

    /// One case: a session on the agent, a turn, a score.
    async fn run_case(
        &self,
        ctx: &AuthContext,
        run_id: &EvalRunId,
        target: &str,
        judge: &str,
        case: EvalCase,
    ) -> EvalResult {
        let started = Instant::now();
        let mut result = EvalResult {
            id: EvalResultId::generate(),
            run_id: run_id.clone(),
            case_id: case.id.clone(),
            case_name: case.spec.name.clone(),
            set_name: case.spec.set_name.clone(),
            score: 0,
            pass: false,
            reasoning: String::new(),
            response: String::new(),
            tool_calls: json!([]),
            duration_ms: 0,
            error: String::new(),
            session_id: String::new(),
            created_at: now(),
        };
        let outcome = async {
            let session = self
                .runtime
                .create_session(
                    ctx,
                    CreateSession {
                        agent_id: Some(case.agent_id.to_string()),
                        target: Some(target.to_owned()),
                        title: Some(format!("eval: {}", case.spec.name)),
                        system_prompt: Some(case.spec.system_prompt.clone()).filter(|s| !s.is_empty()),
                        metadata: Some(json!({ "eval_run_id": run_id.as_str(), "eval_case_id": case.id })),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("the case's session could not start: {e}"))?;
            result.session_id = session.id.to_string();
            let turn = match tokio::time::timeout(
                self.settings.case_timeout,
                self.turn(ctx, &session.id, &case.spec.prompt),
            )
            .await
            {
                Ok(turn) => turn,
                Err(_) => {
                    let _ = self.runtime.cancel_turn(ctx, &session.id).await;
                    Err(format!(
                        "no answer within {} s (the case's time limit)",
                        self.settings.case_timeout.as_secs()
                    ))
                }
            }?;
            result.response = turn.response.clone();
            result.tool_calls = Value::Array(turn.tool_calls.clone());
            match score::check(&case.spec, &turn.response, &turn.names) {
                Some(judgement) => Ok(judgement),
                None => self.judge(ctx, judge, &case, &turn).await,
            }
        }
        .await;
        match outcome {
            Ok(Judgement { score, reason }) => {
                result.score = score;
                result.pass = score >= case.spec.pass_threshold;
                result.reasoning = reason;
            }
            Err(error) => result.error = error,
        }
        result.duration_ms = started.elapsed().as_millis() as i64;
        result.created_at = now();
        result
    }

    /// Runs the case's turn and reads its answer and calls.
    async fn turn(
        &self,
        ctx: &AuthContext,
        session: &SessionId,
        prompt: &str,
    ) -> std::result::Result<CaseTurn, String> {
        let (_, mut events) = self
            .runtime
            .run_turn(ctx, session, prompt)
            .await
            .map_err(|e| format!("the turn could not start: {e}"))?;
        let mut turn = CaseTurn {
            response: String::new(),
            tool_calls: Vec::new(),
            names: Vec::new(),
        };
        while let Some(item) = events.next().await {
            let FollowItem::Event(event) = item else { continue };
            let (name, call) = match &event.body {
                EventBody::Response { content, .. } => {
                    turn.response = content.clone();
                    continue;
                }
                EventBody::ExecuteJs { code, .. } => (
                    "execute_js".to_owned(),
                    json!({ "name": "execute_js", "args": { "code": code } }),
                ),
                EventBody::ToolCall { tool, args, .. } => {
                    (tool.clone(), json!({ "name": tool, "args": args }))
                }
                EventBody::SandboxEvent { kind, summary, .. } => {
                    // `orders.lookup_order()` → `orders.lookup_order`.
                    let name = match kind.as_str() {
                        "skill_call" | "mcp_call" => summary.trim_end_matches("()").to_owned(),
                        _ => kind.clone(),
                    };
                    (name.clone(), json!({ "name": name, "summary": summary }))
                }
                EventBody::InputRequest { message, .. } => {
                    let _ = self.runtime.cancel_turn(ctx, session).await;
                    return Err(format!(
                        "the agent asked for input, which an eval cannot give: {message}"
                    ));
                }
                EventBody::Error { message, .. } => return Err(format!("the turn failed: {message}")),
                EventBody::Done { .. } => return Ok(turn),
                _ => continue,
            };
            turn.names.push(name);
            turn.tool_calls.push(call);
        }
        Err("the turn's events ended before it did".into())
    }

    /// Asks the judge, and once more when its answer is malformed.
    async fn judge(
        &self,
        ctx: &AuthContext,
        judge: &str,
        case: &EvalCase,
        turn: &CaseTurn,
    ) -> std::result::Result<Judgement, String> {
        let request = ChatRequest {
            messages: score::judge_messages(&case.spec, &turn.response, &turn.names),
            temperature: Some(0.0),
            ..Default::default()
        };
        let mut last = String::new();
        for _ in 0..2 {
            let (_, answer) = self
                .gateway
                .complete_structured(
                    ctx,
                    Some(judge),
                    request.clone(),
                    "judgement",
                    score::judgement_schema(),
                    CallSource::Eval,
                )
                .await
                .map_err(|e| format!("the judge failed: {e}"))?;
            match score::parse_judgement(&answer.content) {
                Ok(judgement) => return Ok(judgement),
                Err(why) => last = why,
            }
        }
        Err(format!("the judge answered badly twice; last: {last}"))
    }

    /// `POST /eval-runs/:id/cancel`: stops a pending or running run (from
    /// any server); what finished is kept. 409 `run_ended` once it ended.
    pub async fn cancel_run(&self, ctx: &AuthContext, id: &EvalRunId) -> Result<EvalRun> {
        let run = self.get_run(ctx, id).await?;
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::EVAL_RUN_CANCEL,
            id.as_str(),
        )
        .meta("agent_id", run.agent_id.as_str());
        let moved = self
            .store
            .transition_run(
                &ctx.project.id,
                id,
                &RunChange {
                    from: &[RunStatus::Pending, RunStatus::Running],
                    to: RunStatus::Cancelled,
                    error: "",
                    at: now(),
                },
                Some(&audit),
            )
            .await?;
        if !moved {
            return Err(Error::refused(
                Refusal::RunEnded,
                format!("eval run `{id}` has already ended ({})", run.status.as_str()),
            ));
        }
        if let Some(stop) = self.lock_running().get(id) {
            let _ = stop.send(true);
        }
        self.get_run(ctx, id).await
    }

    /// `GET /eval-runs/:id`.
    pub async fn get_run(&self, ctx: &AuthContext, id: &EvalRunId) -> Result<EvalRun> {
        self.store
            .get_run(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::EvalRun, id))
    }

    /// `GET /eval-runs/:id` with its results.
    pub async fn get_run_with_results(
        &self,
        ctx: &AuthContext,
        id: &EvalRunId,
    ) -> Result<(EvalRun, Vec<EvalResult>)> {
        let run = self.get_run(ctx, id).await?;
        let results = self.store.list_results(&ctx.project.id, id).await?;
        Ok((run, results))
    }

    /// `GET /eval-runs`: newest first, at most `limit`.
    pub async fn list_runs(&self, ctx: &AuthContext, limit: i64) -> Result<Vec<EvalRun>> {
        Ok(self.store.list_runs(&ctx.project.id, None, limit).await?)
    }

    /// `GET /agent-configs/:id/eval-runs?limit=`: the agent's newest runs
    /// (default 5, at most 50).
    pub async fn list_agent_runs(
        &self,
        ctx: &AuthContext,
        agent_id: &AgentId,
        limit: Option<i64>,
    ) -> Result<Vec<EvalRun>> {
        self.agents.get_agent_config(ctx, agent_id).await?;
        let limit = limit.unwrap_or(5).clamp(1, 50);
        Ok(self
            .store
            .list_runs(&ctx.project.id, Some(agent_id), limit)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn statuses_read_back() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert!(RunStatus::Cancelled.is_terminal() && !RunStatus::Running.is_terminal());
    }
}
