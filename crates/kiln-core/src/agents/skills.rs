//! Skills, as the project lists them (CONTRACT §2.10, §4.3 #32): one per
//! (agent, `skills/` file) of each agent's live version, or of its `dev`
//! draft before the first deploy. Their ids are derived from the agent and
//! the path, so they stay the same across deploys.

use crate::agents::config::{McpServerSpec, SkillExport};
use crate::agents::{AgentConfigs, source};
use crate::auth::AuthContext;
use crate::crypto::sha256_hex;
use crate::error::{EntityKind, Error, Result};
use crate::ids::AgentId;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkillKind {
    /// `skills/<name>.md`: joins the system prompt.
    Prompt,
    /// `skills/<name>.js`: an ES module that `require(name)` returns.
    Module,
    /// A server of `agent.jsonc → mcp`, whose tools `require(name)` returns.
    Mcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub id: String,
    pub name: String,
    /// The file's first line of text.
    pub description: String,
    pub kind: SkillKind,
    /// The Markdown of a prompt skill; empty for a module.
    pub prompt: String,
    pub agent_id: AgentId,
    /// Relative to the agent folder (`skills/tone.md`).
    pub path: String,
    /// A module's exports; empty for a prompt.
    pub exports: Vec<SkillExport>,
    /// An MCP server as declared, with the tools it listed.
    pub mcp: Option<McpServerSpec>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn skill_id(agent_id: &AgentId, path: &str) -> String {
    format!(
        "skill_{}",
        &sha256_hex(format!("{agent_id}/{path}").as_bytes())[..32]
    )
}

/// The first line with text, without Markdown heading marks or a `//`.
fn first_line(text: &str) -> String {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim_start_matches("//").trim())
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

impl AgentConfigs {
    /// `GET /skills`: every skill of the project's agents, by agent then path.
    pub async fn list_skills(&self, ctx: &AuthContext) -> Result<Vec<Skill>> {
        let mut skills = Vec::new();
        for agent in self.store.list_agent_configs(&ctx.project.id).await? {
            let Some(current) = self.current_files(ctx, &agent).await? else {
                continue;
            };
            let at = current.at;
            for (path, bytes) in &current.files {
                let Some(file) = path.strip_prefix("skills/") else {
                    continue;
                };
                let (name, kind) = match (file.strip_suffix(".md"), file.strip_suffix(".js")) {
                    (Some(name), _) => (name, SkillKind::Prompt),
                    (_, Some(name)) => (name, SkillKind::Module),
                    _ => continue,
                };
                if name.contains('/') {
                    continue;
                }
                let text = String::from_utf8_lossy(bytes).into_owned();
                let module = current.module_skills.iter().find(|m| m.name == name);
                let description = match module {
                    Some(module) if !module.description.is_empty() => module.description.clone(),
                    _ => first_line(&text),
                };
                skills.push(Skill {
                    id: skill_id(&agent.id, path),
                    name: name.to_owned(),
                    description,
                    exports: module.map(|m| m.exports.clone()).unwrap_or_default(),
                    mcp: None,
                    kind,
                    prompt: if kind == SkillKind::Prompt {
                        text
                    } else {
                        String::new()
                    },
                    agent_id: agent.id.clone(),
                    path: path.clone(),
                    created_at: at,
                    updated_at: at,
                });
            }
            for server in &current.mcp_servers {
                let path = format!("{}#mcp/{}", source::AGENT_FILE, server.name);
                skills.push(Skill {
                    id: skill_id(&agent.id, &path),
                    name: server.name.clone(),
                    description: format!("MCP server with {} tool(s)", server.tools.len()),
                    kind: SkillKind::Mcp,
                    prompt: String::new(),
                    exports: Vec::new(),
                    mcp: Some(server.clone()),
                    agent_id: agent.id.clone(),
                    path: source::AGENT_FILE.to_owned(),
                    created_at: at,
                    updated_at: at,
                });
            }
        }
        Ok(skills)
    }

    /// `GET /skills/:id`.
    pub async fn get_skill(&self, ctx: &AuthContext, id: &str) -> Result<Skill> {
        self.list_skills(ctx)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::not_found(EntityKind::Skill, id))
    }
}
