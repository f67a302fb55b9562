//! Agents as code: an engineer authors an agent as files (`agent.jsonc`,
//! `persona.md`, `skills/`, `evals/`), and the source family turns them
//! into agent configs. This module checks a manifest of those files
//! ([`source`]); [`AgentConfigs`] adds what only the server knows (the
//! project's indexes).

pub mod config;
pub mod eval_cases;
pub mod mcp;
pub mod modules;
pub mod skills;
pub mod source;
pub mod store;
pub mod suites;

use std::sync::Arc;

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Refusal, Result, unique_or};
use crate::ids::{AgentId, AgentVersionId, DraftId};
use crate::rag::{Index, Rag};
use crate::time::{Timestamp, now};
use config::{AgentConfig, AgentVersion, DEFAULT_ENVIRONMENT, Draft, DraftSpec, McpServerSpec, ModuleSkill};
use eval_cases::EvalCaseSpec;
use mcp::{McpServers, Phase};
use modules::ModuleChecker;
use source::{AgentSource, IssueCode, Manifest, Severity, SourceIssue};
use store::{AgentConfigStore, DraftWrite};

/// The agents-as-code service. It uses RAG to resolve the indexes an agent
/// names.
pub struct AgentConfigs {
    store: Arc<dyn AgentConfigStore>,
    rag: Arc<Rag>,
    modules: ModuleChecker,
    mcp: McpServers,
}

/// An agent of a checked manifest with its module skills and its MCP
/// servers' tools.
pub(crate) struct CheckedAgent {
    source: AgentSource,
    modules: Vec<ModuleSkill>,
    mcp_servers: Vec<McpServerSpec>,
    eval_cases: Vec<EvalCaseSpec>,
}

/// One agent of a successful sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedAgent {
    pub local_id: String,
    pub agent_id: AgentId,
    pub draft_id: DraftId,
    pub source_hash: String,
}

/// `POST /source-deploy` input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployRequest {
    pub project: String,
    pub environment: Option<String>,
    /// Deploy only this agent; `None`: every agent of the project.
    pub local_agent_id: Option<String>,
    /// Three-state: `None` follows `agent.jsonc → deploy.runEvals`.
    pub run_evals: Option<bool>,
}

/// One agent of a deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedAgent {
    pub local_id: String,
    pub agent_id: AgentId,
    pub version_id: AgentVersionId,
    pub semver: String,
    /// The deploy asked for an advisory eval run (the request's `runEvals`,
    /// else `agent.jsonc → deploy.runEvals`).
    pub run_evals: bool,
}

/// What `source-deploy` did.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployOutcome {
    /// The highest semver among the deployed agents.
    pub version: String,
    pub agents: Vec<DeployedAgent>,
    pub deployed_at: Timestamp,
    pub warnings: Vec<SourceIssue>,
}

/// Which config of an agent a session runs (`target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The deployed version.
    #[default]
    Live,
    /// The staged draft of the default environment.
    Draft,
}

impl Target {
    /// `live` or `draft`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Live => "live",
            Target::Draft => "draft",
        }
    }

    /// A `target` as sent: `live` or `draft`; anything else is a 400 naming
    /// the field.
    pub fn parse(target: &str) -> Result<Target> {
        match target {
            "live" => Ok(Target::Live),
            "draft" => Ok(Target::Draft),
            other => Err(Error::validation(
                format!("target must be `live` or `draft`, not `{other}`"),
                Some("target"),
            )),
        }
    }
}

/// What a session on an agent starts from: the version's (or draft's)
/// persona, model, index scope and tools.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfile {
    pub agent_id: AgentId,
    /// `None` when the session runs the draft.
    pub version_id: Option<AgentVersionId>,
    pub persona: String,
    /// `provider/model`, or empty for the project's default model.
    pub model: String,
    /// Index ids.
    pub stores: Vec<String>,
    pub tools: Vec<String>,
    /// What `require` reaches in the session's blocks.
    pub modules: Vec<ModuleSkill>,
    pub mcp_servers: Vec<McpServerSpec>,
}

/// One agent of `source-export`: the files of its latest published
/// version, or of its `dev` draft when it was never deployed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedAgent {
    pub local_id: String,
    pub source_hash: String,
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
}

