//! The control plane's storage port: projects, keys, vaults, templates,
//! the audit log and the project's metrics.
//!
//! Architecture invariant: every method that touches project data takes the
//! caller's `ProjectId` and filters on it; there is no way to read another
//! project's rows through this trait. Mutating methods take the audit entry
//! and write it in the same transaction as the change.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::audit::{AuditEntry, AuditFilter, NewAudit};
use crate::error::StoreResult;
use crate::ids::{ApiKeyId, AuditId, ProjectId, TemplateId, VaultId};
use crate::page::Page;
use crate::project::{ApiKey, ApiKeyListing, Project, ProjectMetrics};
use crate::template::PromptTemplate;
use crate::time::Timestamp;
use crate::vault::{Secret, SecretName, Vault};

#[async_trait]
pub trait ControlStore: Send + Sync {
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    // Projects.
    /// Creates a project, optionally with its first key, in one transaction
    /// (so a crash never leaves a bootstrapped project without a key).
    async fn create_project(
        &self,
        project: &Project,
        first_key: Option<&ApiKey>,
        audits: &[NewAudit],
    ) -> StoreResult<()>;
    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>>;
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    async fn count_projects(&self) -> StoreResult<i64>;
    /// Designates (or clears) the project's vault. `Ok(false)` when the vault
    /// is not in the project; nothing is written then.
    async fn set_project_vault(
        &self,
        project_id: &ProjectId,
        vault_id: Option<&VaultId>,
        at: Timestamp,
        audit: &NewAudit,
    ) -> StoreResult<bool>;
    /// The project's counters: LLM calls and tokens, sessions and steps.
    async fn project_metrics(&self, project_id: &ProjectId) -> StoreResult<ProjectMetrics>;

    // API keys.
    async fn create_api_key(&self, key: &ApiKey, audit: &NewAudit) -> StoreResult<()>;
    /// The key with this hash and its project, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<(ApiKey, Project)>>;
    async fn api_key_by_id(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self, project_id: Option<&ProjectId>) -> StoreResult<Vec<ApiKeyListing>>;
    /// `Ok(false)` when the key was already revoked (nothing written).
    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp, audit: &NewAudit) -> StoreResult<bool>;
    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> StoreResult<()>;

    // Secret vaults.
    async fn create_vault(&self, vault: &Vault, audit: &NewAudit) -> StoreResult<()>;
    async fn list_vaults(&self, project_id: &ProjectId) -> StoreResult<Vec<Vault>>;
    async fn get_vault(&self, project_id: &ProjectId, id: &VaultId) -> StoreResult<Option<Vault>>;
    async fn update_vault_metadata(
        &self,
        project_id: &ProjectId,
        id: &VaultId,
        metadata: &Map<String, Value>,
        at: Timestamp,
        audit: &NewAudit,
    ) -> StoreResult<Option<Vault>>;
    /// Deletes the vault, its secrets and a designation pointing at it.
    async fn delete_vault(&self, project_id: &ProjectId, id: &VaultId, audit: &NewAudit)
    -> StoreResult<bool>;
    /// `None` when the vault is not in the project.
    async fn list_secrets(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
    ) -> StoreResult<Option<Vec<Secret>>>;
    async fn get_secret(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
        name: &SecretName,
    ) -> StoreResult<Option<Secret>>;
    /// Inserts or replaces; returns the stored row (with the first
    /// `created_at`), or `None` when the vault is not in the project.
    async fn put_secret(
        &self,
        project_id: &ProjectId,
        secret: &Secret,
        audit: &NewAudit,
    ) -> StoreResult<Option<Secret>>;
    /// `None` when the vault is not in the project, else whether a secret went.
    async fn delete_secret(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
        name: &SecretName,
        audit: &NewAudit,
    ) -> StoreResult<Option<bool>>;

    // Prompt templates.
    async fn create_template(&self, template: &PromptTemplate, audit: &NewAudit) -> StoreResult<()>;
    async fn list_templates(&self, project_id: &ProjectId) -> StoreResult<Vec<PromptTemplate>>;
    async fn get_template(
        &self,
        project_id: &ProjectId,
        id: &TemplateId,
    ) -> StoreResult<Option<PromptTemplate>>;
    /// Replaces name, content and variables; `Ok(false)` when it is gone.
    async fn update_template(&self, template: &PromptTemplate, audit: &NewAudit) -> StoreResult<bool>;
    async fn delete_template(
        &self,
        project_id: &ProjectId,
        id: &TemplateId,
        audit: &NewAudit,
    ) -> StoreResult<bool>;

    // Audit log.
    /// Newest first; the count ignores the page.
    async fn list_audit(
        &self,
        project_id: &ProjectId,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<(Vec<AuditEntry>, i64)>;
    /// Up to `limit` matching entries older than `before` (created_at, id),
    /// newest first: keyset pages for streaming exports.
    async fn audit_page_before(
        &self,
        project_id: &ProjectId,
        filter: &AuditFilter,
        before: Option<&(Timestamp, AuditId)>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
}
