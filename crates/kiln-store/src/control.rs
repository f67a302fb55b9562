//! `impl ControlStore for SqlStore`: projects, keys, vaults, secrets,
//! templates, the audit log and the project metrics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::audit::{AuditEntry, AuditFilter, NewAudit};
use kiln_core::control::store::ControlStore;
use kiln_core::ids::{ApiKeyId, AuditId, ProjectId, TemplateId, VaultId};
use kiln_core::page::Page;
use kiln_core::project::{ApiKey, ApiKeyListing, Project, ProjectMetrics};
use kiln_core::template::PromptTemplate;
use kiln_core::vault::{Secret, SecretName, Vault};
use kiln_core::{StoreError, StoreResult};

use crate::connect::SqlStore;
use crate::db::{Db, db_err};
use crate::macros::Bind;
use crate::rows::{ApiKeyRow, AuditRow, KeyWithProjectRow, ProjectRow, SecretRow, TemplateRow, VaultRow};

/// The statuses `project_metrics` counts as active.
const BUSY_STATUSES: &str = "'running', 'awaiting_input', 'awaiting_tool'";

const PROJECT_COLUMNS: &str = "id, name, slug, description, vault_id, created_at, updated_at";
const VAULT_COLUMNS: &str = "id, project_id, name, metadata, created_at, updated_at";
const SECRET_COLUMNS: &str = "vault_id, name, ciphertext, wrapped_key, kek_id, created_at, updated_at";
const TEMPLATE_COLUMNS: &str = "id, project_id, name, content, variables, created_at, updated_at";
const AUDIT_COLUMNS: &str = "id, project_id, actor_user_id, actor_api_key_id, action, subject_type, subject_id, \
     agent_version_id, session_id, metadata, created_at";

/// The `WHERE` clause of the audit list and export, with `$N` placeholders.
fn audit_where(project_id: &ProjectId, filter: &AuditFilter) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Text(project_id.to_string())];
    let mut sql = String::from(" WHERE project_id = $1");
    let mut add = |column: &str, op: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(&format!(" AND {column} {op} ${}", binds.len()));
    };
    if let Some(v) = &filter.action {
        add("action", "=", Bind::Text(v.clone()));
    }
    if let Some(v) = &filter.actor_user_id {
        add("actor_user_id", "=", Bind::Text(v.clone()));
    }
    if let Some(v) = &filter.subject_type {
        add("subject_type", "=", Bind::Text(v.clone()));
    }
    if let Some(v) = filter.from {
        add("created_at", ">=", Bind::Time(v));
    }
    if let Some(v) = filter.to {
        add("created_at", "<", Bind::Time(v));
    }
    (sql, binds)
}

