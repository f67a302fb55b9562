//! Prompt templates (CONTRACT §2.13). Placeholders look like `{{name}}`.

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptTemplate {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub name: String,
    pub content: String,
    /// Variable names; `[]` when none.
    pub variables: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatePromptTemplate {
    pub name: String,
    pub content: String,
    /// Left out: filled from the `{{var}}` placeholders found in `content`.
    #[serde(default)]
    pub variables: Option<Vec<String>>,
}

/// Empty or missing `name`/`content` mean "unchanged" (Go always sends both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdatePromptTemplate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub variables: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptTemplateList {
    pub templates: Vec<PromptTemplate>,
}