/// How a path of a manifest compares with the published state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    LocalOnly,
    ServerOnly,
    Changed,
}

/// An agent's files as one version (or draft) holds them.
pub(crate) struct AgentFiles {
    pub(crate) source_hash: String,
    pub(crate) files: std::collections::BTreeMap<String, Vec<u8>>,
    /// When they were published (or synced).
    pub(crate) at: Timestamp,
    /// The module skills found when they were checked.
    pub(crate) module_skills: Vec<ModuleSkill>,
    pub(crate) mcp_servers: Vec<McpServerSpec>,
}

/// What `source-sync` did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// The manifest's `sourceHash`, echoed (CONTRACT §4.3 #26).
    pub draft_hash: String,
    pub agents: Vec<SyncedAgent>,
    pub synced_at: Timestamp,
    /// Warnings; a sync with fatal issues is refused.
    pub warnings: Vec<SourceIssue>,
}

impl AgentConfigs {
    /// `modules` checks skill modules in the sandbox; `mcp` lists and
    /// calls MCP servers' tools.
    pub fn new(
        store: Arc<dyn AgentConfigStore>,
        rag: Arc<Rag>,
        modules: ModuleChecker,
        mcp: McpServers,
    ) -> AgentConfigs {
        AgentConfigs {
            store,
            rag,
            modules,
            mcp,
        }
    }

    /// The agents' MCP servers.
    pub fn mcp(&self) -> &McpServers {
        &self.mcp
    }

    /// `PUT /source-sync`: checks the manifest and, when nothing in it is
    /// fatal, creates the agents whose local ids are new and replaces each
    /// agent's draft for the environment, all in one transaction. A fatal
    /// issue refuses the whole manifest ([`Error::SourceInvalid`]) and
    /// writes nothing.
    pub async fn sync_source(&self, ctx: &AuthContext, manifest: &Manifest) -> Result<SyncOutcome> {
        let indexes = self.rag.list_indexes(ctx).await?;
        let (agents, issues) = self.check(ctx, manifest, &indexes, Phase::Sync).await?;
        if issues.iter().any(|i| i.severity == Severity::Fatal) {
            return Err(Error::SourceInvalid { issues });
        }
        let environment = environment_of(manifest.environment.as_deref());
        let at = now();
        let writes: Vec<DraftWrite> = agents
            .into_iter()
            .map(
                |CheckedAgent {
                     source: agent,
                     modules,
                     mcp_servers,
                     eval_cases,
                 }| {
                    let spec = draft_spec(&agent, modules, mcp_servers, eval_cases, &indexes);
                    DraftWrite {
                        agent: AgentConfig {
                            id: AgentId::generate(),
                            project_id: ctx.project.id.clone(),
                            code_first_project: manifest.project.clone(),
                            local_id: agent.local_id.clone(),
                            name: spec.name.clone(),
                            description: spec.description.clone(),
                            created_by: ctx.key_id.to_string(),
                            persona_md: String::new(),
                            skills: Vec::new(),
                            stores: Vec::new(),
                            provider: String::new(),
                            model: String::new(),
                            enabled_capabilities: None,
                            eval_suite_id: None,
                            active_version_id: None,
                            published_at: None,
                            created_at: at,
                            updated_at: at,
                        },
                        draft: Draft {
                            id: DraftId::generate(),
                            project_id: ctx.project.id.clone(),
                            agent_id: AgentId::from_string(""),
                            environment: environment.clone(),
                            source_hash: agent.source_hash.clone(),
                            files: agent.files,
                            spec,
                            created_at: at,
                            updated_at: at,
                        },
                    }
                },
            )
            .collect();
        let stored = self
            .store
            .sync_drafts(&ctx.project.id, &writes, &Actor::api_key(ctx.key_id.clone()))
            .await?;
        Ok(SyncOutcome {
            draft_hash: manifest.source_hash.clone(),
            agents: writes
                .iter()
                .zip(stored)
                .map(|(write, (agent, draft_id))| SyncedAgent {
                    local_id: agent.local_id,
                    agent_id: agent.id,
                    draft_id,
                    source_hash: write.draft.source_hash.clone(),
                })
                .collect(),
            synced_at: at,
            warnings: issues,
        })
    }

