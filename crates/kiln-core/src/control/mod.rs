//! The control plane: projects, API keys and authentication, secret
//! vaults, prompt templates, the audit log and the project's metrics. The
//! engines ([`crate::gateway`], [`crate::rag`], [`crate::runtime`]) are
//! services of their own; this one knows none of them.

pub mod rate;
pub mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::{Actor, AuditEntry, AuditFilter, NewAudit, actions};
use crate::auth::{AuthCache, AuthContext, DISPLAY_PREFIX_CHARS, LAST_USED_RESOLUTION, generate_api_key};
use crate::crypto::{Kek, hash_api_key};
use crate::error::{EntityKind, Error, Result, StoreError, unique_or};
use crate::ids::{ApiKeyId, ProjectId, TemplateId, VaultId};
use crate::page::Page;
use crate::project::{ApiKey, ApiKeyListing, DEFAULT_PROJECT_NAME, Project, ProjectMetrics, ProjectName};
use crate::template::{self, PromptTemplate};
use crate::time::now;
use crate::usage::UsageLog;
use crate::vault::{self, MAX_SECRET_BYTES, Secret, SecretName, Vault};
use store::ControlStore;

/// Audit-log page size: default and cap (CONTRACT §2.15).
pub const AUDIT_DEFAULT_LIMIT: i64 = 100;
pub const AUDIT_MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The key-encryption key; without one, vault endpoints answer 503.
    pub kek: Option<Kek>,
    /// How long an authenticated key is trusted before it is looked up again.
    pub auth_cache_ttl: Duration,
    /// Per-key limits on runs, chat completions and uploads.
    pub rate_limits: rate::RateLimits,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            kek: None,
            auth_cache_ttl: Duration::from_secs(2),
            rate_limits: rate::RateLimits::default(),
        }
    }
}

/// A freshly minted key: the only moment its plaintext exists.
#[derive(Debug)]
pub struct CreatedKey {
    pub project: Project,
    pub project_created: bool,
    pub key: ApiKey,
    pub plaintext: String,
}

pub struct ControlPlane {
    store: Arc<dyn ControlStore>,
    kek: Option<Kek>,
    auth_cache: AuthCache,
    rates: rate::RateLimiter,
    /// Flushed before metrics are counted.
    usage: Arc<UsageLog>,
    /// Moves on every change to a vault or to the project's designation, so
    /// caches of what vaults hold (the gateway's provider settings) can tell
    /// they are stale without this service knowing them.
    vault_epoch: AtomicU64,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("kek", &self.kek)
            .finish_non_exhaustive()
    }
}

fn new_project(name: &str) -> Result<Project> {
    let name = ProjectName::parse(name)?;
    let at = now();
    Ok(Project {
        id: ProjectId::generate(),
        slug: name.slug(),
        name,
        description: String::new(),
        vault_id: None,
        created_at: at,
        updated_at: at,
    })
}

fn project_audit(project: &Project) -> NewAudit {
    NewAudit::new(
        &project.id,
        &Actor::cli(),
        actions::PROJECT_CREATE,
        project.id.as_str(),
    )
    .meta("name", project.name.as_str())
}

/// A fresh key for `project` and its plaintext (shown once, never stored).
fn new_key(project: &Project, name: &str) -> (ApiKey, String) {
    let plaintext = generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::generate(),
        project_id: project.id.clone(),
        name: name.trim().to_owned(),
        prefix: plaintext[..DISPLAY_PREFIX_CHARS].to_owned(),
        key_hash: hash_api_key(&plaintext),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    (key, plaintext)
}

fn key_audit(key: &ApiKey) -> NewAudit {
    NewAudit::new(
        &key.project_id,
        &Actor::cli(),
        actions::API_KEY_CREATE,
        key.id.as_str(),
    )
    .meta("name", key.name.clone())
    .meta("prefix", key.prefix.clone())
}

