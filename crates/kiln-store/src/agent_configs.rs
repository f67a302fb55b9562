//! `impl AgentConfigStore for SqlStore`: agent configs and their drafts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::agents::config::{AgentConfig, AgentVersion, Draft, DraftSpec, SkillBinding, semver_of};
use kiln_core::agents::store::{AgentConfigStore, DraftWrite};
use kiln_core::audit::{Actor, NewAudit, actions};
use kiln_core::ids::{AgentId, AgentVersionId, DraftId, ProjectId};
use kiln_core::{StoreError, StoreResult};

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

const DRAFT_COLUMNS: &str =
    "id, project_id, agent_id, environment, source_hash, files, spec, created_at, updated_at";
const VERSION_COLUMNS: &str = "id, project_id, agent_id, seq, semver, persona_md, skills_json, stores_json, provider, \
     model, eval_suite_id, eval_suite_version, environment, source_hash, files, spec, created_by, created_at";

#[derive(sqlx::FromRow)]
struct DraftRow {
    id: String,
    project_id: String,
    agent_id: String,
    environment: String,
    source_hash: String,
    files: Json<BTreeMap<String, String>>,
    spec: Json<DraftSpec>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DraftRow> for Draft {
    type Error = StoreError;
    fn try_from(r: DraftRow) -> StoreResult<Draft> {
        Ok(Draft {
            id: DraftId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            agent_id: AgentId::from_string(r.agent_id),
            environment: r.environment,
            source_hash: r.source_hash,
            files: decode_files(r.files.0)?,
            spec: r.spec.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: String,
    project_id: String,
    agent_id: String,
    seq: i64,
    semver: String,
    persona_md: String,
    skills_json: Json<Vec<SkillBinding>>,
    stores_json: Json<Vec<String>>,
    provider: String,
    model: String,
    eval_suite_id: Option<String>,
    eval_suite_version: Option<String>,
    environment: String,
    source_hash: String,
    files: Json<BTreeMap<String, String>>,
    spec: Json<DraftSpec>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<VersionRow> for AgentVersion {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> StoreResult<AgentVersion> {
        Ok(AgentVersion {
            id: AgentVersionId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            agent_id: AgentId::from_string(r.agent_id),
            seq: r.seq,
            semver: r.semver,
            persona_md: r.persona_md,
            skills: r.skills_json.0,
            stores: r.stores_json.0,
            provider: r.provider,
            model: r.model,
            eval_suite_id: r.eval_suite_id,
            eval_suite_version: r.eval_suite_version,
            environment: r.environment,
            source_hash: r.source_hash,
            files: decode_files(r.files.0)?,
            spec: r.spec.0,
            created_by: r.created_by,
            created_at: r.created_at,
        })
    }
}

fn decode_files(files: BTreeMap<String, String>) -> StoreResult<BTreeMap<String, Vec<u8>>> {
    files
        .into_iter()
        .map(|(path, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|bytes| (path, bytes))
                .map_err(|e| StoreError::Corrupt(format!("a stored agent file is not base64: {e}")))
        })
        .collect()
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

    async fn drafts(
        &self,
        project_id: &ProjectId,
        code_first_project: &str,
        environment: &str,
        local_id: Option<&str>,
    ) -> StoreResult<Vec<(AgentConfig, Draft)>> {
        let agent_columns: String = AGENT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // One statement, so a sync that commits meanwhile is seen whole or
        // not at all: a deploy publishes the drafts of one moment.
        let sql = format!(
            "SELECT {agent_columns}, d.id AS draft_id, d.environment, d.source_hash, d.files, d.spec, \
             d.created_at AS draft_created_at, d.updated_at AS draft_updated_at \
             FROM agent_configs a JOIN agent_drafts d ON d.agent_id = a.id \
             WHERE a.project_id = $1 AND a.code_first_project = $2 AND d.environment = $3 \
             AND ($4 = '' OR a.local_id = $4) ORDER BY a.created_at, a.id"
        );
        #[derive(sqlx::FromRow)]
        struct AgentDraftRow {
            #[sqlx(flatten)]
            agent: AgentRow,
            draft_id: String,
            environment: String,
            source_hash: String,
            files: Json<BTreeMap<String, String>>,
            spec: Json<DraftSpec>,
            draft_created_at: DateTime<Utc>,
            draft_updated_at: DateTime<Utc>,
        }
        let rows: Vec<AgentDraftRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(code_first_project)
            .bind(environment)
            .bind(local_id.unwrap_or(""))
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter()
            .map(|r| {
                let agent = AgentConfig::from(r.agent);
                let draft = Draft::try_from(DraftRow {
                    id: r.draft_id,
                    project_id: agent.project_id.to_string(),
                    agent_id: agent.id.to_string(),
                    environment: r.environment,
                    source_hash: r.source_hash,
                    files: r.files,
                    spec: r.spec,
                    created_at: r.draft_created_at,
                    updated_at: r.draft_updated_at,
                })?;
                Ok((agent, draft))
            })
            .collect()
    }

    async fn publish_versions(
        &self,
        project_id: &ProjectId,
        versions: &[AgentVersion],
        actor: &Actor,
    ) -> StoreResult<Vec<AgentVersion>> {
        write_tx!(self, |tx| {
            let mut stored = Vec::with_capacity(versions.len());
            for v in versions {
                // The agent row's lock (PostgreSQL) orders concurrent deploys
                // of one agent, so their numbers never collide.
                let live = sqlx::query(
                    "UPDATE agent_configs SET updated_at = updated_at WHERE project_id = $1 AND id = $2",
                )
                .bind(project_id.as_str())
                .bind(v.agent_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if live.rows_affected() == 0 {
                    return Err(StoreError::Database(format!(
                        "agent `{}` was deleted during the deploy",
                        v.agent_id
                    )));
                }
                let seq: i64 = sqlx::query(
                    "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM agent_versions WHERE agent_id = $1",
                )
                .bind(v.agent_id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?
                .try_get("next")
                .map_err(db_err)?;
                // A version of an agent's own suite is the agent version.
                let version = AgentVersion {
                    seq,
                    semver: semver_of(seq),
                    eval_suite_version: match (&v.eval_suite_id, &v.eval_suite_version) {
                        (Some(_), None) => Some(semver_of(seq)),
                        (_, given) => given.clone(),
                    },
                    ..v.clone()
                };
                sqlx::query(
                    "INSERT INTO agent_versions (id, project_id, agent_id, seq, semver, persona_md, skills_json, \
                     stores_json, provider, model, eval_suite_id, eval_suite_version, environment, source_hash, \
                     files, spec, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                )
                .bind(version.id.as_str())
                .bind(project_id.as_str())
                .bind(version.agent_id.as_str())
                .bind(version.seq)
                .bind(&version.semver)
                .bind(&version.persona_md)
                .bind(Json(&version.skills))
                .bind(Json(&version.stores))
                .bind(&version.provider)
                .bind(&version.model)
                .bind(version.eval_suite_id.as_deref())
                .bind(version.eval_suite_version.as_deref())
                .bind(&version.environment)
                .bind(&version.source_hash)
                .bind(Json(encode_files(&version.files)))
                .bind(Json(&version.spec))
                .bind(&version.created_by)
                .bind(version.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let capabilities =
                    (!version.spec.capabilities.is_empty()).then_some(&version.spec.capabilities);
                sqlx::query(
                    "UPDATE agent_configs SET name = $1, description = $2, persona_md = $3, skills_json = $4, \
                     stores_json = $5, provider = $6, model = $7, enabled_capabilities = $8, \
                     active_version_id = $9, published_at = $10, updated_at = $10, \
                     eval_suite_id = CASE WHEN active_version_id IS NULL AND eval_suite_id IS NULL \
                     THEN $13 ELSE eval_suite_id END WHERE project_id = $11 AND id = $12",
                )
                .bind(&version.spec.name)
                .bind(&version.spec.description)
                .bind(&version.persona_md)
                .bind(Json(&version.skills))
                .bind(Json(&version.stores))
                .bind(&version.provider)
                .bind(&version.model)
                .bind(capabilities.map(Json))
                .bind(version.id.as_str())
                .bind(version.created_at)
                .bind(project_id.as_str())
                .bind(version.agent_id.as_str())
                .bind(version.eval_suite_id.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let audit = NewAudit::new(
                    project_id,
                    actor,
                    actions::AGENT_DEPLOY,
                    version.agent_id.as_str(),
                )
                .meta("version_id", version.id.to_string())
                .meta("semver", version.semver.clone())
                .meta("environment", version.environment.clone())
                .meta("source_hash", version.source_hash.clone());
                insert_audit!(tx, &audit);
                stored.push(version);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(stored)
        })
    }

    async fn get_draft(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
        environment: &str,
    ) -> StoreResult<Option<Draft>> {
        let sql = format!(
            "SELECT {DRAFT_COLUMNS} FROM agent_drafts WHERE project_id = $1 AND agent_id = $2 AND environment = $3"
        );
        let row: Option<DraftRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(agent_id.as_str())
            .bind(environment)
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(Draft::try_from).transpose()
    }

    async fn live_profile(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
    ) -> StoreResult<Option<(String, Option<(AgentVersionId, Vec<String>, DraftSpec)>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            local_id: String,
            version_id: Option<String>,
            stores_json: Option<Json<Vec<String>>>,
            spec: Option<Json<DraftSpec>>,
        }
        let row: Option<Row> = read!(self, |pool| sqlx::query_as(
            "SELECT a.local_id, v.id AS version_id, v.stores_json, v.spec FROM agent_configs a \
             LEFT JOIN agent_versions v ON v.id = a.active_version_id WHERE a.project_id = $1 AND a.id = $2"
        )
        .bind(project_id.as_str())
        .bind(agent_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?);
        Ok(row.map(|r| {
            let live = match (r.version_id, r.stores_json, r.spec) {
                (Some(id), Some(stores), Some(spec)) => {
                    Some((AgentVersionId::from_string(id), stores.0, spec.0))
                }
                _ => None,
            };
            (r.local_id, live)
        }))
    }

    async fn version_by_id(
        &self,
        project_id: &ProjectId,
        id: &AgentVersionId,
    ) -> StoreResult<Option<AgentVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM agent_versions WHERE project_id = $1 AND id = $2");
        let row: Option<VersionRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(AgentVersion::try_from).transpose()
    }

    async fn list_versions(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
    ) -> StoreResult<Vec<AgentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM agent_versions WHERE project_id = $1 AND agent_id = $2 ORDER BY seq DESC"
        );
        let rows: Vec<VersionRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(agent_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(AgentVersion::try_from).collect()
    }

    async fn get_version(
        &self,
        project_id: &ProjectId,
        agent_id: &AgentId,
        id: &AgentVersionId,
    ) -> StoreResult<Option<AgentVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM agent_versions WHERE project_id = $1 AND agent_id = $2 AND id = $3"
        );
        let row: Option<VersionRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(agent_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(AgentVersion::try_from).transpose()
    }

    async fn rename_agent(
        &self,
        project_id: &ProjectId,
        code_first_project: &str,
        old: &str,
        new: &str,
        audit: &NewAudit,
    ) -> StoreResult<Option<AgentId>> {
        write_tx!(self, |tx| {
            let row = sqlx::query(
                "UPDATE agent_configs SET local_id = $1, updated_at = $2 \
                 WHERE project_id = $3 AND code_first_project = $4 AND local_id = $5 RETURNING id",
            )
            .bind(new)
            .bind(audit.created_at)
            .bind(project_id.as_str())
            .bind(code_first_project)
            .bind(old)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            let id: String = row.try_get("id").map_err(db_err)?;
            let audit = NewAudit {
                subject_id: id.clone(),
                ..audit.clone()
            };
            commit_audited!(tx, &audit)?;
            Ok(Some(AgentId::from_string(id)))
        })
    }

    async fn set_eval_suite(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
        eval_suite_id: Option<&str>,
        at: DateTime<Utc>,
        audit: &NewAudit,
    ) -> StoreResult<Option<AgentConfig>> {
        let sql = format!(
            "UPDATE agent_configs SET eval_suite_id = $1, updated_at = $2 WHERE project_id = $3 AND id = $4 \
             RETURNING {AGENT_COLUMNS}"
        );
        write_tx!(self, |tx| {
            let row: Option<AgentRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(eval_suite_id)
                .bind(at)
                .bind(project_id.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            commit_audited!(tx, audit)?;
            Ok(Some(AgentConfig::from(row)))
        })
    }

    async fn delete_agent(
        &self,
        project_id: &ProjectId,
        id: &AgentId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            // Sessions take their events and input requests with them, the
            // agent its drafts and versions (ON DELETE CASCADE).
            sqlx::query(
                "DELETE FROM eval_results WHERE run_id IN \
                 (SELECT id FROM eval_runs WHERE project_id = $1 AND agent_id = $2)",
            )
            .bind(project_id.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM eval_runs WHERE project_id = $1 AND agent_id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("DELETE FROM agent_sessions WHERE project_id = $1 AND agent_id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query("DELETE FROM agent_configs WHERE project_id = $1 AND id = $2")
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