    /// `POST /source-deploy`: checks each agent's draft again and publishes
    /// it as a new immutable version, live at once, all agents in one
    /// transaction. A fatal issue refuses the whole deploy.
    pub async fn deploy_source(&self, ctx: &AuthContext, request: &DeployRequest) -> Result<DeployOutcome> {
        plain_name(&request.project, "project")?;
        let environment = environment_of(request.environment.as_deref());
        let local_id = request.local_agent_id.as_deref().filter(|l| !l.is_empty());
        let drafts = self
            .store
            .drafts(&ctx.project.id, &request.project, &environment, local_id)
            .await?;
        if drafts.is_empty() {
            let what = match local_id {
                Some(local_id) => format!("{}/{local_id} ({environment})", request.project),
                None => format!("{} ({environment})", request.project),
            };
            return Err(Error::not_found(EntityKind::Draft, what));
        }
        let indexes = self.rag.list_indexes(ctx).await?;
        let manifest = Manifest {
            project: request.project.clone(),
            environment: Some(environment.clone()),
            source_hash: String::new(),
            agents: drafts
                .iter()
                .map(|(agent, draft)| {
                    source::manifest_agent(&agent.local_id, &draft.source_hash, &draft.files)
                })
                .collect(),
        };
        let (checked, issues) = self.check(ctx, &manifest, &indexes, Phase::Deploy).await?;
        if issues.iter().any(|i| i.severity == Severity::Fatal) {
            return Err(Error::SourceInvalid { issues });
        }
        let at = now();
        // An agent pinned to another agent's suite records that suite's
        // live version.
        let mut foreign_suites = std::collections::HashMap::new();
        for (agent, _) in &drafts {
            if let Some(pinned) = &agent.eval_suite_id
                && *pinned != eval_cases::suite_id(&agent.id)
            {
                let semver = match self.suite_owner(ctx, pinned).await? {
                    Some(owner) => self
                        .store
                        .list_versions(&ctx.project.id, &owner.id)
                        .await?
                        .first()
                        .map(|v| v.semver.clone()),
                    None => None,
                };
                // Empty while that suite has no version yet.
                foreign_suites.insert(agent.id.clone(), Some(semver.unwrap_or_default()));
            }
        }
        let versions: Vec<AgentVersion> = drafts
            .into_iter()
            .zip(&checked)
            .map(|((agent, draft), checked)| {
                let spec = draft_spec(
                    &checked.source,
                    checked.modules.clone(),
                    checked.mcp_servers.clone(),
                    checked.eval_cases.clone(),
                    &indexes,
                );
                let (provider, model) = match spec.model.split_once('/') {
                    Some((provider, model)) => (provider.to_owned(), model.to_owned()),
                    None => (String::new(), String::new()),
                };
                let eval_suite_version = foreign_suites.get(&agent.id).cloned().flatten();
                let eval_suite_id = agent.eval_suite_id.clone().or_else(|| {
                    agent
                        .active_version_id
                        .is_none()
                        .then(|| eval_cases::suite_id(&agent.id))
                });
                AgentVersion {
                    id: AgentVersionId::generate(),
                    project_id: ctx.project.id.clone(),
                    agent_id: agent.id,
                    seq: 0,
                    semver: String::new(),
                    persona_md: spec.persona_md.clone(),
                    skills: Vec::new(),
                    stores: spec.stores.clone(),
                    provider,
                    model,
                    eval_suite_id,
                    eval_suite_version,
                    environment: environment.clone(),
                    source_hash: draft.source_hash,
                    files: draft.files,
                    spec,
                    created_by: ctx.key_id.to_string(),
                    created_at: at,
                }
            })
            .collect();
        let stored = self
            .store
            .publish_versions(&ctx.project.id, &versions, &Actor::api_key(ctx.key_id.clone()))
            .await?;
        let highest = stored.iter().max_by_key(|v| v.seq).map(|v| v.semver.clone());
        Ok(DeployOutcome {
            version: highest.unwrap_or_default(),
            agents: stored
                .into_iter()
                .zip(&checked)
                .map(|(version, checked)| DeployedAgent {
                    local_id: checked.source.local_id.clone(),
                    agent_id: version.agent_id,
                    run_evals: request.run_evals.or(version.spec.run_evals).unwrap_or(false),
                    version_id: version.id,
                    semver: version.semver,
                })
                .collect(),
            deployed_at: at,
            warnings: issues,
        })
    }

