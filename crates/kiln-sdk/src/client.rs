//! `Client`: one method per endpoint.

use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use kiln_api::openai;
use kiln_api::*;

use crate::error::{ApiError, Error};

/// Every endpoint this SDK calls, as `(method, path template)`. The server's
/// OpenAPI test checks each one is documented and served.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/api/sdk/project"),
    ("GET", "/api/sdk/app"),
    ("GET", "/api/sdk/metrics"),
    ("PUT", "/api/sdk/project/vault"),
    ("PUT", "/api/sdk/app/vault"),
    ("GET", "/api/sdk/secret-vaults"),
    ("POST", "/api/sdk/secret-vaults"),
    ("GET", "/api/sdk/secret-vaults/{id}"),
    ("PATCH", "/api/sdk/secret-vaults/{id}"),
    ("DELETE", "/api/sdk/secret-vaults/{id}"),
    ("GET", "/api/sdk/secret-vaults/{id}/secrets"),
    ("PUT", "/api/sdk/secret-vaults/{id}/secrets/{name}"),
    ("DELETE", "/api/sdk/secret-vaults/{id}/secrets/{name}"),
    ("GET", "/api/sdk/prompt-templates"),
    ("POST", "/api/sdk/prompt-templates"),
    ("GET", "/api/sdk/prompt-templates/{id}"),
    ("PATCH", "/api/sdk/prompt-templates/{id}"),
    ("DELETE", "/api/sdk/prompt-templates/{id}"),
    ("GET", "/api/sdk/audit-log"),
    ("GET", "/api/sdk/audit-log/export"),
    ("GET", "/api/sdk/indexes"),
    ("POST", "/api/sdk/indexes"),
    ("GET", "/api/sdk/indexes/{id}"),
    ("PATCH", "/api/sdk/indexes/{id}"),
    ("DELETE", "/api/sdk/indexes/{id}"),
    ("POST", "/api/sdk/indexes/{id}/documents"),
    ("GET", "/api/sdk/indexes/{id}/documents"),
    ("GET", "/api/sdk/documents"),
    ("GET", "/api/sdk/documents/{id}"),
    ("DELETE", "/api/sdk/documents/{id}"),
    ("GET", "/api/sdk/indexes/{id}/documents/{doc_id}"),
    ("DELETE", "/api/sdk/indexes/{id}/documents/{doc_id}"),
    ("GET", "/api/sdk/indexes/{id}/documents/by-name/{name}"),
    ("GET", "/api/sdk/indexes/{id}/documents/by-name/{name}/versions"),
    ("POST", "/api/sdk/search"),
    ("POST", "/api/sdk/indexes/{id}/search"),
    ("POST", "/api/sdk/chat/completions"),
    ("GET", "/api/sdk/conversations"),
    ("POST", "/api/sdk/conversations"),
    ("GET", "/api/sdk/conversations/{id}"),
    ("DELETE", "/api/sdk/conversations/{id}"),
    ("POST", "/api/sdk/conversations/{id}/messages"),
    ("GET", "/api/sdk/agents/system-prompt"),
    ("GET", "/api/sdk/agents"),
    ("POST", "/api/sdk/agents"),
    ("GET", "/api/sdk/agents/{id}"),
    ("DELETE", "/api/sdk/agents/{id}"),
    ("POST", "/api/sdk/agents/{id}/run"),
    ("POST", "/api/sdk/agents/{id}/input"),
    ("POST", "/api/sdk/agents/{id}/cancel"),
    ("GET", "/api/sdk/agents/{id}/events"),
    ("POST", "/api/sdk/agents/{id}/messages"),
    ("GET", "/api/sdk/agents/{id}/queue"),
    ("PUT", "/api/sdk/agents/{id}/queue"),
    ("DELETE", "/api/sdk/agents/{id}/queue/{qid}"),
    ("POST", "/api/sdk/agents/{id}/tool-results"),
    ("GET", "/api/sdk/agents/{id}/webhooks"),
    ("PUT", "/api/sdk/agents/{id}/webhooks"),
    ("GET", "/api/sdk/agents/{id}/webhook-deliveries"),
    ("POST", "/api/sdk/tokens"),
    ("GET", "/api/sdk/ws"),
    ("GET", "/api/sdk/agents/{id}/files"),
    ("GET", "/api/sdk/agents/{id}/files/{path}"),
    ("POST", "/api/sdk/source-validate"),
    ("PUT", "/api/sdk/source-sync"),
    ("POST", "/api/sdk/source-deploy"),
    ("GET", "/api/sdk/skills"),
    ("GET", "/api/sdk/skills/{id}"),
    ("GET", "/api/sdk/skills/authoring-guide"),
    ("POST", "/api/sdk/skills/validate"),
    ("POST", "/api/sdk/project/seed"),
    ("POST", "/api/sdk/app/seed"),
    ("POST", "/api/sdk/source-rename"),
    ("POST", "/api/sdk/source-delete"),
    ("DELETE", "/api/sdk/agent-configs/{id}"),
    ("GET", "/api/sdk/source-export"),
    ("POST", "/api/sdk/source-diff"),
    ("PATCH", "/api/sdk/agent-configs/{id}/settings"),
    ("GET", "/api/sdk/agent-configs/{id}/versions"),
    ("GET", "/api/sdk/agent-configs/{id}/versions/{vid}"),
    ("POST", "/api/sdk/agent-configs/{id}/eval-runs"),
    ("GET", "/api/sdk/agent-configs/{id}/eval-runs"),
    ("GET", "/api/sdk/agent-configs/{id}/eval-suite"),
    ("GET", "/api/sdk/evals"),
    ("GET", "/api/sdk/evals/{id}"),
    ("GET", "/api/sdk/eval-runs"),
    ("GET", "/api/sdk/eval-runs/{id}"),
    ("POST", "/api/sdk/eval-runs/{id}/cancel"),
    ("GET", "/api/sdk/eval-suites"),
    ("GET", "/api/sdk/eval-suites/{id}"),
    ("GET", "/api/sdk/eval-suites/{id}/versions"),
    ("GET", "/api/sdk/studio/{id}"),
    ("POST", "/api/sdk/studio/{id}/replay"),
    ("POST", "/api/sdk/studio/{id}/analyze"),
    ("GET", "/api/sdk/scheduled-runs"),
    ("POST", "/api/sdk/scheduled-runs"),
    ("GET", "/api/sdk/scheduled-runs/{id}"),
    ("PATCH", "/api/sdk/scheduled-runs/{id}"),
    ("DELETE", "/api/sdk/scheduled-runs/{id}"),
    ("GET", "/api/sdk/agent-configs"),
    ("GET", "/api/sdk/agent-configs/{id}"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
];

