//! Agent configs and their drafts, as the service and its store see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::eval_cases::{EvalCaseSpec, SuiteSettings};
use crate::ids::{AgentId, AgentVersionId, DraftId, ProjectId};
use crate::mcp::{McpTool, McpTransport};
use crate::sandbox::SandboxModule;
use crate::time::Timestamp;

/// The environment a manifest without one syncs to (CONTRACT §4.3 #30).
pub const DEFAULT_ENVIRONMENT: &str = "dev";

/// A skill an agent version uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillBinding {
    pub skill_id: String,
    pub version: String,
}

/// An agent: created by the first source-sync that names its local id;
/// its live fields are the deployed version's (empty before a deploy).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub id: AgentId,
    pub project_id: ProjectId,
    /// The manifest's `project`: a namespace inside the server project.
    pub code_first_project: String,
    /// `agent.jsonc` → `id`.
    pub local_id: String,
    pub name: String,
    pub description: String,
    /// The API key (or user) that created it.
    pub created_by: String,
    pub persona_md: String,
    pub skills: Vec<SkillBinding>,
    /// Index ids.
    pub stores: Vec<String>,
    pub provider: String,
    pub model: String,
    pub enabled_capabilities: Option<Vec<String>>,
    pub eval_suite_id: Option<String>,
    pub active_version_id: Option<String>,
    pub published_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a draft's files say, resolved against the project (index names
/// become ids). Stored as JSON with the draft.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DraftSpec {
    pub name: String,
    pub description: String,
    pub persona_md: String,
    /// `provider/model`, or empty for the project's default model.
    pub model: String,
    /// Index ids.
    pub stores: Vec<String>,
    pub tools: Vec<String>,
    pub capabilities: Vec<String>,
    pub mcp: Vec<Value>,
    pub run_evals: Option<bool>,
    pub eval_suite: Option<String>,
    /// `skills/<name>.md`, in name order: they join the system prompt.
    #[serde(default)]
    pub prompt_skills: Vec<PromptSkill>,
    /// `skills/<name>.js`, in name order: what `require` reaches.
    #[serde(default)]
    pub module_skills: Vec<ModuleSkill>,
    /// `agent.jsonc → mcp`, with the tools each server listed when the
    /// draft was synced (or the version deployed).
    #[serde(default)]
    pub mcp_servers: Vec<McpServerSpec>,
    /// `evals/*.json`, checked.
    #[serde(default)]
    pub eval_cases: Vec<EvalCaseSpec>,
    /// `agent.jsonc → evalSuite` as an object (its name is `eval_suite`).
    #[serde(default)]
    pub eval_settings: SuiteSettings,
}

/// An MCP server an agent declares. Its secrets stay in the project's
/// vault: only their names are kept here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServerSpec {
    /// What `require` takes.
    pub name: String,
    pub transport: McpTransport,
    /// As written, `${NAME}` placeholders unresolved; `None` for a stdio
    /// server of the operator's.
    #[serde(default)]
    pub url: Option<String>,
    /// The vault secret holding the bearer token.
    #[serde(default)]
    pub token_ref: Option<String>,
    /// What `tools/list` answered at sync or deploy.
    #[serde(default)]
    pub tools: Vec<McpTool>,
}

/// A module skill: an ES module the sandbox's `require(name)` returns, with
/// the exports found when it was checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModuleSkill {
    /// The file stem.
    pub name: String,
    /// The first comment line of the file.
    #[serde(default)]
    pub description: String,
    pub source: String,
    #[serde(default)]
    pub exports: Vec<SkillExport>,
}

/// One export of a module skill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SkillExport {
    pub name: String,
    /// Parameter names of a function; `None` for any other value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
}

impl ModuleSkill {
    /// The path of its file in the agent folder.
    pub fn file(&self) -> String {
        format!("skills/{}.js", self.name)
    }

    /// As the sandbox takes it.
    pub fn sandbox_module(&self) -> SandboxModule {
        SandboxModule::source(&self.name, &self.file(), &self.source)
    }
}

/// A prompt skill: Markdown that joins the agent's system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromptSkill {
    /// The file stem.
    pub name: String,
    pub content: String,
}

impl DraftSpec {
    /// The system prompt of a session on this spec: the persona, then each
    /// prompt skill under a heading of its own.
    pub fn system_prompt(&self) -> String {
        let mut prompt = self.persona_md.clone();
        for skill in &self.prompt_skills {
            if !prompt.is_empty() {
                prompt.push_str("\n\n");
            }
            prompt.push_str(&format!(
                "## Skill: {}\n\n{}",
                skill.name,
                skill.content.trim_end()
            ));
        }
        prompt
    }
}

/// The last synced state of an agent in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub id: DraftId,
    pub project_id: ProjectId,
    pub agent_id: AgentId,
    pub environment: String,
    pub source_hash: String,
    /// By path, relative to the agent folder.
    pub files: BTreeMap<String, Vec<u8>>,
    pub spec: DraftSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The semver of an agent's `seq`-th deploy (from 0): `1.0.<seq>`
/// (CONTRACT §4.3 #29).
pub fn semver_of(seq: i64) -> String {
    format!("1.0.{seq}")
}

/// An immutable snapshot, one per deploy: the draft as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersion {
    pub id: AgentVersionId,
    pub project_id: ProjectId,
    pub agent_id: AgentId,
    /// 0 for the first deploy.
    pub seq: i64,
    pub semver: String,
    pub persona_md: String,
    pub skills: Vec<SkillBinding>,
    /// Index ids.
    pub stores: Vec<String>,
    pub provider: String,
    pub model: String,
    pub eval_suite_id: Option<String>,
    pub eval_suite_version: Option<String>,
    /// The environment whose draft was deployed.
    pub environment: String,
    pub source_hash: String,
    pub files: BTreeMap<String, Vec<u8>>,
    pub spec: DraftSpec,
    pub created_by: String,
    pub created_at: Timestamp,
}