    /// What a session on an agent runs (CONTRACT §2.7 `POST /agents`): a
    /// pinned version (which must be `agent_id`'s when both are given), or
    /// the agent's live version, or its draft.
    pub async fn session_profile(
        &self,
        ctx: &AuthContext,
        agent_id: Option<&AgentId>,
        version_id: Option<&AgentVersionId>,
        target: Target,
    ) -> Result<AgentProfile> {
        if let Some(version_id) = version_id {
            let version = self
                .store
                .version_by_id(&ctx.project.id, version_id)
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::AgentVersion, version_id))?;
            if agent_id.is_some_and(|a| *a != version.agent_id) {
                return Err(Error::validation(
                    format!("agent version `{version_id}` belongs to another agent than `agent_id`"),
                    Some("agent_version_id"),
                ));
            }
            return Ok(profile_of_version(version));
        }
        let Some(agent_id) = agent_id else {
            return Err(Error::validation(
                "agent_id or agent_version_id is required",
                Some("agent_id"),
            ));
        };
        match target {
            Target::Draft => {
                let agent = self.get_agent_config(ctx, agent_id).await?;
                let draft = self
                    .store
                    .get_draft(&ctx.project.id, agent_id, DEFAULT_ENVIRONMENT)
                    .await?
                    .ok_or_else(|| {
                        Error::refused(
                            Refusal::NoDraft,
                            format!("agent `{}` has no draft in `{DEFAULT_ENVIRONMENT}`; sync it first (kiln dev)", agent.local_id),
                        )
                    })?;
                Ok(AgentProfile {
                    agent_id: agent.id,
                    version_id: None,
                    persona: draft.spec.system_prompt(),
                    model: draft.spec.model,
                    stores: draft.spec.stores,
                    tools: draft.spec.tools,
                    modules: draft.spec.module_skills,
                    mcp_servers: draft.spec.mcp_servers,
                })
            }
            Target::Live => {
                let (local_id, live) = self
                    .store
                    .live_profile(&ctx.project.id, agent_id)
                    .await?
                    .ok_or_else(|| Error::not_found(EntityKind::Agent, agent_id))?;
                let Some((version_id, stores, spec)) = live else {
                    return Err(Error::refused(
                        Refusal::NotDeployed,
                        format!(
                            "agent `{local_id}` has no deployed version; deploy it (kiln deploy) or start the session with target `draft`"
                        ),
                    ));
                };
                Ok(AgentProfile {
                    agent_id: agent_id.clone(),
                    version_id: Some(version_id),
                    persona: spec.system_prompt(),
                    model: spec.model,
                    stores,
                    tools: spec.tools,
                    modules: spec.module_skills,
                    mcp_servers: spec.mcp_servers,
                })
            }
        }
    }

    /// `GET /agent-configs/:id/versions`: newest first.
    pub async fn list_versions(&self, ctx: &AuthContext, agent_id: &AgentId) -> Result<Vec<AgentVersion>> {
        self.get_agent_config(ctx, agent_id).await?;
        Ok(self.store.list_versions(&ctx.project.id, agent_id).await?)
    }

    /// `GET /agent-configs/:id/versions/:vid`: 404 for a version of another
    /// agent.
    pub async fn get_version(
        &self,
        ctx: &AuthContext,
        agent_id: &AgentId,
        id: &AgentVersionId,
    ) -> Result<AgentVersion> {
        self.store
            .get_version(&ctx.project.id, agent_id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::AgentVersion, id))
    }

    /// `POST /source-rename`: the agent of (`project`, `old`) answers to
    /// `new` from now on (run before renaming the folder).
    pub async fn rename_agent(
        &self,
        ctx: &AuthContext,
        project: &str,
        old: &str,
        new: &str,
    ) -> Result<AgentId> {
        for (name, field) in [(project, "project"), (old, "oldLocalId"), (new, "newLocalId")] {
            plain_name(name, field)?;
        }
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_RENAME,
            "",
        )
        .meta("project", project)
        .meta("old_local_id", old)
        .meta("new_local_id", new);
        self.store
            .rename_agent(&ctx.project.id, project, old, new, &audit)
            .await
            .map_err(|e| {
                unique_or(e, || {
                    format!("agent `{new}` already exists in project `{project}`")
                })
            })?
            .ok_or_else(|| Error::not_found(EntityKind::Agent, format!("{project}/{old}")))
    }

    /// `PATCH /agent-configs/:id/settings`: `Some("")` clears the pinned
    /// eval suite, `None` leaves it, any other value pins that suite, which
    /// must be one of the project's (404 otherwise).
    pub async fn update_settings(
        &self,
        ctx: &AuthContext,
        id: &AgentId,
        eval_suite_id: Option<&str>,
    ) -> Result<AgentConfig> {
        let agent = self.get_agent_config(ctx, id).await?;
        let Some(eval_suite_id) = eval_suite_id else {
            return Ok(agent);
        };
        let pin = if eval_suite_id.is_empty() {
            None
        } else {
            self.suite_owner(ctx, eval_suite_id)
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::EvalSuite, eval_suite_id))?;
            Some(eval_suite_id)
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_SETTINGS_UPDATE,
            id.as_str(),
        )
        .meta(
            "eval_suite_id",
            pin.map_or(serde_json::Value::Null, serde_json::Value::from),
        );
        self.store
            .set_eval_suite(&ctx.project.id, id, pin, now(), &audit)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Agent, id))
    }

    /// `GET /source-export?project=`: the project's agents as files, for
    /// `kiln pull`.
    pub async fn export_source(&self, ctx: &AuthContext, project: &str) -> Result<Vec<ExportedAgent>> {
        plain_name(project, "project")?;
        let mut exported = Vec::new();
        for agent in self.store.list_agent_configs(&ctx.project.id).await? {
            if agent.code_first_project != project {
                continue;
            }
            if let Some(current) = self.current_files(ctx, &agent).await? {
                exported.push(ExportedAgent {
                    local_id: agent.local_id,
                    source_hash: current.source_hash,
                    files: current.files,
                });
            }
        }
        Ok(exported)
    }

    /// `POST /source-diff`: the manifest's files against the latest
    /// published version of each agent of its project, as
    /// `<local id>/<path>` and a state; empty when they agree.
    pub async fn diff_source(
        &self,
        ctx: &AuthContext,
        manifest: &Manifest,
    ) -> Result<Vec<(String, PathState)>> {
        let (local, _) = source::check_manifest(manifest);
        let agents: Vec<AgentConfig> = self
            .store
            .list_agent_configs(&ctx.project.id)
            .await?
            .into_iter()
            .filter(|a| a.code_first_project == manifest.project)
            .collect();
        let mut paths = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for source in &local {
            seen.insert(source.local_id.as_str());
            let published = match agents.iter().find(|a| a.local_id == source.local_id) {
                Some(agent) => self.published_files(ctx, agent).await?.map(|p| p.files),
                None => None,
            }
            .unwrap_or_default();
            for (path, bytes) in &source.files {
                match published.get(path) {
                    None => paths.push((format!("{}/{path}", source.local_id), PathState::LocalOnly)),
                    Some(server) if server != bytes => {
                        paths.push((format!("{}/{path}", source.local_id), PathState::Changed))
                    }
                    Some(_) => {}
                }
            }
            for path in published.keys().filter(|p| !source.files.contains_key(*p)) {
                paths.push((format!("{}/{path}", source.local_id), PathState::ServerOnly));
            }
        }
        for agent in agents.iter().filter(|a| !seen.contains(a.local_id.as_str())) {
            if let Some(published) = self.published_files(ctx, agent).await? {
                for path in published.files.keys() {
                    paths.push((format!("{}/{path}", agent.local_id), PathState::ServerOnly));
                }
            }
        }
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(paths)
    }

    /// The files of the agent's live version (or of its `dev` draft before
    /// a deploy).
    pub(crate) async fn current_files(
        &self,
        ctx: &AuthContext,
        agent: &AgentConfig,
    ) -> Result<Option<AgentFiles>> {
        if let Some(published) = self.published_files(ctx, agent).await? {
            return Ok(Some(published));
        }
        Ok(self
            .store
            .get_draft(&ctx.project.id, &agent.id, DEFAULT_ENVIRONMENT)
            .await?
            .map(|d| AgentFiles {
                source_hash: d.source_hash,
                files: d.files,
                at: d.updated_at,
                module_skills: d.spec.module_skills,
                mcp_servers: d.spec.mcp_servers,
            }))
    }

    /// The files of the agent's live version, if it has one.
    async fn published_files(&self, ctx: &AuthContext, agent: &AgentConfig) -> Result<Option<AgentFiles>> {
        let Some(active) = agent.active_version_id.as_deref() else {
            return Ok(None);
        };
        Ok(self
            .store
            .version_by_id(&ctx.project.id, &AgentVersionId::from_string(active))
            .await?
            .map(|v| AgentFiles {
                source_hash: v.source_hash,
                files: v.files,
                at: v.created_at,
                module_skills: v.spec.module_skills,
                mcp_servers: v.spec.mcp_servers,
            }))
    }

    /// The agent bound to (`project`, `local_id`).
    pub async fn agent_by_local_id(
        &self,
        ctx: &AuthContext,
        project: &str,
        local_id: &str,
    ) -> Result<AgentConfig> {
        self.store
            .list_agent_configs(&ctx.project.id)
            .await?
            .into_iter()
            .find(|a| a.code_first_project == project && a.local_id == local_id)
            .ok_or_else(|| Error::not_found(EntityKind::Agent, format!("{project}/{local_id}")))
    }

    /// Deletes the agent with its drafts, versions and sessions. The caller
    /// (the runtime) ends running turns first.
    pub async fn delete_agent(&self, ctx: &AuthContext, agent: &AgentConfig) -> Result<()> {
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::AGENT_DELETE,
            agent.id.as_str(),
        )
        .meta("project", agent.code_first_project.clone())
        .meta("local_id", agent.local_id.clone());
        if !self
            .store
            .delete_agent(&ctx.project.id, &agent.id, &audit)
            .await?
        {
            return Err(Error::not_found(EntityKind::Agent, &agent.id));
        }
        Ok(())
    }

    /// `GET /agent-configs`: the project's agents, oldest first.
    pub async fn list_agent_configs(&self, ctx: &AuthContext) -> Result<Vec<AgentConfig>> {
        Ok(self.store.list_agent_configs(&ctx.project.id).await?)
    }

    pub async fn get_agent_config(&self, ctx: &AuthContext, id: &AgentId) -> Result<AgentConfig> {
        self.store
            .get_agent_config(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Agent, id))
    }

    /// `POST /source-validate`: every issue of the manifest, fatal or not;
    /// nothing is written.
    pub async fn validate_source(&self, ctx: &AuthContext, manifest: &Manifest) -> Result<Vec<SourceIssue>> {
        let indexes = self.rag.list_indexes(ctx).await?;
        Ok(self.check(ctx, manifest, &indexes, Phase::Sync).await?.1)
    }

    /// `POST /skills/validate`: the issues of one skill module's source, as
    /// `skills/<name>.js` (`name` defaults to `skill`).
    pub async fn validate_skill(&self, source: &str, name: Option<&str>) -> Result<Vec<SourceIssue>> {
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("skill");
        plain_name(name, "name")?;
        let files =
            std::collections::BTreeMap::from([(format!("skills/{name}.js"), source.as_bytes().to_vec())]);
        Ok(self.modules.check("", &files).await.1)
    }

    /// The manifest's agents and its issues, the project's indexes known
    /// and the skill modules run.
    async fn check(
        &self,
        ctx: &AuthContext,
        manifest: &Manifest,
        indexes: &[Index],
        phase: Phase,
    ) -> Result<(Vec<CheckedAgent>, Vec<SourceIssue>)> {
        let (agents, mut issues) = source::check_manifest(manifest);
        let mut checked = Vec::with_capacity(agents.len());
        for agent in agents {
            let (modules, module_issues) = self
                .modules
                .check(&format!("{}/", agent.local_id), &agent.files)
                .await;
            issues.extend(module_issues);
            let declared = agent
                .spec
                .as_ref()
                .map(|s| s.mcp_servers.clone())
                .unwrap_or_default();
            let file = format!("{}/{}", agent.local_id, source::AGENT_FILE);
            let (mcp_servers, mcp_issues) = self.mcp.check(&ctx.project, &file, &declared, phase).await?;
            issues.extend(mcp_issues);
            let (eval_cases, eval_issues) = eval_cases::parse_cases(&agent.local_id, &agent.files);
            issues.extend(eval_issues);
            checked.push(CheckedAgent {
                source: agent,
                modules,
                mcp_servers,
                eval_cases,
            });
        }
        for CheckedAgent { source: agent, .. } in &checked {
            let Some(spec) = &agent.spec else { continue };
            for wanted in &spec.indexes {
                if find_index(indexes, wanted).is_none() {
                    issues.push(SourceIssue {
                        file: Some(format!("{}/{}", agent.local_id, source::AGENT_FILE)),
                        line: None,
                        column: None,
                        code: IssueCode::MissingIndex,
                        message: format!("index `{wanted}` is not in this project"),
                        hint: Some(
                            "create the index first, or name one of the project's indexes (by name or id)"
                                .into(),
                        ),
                        severity: Severity::Fatal,
                    });
                }
            }
        }
        Ok((checked, issues))
    }
}

