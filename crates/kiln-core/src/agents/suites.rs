//! Eval cases and suites as the project lists them (CONTRACT §2.12, §4.4
//! #36), derived from the agents (see [`super::eval_cases`]): each agent
//! has one suite, whose versions are the agent's versions and whose cases
//! are the `evals/*.json` of each. The cases listed are each agent's
//! current ones: its `dev` draft's, else its live version's.

use crate::agents::config::{AgentConfig, DEFAULT_ENVIRONMENT, DraftSpec};
use crate::agents::eval_cases::{DEFAULT_SUITE_THRESHOLD, EvalCaseSpec, suite_id};
use crate::agents::{AgentConfigs, Target};
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Refusal, Result};
use crate::ids::{AgentId, AgentVersionId, ProjectId};
use crate::time::Timestamp;

/// One eval case with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCase {
    pub id: String,
    pub project_id: ProjectId,
    pub agent_id: AgentId,
    pub spec: EvalCaseSpec,
    /// When the draft or version holding it was synced or deployed.
    pub created_at: Timestamp,
}

/// An agent's suite.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSuite {
    pub id: String,
    pub project_id: ProjectId,
    pub agent_id: AgentId,
    pub name: String,
    pub description: String,
    /// 0–1: the share of cases that must pass.
    pub threshold: f64,
    /// `evalSuite.judgeModel`, when set.
    pub judge_model: Option<String>,
    /// The agent's live version.
    pub active_version_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A frozen list of cases: one per deploy of the suite's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSuiteVersion {
    /// The agent version's id.
    pub id: String,
    pub suite_id: String,
    pub semver: String,
    pub case_ids: Vec<String>,
    pub created_at: Timestamp,
}

/// What an eval run of an agent runs: its suite, the cases, and the model
/// the agent answers with (the judge's default).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPlan {
    pub agent: AgentConfig,
    pub suite: EvalSuite,
    /// The suite version the cases come from; `None` for a draft.
    pub suite_version: Option<String>,
    pub cases: Vec<EvalCase>,
    /// `provider/model`, or empty for the project's default.
    pub agent_model: String,
}

impl AgentConfigs {
    /// The agent's live spec (and when it was deployed), else its `dev`
    /// draft's.
    async fn current_spec(
        &self,
        ctx: &AuthContext,
        agent: &AgentConfig,
    ) -> Result<Option<(DraftSpec, Timestamp)>> {
        if let Some((_, spec)) = self.live_spec(ctx, &agent.id).await? {
            return Ok(Some((spec, agent.published_at.unwrap_or(agent.updated_at))));
        }
        Ok(self
            .store
            .get_draft(&ctx.project.id, &agent.id, DEFAULT_ENVIRONMENT)
            .await?
            .map(|d| (d.spec, d.updated_at)))
    }

    fn suite_of(&self, agent: &AgentConfig, spec: Option<&DraftSpec>) -> EvalSuite {
        let settings = spec.map(|s| &s.eval_settings);
        EvalSuite {
            id: suite_id(&agent.id),
            project_id: agent.project_id.clone(),
            agent_id: agent.id.clone(),
            name: spec
                .and_then(|s| s.eval_suite.clone())
                .unwrap_or_else(|| agent.local_id.clone()),
            description: settings
                .and_then(|s| s.description.clone())
                .unwrap_or_else(|| format!("The evals of agent `{}`", agent.local_id)),
            threshold: settings
                .and_then(|s| s.threshold)
                .unwrap_or(DEFAULT_SUITE_THRESHOLD),
            judge_model: settings.and_then(|s| s.judge_model.clone()),
            active_version_id: agent.active_version_id.clone(),
            created_at: agent.created_at,
            updated_at: agent.published_at.unwrap_or(agent.updated_at),
        }
    }

    /// `GET /eval-suites`: one per agent, by agent.
    pub async fn list_eval_suites(&self, ctx: &AuthContext) -> Result<Vec<EvalSuite>> {
        let mut suites = Vec::new();
        for agent in self.store.list_agent_configs(&ctx.project.id).await? {
            let spec = self.current_spec(ctx, &agent).await?;
            suites.push(self.suite_of(&agent, spec.as_ref().map(|(s, _)| s)));
        }
        Ok(suites)
    }

    /// The agent whose suite `id` is.
    pub(crate) async fn suite_owner(&self, ctx: &AuthContext, id: &str) -> Result<Option<AgentConfig>> {
        Ok(self
            .store
            .list_agent_configs(&ctx.project.id)
            .await?
            .into_iter()
            .find(|a| suite_id(&a.id) == id))
    }