#[async_trait]
impl ControlStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        read!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await.map_err(db_err)?;
        });
        Ok(())
    }

    async fn create_project(
        &self,
        project: &Project,
        first_key: Option<&ApiKey>,
        audits: &[NewAudit],
    ) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO projects (id, name, slug, description, vault_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6)",
            )
            .bind(project.id.as_str())
            .bind(project.name.as_str())
            .bind(&project.slug)
            .bind(&project.description)
            .bind(project.created_at)
            .bind(project.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(key) = first_key {
                insert_key!(tx, key);
            }
            for audit in audits {
                insert_audit!(tx, audit);
            }
            tx.commit().await.map_err(db_err)
        })
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1");
        let row: Option<ProjectRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(Project::try_from).transpose()
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, id");
        let rows: Vec<ProjectRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(Project::try_from).collect()
    }

    async fn count_projects(&self) -> StoreResult<i64> {
        read!(self, |pool| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM projects")
                .fetch_one(pool)
                .await
                .map_err(db_err)?;
            row.try_get::<i64, _>("n").map_err(db_err)
        })
    }

    async fn set_project_vault(
        &self,
        project_id: &ProjectId,
        vault_id: Option<&VaultId>,
        at: DateTime<Utc>,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            if let Some(vault_id) = vault_id {
                let found = sqlx::query("SELECT id FROM secret_vaults WHERE project_id = $1 AND id = $2")
                    .bind(project_id.as_str())
                    .bind(vault_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if found.is_none() {
                    return Ok(false);
                }
            }
            let updated = sqlx::query("UPDATE projects SET vault_id = $1, updated_at = $2 WHERE id = $3")
                .bind(vault_id.map(|v| v.as_str()))
                .bind(at)
                .bind(project_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err);
            match updated {
                Ok(_) => {}
                // The vault was deleted between the check and the update.
                Err(StoreError::ForeignKeyViolation(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn project_metrics(&self, project_id: &ProjectId) -> StoreResult<ProjectMetrics> {
        // A session is active while a turn runs or waits, or before its
        // first turn; completed once its last turn ended (done or
        // cancelled); in error when its last turn failed. The three add up
        // to the total.
        let sessions_sql = format!(
            "SELECT COUNT(*) AS total, \
                    CAST(COALESCE(SUM(CASE WHEN status IN ({BUSY_STATUSES}) \
                      OR (status = 'active' AND last_seq = 0) THEN 1 ELSE 0 END), 0) AS BIGINT) AS active, \
                    CAST(COALESCE(SUM(CASE WHEN status = 'active' AND last_seq > 0 THEN 1 ELSE 0 END), 0) \
                      AS BIGINT) AS completed, \
                    CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
                    CAST(COALESCE(SUM(step_count), 0) AS BIGINT) AS steps \
             FROM agent_sessions WHERE project_id = $1"
        );
        read!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS calls, CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt, \
                        CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion \
                 FROM llm_calls WHERE project_id = $1",
            )
            .bind(project_id.as_str())
            .fetch_one(&mut *pool)
            .await
            .map_err(db_err)?;
            let sessions = sqlx::query(AssertSqlSafe(sessions_sql))
                .bind(project_id.as_str())
                .fetch_one(pool)
                .await
                .map_err(db_err)?;
            let (runs, completed_runs, cases_passed, cases_failed, average) =
                crate::evals::eval_metrics(self, project_id).await?;
            let prompt: i64 = row.try_get("prompt").map_err(db_err)?;
            let completion: i64 = row.try_get("completion").map_err(db_err)?;
            Ok(ProjectMetrics {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
                request_count: row.try_get("calls").map_err(db_err)?,
                total_sessions: sessions.try_get("total").map_err(db_err)?,
                active_sessions: sessions.try_get("active").map_err(db_err)?,
                completed_sessions: sessions.try_get("completed").map_err(db_err)?,
                error_sessions: sessions.try_get("errors").map_err(db_err)?,
                total_steps: sessions.try_get("steps").map_err(db_err)?,
                total_eval_runs: runs,
                completed_eval_runs: completed_runs,
                eval_cases_passed: cases_passed,
                eval_cases_failed: cases_failed,
                eval_average_score: average,
            })
        })
    }

    async fn create_api_key(&self, key: &ApiKey, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            insert_key!(tx, key);
            commit_audited!(tx, audit)
        })
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<(ApiKey, Project)>> {
        let row: Option<KeyWithProjectRow> = read!(self, |pool| {
            sqlx::query_as(
            "SELECT k.id, k.project_id, k.name, k.prefix, k.key_hash, k.created_at, k.last_used_at, k.revoked_at, \
                    p.id AS p_id, p.name AS p_name, p.slug AS p_slug, p.description AS p_description, \
                    p.vault_id AS p_vault_id, p.created_at AS p_created_at, p.updated_at AS p_updated_at \
             FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?
        });
        match row {
            None => Ok(None),
            Some(row) => {
                let project = Project::try_from(row.project_row())?;
                Ok(Some((ApiKey::from(row.key), project)))
            }
        }
    }

    async fn api_key_by_id(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = read!(self, |pool| {
            sqlx::query_as(
                "SELECT id, project_id, name, prefix, key_hash, created_at, last_used_at, revoked_at \
             FROM api_keys WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?
        });
        Ok(row.map(ApiKey::from))
    }

    async fn list_api_keys(&self, project_id: Option<&ProjectId>) -> StoreResult<Vec<ApiKeyListing>> {
        let rows = read!(self, |pool| {
            let rows = sqlx::query(
                "SELECT k.id, k.project_id, k.name, k.prefix, k.key_hash, k.created_at, k.last_used_at, \
                        k.revoked_at, p.name AS project_name \
                 FROM api_keys k JOIN projects p ON p.id = k.project_id \
                 WHERE ($1 IS NULL OR k.project_id = $1) ORDER BY k.created_at, k.id",
            )
            .bind(project_id.map(|p| p.as_str()))
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let key: ApiKeyRow = sqlx::FromRow::from_row(row).map_err(db_err)?;
                out.push(ApiKeyListing {
                    key: key.into(),
                    project_name: row.try_get("project_name").map_err(db_err)?,
                });
            }
            out
        });
        Ok(rows)
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>, audit: &NewAudit) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done =
                sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    async fn create_vault(&self, vault: &Vault, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO secret_vaults (id, project_id, name, metadata, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(vault.id.as_str())
            .bind(vault.project_id.as_str())
            .bind(&vault.name)
            .bind(Json(&vault.metadata))
            .bind(vault.created_at)
            .bind(vault.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn list_vaults(&self, project_id: &ProjectId) -> StoreResult<Vec<Vault>> {
        let sql =
            format!("SELECT {VAULT_COLUMNS} FROM secret_vaults WHERE project_id = $1 ORDER BY name, id");
        let rows: Vec<VaultRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(Vault::from).collect())
    }

    async fn get_vault(&self, project_id: &ProjectId, id: &VaultId) -> StoreResult<Option<Vault>> {
        let sql = format!("SELECT {VAULT_COLUMNS} FROM secret_vaults WHERE project_id = $1 AND id = $2");
        let row: Option<VaultRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(Vault::from))
    }

    async fn update_vault_metadata(
        &self,
        project_id: &ProjectId,
        id: &VaultId,
        metadata: &Map<String, Value>,
        at: DateTime<Utc>,
        audit: &NewAudit,
    ) -> StoreResult<Option<Vault>> {
        let sql = format!(
            "UPDATE secret_vaults SET metadata = $1, updated_at = $2 WHERE project_id = $3 AND id = $4 \
             RETURNING {VAULT_COLUMNS}"
        );
        write_tx!(self, |tx| {
            let row: Option<VaultRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(Json(metadata))
                .bind(at)
                .bind(project_id.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            commit_audited!(tx, audit)?;
            Ok(Some(Vault::from(row)))
        })
    }

    async fn delete_vault(
        &self,
        project_id: &ProjectId,
        id: &VaultId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND vault_id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query("DELETE FROM secret_vaults WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("UPDATE projects SET vault_id = NULL WHERE id = $1 AND vault_id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn list_secrets(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
    ) -> StoreResult<Option<Vec<Secret>>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE project_id = $1 AND vault_id = $2 ORDER BY name"
        );
        read!(self, |pool| {
            let vault = sqlx::query("SELECT id FROM secret_vaults WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(vault_id.as_str())
                .fetch_optional(&mut *pool)
                .await
                .map_err(db_err)?;
            if vault.is_none() {
                return Ok(None);
            }
            let rows: Vec<SecretRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(vault_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            Ok(Some(rows.into_iter().map(Secret::from).collect()))
        })
    }

    async fn get_secret(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
        name: &SecretName,
    ) -> StoreResult<Option<Secret>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE project_id = $1 AND vault_id = $2 AND name = $3"
        );
        let row: Option<SecretRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(vault_id.as_str())
            .bind(name.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(Secret::from))
    }

    async fn put_secret(
        &self,
        project_id: &ProjectId,
        secret: &Secret,
        audit: &NewAudit,
    ) -> StoreResult<Option<Secret>> {
        let sql = format!(
            "INSERT INTO secrets (project_id, vault_id, name, ciphertext, wrapped_key, kek_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (vault_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, \
                 wrapped_key = excluded.wrapped_key, kek_id = excluded.kek_id, updated_at = excluded.updated_at \
             RETURNING {SECRET_COLUMNS}"
        );
        write_tx!(self, |tx| {
            let vault = sqlx::query("SELECT id FROM secret_vaults WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(secret.vault_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if vault.is_none() {
                return Ok(None);
            }
            let row: Result<SecretRow, _> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(secret.vault_id.as_str())
                .bind(secret.name.as_str())
                .bind(&secret.sealed.ciphertext)
                .bind(&secret.sealed.wrapped_key)
                .bind(&secret.sealed.kek_id)
                .bind(secret.created_at)
                .bind(secret.updated_at)
                .fetch_one(&mut *tx)
                .await;
            let row = match row.map_err(db_err) {
                Ok(row) => row,
                // The vault was deleted between the check and the insert.
                Err(StoreError::ForeignKeyViolation(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            commit_audited!(tx, audit)?;
            Ok(Some(Secret::from(row)))
        })
    }

    async fn delete_secret(
        &self,
        project_id: &ProjectId,
        vault_id: &VaultId,
        name: &SecretName,
        audit: &NewAudit,
    ) -> StoreResult<Option<bool>> {
        write_tx!(self, |tx| {
            let vault = sqlx::query("SELECT id FROM secret_vaults WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(vault_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if vault.is_none() {
                return Ok(None);
            }
            let done =
                sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND vault_id = $2 AND name = $3")
                    .bind(project_id.as_str())
                    .bind(vault_id.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let existed = done.rows_affected() > 0;
            let audit = audit.clone().meta("existed", existed);
            commit_audited!(tx, &audit)?;
            Ok(Some(existed))
        })
    }

    async fn create_template(&self, template: &PromptTemplate, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO prompt_templates (id, project_id, name, content, variables, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(template.id.as_str())
            .bind(template.project_id.as_str())
            .bind(&template.name)
            .bind(&template.content)
            .bind(Json(&template.variables))
            .bind(template.created_at)
            .bind(template.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn list_templates(&self, project_id: &ProjectId) -> StoreResult<Vec<PromptTemplate>> {
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM prompt_templates WHERE project_id = $1 ORDER BY name, id"
        );
        let rows: Vec<TemplateRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(PromptTemplate::from).collect())
    }

    async fn get_template(
        &self,
        project_id: &ProjectId,
        id: &TemplateId,
    ) -> StoreResult<Option<PromptTemplate>> {
        let sql =
            format!("SELECT {TEMPLATE_COLUMNS} FROM prompt_templates WHERE project_id = $1 AND id = $2");
        let row: Option<TemplateRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(PromptTemplate::from))
    }

    async fn update_template(&self, template: &PromptTemplate, audit: &NewAudit) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE prompt_templates SET name = $1, content = $2, variables = $3, updated_at = $4 \
                 WHERE project_id = $5 AND id = $6",
            )
            .bind(&template.name)
            .bind(&template.content)
            .bind(Json(&template.variables))
            .bind(template.updated_at)
            .bind(template.project_id.as_str())
            .bind(template.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn delete_template(
        &self,
        project_id: &ProjectId,
        id: &TemplateId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query("DELETE FROM prompt_templates WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn list_audit(
        &self,
        project_id: &ProjectId,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<(Vec<AuditEntry>, i64)> {
        let (where_sql, binds) = audit_where(project_id, filter);
        let (rows, total) = count_and_page!(
            self,
            AuditRow,
            AUDIT_COLUMNS,
            format!("audit_log{where_sql}"),
            binds,
            page
        );
        Ok((rows.into_iter().map(AuditEntry::from).collect(), total))
    }

    async fn audit_page_before(
        &self,
        project_id: &ProjectId,
        filter: &AuditFilter,
        before: Option<&(DateTime<Utc>, AuditId)>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let (mut where_sql, mut binds) = audit_where(project_id, filter);
        if let Some((at, id)) = before {
            binds.push(Bind::Time(*at));
            let t = binds.len();
            binds.push(Bind::Text(id.to_string()));
            let i = binds.len();
            where_sql.push_str(&format!(
                " AND (created_at < ${t} OR (created_at = ${t} AND id < ${i}))"
            ));
        }
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log{where_sql} ORDER BY created_at DESC, id DESC LIMIT ${}",
            binds.len() + 1
        );
        read!(self, |pool| {
            let rows: Vec<AuditRow> = bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &binds)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            Ok(rows.into_iter().map(AuditEntry::from).collect())
        })
    }
}
