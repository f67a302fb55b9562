//! Secret vaults and the secrets in them.

use serde_json::{Map, Value};

use crate::crypto::SealedValue;
use crate::ids::{ProjectId, VaultId};
use crate::time::Timestamp;
use crate::{Error, Result};

/// Largest secret value accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Vault {
    pub id: VaultId,
    pub project_id: ProjectId,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A secret's stored form; `value` stays sealed until a provider needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub vault_id: VaultId,
    pub name: SecretName,
    pub sealed: SealedValue,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A secret name: `[A-Za-z0-9_.-]{1,128}`, case-sensitive, so the provider
/// key names (`openai_api_key`, ...) fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(Error::validation(
                format!("secret name `{name}` is invalid: use 1 to 128 of A-Z a-z 0-9 _ . -"),
                Some("name"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn parse_vault_name(name: &str) -> Result<String> {
    crate::names::parse_entity_name(name)
}

/// The associated data a secret is sealed under: moving a row to another
/// project, vault or name makes it fail to open.
pub fn seal_context(project_id: &ProjectId, vault_id: &VaultId, name: &SecretName) -> String {
    format!("{project_id}/{vault_id}/{}", name.as_str())
}

#[cfg(test)]
mod tests {
    use super::SecretName;

    #[test]
    fn secret_names_follow_the_documented_alphabet() {
        for ok in ["openai_api_key", "a.b-c", "X9"] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "slash/inside", "plus+", &"x".repeat(129)] {
            assert!(SecretName::parse(bad).is_err(), "{bad}");
        }
    }
}
