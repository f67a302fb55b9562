//! Domain types to wire types, explicitly (domain types are not wire types).

use kiln_api as api;
use kiln_api::openai;
use kiln_core::agents::source;
use kiln_core::audit::AuditEntry;
use kiln_core::llm::{ChatDelta, ChatResponse, ModelRef, ToolCall, Usage};
use kiln_core::project::{DEFAULT_TEAM_ID, Project, ProjectMetrics};
use kiln_core::runtime::{EventKind, TurnErrorCode};
use kiln_core::template::PromptTemplate;
use kiln_core::vault::{Secret, Vault};

pub(crate) fn project(p: &Project) -> api::Project {
    api::Project {
        id: p.id.to_string(),
        team_id: DEFAULT_TEAM_ID.to_owned(),
        name: p.name.as_str().to_owned(),
        slug: p.slug.clone(),
        description: p.description.clone(),
        vault_id: p.vault_id.as_ref().map(ToString::to_string),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub(crate) fn metrics(m: ProjectMetrics, sandbox: kiln_core::runtime::SandboxUse) -> api::ProjectMetrics {
    api::ProjectMetrics {
        tokens: api::TokenMetrics {
            prompt_tokens: m.prompt_tokens,
            candidate_tokens: m.completion_tokens,
            total_tokens: m.total_tokens,
            request_count: m.request_count,
        },
        agents: api::AgentMetrics {
            total_sessions: m.total_sessions,
            active_sessions: m.active_sessions,
            completed_sessions: m.completed_sessions,
            error_sessions: m.error_sessions,
            total_steps: m.total_steps,
        },
        evals: api::EvalMetrics {
            total_runs: m.total_eval_runs,
            completed_runs: m.completed_eval_runs,
            total_passed: m.eval_cases_passed,
            total_failed: m.eval_cases_failed,
            average_score: m.eval_average_score,
        },
        sandbox: api::SandboxMetrics {
            running_blocks: sandbox.running_blocks as i64,
            waiting_blocks: sandbox.waiting_blocks as i64,
            running_blocks_limit: sandbox.running_blocks_limit as i64,
            paused_blocks: sandbox.paused_blocks as i64,
            paused_blocks_limit: sandbox.paused_blocks_limit as i64,
        },
    }
}

pub(crate) fn vault(v: Vault) -> api::SecretVault {
    api::SecretVault {
        project_id: v.project_id.to_string(),
        app_id: v.project_id.into_string(),
        id: v.id.into_string(),
        name: v.name,
        metadata: v.metadata,
        created_at: v.created_at,
        updated_at: v.updated_at,
    }
}

pub(crate) fn secret(s: Secret) -> api::RedactedSecret {
    api::RedactedSecret {
        vault_id: s.vault_id.into_string(),
        name: s.name.as_str().to_owned(),
        kek_id: s.sealed.kek_id,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

pub(crate) fn template(t: PromptTemplate) -> api::PromptTemplate {
    api::PromptTemplate {
        project_id: t.project_id.to_string(),
        app_id: t.project_id.into_string(),
        id: t.id.into_string(),
        name: t.name,
        content: t.content,
        variables: t.variables,
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

pub(crate) fn audit_entry(a: AuditEntry) -> api::AuditEntry {
    api::AuditEntry {
        project_id: a.project_id.to_string(),
        app_id: a.project_id.into_string(),
        id: a.id.into_string(),
        actor_user_id: a.actor_user_id,
        actor_api_key_id: a.actor_api_key_id.map(|k| k.into_string()),
        action: a.action,
        subject_type: a.subject_type,
        subject_id: a.subject_id,
        agent_version_id: a.agent_version_id,
        session_id: a.session_id,
        metadata: a.metadata,
        created_at: a.created_at,
    }
}

pub(crate) fn usage(u: kiln_core::llm::Usage) -> api::ChatCompletionUsage {
    api::ChatCompletionUsage {
        prompt_tokens: i64::from(u.prompt_tokens),
        completion_tokens: i64::from(u.completion_tokens),
        total_tokens: i64::from(u.total()),
    }
}

pub(crate) fn conversation(c: kiln_core::gateway::chat::Conversation) -> api::Conversation {
    api::Conversation {
        project_id: c.project_id.to_string(),
        app_id: c.project_id.into_string(),
        id: c.id.into_string(),
        title: c.title,
        system_prompt: c.system_prompt,
        model: c.model,
        metadata: c.metadata,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

pub(crate) fn message(m: kiln_core::gateway::chat::ConversationMessage) -> api::ConversationMessage {
    api::ConversationMessage {
        id: m.id.into_string(),
        conversation_id: m.conversation_id.into_string(),
        role: m.role.as_str().to_owned(),
        content: m.content,
        created_at: m.created_at,
    }
}

pub(crate) fn index(i: kiln_core::rag::Index) -> api::Index {
    api::Index {
        project_id: i.project_id.to_string(),
        app_id: i.project_id.into_string(),
        id: i.id.into_string(),
        name: i.name,
        description: i.description,
        metadata: i.metadata,
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

pub(crate) fn document(d: kiln_core::rag::document::Document) -> api::Document {
    api::Document {
        project_id: d.project_id.to_string(),
        app_id: d.project_id.into_string(),
        id: d.id.into_string(),
        index_id: d.index_id.into_string(),
        filename: d.filename,
        content_type: d.content_type,
        file_size: d.file_size,
        status: d.status.as_str().to_owned(),
        error_message: d.error_message,
        page_count: d.page_count,
        chunk_count: d.chunk_count,
        name: d.name,
        version: d.version,
        is_latest: d.is_latest,
        metadata: d.metadata,
        parent_id: d.parent_id.map(|p| p.into_string()),
        created_by_api_key_id: d.created_by_api_key_id.map(|k| k.into_string()),
        content_sha256: d.content_sha256,
        deleted_at: d.deleted_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

pub(crate) fn search_result(s: kiln_core::rag::search::ScoredChunk) -> api::SearchResult {
    let r = s.record;
    api::SearchResult {
        chunk_id: r.chunk_id.into_string(),
        document_id: r.document.id.into_string(),
        filename: r.document.filename,
        document_name: r.document.name,
        document_metadata: r.document.metadata,
        content: r.content,
        score: s.score,
        chunk_index: r.chunk_index,
        metadata: r.metadata,
    }
}

pub(crate) fn document_search_result(s: kiln_core::rag::search::ScoredChunk) -> api::DocumentSearchResult {
    let r = s.record;
    let preview: String = r
        .content
        .chars()
        .take(kiln_core::rag::search::PREVIEW_CHARS)
        .collect();
    api::DocumentSearchResult {
        document_id: r.document.id.into_string(),
        index_id: r.document.index_id.into_string(),
        filename: r.document.filename,
        document_name: r.document.name,
        document_metadata: r.document.metadata,
        parent_id: r.document.parent_id.map(|p| p.into_string()),
        content_sha256: r.document.content_sha256,
        score: s.score,
        best_chunk: api::BestChunk {
            chunk_id: r.chunk_id.into_string(),
            chunk_index: r.chunk_index,
            preview,
        },
    }
}

pub(crate) fn session(s: kiln_core::runtime::Session) -> api::AgentSession {
    api::AgentSession {
        tools_config: s.tools_config(),
        app_id: s.project_id.to_string(),
        id: s.id.into_string(),
        project_id: s.project_id.into_string(),
        title: s.title,
        system_prompt: s.system_prompt,
        model: s.model,
        metadata: s.metadata,
        status: s.status.as_str().to_owned(),
        index_ids: s
            .index_ids
            .map(|ids| ids.into_iter().map(|i| i.into_string()).collect()),
        created_at: s.created_at,
        updated_at: s.updated_at,
        prompt_tokens: i64::from(s.usage.prompt_tokens),
        completion_tokens: i64::from(s.usage.completion_tokens),
        step_count: s.step_count,
        duration_ms: s.duration_ms,
        // Sessions are never closed for good (CONTRACT §4.1.6: `completed`
        // only on an explicit close, which the contract does not define).
        finished_at: None,
        agent_id: s.agent_id.map(|a| a.into_string()),
        agent_version_id: s.agent_version_id.map(|v| v.into_string()),
    }
}

pub(crate) fn step(s: kiln_core::runtime::Step) -> api::AgentStep {
    api::AgentStep {
        id: s.id.into_string(),
        session_id: s.session_id.into_string(),
        step_index: s.step_index,
        step_type: event_type(s.step_type).to_owned(),
        content: s.content,
        tool_name: s.tool_name,
        tool_args: s.tool_args,
        duration_ms: s.duration_ms,
        created_at: s.created_at,
        prompt_tokens: i64::from(s.usage.prompt_tokens),
        completion_tokens: i64::from(s.usage.completion_tokens),
    }
}

fn event_tokens(usage: kiln_core::llm::Usage) -> api::EventTokens {
    api::EventTokens {
        prompt: i64::from(usage.prompt_tokens),
        completion: i64::from(usage.completion_tokens),
    }
}

/// The wire's name of an event kind.
pub(crate) fn event_type(kind: EventKind) -> &'static str {
    use api::event_types as t;
    match kind {
        EventKind::UserMessage => t::USER_MESSAGE,
        EventKind::SandboxEvent => t::SANDBOX_EVENT,
        EventKind::ExecuteJs => t::EXECUTE_JS,
        EventKind::ExecuteJsResult => t::EXECUTE_JS_RESULT,
        EventKind::ToolCall => t::TOOL_CALL,
        EventKind::ToolResult => t::TOOL_RESULT,
        EventKind::DataUpdate => t::DATA_UPDATE,
        EventKind::Response => t::RESPONSE,
        EventKind::InputRequest => t::INPUT_REQUEST,
        EventKind::Error => t::ERROR,
        EventKind::Done => t::DONE,
    }
}

/// The wire's name of a turn's error code.
pub(crate) fn turn_error_code(code: TurnErrorCode) -> &'static str {
    use api::turn_error_codes as c;
    match code {
        TurnErrorCode::Cancelled => c::CANCELLED,
        TurnErrorCode::StepLimit => c::STEP_LIMIT,
        TurnErrorCode::TimeLimit => c::TIME_LIMIT,
        TurnErrorCode::TokenLimit => c::TOKEN_LIMIT,
        TurnErrorCode::InputTimeout => c::INPUT_TIMEOUT,
        TurnErrorCode::UpstreamError => c::UPSTREAM_ERROR,
        TurnErrorCode::Interrupted => c::INTERRUPTED,
        TurnErrorCode::SessionDeleted => c::SESSION_DELETED,
        TurnErrorCode::ToolTimeout => c::TOOL_TIMEOUT,
        TurnErrorCode::Internal => c::INTERNAL,
    }
}

/// A logged event as the contract's `AgentEvent`.
pub(crate) fn agent_event(session_id: &str, body: kiln_core::runtime::EventBody) -> api::AgentEvent {
    use kiln_core::runtime::EventBody as B;
    use serde_json::{Map, Value, json};
    let kind = event_type(body.kind()).to_owned();
    let object = |value: Value| match value {
        Value::Object(map) => Some(map),
        _ => None,
    };
    let mut event = api::AgentEvent {
        kind,
        ..Default::default()
    };
    match body {
        B::UserMessage { content } => event.content = Some(content),
        B::SandboxEvent {
            kind,
            summary,
            content,
            tokens,
        } => {
            event.content = Some(content);
            event.args = object(json!({ "kind": kind, "summary": summary }));
            event.tokens = tokens.map(event_tokens);
        }
        B::ExecuteJs { code, tokens, .. } => {
            event.tool = Some(kiln_core::runtime::prompt::EXECUTE_JS.to_owned());
            event.content = Some(code);
            event.tokens = tokens.map(event_tokens);
        }
        B::ExecuteJsResult {
            content,
            result,
            error,
        } => {
            event.content = Some(content);
            event.result = Some(result);
            event.args = error.map(|e| {
                let mut args = Map::new();
                args.insert("error".to_owned(), Value::String(e));
                args
            });
        }
        B::ToolCall {
            tool,
            args,
            call_id,
            client,
        } => {
            event.tool = Some(tool);
            event.args = Some(args);
            // Only a client tool's call is the client's to answer.
            event.call_id = call_id.filter(|_| client);
        }
        B::ToolResult {
            tool,
            result,
            content,
            call_id,
        } => {
            event.tool = Some(tool);
            event.result = Some(result);
            event.content = Some(content);
            event.call_id = call_id;
        }
        B::DataUpdate { changes } => event.args = Some(changes),
        B::Response { content, tokens } => {
            event.content = Some(content);
            event.tokens = tokens.map(event_tokens);
        }
        B::InputRequest {
            request_id,
            input_type,
            message,
            options,
            placeholder,
        } => {
            event.content = Some(message.clone());
            event.args = object(json!({
                "request_id": request_id,
                "input_type": input_type,
                "message": message,
                "options": options,
                "placeholder": placeholder,
            }));
        }
        B::Error { message, code } => {
            event.content = Some(message);
            event.code = Some(turn_error_code(code).to_owned());
        }
        B::Done { steps, tokens } => {
            event.summary = Some(api::EventSummary {
                session_id: session_id.to_owned(),
                steps,
                tokens: event_tokens(tokens),
            });
        }
    }
    event
}

/// The OpenAI wire's tool calls (`None` when there are none).
fn openai_tool_calls(calls: &[ToolCall]) -> Option<Vec<openai::OpenAiToolCall>> {
    (!calls.is_empty()).then(|| {
        calls
            .iter()
            .map(|c| openai::OpenAiToolCall {
                id: c.id.clone(),
                kind: "function".into(),
                function: openai::FunctionCall {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            })
            .collect()
    })
}

fn openai_usage(u: Usage) -> openai::CompletionUsage {
    openai::CompletionUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total(),
    }
}

/// A whole answer as a `chat.completion`.
pub(crate) fn openai_completion(
    id: String,
    created: i64,
    model: &ModelRef,
    response: ChatResponse,
) -> openai::ChatCompletion {
    openai::ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model: model.to_string(),
        choices: vec![openai::ChatChoice {
            index: 0,
            message: openai::AssistantMessage {
                role: "assistant".into(),
                content: (!response.content.is_empty() || response.tool_calls.is_empty())
                    .then_some(response.content),
                tool_calls: openai_tool_calls(&response.tool_calls),
            },
            finish_reason: Some(response.finish_reason.as_str().into()),
        }],
        usage: Some(openai_usage(response.usage)),
    }
}

/// The `chat.completion.chunk`s of one streamed answer.
pub(crate) struct OpenAiChunks {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) model: String,
    /// `stream_options.include_usage`: end with a usage-only chunk.
    pub(crate) include_usage: bool,
}

impl OpenAiChunks {
    fn chunk(
        &self,
        delta: openai::ChunkDelta,
        finish: Option<String>,
        usage: Option<openai::CompletionUsage>,
    ) -> openai::ChatCompletionChunk {
        let choices = if usage.is_some() {
            Vec::new()
        } else {
            vec![openai::ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }]
        };
        openai::ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    /// The opening chunk: the assistant role, empty content.
    pub(crate) fn first(&self) -> openai::ChatCompletionChunk {
        let delta = openai::ChunkDelta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        };
        self.chunk(delta, None, None)
    }

    /// The chunk a piece of the provider's stream becomes, if any.
    pub(crate) fn chunk_of(&self, delta: ChatDelta) -> Option<openai::ChatCompletionChunk> {
        Some(match delta {
            ChatDelta::Content(text) => self.chunk(
                openai::ChunkDelta {
                    content: Some(text),
                    ..Default::default()
                },
                None,
                None,
            ),
            ChatDelta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => self.chunk(
                openai::ChunkDelta {
                    tool_calls: Some(vec![openai::ToolCallDelta {
                        index,
                        kind: id.as_ref().map(|_| "function".to_owned()),
                        id,
                        function: Some(openai::FunctionDelta {
                            name,
                            arguments: Some(arguments),
                        }),
                    }]),
                    ..Default::default()
                },
                None,
                None,
            ),
            ChatDelta::Finish(reason) => {
                self.chunk(openai::ChunkDelta::default(), Some(reason.as_str().into()), None)
            }
            ChatDelta::Usage(u) if self.include_usage => {
                self.chunk(openai::ChunkDelta::default(), None, Some(openai_usage(u)))
            }
            ChatDelta::Usage(_) => return None,
        })
    }
}

/// A source manifest from the wire.
pub(crate) fn manifest(m: api::SourceSyncManifest) -> source::Manifest {
    source::Manifest {
        project: m.project,
        environment: m.environment.filter(|e| !e.is_empty()),
        source_hash: m.source_hash,
        agents: m
            .agents
            .into_iter()
            .map(|a| source::ManifestAgent {
                id: a.id,
                source_hash: a.source_hash,
                files: a
                    .files
                    .into_iter()
                    .map(|f| source::ManifestFile {
                        path: f.path,
                        hash: f.hash,
                        size: f.size,
                        content: f.content,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The wire's name of a source issue code.
pub(crate) fn issue_code(code: source::IssueCode) -> &'static str {
    use api::source_issue_codes as c;
    use source::IssueCode as I;
    match code {
        I::InvalidProject => c::INVALID_PROJECT,
        I::InvalidAgentId => c::INVALID_AGENT_ID,
        I::DuplicateAgent => c::DUPLICATE_AGENT,
        I::InvalidPath => c::INVALID_PATH,
        I::DuplicateFile => c::DUPLICATE_FILE,
        I::FileTooLarge => c::FILE_TOO_LARGE,
        I::HashMismatch => c::HASH_MISMATCH,
        I::MissingContent => c::MISSING_CONTENT,
        I::MissingAgentFile => c::MISSING_AGENT_FILE,
        I::InvalidJsonc => c::INVALID_JSONC,
        I::InvalidJson => c::INVALID_JSON,
        I::UnknownKey => c::UNKNOWN_KEY,
        I::InvalidValue => c::INVALID_VALUE,
        I::IdMismatch => c::ID_MISMATCH,
        I::InvalidModel => c::INVALID_MODEL,
        I::UnknownTool => c::UNKNOWN_TOOL,
        I::MissingIndex => c::MISSING_INDEX,
        I::MissingPersona => c::MISSING_PERSONA,
        I::UnknownFile => c::UNKNOWN_FILE,
        I::SkillSyntax => c::SKILL_SYNTAX,
        I::SkillError => c::SKILL_ERROR,
        I::SkillTimeout => c::SKILL_TIMEOUT,
        I::ReservedName => c::RESERVED_NAME,
        I::McpUnreachable => c::MCP_UNREACHABLE,
        I::MissingSecret => c::MISSING_SECRET,
        I::UnknownMcpServer => c::UNKNOWN_MCP_SERVER,
        I::MissingField => c::MISSING_FIELD,
    }
}

pub(crate) fn source_issue(i: source::SourceIssue) -> api::SourceValidationIssue {
    api::SourceValidationIssue {
        file: i.file,
        line: i.line,
        column: i.column,
        code: issue_code(i.code).to_owned(),
        message: i.message,
        hint: i.hint,
        severity: match i.severity {
            source::Severity::Fatal => api::issue_severities::FATAL,
            source::Severity::Warn => api::issue_severities::WARN,
        }
        .to_owned(),
    }
}

pub(crate) fn sync_result(o: kiln_core::agents::SyncOutcome) -> api::SourceSyncResult {
    api::SourceSyncResult {
        draft_hash: o.draft_hash,
        agents: o
            .agents
            .into_iter()
            .map(|a| api::SyncedAgent {
                local_id: a.local_id,
                agent_id: a.agent_id.into_string(),
                draft_id: a.draft_id.into_string(),
                source_hash: a.source_hash,
            })
            .collect(),
        synced_at: o.synced_at,
        server_issues: o.warnings.into_iter().map(source_issue).collect(),
    }
}

pub(crate) fn deploy_result(o: kiln_core::agents::DeployOutcome) -> api::SourceDeployResult {
    api::SourceDeployResult {
        version: o.version,
        agents: o
            .agents
            .into_iter()
            .map(|a| api::DeployedAgent {
                local_id: a.local_id,
                agent_id: a.agent_id.into_string(),
                version_id: a.version_id.into_string(),
                semver: a.semver,
                eval_run_id: None,
            })
            .collect(),
        deployed_at: o.deployed_at,
        server_issues: o.warnings.into_iter().map(source_issue).collect(),
    }
}

pub(crate) fn agent_version(v: kiln_core::agents::config::AgentVersion) -> api::AgentVersion {
    api::AgentVersion {
        id: v.id.into_string(),
        agent_id: v.agent_id.into_string(),
        semver: v.semver,
        persona_md: v.persona_md,
        skills_json: serde_json::to_value(&v.skills).unwrap_or_default(),
        stores_json: serde_json::to_value(&v.stores).unwrap_or_default(),
        provider: v.provider,
        model: v.model,
        eval_suite_id: v.eval_suite_id,
        eval_suite_version: v.eval_suite_version,
        created_by: v.created_by,
        created_at: v.created_at,
    }
}

pub(crate) fn exported_agent(a: kiln_core::agents::ExportedAgent) -> api::SourceAgent {
    use base64::Engine;
    api::SourceAgent {
        id: a.local_id,
        source_hash: a.source_hash,
        files: a
            .files
            .into_iter()
            .map(|(path, bytes)| api::SourceFile {
                path,
                hash: format!("sha256:{}", kiln_core::crypto::sha256_hex(&bytes)),
                size: bytes.len() as i64,
                content: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            })
            .collect(),
    }
}

pub(crate) fn diff_result(paths: Vec<(String, kiln_core::agents::PathState)>) -> api::SourceDiffResult {
    use api::diff_states as d;
    use kiln_core::agents::PathState;
    api::SourceDiffResult {
        in_sync: paths.is_empty(),
        paths: paths
            .into_iter()
            .map(|(path, state)| api::SourceDiffPath {
                path,
                state: match state {
                    PathState::LocalOnly => d::LOCAL_ONLY,
                    PathState::ServerOnly => d::SERVER_ONLY,
                    PathState::Changed => d::CHANGED,
                }
                .to_owned(),
            })
            .collect(),
    }
}

pub(crate) fn skill(
    project_id: &kiln_core::ids::ProjectId,
    s: kiln_core::agents::skills::Skill,
) -> api::Skill {
    use kiln_core::agents::skills::SkillKind;
    api::Skill {
        id: s.id,
        project_id: project_id.to_string(),
        app_id: project_id.to_string(),
        name: s.name,
        description: s.description,
        kind: match s.kind {
            SkillKind::Prompt => api::skill_types::PROMPT,
            SkillKind::Module => api::skill_types::MODULE,
            SkillKind::Mcp => api::skill_types::MCP,
        }
        .to_owned(),
        prompt: s.prompt,
        config: match s.kind {
            SkillKind::Mcp => match s.mcp {
                Some(server) => serde_json::json!({
                    "agent_id": s.agent_id.as_str(),
                    "path": s.path,
                    "server": server.name,
                    "transport": mcp_transport(server.transport),
                    "url": server.url,
                    "tools": server.tools.iter().map(|t| serde_json::json!({
                        "name": t.name,
                        "description": t.description,
                        "inputSchema": t.input_schema,
                    })).collect::<Vec<_>>(),
                }),
                None => serde_json::json!({ "agent_id": s.agent_id.as_str(), "path": s.path }),
            },
            SkillKind::Prompt => serde_json::json!({ "agent_id": s.agent_id.as_str(), "path": s.path }),
            SkillKind::Module => serde_json::json!({
                "agent_id": s.agent_id.as_str(),
                "path": s.path,
                "exports": s.exports.iter().map(|e| match &e.params {
                    Some(params) => serde_json::json!({ "name": e.name, "params": params }),
                    None => serde_json::json!({ "name": e.name }),
                }).collect::<Vec<_>>(),
            }),
        },
        parameters: serde_json::json!({}),
        enabled: true,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// `agent.jsonc → mcp[].transport` as written there.
fn mcp_transport(transport: kiln_core::mcp::McpTransport) -> &'static str {
    use kiln_core::mcp::McpTransport as T;
    match transport {
        T::StreamableHttp => "streamable_http",
        T::Sse => "sse",
        T::Stdio => "stdio",
    }
}

pub(crate) fn agent_config(a: kiln_core::agents::config::AgentConfig) -> api::AgentConfig {
    let project_id = a.project_id.into_string();
    api::AgentConfig {
        id: a.id.into_string(),
        app_id: project_id.clone(),
        project_id,
        name: a.name,
        description: a.description,
        created_by: a.created_by,
        persona_md: a.persona_md,
        skills_json: serde_json::to_value(&a.skills).unwrap_or_default(),
        stores_json: serde_json::to_value(&a.stores).unwrap_or_default(),
        provider: a.provider,
        model: a.model,
        enabled_capabilities: a.enabled_capabilities,
        eval_suite_id: a.eval_suite_id,
        active_version_id: a.active_version_id,
        published_at: a.published_at,
        created_at: a.created_at,
        updated_at: a.updated_at,
        code_first_project: Some(a.code_first_project),
        code_first_local_id: Some(a.local_id),
        run_eval_on_publish: false,
        draft_config: None,
    }
}

pub(crate) fn eval_case(c: kiln_core::agents::suites::EvalCase) -> api::EvalCase {
    let project_id = c.project_id.into_string();
    api::EvalCase {
        id: c.id,
        app_id: project_id.clone(),
        project_id,
        agent_id: c.agent_id.into_string(),
        name: c.spec.name,
        description: c.spec.description,
        set_name: c.spec.set_name,
        kind: c.spec.kind.as_str().to_owned(),
        config: c.spec.config,
        prompt: c.spec.prompt,
        criteria: c.spec.criteria,
        system_prompt: c.spec.system_prompt,
        tools: serde_json::Value::from(c.spec.tools),
        pass_threshold: c.spec.pass_threshold,
        created_at: c.created_at,
    }
}

pub(crate) fn eval_suite(s: kiln_core::agents::suites::EvalSuite) -> api::EvalSuite {
    let project_id = s.project_id.into_string();
    api::EvalSuite {
        id: s.id,
        app_id: project_id.clone(),
        project_id,
        agent_id: Some(s.agent_id.into_string()),
        name: s.name,
        description: s.description,
        threshold: s.threshold,
        active_version_id: s.active_version_id,
        judge_model: s.judge_model,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

pub(crate) fn eval_suite_version(v: kiln_core::agents::suites::EvalSuiteVersion) -> api::EvalSuiteVersion {
    api::EvalSuiteVersion {
        id: v.id,
        suite_id: v.suite_id,
        semver: v.semver,
        case_ids: v.case_ids,
        created_at: v.created_at,
    }
}

pub(crate) fn eval_run(r: kiln_core::evals::EvalRun) -> api::EvalRun {
    api::EvalRun {
        id: r.id.into_string(),
        status: r.status.as_str().to_owned(),
        total_cases: r.total_cases,
        passed: r.passed,
        failed: r.failed,
        average_score: r.average_score,
        judge_model: r.judge_model,
        created_at: r.created_at,
        agent_id: r.agent_id.into_string(),
        suite_id: r.suite_id,
        suite_version: r.suite_version,
        target: r.target,
        threshold: r.threshold,
        error: r.error,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

pub(crate) fn eval_result(r: kiln_core::evals::EvalResult) -> api::EvalResult {
    api::EvalResult {
        id: r.id.into_string(),
        case_name: r.case_name,
        set_name: r.set_name,
        score: r.score,
        pass: r.pass,
        reasoning: r.reasoning,
        response: r.response,
        tool_calls: r.tool_calls,
        duration_ms: r.duration_ms,
        error: r.error,
        case_id: r.case_id,
        session_id: r.session_id,
    }
}

pub(crate) fn schedule(s: kiln_core::schedules::ScheduledRun) -> api::ScheduledRun {
    let project_id = s.project_id.into_string();
    api::ScheduledRun {
        id: s.id.into_string(),
        app_id: project_id.clone(),
        project_id,
        agent_session_id: s.session_id.into_string(),
        name: s.name,
        cron_expression: s.cron_expression,
        message: s.message,
        enabled: s.enabled,
        last_run_at: s.last_run_at,
        next_run_at: s.next_run_at,
        run_count: s.run_count,
        last_error: s.last_error,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

pub(crate) fn enqueued(e: kiln_core::runtime::queue::Enqueued) -> api::Enqueued {
    api::Enqueued {
        id: e.id.into_string(),
        status: if e.running { "running" } else { "queued" }.to_owned(),
        queue_position: e.queue_position,
    }
}

pub(crate) fn queue(queue: Vec<kiln_core::runtime::store::QueuedTurn>) -> api::QueueList {
    api::QueueList {
        queue: queue
            .into_iter()
            .map(|q| api::QueuedTurn {
                id: q.id.into_string(),
                message: q.message,
                queue_position: q.position,
                created_at: q.created_at,
            })
            .collect(),
    }
}

pub(crate) fn webhook_input(w: api::webhook::WebhookConfig) -> kiln_core::webhooks::WebhookInput {
    kiln_core::webhooks::WebhookInput {
        url: w.url,
        events: w.events,
        secret: w.secret,
    }
}

pub(crate) fn webhooks(list: Vec<kiln_core::webhooks::SessionWebhook>) -> api::webhook::WebhookList {
    use kiln_core::webhooks::WebhookEvent;
    api::webhook::WebhookList {
        webhooks: list
            .into_iter()
            .map(|w| {
                let events = if w.events.is_empty() {
                    WebhookEvent::ALL.to_vec()
                } else {
                    w.events
                };
                api::webhook::Webhook {
                    url: w.url,
                    events: events.into_iter().map(|e| e.as_str().to_owned()).collect(),
                    has_secret: w.secret.is_some(),
                }
            })
            .collect(),
    }
}

pub(crate) fn webhook_delivery(d: kiln_core::webhooks::Delivery) -> api::webhook::WebhookDelivery {
    api::webhook::WebhookDelivery {
        id: d.id.into_string(),
        event_type: d.event.as_str().to_owned(),
        url: d.url,
        attempt: d.attempt,
        status_code: d.status_code,
        error: d.error,
        created_at: d.created_at,
        delivered_at: d.delivered_at,
        next_attempt_at: d.next_attempt_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_event_names_are_the_listed_ones() {
        let names: Vec<&str> = kiln_core::webhooks::WebhookEvent::ALL
            .iter()
            .map(|e| e.as_str())
            .collect();
        assert_eq!(names, api::webhook::webhook_events::ALL);
    }

    #[test]
    fn every_event_kind_and_turn_code_has_a_listed_wire_name() {
        for kind in EventKind::ALL {
            let wire = event_type(kind);
            assert!(
                api::event_types::ALL.contains(&wire),
                "{kind:?} → unlisted `{wire}`"
            );
            // Stored logs read the same as streams.
            assert_eq!(kind.storage_name(), wire);
        }
        for code in source::IssueCode::ALL {
            let wire = issue_code(code);
            assert!(
                api::source_issue_codes::ALL.contains(&wire),
                "{code:?} → unlisted `{wire}`"
            );
        }
        for code in TurnErrorCode::ALL {
            let wire = turn_error_code(code);
            assert!(
                api::turn_error_codes::ALL.contains(&wire),
                "{code:?} → unlisted `{wire}`"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(wire));
        }
    }
}
