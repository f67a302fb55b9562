//! CONTRACT §2.9 and §2.8: the code-first source family (so far
//! `source-validate` and `source-sync`; deploy, rename, delete, export and
//! diff build on the same checks) and the agent configs it writes.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use kiln_api::{
    AgentConfig, AgentVersion, ErrorBody, SeedResult, Skill, SkillList, SkillValidateRequest,
    SourceDeleteRequest, SourceDeleteResult, SourceDeployRequest, SourceDeployResult, SourceDiffResult,
    SourceExport, SourceRenameRequest, SourceRenameResult, SourceSyncManifest, SourceSyncResult,
    SourceValidateResult, UpdateAgentSettings,
};
use kiln_core::agents::{DeployRequest, Target, source};
use kiln_core::ids::{AgentId, AgentVersionId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Authed, JsonBody};
use crate::{AppState, convert};

/// A manifest may hold up to 20 MiB of files, base64 (a third larger) from
/// the Go SDK, plus the JSON around them.
const MANIFEST_BODY_LIMIT: usize = source::MAX_MANIFEST_BYTES / 3 * 4 + 1024 * 1024;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(validate_source))
        .routes(routes!(sync_source))
        .routes(routes!(deploy_source))
        .routes(routes!(rename_source))
        .routes(routes!(delete_source))
        .routes(routes!(export_source))
        .routes(routes!(diff_source))
        .routes(routes!(update_settings))
        .routes(routes!(list_skills))
        .routes(routes!(skill_authoring_guide))
        .routes(routes!(validate_skill))
        .routes(routes!(get_skill))
        .routes(routes!(seed_project))
        .routes(routes!(seed_app))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(list_agent_configs))
        .routes(routes!(get_agent_config, delete_agent_config))
        .layer(DefaultBodyLimit::max(MANIFEST_BODY_LIMIT))
}

/// Checks a manifest and writes nothing: always 200 with every issue, fatal
/// or not (400 only when the body is not JSON).
#[utoipa::path(post, path = "/api/sdk/source-validate", tag = "source", request_body = SourceSyncManifest,
    responses((status = 200, body = SourceValidateResult), (status = 400, body = ErrorBody)))]
async fn validate_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceSyncManifest>,
) -> Result<Json<SourceValidateResult>, ApiError> {
    let issues = state
        .agents
        .validate_source(&ctx, &convert::manifest(body))
        .await?;
    Ok(Json(SourceValidateResult {
        issues: issues.into_iter().map(convert::source_issue).collect(),
    }))
}

/// Creates the agents whose local ids are new and replaces each agent's
/// draft for the environment (`dev` when left out), in one transaction.
/// Fatal issues: 422 `source_invalid` with `serverIssues`, nothing written.
#[utoipa::path(put, path = "/api/sdk/source-sync", tag = "source", request_body = SourceSyncManifest,
    responses((status = 200, body = SourceSyncResult), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "source_invalid, with serverIssues")))]
async fn sync_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceSyncManifest>,
) -> Result<Json<SourceSyncResult>, ApiError> {
    let outcome = state.agents.sync_source(&ctx, &convert::manifest(body)).await?;
    Ok(Json(convert::sync_result(outcome)))
}

/// The project's agents, oldest first (a bare array).
#[utoipa::path(get, path = "/api/sdk/agent-configs", tag = "agent-configs",
    responses((status = 200, body = Vec<AgentConfig>)))]
async fn list_agent_configs(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<Vec<AgentConfig>>, ApiError> {
    let agents = state.agents.list_agent_configs(&ctx).await?;
    Ok(Json(agents.into_iter().map(convert::agent_config).collect()))
}

#[utoipa::path(get, path = "/api/sdk/agent-configs/{id}", tag = "agent-configs",
    params(("id" = String, Path)),
    responses((status = 200, body = AgentConfig), (status = 404, body = ErrorBody)))]
