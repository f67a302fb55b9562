//! `impl AgentConfigStore for SqlStore`: agent configs and their drafts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::StoreResult;
use kiln_core::agents::config::{AgentConfig, SkillBinding};
use kiln_core::agents::store::{AgentConfigStore, DraftWrite};
use kiln_core::audit::{Actor, NewAudit, actions};
use kiln_core::ids::{AgentId, DraftId, ProjectId};

use crate::connect::SqlStore;
use crate::db::{Db, db_err};

const AGENT_COLUMNS: &str = "id, project_id, code_first_project, local_id, name, description, created_by, \
     persona_md, skills_json, stores_json, provider, model, enabled_capabilities, eval_suite_id, \
     active_version_id, published_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: String,
    project_id: String,
    code_first_project: String,
    local_id: String,
    name: String,
    description: String,
    created_by: String,
    persona_md: String,
    skills_json: Json<Vec<SkillBinding>>,
    stores_json: Json<Vec<String>>,
    provider: String,
    model: String,
    enabled_capabilities: Option<Json<Vec<String>>>,
    eval_suite_id: Option<String>,
    active_version_id: Option<String>,
    published_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AgentRow> for AgentConfig {
    fn from(r: AgentRow) -> Self {
        AgentConfig {
            id: AgentId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            code_first_project: r.code_first_project,
            local_id: r.local_id,
            name: r.name,
            description: r.description,
            created_by: r.created_by,
            persona_md: r.persona_md,
            skills: r.skills_json.0,
            stores: r.stores_json.0,
            provider: r.provider,
            model: r.model,
            enabled_capabilities: r.enabled_capabilities.map(|c| c.0),
            eval_suite_id: r.eval_suite_id,
            active_version_id: r.active_version_id,
            published_at: r.published_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A draft's files as stored: `{path: base64}`.
fn encode_files(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, String> {
    files
        .iter()
        .map(|(path, bytes)| {
            (
                path.as_str(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            )
        })
        .collect()
}

#[async_trait]
impl AgentConfigStore for SqlStore {
    async fn sync_drafts(
        &self,
        project_id: &ProjectId,
        writes: &[DraftWrite],
        actor: &Actor,
    ) -> StoreResult<Vec<(AgentConfig, DraftId)>> {
        let select = format!(
            "SELECT {AGENT_COLUMNS} FROM agent_configs \
             WHERE project_id = $1 AND code_first_project = $2 AND local_id = $3"
        );
        write_tx!(self, |tx| {
            let mut stored = Vec::with_capacity(writes.len());
            for DraftWrite { agent: a, draft: d } in writes {
                sqlx::query(
                    "INSERT INTO agent_configs (id, project_id, code_first_project, local_id, name, description, \
                     created_by, persona_md, skills_json, stores_json, provider, model, enabled_capabilities, \
                     eval_suite_id, active_version_id, published_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                     ON CONFLICT (project_id, code_first_project, local_id) DO NOTHING",
                )
                .bind(a.id.as_str())
                .bind(project_id.as_str())
                .bind(&a.code_first_project)
                .bind(&a.local_id)
                .bind(&a.name)
                .bind(&a.description)
                .bind(&a.created_by)
                .bind(&a.persona_md)
                .bind(Json(&a.skills))
                .bind(Json(&a.stores))
                .bind(&a.provider)
                .bind(&a.model)
                .bind(a.enabled_capabilities.as_ref().map(Json))
                .bind(a.eval_suite_id.as_deref())
                .bind(a.active_version_id.as_deref())
                .bind(a.published_at)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let row: AgentRow = sqlx::query_as(AssertSqlSafe(select.clone()))
                    .bind(project_id.as_str())
                    .bind(&a.code_first_project)
                    .bind(&a.local_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let agent = AgentConfig::from(row);
                let draft_id: String = sqlx::query(
                    "INSERT INTO agent_drafts (id, project_id, agent_id, environment, source_hash, files, spec, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (agent_id, environment) DO UPDATE SET source_hash = excluded.source_hash, \
                     files = excluded.files, spec = excluded.spec, updated_at = excluded.updated_at \
                     RETURNING id",
                )
                .bind(d.id.as_str())
                .bind(project_id.as_str())
                .bind(agent.id.as_str())
                .bind(&d.environment)
                .bind(&d.source_hash)
                .bind(Json(encode_files(&d.files)))
                .bind(Json(&d.spec))
                .bind(d.created_at)
                .bind(d.updated_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?
                .try_get("id")
                .map_err(db_err)?;
                let audit = NewAudit::new(project_id, actor, actions::AGENT_SYNC, agent.id.as_str())
                    .meta("local_id", agent.local_id.clone())
                    .meta("project", agent.code_first_project.clone())
                    .meta("environment", d.environment.clone())
                    .meta("source_hash", d.source_hash.clone());
                insert_audit!(tx, &audit);
                stored.push((agent, DraftId::from_string(draft_id)));
            }
            tx.commit().await.map_err(db_err)?;
            Ok(stored)
        })
    }

    async fn list_agent_configs(&self, project_id: &ProjectId) -> StoreResult<Vec<AgentConfig>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agent_configs WHERE project_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<AgentRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(AgentConfig::from).collect())
    }

    async fn get_agent_config(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
    ) -> StoreResult<Option<AgentConfig>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agent_configs WHERE project_id = $1 AND id = $2");
        let row: Option<AgentRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(AgentConfig::from))
    }
}
