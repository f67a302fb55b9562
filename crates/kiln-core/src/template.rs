//! Prompt templates: named text with `{{var}}` placeholders.

use crate::ids::{ProjectId, TemplateId};
use crate::time::Timestamp;
use crate::{Error, Result};

pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    pub id: TemplateId,
    pub project_id: ProjectId,
    pub name: String,
    pub content: String,
    pub variables: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub fn parse_template_name(name: &str) -> Result<String> {
    crate::names::parse_entity_name(name)
}

pub fn parse_template_content(content: &str) -> Result<String> {
    if content.is_empty() {
        return Err(Error::validation("content must not be empty", Some("content")));
    }
    if content.len() > MAX_TEMPLATE_BYTES {
        return Err(Error::validation(
            format!("content is larger than {MAX_TEMPLATE_BYTES} bytes"),
            Some("content"),
        ));
    }
    Ok(content.to_owned())
}

/// The distinct `{{name}}` placeholders of `content`, in order of first use.
/// Whitespace inside the braces is ignored; empty braces are not variables.
pub fn placeholders(content: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid && !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn finds_distinct_placeholders_in_order() {
        assert_eq!(
            placeholders("Hi {{ name }}, your {{order_id}} ships. Bye {{name}}. {{}} {{bad space}} {{x"),
            vec!["name".to_owned(), "order_id".to_owned()]
        );
        assert!(placeholders("no vars").is_empty());
    }
}
