//! RAG indexes: named containers of documents, unique per project.

use serde_json::{Map, Value};

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::error::EntityKind;
use crate::error::{Error, Result, unique_or};
use crate::ids::{IndexId, ProjectId};
use crate::rag::Rag;
use crate::time::{Timestamp, now};

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub id: IndexId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// 1–200 characters, no control characters.
pub fn parse_index_name(name: &str) -> Result<String> {
    crate::names::parse_entity_name(name)
}

pub const MAX_DESCRIPTION_CHARS: usize = 4000;

fn parse_description(description: &str) -> Result<String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::validation(
            format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
            Some("description"),
        ));
    }
    Ok(description.to_owned())
}

impl Rag {
    pub async fn create_index(
        &self,
        ctx: &AuthContext,
        name: &str,
        description: Option<&str>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Index> {
        let at = now();
        let index = Index {
            id: IndexId::generate(),
            project_id: ctx.project.id.clone(),
            name: parse_index_name(name)?,
            description: parse_description(description.unwrap_or(""))?,
            metadata: metadata.unwrap_or_default(),
            created_at: at,
            updated_at: at,
        };
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::INDEX_CREATE,
            index.id.as_str(),
        )
        .meta("name", index.name.clone());
        self.store
            .create_index(&index, &audit)
            .await
            .map_err(|e| unique_or(e, || format!("an index named `{}` already exists", index.name)))?;
        Ok(index)
    }

    pub async fn list_indexes(&self, ctx: &AuthContext) -> Result<Vec<Index>> {
        Ok(self.store.list_indexes(&ctx.project.id).await?)
    }

    pub async fn get_index(&self, ctx: &AuthContext, id: &IndexId) -> Result<Index> {
        self.store
            .get_index(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Index, id))
    }

    /// Missing or empty `name` keeps the name; missing `description` and
    /// `metadata` keep theirs.
    pub async fn update_index(
        &self,
        ctx: &AuthContext,
        id: &IndexId,
        name: Option<&str>,
        description: Option<&str>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Index> {
        let mut index = self.get_index(ctx, id).await?;
        if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
            index.name = parse_index_name(name)?;
        }
        if let Some(description) = description {
            index.description = parse_description(description)?;
        }
        if let Some(metadata) = metadata {
            index.metadata = metadata;
        }
        index.updated_at = now();
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::INDEX_UPDATE,
            id.as_str(),
        )
        .meta("name", index.name.clone());
        let updated = self
            .store
            .update_index(&index, &audit)
            .await
            .map_err(|e| unique_or(e, || format!("an index named `{}` already exists", index.name)))?;
        if !updated {
            return Err(Error::not_found(EntityKind::Index, id));
        }
        Ok(index)
    }

    pub async fn delete_index(&self, ctx: &AuthContext, id: &IndexId) -> Result<()> {
        let audit = NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            actions::INDEX_DELETE,
            id.as_str(),
        );
        if !self.store.delete_index(&ctx.project.id, id, &audit).await? {
            return Err(Error::not_found(EntityKind::Index, id));
        }
        Ok(())
    }
}
