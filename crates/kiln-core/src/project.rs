//! Projects (tenants) and their API keys.

use crate::ids::{ApiKeyId, ProjectId, VaultId};
use crate::time::Timestamp;
use crate::{Error, Result};

/// The single team every Kiln project reports in `team_id`.
pub const DEFAULT_TEAM_ID: &str = "default";
/// The project created on first start with an empty store.
pub const DEFAULT_PROJECT_NAME: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: ProjectId,
    pub name: ProjectName,
    pub slug: String,
    pub description: String,
    pub vault_id: Option<VaultId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A project name: 1–100 characters, no control characters. Unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(name: &str) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::validation(
                "project name must be 1 to 100 characters without control characters",
                Some("name"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-case ASCII letters and digits joined by `-`.
    pub fn slug(&self) -> String {
        let mut slug = String::new();
        for c in self.0.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-').to_owned();
        if slug.is_empty() {
            "project".to_owned()
        } else {
            slug
        }
    }
}

/// An API key as stored: the hash and a display prefix, never the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub name: String,
    /// The first characters of the key (`kiln_AbCd`), to recognise it in lists.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub key_hash: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A key row joined with its project's name, for `kiln keys list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyListing {
    pub key: ApiKey,
    pub project_name: String,
}

/// Counters for `GET /metrics`, computed from the project's tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectMetrics {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub request_count: i64,
    pub total_sessions: i64,
    pub active_sessions: i64,
    pub completed_sessions: i64,
    pub error_sessions: i64,
    pub total_steps: i64,
    pub total_eval_runs: i64,
    pub completed_eval_runs: i64,
    pub eval_cases_passed: i64,
    pub eval_cases_failed: i64,
    pub eval_average_score: f64,
}

#[cfg(test)]
mod tests {
    use super::ProjectName;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(ProjectName::parse("  Acme Corp!  ").unwrap().slug(), "acme-corp");
        assert_eq!(ProjectName::parse("Ünïcode").unwrap().slug(), "n-code");
        assert_eq!(ProjectName::parse("!!!").unwrap().slug(), "project");
        assert!(ProjectName::parse("   ").is_err());
    }
}