impl ControlPlane {
    pub fn new(store: Arc<dyn ControlStore>, usage: Arc<UsageLog>, config: ControlConfig) -> Self {
        ControlPlane {
            store,
            kek: config.kek,
            auth_cache: AuthCache::new(config.auth_cache_ttl),
            rates: rate::RateLimiter::new(config.rate_limits),
            usage,
            vault_epoch: AtomicU64::new(0),
        }
    }

    /// Forgets cached auth after a vault change and moves the vault epoch.
    fn vault_changed(&self) {
        self.auth_cache.clear();
        self.vault_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The vault epoch: equal values mean no vault changed in between.
    pub fn vault_epoch(&self) -> u64 {
        self.vault_epoch.load(Ordering::SeqCst)
    }

    /// Whether secrets can be read at all (a key-encryption key is set).
    pub fn secrets_enabled(&self) -> bool {
        self.kek.is_some()
    }

    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    // ---- projects and keys (CLI and first start) ----

    /// On an empty store, creates project `default` with one key and returns
    /// it; otherwise `None`. Two servers racing on one database: one wins,
    /// the other sees the unique name taken and returns `None`.
    pub async fn bootstrap(&self) -> Result<Option<CreatedKey>> {
        if self.store.count_projects().await? > 0 {
            return Ok(None);
        }
        let project = new_project(DEFAULT_PROJECT_NAME)?;
        let (key, plaintext) = new_key(&project, "bootstrap");
        let audits = [project_audit(&project), key_audit(&key)];
        match self.store.create_project(&project, Some(&key), &audits).await {
            Ok(()) => Ok(Some(CreatedKey {
                project,
                project_created: true,
                key,
                plaintext,
            })),
            Err(StoreError::UniqueViolation(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_project(&self, name: &str) -> Result<Project> {
        let project = new_project(name)?;
        self.store
            .create_project(&project, None, &[project_audit(&project)])
            .await
            .map_err(|e| {
                unique_or(e, || {
                    format!("project `{}` already exists", project.name.as_str())
                })
            })?;
        Ok(project)
    }

    /// Mints a key for `project_name`, creating the project when missing.
    pub async fn create_key(&self, project_name: &str, key_name: &str) -> Result<CreatedKey> {
        let name = ProjectName::parse(project_name)?;
        let (project, project_created) = match self.store.project_by_name(name.as_str()).await? {
            Some(p) => (p, false),
            None => match self.create_project(name.as_str()).await {
                Ok(p) => (p, true),
                // Created by someone else in between: use theirs.
                Err(Error::Conflict(_)) => (
                    self.store
                        .project_by_name(name.as_str())
                        .await?
                        .ok_or_else(|| Error::not_found(EntityKind::Project, name.as_str()))?,
                    false,
                ),
                Err(e) => return Err(e),
            },
        };
        let (key, plaintext) = new_key(&project, key_name);
        let audit = key_audit(&key);
        self.store.create_api_key(&key, &audit).await?;
        Ok(CreatedKey {
            project,
            project_created,
            key,
            plaintext,
        })
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        Ok(self.store.list_projects().await?)
    }

    /// Keys of one project (by name) or of all projects.
    pub async fn list_keys(&self, project_name: Option<&str>) -> Result<Vec<ApiKeyListing>> {
        let project_id = match project_name {
            Some(name) => Some(
                self.store
                    .project_by_name(name)
                    .await?
                    .ok_or_else(|| Error::not_found(EntityKind::Project, name))?
                    .id,
            ),
            None => None,
        };
        Ok(self.store.list_api_keys(project_id.as_ref()).await?)
    }

    /// Revokes a key; `Ok(false)` when it was already revoked.
    pub async fn revoke_key(&self, id: &ApiKeyId) -> Result<bool> {
        let key = self
            .store
            .api_key_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::ApiKey, id))?;
        let audit = NewAudit::new(
            &key.project_id,
            &Actor::cli(),
            actions::API_KEY_REVOKE,
            id.as_str(),
        );
        let revoked = self.store.revoke_api_key(id, now(), &audit).await?;
        self.auth_cache.clear();
        Ok(revoked)
    }

    // ---- authentication ----

    /// Resolves an `X-API-Key` value to its key and project.
    /// Takes one call of `kind` from the caller's key's rate limit, or
    /// refuses with `Error::RateLimited`.
    pub fn rate_limit(&self, ctx: &AuthContext, kind: rate::RateKind) -> Result<()> {
        self.rates.take(&ctx.key_id, kind)
    }

    /// Whether the key still stands (not revoked, not gone). Running turns
    /// ask at each lease renewal, so a revoked key's turn stops.
    pub async fn key_is_active(&self, id: &ApiKeyId) -> Result<bool> {
        Ok(self
            .store
            .api_key_by_id(id)
            .await?
            .is_some_and(|key| key.revoked_at.is_none()))
    }

    pub async fn authenticate(&self, raw_key: &str) -> Result<AuthContext> {
        if raw_key.starts_with(tokens::TOKEN_PREFIX) {
            return self.authenticate_token(raw_key).await;
        }
        let key_hash = hash_api_key(raw_key);
        if let Some(ctx) = self.auth_cache.get(&key_hash) {
            return Ok(ctx);
        }
        let Some((key, project)) = self.store.api_key_by_hash(&key_hash).await? else {
            return Err(Error::Unauthorized("invalid API key".into()));
        };
        if key.revoked_at.is_some() {
            return Err(Error::Unauthorized("API key has been revoked".into()));
        }
        let at = now();
        let stale = key
            .last_used_at
            .is_none_or(|last| (at - last).to_std().unwrap_or_default() >= LAST_USED_RESOLUTION);
        if stale && let Err(e) = self.store.touch_api_key(&key.id, at).await {
            tracing::warn!(error = %e, key_id = %key.id, "could not record last_used_at");
        }
        let ctx = AuthContext {
            key_id: key.id,
            project,
            session: None,
            via_token: false,
        };
        self.auth_cache.insert(key_hash, ctx.clone());
        Ok(ctx)
    }

    /// The context a background job acts in for the key that set it up
    /// (a schedule's creator): an error once the key is revoked or gone.
    pub async fn context_of_key(&self, key_id: &ApiKeyId) -> Result<AuthContext> {
        let key = self
            .store
            .api_key_by_id(key_id)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(|| Error::Unauthorized(format!("API key `{key_id}` has been revoked")))?;
        let project = self
            .store
            .list_projects()
            .await?
            .into_iter()
            .find(|p| p.id == key.project_id)
            .ok_or_else(|| Error::not_found(EntityKind::Project, &key.project_id))?;
        Ok(AuthContext {
            key_id: key.id,
            project,
            session: None,
            via_token: false,
        })
    }

    // ---- project endpoints ----

    pub async fn metrics(&self, ctx: &AuthContext) -> Result<ProjectMetrics> {
        self.usage.flush().await;
        Ok(self.store.project_metrics(&ctx.project.id).await?)
    }

    /// `PUT /project/vault`: `None` clears the designation.
    pub async fn set_project_vault(
        &self,
        ctx: &AuthContext,
        vault_id: Option<VaultId>,
    ) -> Result<Option<VaultId>> {
        let actor = Actor::api_key(ctx.key_id.clone());
        let audit = NewAudit::new(
            &ctx.project.id,
            &actor,
            actions::PROJECT_VAULT_SET,
            ctx.project.id.as_str(),
        )
        .meta("vault_id", vault_id.as_ref().map(|v| v.to_string()));
        let found = self
            .store
            .set_project_vault(&ctx.project.id, vault_id.as_ref(), now(), &audit)
            .await?;
        if !found {
            let id = vault_id.map(VaultId::into_string).unwrap_or_default();
            return Err(Error::not_found(EntityKind::Vault, id));
        }
        self.vault_changed();
        Ok(vault_id)
    }

    // ---- secret vaults ----

    fn kek(&self) -> Result<&Kek> {
        self.kek.as_ref().ok_or(Error::SecretsDisabled)
    }

    pub async fn create_vault(
        &self,
        ctx: &AuthContext,
        name: &str,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Vault> {
        self.kek()?;
        let at = now();
        let vault = Vault {
            id: VaultId::generate(),
            project_id: ctx.project.id.clone(),
            name: vault::parse_vault_name(name)?,
            metadata: metadata.unwrap_or_default(),
            created_at: at,
            updated_at: at,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::SECRET_VAULT_CREATE,
            vault.id.as_str(),
        )
        .meta("name", vault.name.clone());
        self.store.create_vault(&vault, &audit).await.map_err(|e| {
            unique_or(e, || {
                format!("a secret vault named `{}` already exists", vault.name)
            })
        })?;
        Ok(vault)
    }

    pub async fn list_vaults(&self, ctx: &AuthContext) -> Result<Vec<Vault>> {
        self.kek()?;
        Ok(self.store.list_vaults(&ctx.project.id).await?)
    }

    pub async fn get_vault(&self, ctx: &AuthContext, id: &VaultId) -> Result<Vault> {
        self.kek()?;
        self.store
            .get_vault(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Vault, id))
    }

    pub async fn update_vault(
        &self,
        ctx: &AuthContext,
        id: &VaultId,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Vault> {
        let current = self.get_vault(ctx, id).await?;
        let Some(metadata) = metadata else {
            return Ok(current);
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::SECRET_VAULT_UPDATE,
            id.as_str(),
        );
        self.store
            .update_vault_metadata(&ctx.project.id, id, &metadata, now(), &audit)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Vault, id))
    }

    pub async fn delete_vault(&self, ctx: &AuthContext, id: &VaultId) -> Result<()> {
        self.kek()?;
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::SECRET_VAULT_DELETE,
            id.as_str(),
        );
        if !self.store.delete_vault(&ctx.project.id, id, &audit).await? {
            return Err(Error::not_found(EntityKind::Vault, id));
        }
        self.vault_changed();
        Ok(())
    }

    pub async fn list_secrets(&self, ctx: &AuthContext, vault_id: &VaultId) -> Result<Vec<Secret>> {
        self.kek()?;
        self.store
            .list_secrets(&ctx.project.id, vault_id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Vault, vault_id))
    }

