//! The audit log: who changed what. Every mutating `Store` method takes a
//! [`NewAudit`] and writes it in the same transaction as the change, so an
//! entry exists exactly when the change does.

use serde_json::{Map, Value};

use crate::ids::{ApiKeyId, AuditId, ProjectId};
use crate::time::Timestamp;

/// Who acted: an API key over HTTP, or the local CLI (neither id set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actor {
    pub api_key_id: Option<ApiKeyId>,
    pub user_id: Option<String>,
}

impl Actor {
    pub fn api_key(id: ApiKeyId) -> Self {
        Actor {
            api_key_id: Some(id),
            user_id: None,
        }
    }

    /// The operator at the terminal (`kiln keys create` and friends).
    pub fn cli() -> Self {
        Actor::default()
    }
}

/// An audit entry about to be written. `subject_type` is the part of the
/// action before the first dot.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub id: AuditId,
    pub project_id: ProjectId,
    pub actor: Actor,
    pub action: &'static str,
    pub subject_id: String,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
}

impl NewAudit {
    pub fn new(
        project_id: &ProjectId,
        actor: &Actor,
        action: &'static str,
        subject_id: impl Into<String>,
    ) -> Self {
        NewAudit {
            id: AuditId::generate(),
            project_id: project_id.clone(),
            actor: actor.clone(),
            action,
            subject_id: subject_id.into(),
            metadata: Map::new(),
            created_at: crate::time::now(),
        }
    }

    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }

    pub fn subject_type(&self) -> &'static str {
        self.action.split('.').next().unwrap_or(self.action)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub project_id: ProjectId,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<ApiKeyId>,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub agent_version_id: Option<String>,
    pub session_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
}

/// Filters of the audit list and export; all exact matches, `from` inclusive,
/// `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_user_id: Option<String>,
    pub subject_type: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Audit actions, one constant each, so the set is greppable.
pub mod actions {
    pub const PROJECT_CREATE: &str = "project.create";
    pub const PROJECT_VAULT_SET: &str = "project.vault.set";
    pub const API_KEY_CREATE: &str = "api_key.create";
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
    pub const SECRET_VAULT_CREATE: &str = "secret_vault.create";
    pub const SECRET_VAULT_UPDATE: &str = "secret_vault.update";
    pub const SECRET_VAULT_DELETE: &str = "secret_vault.delete";
    pub const SECRET_PUT: &str = "secret.put";
    pub const SECRET_DELETE: &str = "secret.delete";
    pub const PROMPT_TEMPLATE_CREATE: &str = "prompt_template.create";
    pub const PROMPT_TEMPLATE_UPDATE: &str = "prompt_template.update";
    pub const PROMPT_TEMPLATE_DELETE: &str = "prompt_template.delete";
    pub const INDEX_CREATE: &str = "index.create";
    pub const INDEX_UPDATE: &str = "index.update";
    pub const INDEX_DELETE: &str = "index.delete";
    pub const DOCUMENT_UPLOAD: &str = "document.upload";
    pub const DOCUMENT_DELETE: &str = "document.delete";
    pub const DOCUMENT_HARD_DELETE: &str = "document.hard_delete";
    pub const CONVERSATION_CREATE: &str = "conversation.create";
    pub const CONVERSATION_MESSAGE: &str = "conversation.message";
    pub const CONVERSATION_DELETE: &str = "conversation.delete";
    pub const AGENT_SESSION_CREATE: &str = "agent_session.create";
    pub const AGENT_SESSION_DELETE: &str = "agent_session.delete";
    pub const AGENT_SESSION_CANCEL: &str = "agent_session.cancel";
    pub const AGENT_SESSION_RUN: &str = "agent_session.run";
    pub const AGENT_SESSION_INPUT: &str = "agent_session.input";
    pub const AGENT_SYNC: &str = "agent.sync";
    pub const AGENT_DEPLOY: &str = "agent.deploy";
    pub const AGENT_RENAME: &str = "agent.rename";
    pub const AGENT_DELETE: &str = "agent.delete";
    pub const AGENT_SETTINGS_UPDATE: &str = "agent.settings.update";
    pub const EVAL_RUN_START: &str = "eval_run.start";
    pub const EVAL_RUN_CANCEL: &str = "eval_run.cancel";
    pub const SCHEDULE_CREATE: &str = "scheduled_run.create";
    pub const SCHEDULE_UPDATE: &str = "scheduled_run.update";
    pub const SCHEDULE_DELETE: &str = "scheduled_run.delete";
}