fn profile_of_version(version: AgentVersion) -> AgentProfile {
    AgentProfile {
        agent_id: version.agent_id,
        version_id: Some(version.id),
        persona: version.spec.system_prompt(),
        model: version.spec.model,
        stores: version.stores,
        tools: version.spec.tools,
        modules: version.spec.module_skills,
        mcp_servers: version.spec.mcp_servers,
    }
}

/// `value` as a plain name, or a validation error naming `field`.
fn plain_name(value: &str, field: &str) -> Result<()> {
    if source::is_plain_name(value) {
        Ok(())
    } else {
        Err(Error::validation(
            format!("{field} must be a plain name (letters, digits, `.`, `_`, `-`)"),
            Some(field),
        ))
    }
}

/// The index named by id or name, among the project's.
fn find_index<'a>(indexes: &'a [Index], wanted: &str) -> Option<&'a Index> {
    indexes
        .iter()
        .find(|i| i.id.as_str() == wanted || i.name == wanted)
}

/// The environment named, or the default one.
fn environment_of(environment: Option<&str>) -> String {
    environment
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .unwrap_or(DEFAULT_ENVIRONMENT)
        .to_owned()
}

/// What an agent's files say, its index names resolved to ids.
fn draft_spec(
    agent: &AgentSource,
    module_skills: Vec<ModuleSkill>,
    mcp_servers: Vec<McpServerSpec>,
    eval_cases: Vec<EvalCaseSpec>,
    indexes: &[Index],
) -> DraftSpec {
    let spec = agent.spec.clone().unwrap_or_default();
    let persona = agent
        .files
        .get(source::PERSONA_FILE)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    DraftSpec {
        name: spec.name.unwrap_or_else(|| agent.local_id.clone()),
        description: spec.description.unwrap_or_default(),
        persona_md: persona,
        model: spec.model.unwrap_or_default(),
        stores: spec
            .indexes
            .iter()
            .filter_map(|wanted| find_index(indexes, wanted).map(|i| i.id.to_string()))
            .collect(),
        tools: spec.tools,
        capabilities: spec.capabilities,
        mcp: spec.mcp,
        run_evals: spec.run_evals,
        eval_suite: spec.eval_suite,
        eval_settings: spec.eval_settings,
        eval_cases,
        prompt_skills: agent
            .files
            .iter()
            .filter_map(|(path, bytes)| {
                let name = path.strip_prefix("skills/")?.strip_suffix(".md")?;
                Some(config::PromptSkill {
                    name: name.to_owned(),
                    content: String::from_utf8_lossy(bytes).into_owned(),
                })
            })
            .collect(),
        module_skills,
        mcp_servers,
    }
}