/// Format of [`Client::export_audit_log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditExportFormat {
    Json,
    Csv,
}

/// A Kiln API client. Cheap to clone (the connection pool is shared).
/// `Debug` never prints the API key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Percent-encodes one path segment (everything but unreserved characters),
/// so names holding `/`, `+` or spaces stay one segment.
pub(crate) fn segment(value: &str) -> String {
    urlencoding::encode(value).into_owned()
}

impl Client {
    /// A client for the server at `base_url` (for example
    /// `http://127.0.0.1:8080`), authenticating with `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder().build()?;
        Self::with_http_client(http, base_url, api_key)
    }

    /// Like [`Client::new`] with a caller-configured `reqwest::Client`
    /// (timeouts, proxies, TLS roots).
    pub fn with_http_client(http: reqwest::Client, base_url: &str, api_key: &str) -> Result<Self, Error> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "base URL `{base_url}` must start with http:// or https://"
            )));
        }
        Ok(Client {
            http,
            base_url,
            api_key: api_key.to_owned(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header("X-API-Key", &self.api_key)
    }

    pub(crate) async fn send(&self, builder: RequestBuilder) -> Result<reqwest::Response, Error> {
        let response = builder.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(ApiError::from_response(status.as_u16(), &body).into())
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, Error> {
        let bytes = self.send(builder).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.json(self.request(Method::GET, path)).await
    }

    pub(crate) async fn with_body<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.json(self.request(method, path).json(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(), Error> {
        self.send(self.request(Method::DELETE, path)).await?;
        Ok(())
    }

    // ---- system ----

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<HealthStatus, Error> {
        self.get("/healthz").await
    }

    /// `GET /readyz`: the server and its database answer.
    pub async fn ready(&self) -> Result<HealthStatus, Error> {
        self.get("/readyz").await
    }

    /// `GET /openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value, Error> {
        self.get("/openapi.json").await
    }

    // ---- project ----

    /// `GET /api/sdk/project`.
    pub async fn get_project(&self) -> Result<Project, Error> {
        self.get("/api/sdk/project").await
    }

    /// `GET /api/sdk/app`, the Go SDK's alias of [`Client::get_project`].
    pub async fn get_app(&self) -> Result<Project, Error> {
        self.get("/api/sdk/app").await
    }

    /// `GET /api/sdk/metrics`.
    pub async fn get_metrics(&self) -> Result<ProjectMetrics, Error> {
        self.get("/api/sdk/metrics").await
    }

    /// `PUT /api/sdk/project/vault`: designate (`Some`) or clear (`None`)
    /// the vault that supplies provider keys.
    pub async fn set_project_vault(&self, vault_id: Option<&str>) -> Result<ProjectVault, Error> {
        let body = SetProjectVault {
            vault_id: Some(vault_id.map(str::to_owned)),
        };
        self.with_body(Method::PUT, "/api/sdk/project/vault", &body).await
    }

    /// `PUT /api/sdk/app/vault`, alias of [`Client::set_project_vault`].
    pub async fn set_app_vault(&self, vault_id: Option<&str>) -> Result<ProjectVault, Error> {
        let body = SetProjectVault {
            vault_id: Some(vault_id.map(str::to_owned)),
        };
        self.with_body(Method::PUT, "/api/sdk/app/vault", &body).await
    }

    // ---- secret vaults ----

    /// `GET /api/sdk/secret-vaults`.
    pub async fn list_secret_vaults(&self) -> Result<Vec<SecretVault>, Error> {
        Ok(self
            .get::<SecretVaultList>("/api/sdk/secret-vaults")
            .await?
            .secret_vaults)
    }

    /// `POST /api/sdk/secret-vaults`.
    pub async fn create_secret_vault(&self, input: &CreateSecretVault) -> Result<SecretVault, Error> {
        self.with_body(Method::POST, "/api/sdk/secret-vaults", input)
            .await
    }

    /// `GET /api/sdk/secret-vaults/{id}`.
    pub async fn get_secret_vault(&self, id: &str) -> Result<SecretVault, Error> {
        self.get(&format!("/api/sdk/secret-vaults/{}", segment(id))).await
    }

    /// `PATCH /api/sdk/secret-vaults/{id}`.
    pub async fn update_secret_vault(
        &self,
        id: &str,
        input: &UpdateSecretVault,
    ) -> Result<SecretVault, Error> {
        self.with_body(
            Method::PATCH,
            &format!("/api/sdk/secret-vaults/{}", segment(id)),
            input,
        )
        .await
    }

    /// `DELETE /api/sdk/secret-vaults/{id}`: the vault and all its secrets.
    pub async fn delete_secret_vault(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/secret-vaults/{}", segment(id)))
            .await
    }

    /// `GET /api/sdk/secret-vaults/{id}/secrets` (names only, never values).
    pub async fn list_secrets(&self, vault_id: &str) -> Result<Vec<RedactedSecret>, Error> {
        let list: SecretList = self
            .get(&format!("/api/sdk/secret-vaults/{}/secrets", segment(vault_id)))
            .await?;
        Ok(list.secrets)
    }

    /// `PUT /api/sdk/secret-vaults/{id}/secrets/{name}`: insert or replace.
    pub async fn put_secret(&self, vault_id: &str, name: &str, value: &str) -> Result<RedactedSecret, Error> {
        let path = format!(
            "/api/sdk/secret-vaults/{}/secrets/{}",
            segment(vault_id),
            segment(name)
        );
        self.with_body(
            Method::PUT,
            &path,
            &PutSecret {
                value: value.to_owned(),
            },
        )
        .await
    }

    /// `DELETE /api/sdk/secret-vaults/{id}/secrets/{name}` (idempotent).
    pub async fn delete_secret(&self, vault_id: &str, name: &str) -> Result<(), Error> {
        self.delete(&format!(
            "/api/sdk/secret-vaults/{}/secrets/{}",
            segment(vault_id),
            segment(name)
        ))
        .await
    }

    // ---- prompt templates ----

    /// `GET /api/sdk/prompt-templates`.
    pub async fn list_prompt_templates(&self) -> Result<Vec<PromptTemplate>, Error> {
        Ok(self
            .get::<PromptTemplateList>("/api/sdk/prompt-templates")
            .await?
            .templates)
    }

    /// `POST /api/sdk/prompt-templates`.
    pub async fn create_prompt_template(
        &self,
        input: &CreatePromptTemplate,
    ) -> Result<PromptTemplate, Error> {
        self.with_body(Method::POST, "/api/sdk/prompt-templates", input)
            .await
    }

    /// `GET /api/sdk/prompt-templates/{id}`.
    pub async fn get_prompt_template(&self, id: &str) -> Result<PromptTemplate, Error> {
        self.get(&format!("/api/sdk/prompt-templates/{}", segment(id)))
            .await
    }

    /// `PATCH /api/sdk/prompt-templates/{id}`.
    pub async fn update_prompt_template(
        &self,
        id: &str,
        input: &UpdatePromptTemplate,
    ) -> Result<PromptTemplate, Error> {
        self.with_body(
            Method::PATCH,
            &format!("/api/sdk/prompt-templates/{}", segment(id)),
            input,
        )
        .await
    }

    /// `DELETE /api/sdk/prompt-templates/{id}`.
    pub async fn delete_prompt_template(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/prompt-templates/{}", segment(id)))
            .await
    }

    // ---- indexes ----

    /// `GET /api/sdk/indexes`.
    pub async fn list_indexes(&self) -> Result<Vec<Index>, Error> {
        Ok(self.get::<IndexList>("/api/sdk/indexes").await?.indexes)
    }

    /// `POST /api/sdk/indexes`.
    pub async fn create_index(&self, input: &CreateIndex) -> Result<Index, Error> {
        self.with_body(Method::POST, "/api/sdk/indexes", input).await
    }

    /// `POST /api/sdk/source-validate`: every issue of a manifest, fatal or
    /// not; nothing is written.
    pub async fn validate_source(
        &self,
        manifest: &SourceSyncManifest,
    ) -> Result<Vec<SourceValidationIssue>, Error> {
        let result: SourceValidateResult = self
            .with_body(Method::POST, "/api/sdk/source-validate", manifest)
            .await?;
        Ok(result.issues)
    }

    /// `PUT /api/sdk/source-sync`: creates new agents and replaces their
    /// drafts. Fatal issues are a 422 `source_invalid` error whose
    /// `details["serverIssues"]` lists them.
    pub async fn sync_source(&self, manifest: &SourceSyncManifest) -> Result<SourceSyncResult, Error> {
        self.with_body(Method::PUT, "/api/sdk/source-sync", manifest)
            .await
    }

    /// `POST /api/sdk/source-deploy`: publishes the synced drafts as new
    /// versions.
    pub async fn deploy_source(&self, request: &SourceDeployRequest) -> Result<SourceDeployResult, Error> {
        self.with_body(Method::POST, "/api/sdk/source-deploy", request)
            .await
    }

    /// `POST /api/sdk/source-rename`.
    pub async fn rename_source(&self, request: &SourceRenameRequest) -> Result<SourceRenameResult, Error> {
        self.with_body(Method::POST, "/api/sdk/source-rename", request)
            .await
    }

    /// `GET /api/sdk/skills`.
    pub async fn list_skills(&self) -> Result<Vec<Skill>, Error> {
        Ok(self.get::<SkillList>("/api/sdk/skills").await?.skills)
    }

    /// `GET /api/sdk/skills/{id}`.
    pub async fn get_skill(&self, id: &str) -> Result<Skill, Error> {
        self.get(&format!("/api/sdk/skills/{}", segment(id))).await
    }

    /// `GET /api/sdk/skills/authoring-guide`: Markdown.
    pub async fn skill_authoring_guide(&self) -> Result<String, Error> {
        let response = self
            .send(self.request(Method::GET, "/api/sdk/skills/authoring-guide"))
            .await?;
        Ok(response.text().await?)
    }

    /// `POST /api/sdk/skills/validate`: the issues of one skill module's
    /// JavaScript, checked as `skills/<name>.js` (`name` defaults to
    /// `skill`). Nothing is written.
    pub async fn validate_skill(
        &self,
        source: &str,
        name: Option<&str>,
    ) -> Result<Vec<SourceValidationIssue>, Error> {
        let body = SkillValidateRequest {
            source: source.to_owned(),
            name: name.map(str::to_owned),
        };
        let result: SourceValidateResult = self
            .with_body(Method::POST, "/api/sdk/skills/validate", &body)
            .await?;
        Ok(result.issues)
    }

    /// `POST /api/sdk/project/seed`: whether the project has an agent.
    pub async fn seed_project(&self) -> Result<SeedResult, Error> {
        self.with_body(Method::POST, "/api/sdk/project/seed", &serde_json::json!({}))
            .await
    }

    /// `POST /api/sdk/app/seed` (the Go SDK's name).
    pub async fn seed_app(&self) -> Result<SeedResult, Error> {
        self.with_body(Method::POST, "/api/sdk/app/seed", &serde_json::json!({}))
            .await
    }

    /// `POST /api/sdk/source-delete` (`force` must be true).
    pub async fn delete_source(&self, request: &SourceDeleteRequest) -> Result<SourceDeleteResult, Error> {
        self.with_body(Method::POST, "/api/sdk/source-delete", request)
            .await
    }

    /// `DELETE /api/sdk/agent-configs/{id}`.
    pub async fn delete_agent_config(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/agent-configs/{}", segment(id)))
            .await
    }

    /// `GET /api/sdk/source-export?project=`: contents base64.
    pub async fn export_source(&self, project: &str) -> Result<SourceExport, Error> {
        self.get(&format!(
            "/api/sdk/source-export?project={}",
            urlencoding::encode(project)
        ))
        .await
    }

    /// `POST /api/sdk/source-diff`.
    pub async fn diff_source(&self, manifest: &SourceSyncManifest) -> Result<SourceDiffResult, Error> {
        self.with_body(Method::POST, "/api/sdk/source-diff", manifest)
            .await
    }

    /// `PATCH /api/sdk/agent-configs/{id}/settings`.
    pub async fn update_agent_settings(
        &self,
        id: &str,
        settings: &UpdateAgentSettings,
    ) -> Result<AgentConfig, Error> {
        self.with_body(
            Method::PATCH,
            &format!("/api/sdk/agent-configs/{}/settings", segment(id)),
            settings,
        )
        .await
    }

    /// `GET /api/sdk/agent-configs/{id}/versions`, newest first.
    pub async fn list_agent_versions(&self, id: &str) -> Result<Vec<AgentVersion>, Error> {
        self.get(&format!("/api/sdk/agent-configs/{}/versions", segment(id)))
            .await
    }

    /// `POST /api/sdk/agent-configs/{id}/eval-runs[?target=draft]`: starts
    /// an advisory run of the agent's pinned suite (202, `pending`).
    pub async fn start_eval_run(&self, agent_id: &str, draft: bool) -> Result<EvalRun, Error> {
        let target = if draft { "?target=draft" } else { "" };
        let envelope: EvalRunEnvelope = self
            .with_body(
                Method::POST,
                &format!("/api/sdk/agent-configs/{}/eval-runs{target}", segment(agent_id)),
                &serde_json::json!({}),
            )
            .await?;
        Ok(envelope.run)
    }

    /// `GET /api/sdk/agent-configs/{id}/eval-runs?limit=`: newest first.
    pub async fn list_agent_eval_runs(
        &self,
        agent_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<EvalRun>, Error> {
        let limit = limit.map(|l| format!("?limit={l}")).unwrap_or_default();
        self.get(&format!(
            "/api/sdk/agent-configs/{}/eval-runs{limit}",
            segment(agent_id)
        ))
        .await
    }

    /// `GET /api/sdk/agent-configs/{id}/eval-suite`: the pinned suite.
    pub async fn get_agent_eval_suite(&self, agent_id: &str) -> Result<EvalSuite, Error> {
        self.get(&format!(
            "/api/sdk/agent-configs/{}/eval-suite",
            segment(agent_id)
        ))
        .await
    }

    /// `GET /api/sdk/evals`: every agent's current cases.
    pub async fn list_eval_cases(&self) -> Result<Vec<EvalCase>, Error> {
        Ok(self.get::<EvalCaseList>("/api/sdk/evals").await?.cases)
    }

    /// `GET /api/sdk/evals/{id}`.
    pub async fn get_eval_case(&self, id: &str) -> Result<EvalCase, Error> {
        self.get(&format!("/api/sdk/evals/{}", segment(id))).await
    }

    /// `GET /api/sdk/eval-runs`: newest first.
    pub async fn list_eval_runs(&self) -> Result<Vec<EvalRun>, Error> {
        Ok(self.get::<EvalRunList>("/api/sdk/eval-runs").await?.runs)
    }

    /// `GET /api/sdk/eval-runs/{id}`: the run and its results so far.
    pub async fn get_eval_run(&self, id: &str) -> Result<EvalRunDetail, Error> {
        self.get(&format!("/api/sdk/eval-runs/{}", segment(id))).await
    }

    /// `POST /api/sdk/eval-runs/{id}/cancel`.
    pub async fn cancel_eval_run(&self, id: &str) -> Result<EvalRun, Error> {
        let envelope: EvalRunEnvelope = self
            .with_body(
                Method::POST,
                &format!("/api/sdk/eval-runs/{}/cancel", segment(id)),
                &serde_json::json!({}),
            )
            .await?;
        Ok(envelope.run)
    }

    /// `GET /api/sdk/eval-suites`.
    pub async fn list_eval_suites(&self) -> Result<Vec<EvalSuite>, Error> {
        self.get("/api/sdk/eval-suites").await
    }

    /// `GET /api/sdk/eval-suites/{id}`.
    pub async fn get_eval_suite(&self, id: &str) -> Result<EvalSuite, Error> {
        self.get(&format!("/api/sdk/eval-suites/{}", segment(id))).await
    }

    /// `GET /api/sdk/eval-suites/{id}/versions`: newest first.
    pub async fn list_eval_suite_versions(&self, id: &str) -> Result<Vec<EvalSuiteVersion>, Error> {
        self.get(&format!("/api/sdk/eval-suites/{}/versions", segment(id)))
            .await
    }

    /// `GET /api/sdk/studio/{id}`: the session's trace.
    pub async fn get_studio_trace(&self, session_id: &str) -> Result<StudioTrace, Error> {
        self.get(&format!("/api/sdk/studio/{}", segment(session_id)))
            .await
    }

    /// `POST /api/sdk/studio/{id}/analyze`.
    pub async fn analyze_session(
        &self,
        session_id: &str,
        request: &AnalyzeRequest,
    ) -> Result<StudioFixSuggestion, Error> {
        self.with_body(
            Method::POST,
            &format!("/api/sdk/studio/{}/analyze", segment(session_id)),
            request,
        )
        .await
    }

    /// `GET /api/sdk/scheduled-runs`.
    pub async fn list_scheduled_runs(&self) -> Result<Vec<ScheduledRun>, Error> {
        Ok(self
            .get::<ScheduledRunList>("/api/sdk/scheduled-runs")
            .await?
            .scheduled_runs)
    }

    /// `POST /api/sdk/scheduled-runs`.
    pub async fn create_scheduled_run(&self, input: &CreateScheduledRun) -> Result<ScheduledRun, Error> {
        self.with_body(Method::POST, "/api/sdk/scheduled-runs", input)
            .await
    }

    /// `GET /api/sdk/scheduled-runs/{id}`.
    pub async fn get_scheduled_run(&self, id: &str) -> Result<ScheduledRun, Error> {
        self.get(&format!("/api/sdk/scheduled-runs/{}", segment(id)))
            .await
    }

    /// `PATCH /api/sdk/scheduled-runs/{id}`.
    pub async fn update_scheduled_run(
        &self,
        id: &str,
        changes: &UpdateScheduledRun,
    ) -> Result<ScheduledRun, Error> {
        self.with_body(
            Method::PATCH,
            &format!("/api/sdk/scheduled-runs/{}", segment(id)),
            changes,
        )
        .await
    }

    /// `DELETE /api/sdk/scheduled-runs/{id}`.
    pub async fn delete_scheduled_run(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/scheduled-runs/{}", segment(id)))
            .await
    }

    /// `GET /api/sdk/agent-configs/{id}/versions/{vid}`.
    pub async fn get_agent_version(&self, id: &str, version_id: &str) -> Result<AgentVersion, Error> {
        self.get(&format!(
            "/api/sdk/agent-configs/{}/versions/{}",
            segment(id),
            segment(version_id)
        ))
        .await
    }

    /// `GET /api/sdk/agent-configs`.
    pub async fn list_agent_configs(&self) -> Result<Vec<AgentConfig>, Error> {
        self.get("/api/sdk/agent-configs").await
    }

    /// `GET /api/sdk/agent-configs/{id}`.
    pub async fn get_agent_config(&self, id: &str) -> Result<AgentConfig, Error> {
        self.get(&format!("/api/sdk/agent-configs/{}", segment(id))).await
    }

    /// `GET /api/sdk/indexes/{id}` (unwrapped from `{"index": …}`).
    pub async fn get_index(&self, id: &str) -> Result<Index, Error> {
        Ok(self
            .get::<IndexEnvelope>(&format!("/api/sdk/indexes/{}", segment(id)))
            .await?
            .index)
    }

    /// `PATCH /api/sdk/indexes/{id}`.
    pub async fn update_index(&self, id: &str, input: &UpdateIndex) -> Result<Index, Error> {
        self.with_body(Method::PATCH, &format!("/api/sdk/indexes/{}", segment(id)), input)
            .await
    }

    /// `DELETE /api/sdk/indexes/{id}`: the index and everything in it.
    pub async fn delete_index(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/indexes/{}", segment(id))).await
    }

    // ---- chat ----

    /// `POST /api/sdk/chat/completions`: a stateless completion.
    pub async fn chat_completion(&self, input: &ChatCompletionInput) -> Result<ChatCompletionResult, Error> {
        self.with_body(Method::POST, "/api/sdk/chat/completions", input)
            .await
    }

    /// `POST /api/sdk/conversations`.
    pub async fn create_conversation(&self, input: &CreateConversation) -> Result<Conversation, Error> {
        self.with_body(Method::POST, "/api/sdk/conversations", input)
            .await
    }

    /// `GET /api/sdk/conversations`, newest first.
    pub async fn list_conversations(
        &self,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<Conversation>, Error> {
        let query = PageQuery { limit, offset };
        let list: ConversationList = self
            .json(self.request(Method::GET, "/api/sdk/conversations").query(&query))
            .await?;
        Ok(list.conversations)
    }

    /// `GET /api/sdk/conversations/{id}`: the conversation, its messages and usage.
    pub async fn get_conversation(&self, id: &str) -> Result<ConversationDetail, Error> {
        self.get(&format!("/api/sdk/conversations/{}", segment(id))).await
    }

    /// `DELETE /api/sdk/conversations/{id}`.
    pub async fn delete_conversation(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/sdk/conversations/{}", segment(id)))
            .await
    }

    /// `POST /api/sdk/conversations/{id}/messages`: send a message, get the reply.
    pub async fn send_message(&self, id: &str, input: &SendMessage) -> Result<SendMessageResult, Error> {
        let input = &SendMessage {
            stream: None,
            ..input.clone()
        };
        self.with_body(
            Method::POST,
            &format!("/api/sdk/conversations/{}/messages", segment(id)),
            input,
        )
        .await
    }

    /// `POST /api/sdk/conversations/{id}/messages` with `stream: true`: the
    /// reply's text as it is generated, then the stored exchange.
    pub async fn send_message_stream(
        &self,
        id: &str,
        input: &SendMessage,
    ) -> Result<
        impl futures_core::Stream<Item = Result<crate::MessageStreamEvent, Error>> + Send + 'static,
        Error,
    > {
        let input = SendMessage {
            stream: Some(true),
            ..input.clone()
        };
        let response = self
            .send(
                self.request(
                    Method::POST,
                    &format!("/api/sdk/conversations/{}/messages", segment(id)),
                )
                .json(&input),
            )
            .await?;
        Ok(crate::stream::message_events(response))
    }

    /// `POST /v1/chat/completions` (OpenAI-compatible), not streamed.
    pub async fn openai_chat_completion(
        &self,
        request: &openai::ChatCompletionRequest,
    ) -> Result<openai::ChatCompletion, Error> {
        let request = openai::ChatCompletionRequest {
            stream: None,
            ..request.clone()
        };
        self.with_body(Method::POST, "/v1/chat/completions", &request)
            .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: a stream of chunks,
    /// ending at `[DONE]`. An in-stream error ends it with `Error::Api`.
    pub async fn openai_chat_stream(
        &self,
        request: &openai::ChatCompletionRequest,
    ) -> Result<
        impl futures_core::Stream<Item = Result<openai::ChatCompletionChunk, Error>> + Send + 'static,
        Error,
    > {
        let request = openai::ChatCompletionRequest {
            stream: Some(true),
            ..request.clone()
        };
        let response = self
            .send(self.request(Method::POST, "/v1/chat/completions").json(&request))
            .await?;
        Ok(crate::stream::chunks(response))
    }

    /// `GET /v1/models`.
    pub async fn list_models(&self) -> Result<openai::ModelList, Error> {
        self.get("/v1/models").await
    }

    // ---- audit log ----

    /// `GET /api/sdk/audit-log` with filters and paging.
    pub async fn list_audit_log(&self, query: &AuditLogQuery) -> Result<AuditLogPage, Error> {
        let query = AuditLogQuery {
            format: None,
            ..query.clone()
        };
        self.json(self.request(Method::GET, "/api/sdk/audit-log").query(&query))
            .await
    }

    /// `GET /api/sdk/audit-log/export`: the raw bytes (a JSON array or CSV).
    pub async fn export_audit_log(
        &self,
        format: AuditExportFormat,
        query: &AuditLogQuery,
    ) -> Result<Vec<u8>, Error> {
        let query = AuditLogQuery {
            format: Some(match format {
                AuditExportFormat::Json => "json".into(),
                AuditExportFormat::Csv => "csv".into(),
            }),
            limit: None,
            offset: None,
            ..query.clone()
        };
        let response = self
            .send(
                self.request(Method::GET, "/api/sdk/audit-log/export")
                    .query(&query),
            )
            .await?;
        Ok(response.bytes().await?.to_vec())
    }
}