async fn get_agent_config(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AgentConfig>, ApiError> {
    let agent = state
        .agents
        .get_agent_config(&ctx, &AgentId::from_string(id))
        .await?;
    Ok(Json(convert::agent_config(agent)))
}

/// Publishes each agent's draft (of `environment`, `dev` by default) as a
/// new immutable version, live at once, after checking it again; all
/// agents in one transaction. 404 when `project` (or `localAgentId`) has no
/// draft there; fatal issues: 422 `source_invalid`.
#[utoipa::path(post, path = "/api/sdk/source-deploy", tag = "source", request_body = SourceDeployRequest,
    responses((status = 200, body = SourceDeployResult), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn deploy_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceDeployRequest>,
) -> Result<Json<SourceDeployResult>, ApiError> {
    let request = DeployRequest {
        project: body.project,
        environment: body.environment,
        local_agent_id: body.local_agent_id,
        run_evals: body.run_evals,
    };
    let outcome = state.agents.deploy_source(&ctx, &request).await?;
    // Advisory runs start after the deploy; one that cannot start (say, no
    // judge model) does not undo it.
    let mut runs = Vec::new();
    for agent in outcome.agents.iter().filter(|a| a.run_evals) {
        match state.evals.start_run(&ctx, &agent.agent_id, Target::Live).await {
            Ok(run) => runs.push((agent.agent_id.clone(), run.id.into_string())),
            Err(error) => {
                tracing::warn!(agent = %agent.agent_id, %error, "the deploy's eval run did not start")
            }
        }
    }
    let mut result = convert::deploy_result(outcome);
    for deployed in &mut result.agents {
        deployed.eval_run_id = runs
            .iter()
            .find(|(agent, _)| agent.as_str() == deployed.agent_id)
            .map(|(_, run)| run.clone());
    }
    Ok(Json(result))
}

/// An agent's versions, newest first (a bare array).
#[utoipa::path(get, path = "/api/sdk/agent-configs/{id}/versions", tag = "agent-configs",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<AgentVersion>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<AgentVersion>>, ApiError> {
    let versions = state
        .agents
        .list_versions(&ctx, &AgentId::from_string(id))
        .await?;
    Ok(Json(versions.into_iter().map(convert::agent_version).collect()))
}

/// One version; 404 when it is unknown or another agent's.
#[utoipa::path(get, path = "/api/sdk/agent-configs/{id}/versions/{vid}", tag = "agent-configs",
    params(("id" = String, Path), ("vid" = String, Path)),
    responses((status = 200, body = AgentVersion), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, vid)): ApiPath<(String, String)>,
) -> Result<Json<AgentVersion>, ApiError> {
    let version = state
        .agents
        .get_version(&ctx, &AgentId::from_string(id), &AgentVersionId::from_string(vid))
        .await?;
    Ok(Json(convert::agent_version(version)))
}

/// Binds the agent of (`project`, `oldLocalId`) to `newLocalId`: 404 when
/// the old id is unknown, 409 when the new one is taken.
#[utoipa::path(post, path = "/api/sdk/source-rename", tag = "source", request_body = SourceRenameRequest,
    responses((status = 200, body = SourceRenameResult), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rename_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceRenameRequest>,
) -> Result<Json<SourceRenameResult>, ApiError> {
    let agent_id = state
        .agents
        .rename_agent(&ctx, &body.project, &body.old_local_id, &body.new_local_id)
        .await?;
    Ok(Json(SourceRenameResult {
        agent_id: agent_id.into_string(),
        old_local_id: body.old_local_id,
        new_local_id: body.new_local_id,
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
struct ExportQuery {
    /// The manifest project.
    project: Option<String>,
}

/// The project's agents in manifest form (contents base64): each agent's
/// latest published version, or its `dev` draft if it was never deployed.
#[utoipa::path(get, path = "/api/sdk/source-export", tag = "source", params(ExportQuery),
    responses((status = 200, body = SourceExport), (status = 400, body = ErrorBody)))]
async fn export_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Json<SourceExport>, ApiError> {
    let project = query.project.unwrap_or_default();
    let agents = state.agents.export_source(&ctx, &project).await?;
    Ok(Json(SourceExport {
        project,
        agents: agents.into_iter().map(convert::exported_agent).collect(),
    }))
}

/// The manifest against the latest published versions: `inSync`, and each
/// differing path as `<local id>/<path>` with `local-only`, `server-only` or
/// `changed`.
#[utoipa::path(post, path = "/api/sdk/source-diff", tag = "source", request_body = SourceSyncManifest,
    responses((status = 200, body = SourceDiffResult), (status = 400, body = ErrorBody)))]
async fn diff_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceSyncManifest>,
) -> Result<Json<SourceDiffResult>, ApiError> {
    let paths = state.agents.diff_source(&ctx, &convert::manifest(body)).await?;
    Ok(Json(convert::diff_result(paths)))
}

/// Operator settings: `eval_suite_id` (`""` clears the pin; any other
/// value must be one of the project's suites, else 404);
/// `run_eval_on_publish` is accepted and ignored.
#[utoipa::path(patch, path = "/api/sdk/agent-configs/{id}/settings", tag = "agent-configs",
    params(("id" = String, Path)), request_body = UpdateAgentSettings,
    responses((status = 200, body = AgentConfig), (status = 404, body = ErrorBody)))]
async fn update_settings(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateAgentSettings>,
) -> Result<Json<AgentConfig>, ApiError> {
    let agent = state
        .agents
        .update_settings(&ctx, &AgentId::from_string(id), body.eval_suite_id.as_deref())
        .await?;
    Ok(Json(convert::agent_config(agent)))
}

