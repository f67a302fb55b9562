//! Agents as code: an engineer authors an agent as files (`agent.jsonc`,
//! `persona.md`, `skills/`, `evals/`), and the source family turns them
//! into agent configs. This module checks a manifest of those files
//! ([`source`]); [`AgentConfigs`] adds what only the server knows (the
//! project's indexes).

pub mod source;

use std::sync::Arc;

use crate::auth::AuthContext;
use crate::error::Result;
use crate::rag::Rag;
use source::{IssueCode, Manifest, Severity, SourceIssue};

/// The agents-as-code service. It uses RAG to resolve the indexes an agent
/// names.
pub struct AgentConfigs {
    rag: Arc<Rag>,
}

impl AgentConfigs {
    pub fn new(rag: Arc<Rag>) -> AgentConfigs {
        AgentConfigs { rag }
    }

    /// `POST /source-validate`: every issue of the manifest, fatal or not;
    /// nothing is written.
    pub async fn validate_source(&self, ctx: &AuthContext, manifest: &Manifest) -> Result<Vec<SourceIssue>> {
        let (agents, mut issues) = source::check_manifest(manifest);
        let indexes = self.rag.list_indexes(ctx).await?;
        for agent in &agents {
            let Some(spec) = &agent.spec else { continue };
            for wanted in &spec.indexes {
                let known = indexes
                    .iter()
                    .any(|i| i.id.as_str() == wanted.as_str() || i.name == *wanted);
                if !known {
                    issues.push(SourceIssue {
                        file: Some(format!("{}/{}", agent.local_id, source::AGENT_FILE)),
                        line: None,
                        column: None,
                        code: IssueCode::MissingIndex,
                        message: format!("index `{wanted}` is not in this project"),
                        hint: Some(
                            "create the index first, or name one of the project's indexes (by name or id)"
                                .into(),
                        ),
                        severity: Severity::Fatal,
                    });
                }
            }
        }
        Ok(issues)
    }
}