    /// Encrypts and upserts a secret. The value never leaves this function
    /// in clear.
    pub async fn put_secret(
        &self,
        ctx: &AuthContext,
        vault_id: &VaultId,
        name: &str,
        value: &str,
    ) -> Result<Secret> {
        let kek = self.kek()?;
        let name = SecretName::parse(name)?;
        if value.is_empty() {
            return Err(Error::validation("value must not be empty", Some("value")));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(Error::validation(
                format!("value is larger than {MAX_SECRET_BYTES} bytes"),
                Some("value"),
            ));
        }
        let context = vault::seal_context(&ctx.project.id, vault_id, &name);
        let at = now();
        let secret = Secret {
            vault_id: vault_id.clone(),
            sealed: kek.seal(value.as_bytes(), &context),
            name,
            created_at: at,
            updated_at: at,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::SECRET_PUT,
            format!("{vault_id}/{}", secret.name.as_str()),
        )
        .meta("vault_id", vault_id.as_str())
        .meta("name", secret.name.as_str())
        .meta("kek_id", kek.id());
        let stored = self
            .store
            .put_secret(&ctx.project.id, &secret, &audit)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Vault, vault_id))?;
        self.vault_changed();
        Ok(stored)
    }

    /// Idempotent: deleting a missing secret succeeds; a missing vault is 404.
    pub async fn delete_secret(&self, ctx: &AuthContext, vault_id: &VaultId, name: &str) -> Result<()> {
        self.kek()?;
        let name = SecretName::parse(name)?;
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::SECRET_DELETE,
            format!("{vault_id}/{}", name.as_str()),
        )
        .meta("vault_id", vault_id.as_str())
        .meta("name", name.as_str());
        self.store
            .delete_secret(&ctx.project.id, vault_id, &name, &audit)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Vault, vault_id))?;
        self.vault_changed();
        Ok(())
    }

    /// Decrypts one secret of a vault, for server-side consumers (provider
    /// keys). Never exposed over HTTP.
    pub async fn reveal_secret(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
        name: &str,
    ) -> Result<Option<String>> {
        let kek = self.kek()?;
        let name = SecretName::parse(name)?;
        let Some(secret) = self.store.get_secret(project_id, vault_id, &name).await? else {
            return Ok(None);
        };
        let plain = kek.open(&secret.sealed, &vault::seal_context(project_id, vault_id, &name))?;
        String::from_utf8(plain).map(Some).map_err(|_| Error::Crypto)
    }

    // ---- prompt templates ----

    pub async fn create_template(
        &self,
        ctx: &AuthContext,
        name: &str,
        content: &str,
        variables: Option<Vec<String>>,
    ) -> Result<PromptTemplate> {
        let content = template::parse_template_content(content)?;
        let at = now();
        let template = PromptTemplate {
            id: TemplateId::generate(),
            project_id: ctx.project.id.clone(),
            name: template::parse_template_name(name)?,
            variables: variables.unwrap_or_else(|| template::placeholders(&content)),
            content,
            created_at: at,
            updated_at: at,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::PROMPT_TEMPLATE_CREATE,
            template.id.as_str(),
        )
        .meta("name", template.name.clone());
        self.store.create_template(&template, &audit).await.map_err(|e| {
            unique_or(e, || {
                format!("a prompt template named `{}` already exists", template.name)
            })
        })?;
        Ok(template)
    }

    pub async fn list_templates(&self, ctx: &AuthContext) -> Result<Vec<PromptTemplate>> {
        Ok(self.store.list_templates(&ctx.project.id).await?)
    }

    pub async fn get_template(&self, ctx: &AuthContext, id: &TemplateId) -> Result<PromptTemplate> {
        self.store
            .get_template(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::PromptTemplate, id))
    }

    /// Empty or missing `name`/`content` keep the current value; missing
    /// `variables` keep the current list.
    pub async fn update_template(
        &self,
        ctx: &AuthContext,
        id: &TemplateId,
        name: Option<&str>,
        content: Option<&str>,
        variables: Option<Vec<String>>,
    ) -> Result<PromptTemplate> {
        let mut template = self.get_template(ctx, id).await?;
        if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
            template.name = template::parse_template_name(name)?;
        }
        if let Some(content) = content.filter(|c| !c.is_empty()) {
            template.content = template::parse_template_content(content)?;
        }
        if let Some(variables) = variables {
            template.variables = variables;
        }
        template.updated_at = now();
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::PROMPT_TEMPLATE_UPDATE,
            id.as_str(),
        )
        .meta("name", template.name.clone());
        let updated = self.store.update_template(&template, &audit).await.map_err(|e| {
            unique_or(e, || {
                format!("a prompt template named `{}` already exists", template.name)
            })
        })?;
        if !updated {
            return Err(Error::not_found(EntityKind::PromptTemplate, id));
        }
        Ok(template)
    }

    pub async fn delete_template(&self, ctx: &AuthContext, id: &TemplateId) -> Result<()> {
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::PROMPT_TEMPLATE_DELETE,
            id.as_str(),
        );
        if !self.store.delete_template(&ctx.project.id, id, &audit).await? {
            return Err(Error::not_found(EntityKind::PromptTemplate, id));
        }
        Ok(())
    }

    // ---- audit log ----

    pub async fn list_audit(
        &self,
        ctx: &AuthContext,
        filter: &AuditFilter,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<(Vec<AuditEntry>, i64, Page)> {
        let page = Page::new(limit, offset, AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT);
        let (entries, total) = self.store.list_audit(&ctx.project.id, filter, page).await?;
        Ok((entries, total, page))
    }

    /// One page of an export: up to `limit` entries older than `before`,
    /// newest first. Exports walk these pages so memory stays bounded.
    pub async fn export_audit_page(
        &self,
        ctx: &AuthContext,
        filter: &AuditFilter,
        before: Option<&(crate::time::Timestamp, crate::ids::AuditId)>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .audit_page_before(&ctx.project.id, filter, before, limit)
            .await?)
    }
}