/// Permanently deletes the agent of (`project`, `localId`) with its
/// versions, drafts and sessions (running turns end first). `force` must be
/// true: 400 `force_required` otherwise.
#[utoipa::path(post, path = "/api/sdk/source-delete", tag = "source", request_body = SourceDeleteRequest,
    responses((status = 200, body = SourceDeleteResult), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn delete_source(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SourceDeleteRequest>,
) -> Result<Json<SourceDeleteResult>, ApiError> {
    if !body.force {
        return Err(kiln_core::Error::refused(
            kiln_core::error::Refusal::ForceRequired,
            format!(
                "deleting agent `{}` removes its versions, drafts and sessions for good; send \"force\": true",
                body.local_id
            ),
        )
        .into());
    }
    let agent = state
        .agents
        .agent_by_local_id(&ctx, &body.project, &body.local_id)
        .await?;
    state.runtime.delete_agent(&ctx, &agent).await?;
    Ok(Json(SourceDeleteResult {
        agent_id: agent.id.into_string(),
        local_id: agent.local_id,
        deleted: true,
    }))
}

/// Deletes the agent like `source-delete`, without the `force` flag.
#[utoipa::path(delete, path = "/api/sdk/agent-configs/{id}", tag = "agent-configs",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_agent_config(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let agent = state
        .agents
        .get_agent_config(&ctx, &AgentId::from_string(id))
        .await?;
    state.runtime.delete_agent(&ctx, &agent).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Idempotent and safe: `already_seeded` (with the oldest agent) when the
/// project has an agent; Kiln creates no starter agent, so otherwise
/// `already_seeded: false` and nothing is written.
#[utoipa::path(post, path = "/api/sdk/project/seed", tag = "project",
    responses((status = 200, body = SeedResult)))]
async fn seed_project(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<SeedResult>, ApiError> {
    let first = state.agents.list_agent_configs(&ctx).await?.into_iter().next();
    Ok(Json(SeedResult {
        already_seeded: first.is_some(),
        agent_id: first.as_ref().map(|a| a.id.to_string()),
        agent_name: first.map(|a| a.name),
    }))
}

/// Alias of `POST /api/sdk/project/seed` (the Go SDK's `SeedApp`).
#[utoipa::path(post, path = "/api/sdk/app/seed", tag = "project",
    responses((status = 200, body = SeedResult)))]
async fn seed_app(state: State<AppState>, authed: Authed) -> Result<Json<SeedResult>, ApiError> {
    seed_project(state, authed).await
}

/// The project's skills: one per `skills/` file of each agent's live
/// version (or `dev` draft before a deploy).
#[utoipa::path(get, path = "/api/sdk/skills", tag = "skills",
    responses((status = 200, body = SkillList)))]
async fn list_skills(
    State(state): State<AppState>,
    Authed(ctx): Authed,
) -> Result<Json<SkillList>, ApiError> {
    let skills = state.agents.list_skills(&ctx).await?;
    Ok(Json(SkillList {
        skills: skills
            .into_iter()
            .map(|s| convert::skill(&ctx.project.id, s))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/sdk/skills/{id}", tag = "skills",
    params(("id" = String, Path)),
    responses((status = 200, body = Skill), (status = 404, body = ErrorBody)))]
async fn get_skill(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Skill>, ApiError> {
    let skill = state.agents.get_skill(&ctx, &id).await?;
    Ok(Json(convert::skill(&ctx.project.id, skill)))
}

/// Checks one skill module's JavaScript as `skills/<name>.js` would be
/// checked at sync (compiled, its top level run under the module time
/// limit); writes nothing. Always 200 with every issue.
#[utoipa::path(post, path = "/api/sdk/skills/validate", tag = "skills", request_body = SkillValidateRequest,
    responses((status = 200, body = SourceValidateResult), (status = 400, body = ErrorBody)))]
async fn validate_skill(
    State(state): State<AppState>,
    Authed(_ctx): Authed,
    JsonBody(body): JsonBody<SkillValidateRequest>,
) -> Result<Json<SourceValidateResult>, ApiError> {
    let issues = state
        .agents
        .validate_skill(&body.source, body.name.as_deref())
        .await?;
    Ok(Json(SourceValidateResult {
        issues: issues.into_iter().map(convert::source_issue).collect(),
    }))
}

/// How to write skills, as Markdown (not JSON), built from the primitives
/// the sandbox registers.
#[utoipa::path(get, path = "/api/sdk/skills/authoring-guide", tag = "skills",
    responses((status = 200, content_type = "text/markdown", body = String)))]
async fn skill_authoring_guide(_authed: Authed) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        kiln_core::runtime::prompt::skill_authoring_guide(),
    )
}
