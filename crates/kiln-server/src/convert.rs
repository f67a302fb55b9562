//! Domain types to wire types, explicitly (domain types are not wire types).

use kiln_api as api;
use kiln_core::audit::AuditEntry;
use kiln_core::project::{DEFAULT_TEAM_ID, Project, ProjectMetrics};
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

pub(crate) fn metrics(m: ProjectMetrics) -> api::ProjectMetrics {
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

pub(crate) fn conversation(c: kiln_core::chat::Conversation) -> api::Conversation {
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

pub(crate) fn message(m: kiln_core::chat::ConversationMessage) -> api::ConversationMessage {
    api::ConversationMessage {
        id: m.id.into_string(),
        conversation_id: m.conversation_id.into_string(),
        role: m.role.as_str().to_owned(),
        content: m.content,
        created_at: m.created_at,
    }
}

pub(crate) fn index(i: kiln_core::index::Index) -> api::Index {
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
