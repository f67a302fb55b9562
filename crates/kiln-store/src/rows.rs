//! Row structs that decode from SQLite and PostgreSQL alike, and their
//! conversion into domain types.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;

use kiln_core::audit::AuditEntry;
use kiln_core::crypto::SealedValue;
use kiln_core::gateway::chat::{Conversation, ConversationMessage};
use kiln_core::ids::{ApiKeyId, AuditId, ConversationId, IndexId, MessageId, ProjectId, TemplateId, VaultId};
use kiln_core::llm::{Role, Usage};
use kiln_core::project::{ApiKey, Project, ProjectName};
use kiln_core::rag::index::Index;
use kiln_core::template::PromptTemplate;
use kiln_core::vault::{Secret, SecretName, Vault};

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: String,
    name: String,
    slug: String,
    description: String,
    vault_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ProjectRow> for Project {
    type Error = kiln_core::StoreError;
    fn try_from(r: ProjectRow) -> Result<Self, Self::Error> {
        Ok(Project {
            id: ProjectId::from_string(r.id),
            name: ProjectName::parse(&r.name).map_err(|e| kiln_core::StoreError::Corrupt(e.to_string()))?,
            slug: r.slug,
            description: r.description,
            vault_id: r.vault_id.map(VaultId::from_string),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    project_id: String,
    name: String,
    prefix: String,
    key_hash: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: ApiKeyId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            name: r.name,
            prefix: r.prefix,
            key_hash: r.key_hash,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A key joined with its project's columns (prefixed `p_`).
#[derive(sqlx::FromRow)]
pub(crate) struct KeyWithProjectRow {
    #[sqlx(flatten)]
    pub(crate) key: ApiKeyRow,
    p_id: String,
    p_name: String,
    p_slug: String,
    p_description: String,
    p_vault_id: Option<String>,
    p_created_at: DateTime<Utc>,
    p_updated_at: DateTime<Utc>,
}

impl KeyWithProjectRow {
    pub(crate) fn project_row(&self) -> ProjectRow {
        ProjectRow {
            id: self.p_id.clone(),
            name: self.p_name.clone(),
            slug: self.p_slug.clone(),
            description: self.p_description.clone(),
            vault_id: self.p_vault_id.clone(),
            created_at: self.p_created_at,
            updated_at: self.p_updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VaultRow {
    id: String,
    project_id: String,
    name: String,
    metadata: Json<Map<String, Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<VaultRow> for Vault {
    fn from(r: VaultRow) -> Self {
        Vault {
            id: VaultId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            name: r.name,
            metadata: r.metadata.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecretRow {
    vault_id: String,
    name: String,
    ciphertext: Vec<u8>,
    wrapped_key: Vec<u8>,
    kek_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SecretRow> for Secret {
    fn from(r: SecretRow) -> Self {
        Secret {
            vault_id: VaultId::from_string(r.vault_id),
            name: SecretName::from_stored(r.name),
            sealed: SealedValue {
                ciphertext: r.ciphertext,
                wrapped_key: r.wrapped_key,
                kek_id: r.kek_id,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TemplateRow {
    id: String,
    project_id: String,
    name: String,
    content: String,
    variables: Json<Vec<String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<TemplateRow> for PromptTemplate {
    fn from(r: TemplateRow) -> Self {
        PromptTemplate {
            id: TemplateId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            name: r.name,
            content: r.content,
            variables: r.variables.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    project_id: String,
    actor_user_id: Option<String>,
    actor_api_key_id: Option<String>,
    action: String,
    subject_type: String,
    subject_id: String,
    agent_version_id: Option<String>,
    session_id: Option<String>,
    metadata: Json<Map<String, Value>>,
    created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: AuditId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            actor_user_id: r.actor_user_id,
            actor_api_key_id: r.actor_api_key_id.map(ApiKeyId::from_string),
            action: r.action,
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            agent_version_id: r.agent_version_id,
            session_id: r.session_id,
            metadata: r.metadata.0,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    id: String,
    project_id: String,
    title: String,
    system_prompt: String,
    model: String,
    metadata: Json<Value>,
    prompt_tokens: i64,
    completion_tokens: i64,
    llm_calls: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Conversation {
            id: ConversationId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            title: r.title,
            system_prompt: r.system_prompt,
            model: r.model,
            metadata: r.metadata.0,
            usage: Usage {
                prompt_tokens: r.prompt_tokens.max(0) as u32,
                completion_tokens: r.completion_tokens.max(0) as u32,
            },
            llm_calls: r.llm_calls,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: String,
    conversation_id: String,
    role: String,
    content: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for ConversationMessage {
    type Error = kiln_core::StoreError;
    fn try_from(r: MessageRow) -> Result<Self, Self::Error> {
        Ok(ConversationMessage {
            id: MessageId::from_string(r.id),
            conversation_id: ConversationId::from_string(r.conversation_id),
            role: Role::parse(&r.role).ok_or_else(|| {
                kiln_core::StoreError::Corrupt(format!("unknown message role `{}`", r.role))
            })?,
            content: r.content,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IndexRow {
    id: String,
    project_id: String,
    name: String,
    description: String,
    metadata: Json<Map<String, Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<IndexRow> for Index {
    fn from(r: IndexRow) -> Self {
        Index {
            id: IndexId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            name: r.name,
            description: r.description,
            metadata: r.metadata.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
