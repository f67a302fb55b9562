//! The one rule for user-chosen entity names (vaults, templates, indexes):
//! trimmed, 1 to 200 characters, no control characters.

use crate::{Error, Result};

pub const MAX_NAME_CHARS: usize = 200;

pub fn parse_entity_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_NAME_CHARS || trimmed.chars().any(char::is_control)
    {
        return Err(Error::validation(
            format!("name must be 1 to {MAX_NAME_CHARS} characters without control characters"),
            Some("name"),
        ));
    }
    Ok(trimmed.to_owned())
}