    /// `GET /eval-suites/:id`.
    pub async fn get_eval_suite(&self, ctx: &AuthContext, id: &str) -> Result<EvalSuite> {
        let agent = self
            .suite_owner(ctx, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::EvalSuite, id))?;
        let spec = self.current_spec(ctx, &agent).await?;
        Ok(self.suite_of(&agent, spec.as_ref().map(|(s, _)| s)))
    }

    /// `GET /eval-suites/:id/versions`: newest first.
    pub async fn list_eval_suite_versions(
        &self,
        ctx: &AuthContext,
        id: &str,
    ) -> Result<Vec<EvalSuiteVersion>> {
        let agent = self
            .suite_owner(ctx, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::EvalSuite, id))?;
        Ok(self
            .store
            .list_versions(&ctx.project.id, &agent.id)
            .await?
            .into_iter()
            .map(|v| EvalSuiteVersion {
                id: v.id.to_string(),
                suite_id: id.to_owned(),
                semver: v.semver,
                case_ids: v.spec.eval_cases.iter().map(|c| c.id(&agent.id)).collect(),
                created_at: v.created_at,
            })
            .collect())
    }

    /// `GET /agent-configs/:id/eval-suite`: the pinned suite; 404 when
    /// none is.
    pub async fn agent_eval_suite(&self, ctx: &AuthContext, agent_id: &AgentId) -> Result<EvalSuite> {
        let agent = self.get_agent_config(ctx, agent_id).await?;
        let pinned = agent.eval_suite_id.ok_or_else(|| {
            Error::not_found(EntityKind::EvalSuite, format!("pinned to agent `{agent_id}`"))
        })?;
        self.get_eval_suite(ctx, &pinned).await
    }

    /// `GET /evals`: every agent's current cases, by agent then file.
    pub async fn list_eval_cases(&self, ctx: &AuthContext) -> Result<Vec<EvalCase>> {
        let mut cases = Vec::new();
        for agent in self.store.list_agent_configs(&ctx.project.id).await? {
            if let Some((spec, at)) = self.current_spec(ctx, &agent).await? {
                cases.extend(cases_of(&agent, spec.eval_cases, at));
            }
        }
        Ok(cases)
    }

    /// `GET /evals/:id`: a current case, or one of a deployed version.
    pub async fn get_eval_case(&self, ctx: &AuthContext, id: &str) -> Result<EvalCase> {
        if let Some(case) = self.list_eval_cases(ctx).await?.into_iter().find(|c| c.id == id) {
            return Ok(case);
        }
        for agent in self.store.list_agent_configs(&ctx.project.id).await? {
            for version in self.store.list_versions(&ctx.project.id, &agent.id).await? {
                if let Some(case) = cases_of(&agent, version.spec.eval_cases, version.created_at)
                    .into_iter()
                    .find(|c| c.id == id)
                {
                    return Ok(case);
                }
            }
        }
        Err(Error::not_found(EntityKind::EvalCase, id))
    }

    /// What an eval run of `agent_id` runs: the pinned suite (409
    /// `no_eval_suite` without one) and its cases, from the suite's live
    /// version, or for `Target::Draft` of the agent's own suite, from the
    /// agent's `dev` draft (409 `no_draft` without one).
    pub async fn eval_plan(&self, ctx: &AuthContext, agent_id: &AgentId, target: Target) -> Result<EvalPlan> {
        let agent = self.get_agent_config(ctx, agent_id).await?;
        let Some(pinned) = agent.eval_suite_id.clone() else {
            return Err(Error::refused(
                Refusal::NoEvalSuite,
                format!(
                    "agent `{}` has no eval suite pinned; deploy it once (its own suite is pinned then) or pin one in its settings",
                    agent.local_id
                ),
            ));
        };
        let owner = self
            .suite_owner(ctx, &pinned)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::EvalSuite, &pinned))?;
        let draft = match target {
            Target::Draft => Some(
                self.store
                    .get_draft(&ctx.project.id, agent_id, DEFAULT_ENVIRONMENT)
                    .await?
                    .ok_or_else(|| {
                        Error::refused(
                            Refusal::NoDraft,
                            format!(
                                "agent `{}` has no draft in `{DEFAULT_ENVIRONMENT}`; sync it first (kiln dev)",
                                agent.local_id
                            ),
                        )
                    })?,
            ),
            Target::Live => None,
        };
        let agent_live = self.live_spec(ctx, &agent.id).await?;
        if target == Target::Live && agent_live.is_none() {
            return Err(Error::refused(
                Refusal::NotDeployed,
                format!(
                    "agent `{}` has no deployed version; deploy it, or run the evals on its draft (--draft)",
                    agent.local_id
                ),
            ));
        }
        let agent_model = match (&draft, &agent_live) {
            (Some(d), _) => d.spec.model.clone(),
            (None, Some((_, spec))) => spec.model.clone(),
            (None, None) => String::new(),
        };
        let (suite_spec, suite_version, cases) = match (&draft, owner.id == agent.id) {
            (Some(d), true) => (
                Some(d.spec.clone()),
                None,
                cases_of(&agent, d.spec.eval_cases.clone(), d.updated_at),
            ),
            _ => match self.live_spec(ctx, &owner.id).await? {
                Some((version_id, spec)) => {
                    let version = self.version_of(ctx, &version_id).await?;
                    let at = owner.published_at.unwrap_or(owner.updated_at);
                    (Some(spec.clone()), version, cases_of(&owner, spec.eval_cases, at))
                }
                None => (None, None, Vec::new()),
            },
        };
        let suite = self.suite_of(&owner, suite_spec.as_ref());
        Ok(EvalPlan {
            agent,
            suite,
            suite_version,
            cases,
            agent_model,
        })
    }

    /// The agent's live version and its spec, if it was deployed.
    async fn live_spec(
        &self,
        ctx: &AuthContext,
        agent_id: &AgentId,
    ) -> Result<Option<(AgentVersionId, DraftSpec)>> {
        Ok(self
            .store
            .live_profile(&ctx.project.id, agent_id)
            .await?
            .and_then(|(_, live)| live)
            .map(|(version_id, _, spec)| (version_id, spec)))
    }

    async fn version_of(&self, ctx: &AuthContext, id: &AgentVersionId) -> Result<Option<String>> {
        Ok(self
            .store
            .version_by_id(&ctx.project.id, id)
            .await?
            .map(|v| v.semver))
    }
}

fn cases_of(agent: &AgentConfig, specs: Vec<EvalCaseSpec>, at: Timestamp) -> Vec<EvalCase> {
    specs
        .into_iter()
        .map(|spec| EvalCase {
            id: spec.id(&agent.id),
            project_id: agent.project_id.clone(),
            agent_id: agent.id.clone(),
            spec,
            created_at: at,
        })
        .collect()
}
