//! The RAG service's document operations: upload (with versioning and provenance),
//! reads by id and by name, lists with filters, and deletes.

use serde_json::{Map, Value};

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::crypto::sha256_hex;
use crate::error::EntityKind;
use crate::error::{Error, Result, StoreError};
use crate::ids::{DocumentId, IndexId};
use crate::page::Page;
use crate::rag::document::{Document, DocumentFilter, DocumentStatus};
use crate::rag::kind::content_type_for;
use crate::rag::store::VersionedInsert;
use crate::rag::{DocumentKind, Rag};
use crate::time::now;

/// Document list page size: default and cap (CONTRACT §1.7; the SDKs send 50).
pub const DOCUMENTS_DEFAULT_LIMIT: i64 = 50;
pub const DOCUMENTS_MAX_LIMIT: i64 = 200;
/// The default upload limit (CONTRACT §4.2.22).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
const MAX_FILENAME_CHARS: usize = 255;
const MAX_NAME_CHARS: usize = 1024;
const FALLBACK_FILENAME: &str = "upload.bin";

/// One multipart upload, parsed.
#[derive(Debug, Clone)]
pub struct Upload {
    pub index_id: IndexId,
    pub filename: String,
    /// The part's own `Content-Type`, a fallback for unknown extensions.
    pub part_content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub name: Option<String>,
    pub parent_id: Option<DocumentId>,
    pub if_version: Option<i64>,
    pub metadata: Map<String, Value>,
}

/// The upload's filename, without any directory a client put in front.
fn parse_filename(filename: &str) -> Result<String> {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if base.chars().any(char::is_control) {
        return Err(Error::validation(
            "filename contains control characters",
            Some("file"),
        ));
    }
    if base.chars().count() > MAX_FILENAME_CHARS {
        return Err(Error::validation(
            format!("filename is longer than {MAX_FILENAME_CHARS} characters"),
            Some("file"),
        ));
    }
    Ok(if base.is_empty() {
        FALLBACK_FILENAME.to_owned()
    } else {
        base.to_owned()
    })
}

/// A logical document name: 1–1024 characters, no control characters;
/// slashes are fine (`docs/guide.md`).
pub fn parse_document_name(name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(Error::validation("name must not be empty", Some("name")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::validation(
            "name contains control characters",
            Some("name"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::validation(
            format!("name is longer than {MAX_NAME_CHARS} characters"),
            Some("name"),
        ));
    }
    Ok(name.to_owned())
}

fn document_audit(ctx: &AuthContext, action: &'static str, id: &DocumentId) -> NewAudit {
    NewAudit::new(
        &ctx.project.id,
        &Actor::api_key(ctx.key_id.clone()),
        action,
        id.as_str(),
    )
}

impl Rag {
    /// Stores an upload and acknowledges it: `pending` when it will be
    /// ingested, `stored` when its type is not indexable. The bytes are
    /// committed with the row, so an acknowledged upload survives a crash.
    pub async fn upload_document(&self, ctx: &AuthContext, upload: Upload) -> Result<Document> {
        if upload.bytes.len() as u64 > self.setup.max_upload_bytes {
            return Err(Error::PayloadTooLarge {
                limit_bytes: self.setup.max_upload_bytes,
            });
        }
        let index = self.get_index(ctx, &upload.index_id).await?;
        let filename = parse_filename(&upload.filename)?;
        let name = upload.name.as_deref().map(parse_document_name).transpose()?;
        if upload.if_version.is_some() && name.is_none() {
            return Err(Error::validation(
                "if_version needs a name to compare against",
                Some("if_version"),
            ));
        }
        if let Some(parent_id) = &upload.parent_id
            && self
                .store
                .get_document(&ctx.project.id, parent_id)
                .await?
                .is_none()
        {
            return Err(Error::validation(
                format!("parent document `{parent_id}` not found"),
                Some("parent_id"),
            ));
        }
        let content_type = content_type_for(&filename, upload.part_content_type.as_deref());
        let kind = DocumentKind::from_content_type(&content_type);
        let at = now();
        let mut doc = Document {
            id: DocumentId::generate(),
            project_id: ctx.project.id.clone(),
            index_id: index.id,
            filename,
            content_type,
            file_size: upload.bytes.len() as i64,
            status: if kind.is_indexable() {
                DocumentStatus::Pending
            } else {
                DocumentStatus::Stored
            },
            error_message: None,
            page_count: None,
            chunk_count: 0,
            name,
            version: 1,
            is_latest: true,
            metadata: upload.metadata,
            parent_id: upload.parent_id,
            created_by_api_key_id: Some(ctx.key_id.clone()),
            content_sha256: Some(sha256_hex(&upload.bytes)),
            deleted_at: None,
            created_at: at,
            updated_at: at,
        };
        let mut audit = document_audit(ctx, actions::DOCUMENT_UPLOAD, &doc.id)
            .meta("index_id", doc.index_id.to_string())
            .meta("filename", doc.filename.clone());
        if let Some(name) = &doc.name {
            audit = audit.meta("name", name.clone());
        }
        let inserted = self
            .store
            .insert_document(&doc, &upload.bytes, upload.if_version, &audit)
            .await
            .map_err(|e| match e {
                // Another upload of the same name committed between our read
                // and our insert.
                StoreError::UniqueViolation(_) => Error::Conflict(format!(
                    "another upload of `{}` was written at the same time; retry",
                    doc.name.as_deref().unwrap_or_default()
                )),
                StoreError::ForeignKeyViolation(_) => Error::not_found(EntityKind::Index, &doc.index_id),
                e => e.into(),
            })?;
        match inserted {
            VersionedInsert::Inserted { version } => doc.version = version,
            VersionedInsert::Conflict { current_version } => {
                return Err(Error::VersionConflict {
                    name: doc.name.unwrap_or_default(),
                    current_version,
                });
            }
        }
        if doc.status == DocumentStatus::Pending {
            self.work.notify_one();
        }
        Ok(doc)
    }

    /// A live document (or a soft-deleted one when `include_deleted`),
    /// optionally required to be in `index_id`.
    pub async fn get_document(
        &self,
        ctx: &AuthContext,
        id: &DocumentId,
        index_id: Option<&IndexId>,
        include_deleted: bool,
    ) -> Result<Document> {
        if let Some(index_id) = index_id {
            self.get_index(ctx, index_id).await?;
        }
        self.store
            .get_document(&ctx.project.id, id)
            .await?
            .filter(|d| include_deleted || d.deleted_at.is_none())
            .filter(|d| index_id.is_none_or(|i| &d.index_id == i))
            .ok_or_else(|| Error::not_found(EntityKind::Document, id))
    }

    /// A live document and its text as indexed, passage by passage (none
    /// until it is ready).
    pub async fn document_passages(
        &self,
        ctx: &AuthContext,
        id: &DocumentId,
    ) -> Result<(Document, Vec<String>)> {
        let document = self.get_document(ctx, id, None, false).await?;
        let chunks = self.store.searchable_chunks(&document.id).await?;
        Ok((document, chunks.into_iter().map(|c| c.text).collect()))
    }

    /// The live latest version of a name, or exactly `version` (≥ 1).
    pub async fn document_by_name(
        &self,
        ctx: &AuthContext,
        index_id: &IndexId,
        name: &str,
        version: Option<i64>,
    ) -> Result<Document> {
        self.get_index(ctx, index_id).await?;
        self.store
            .document_by_name(&ctx.project.id, index_id, name, version.filter(|v| *v > 0))
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Document, name))
    }

    pub async fn document_versions(
        &self,
        ctx: &AuthContext,
        index_id: &IndexId,
        name: &str,
    ) -> Result<Vec<Document>> {
        self.get_index(ctx, index_id).await?;
        Ok(self
            .store
            .document_versions(&ctx.project.id, index_id, name)
            .await?)
    }

    /// `duplicate_of` resolves to that document's hash, leaving it out.
    pub async fn list_documents(
        &self,
        ctx: &AuthContext,
        mut filter: DocumentFilter,
        duplicate_of: Option<&DocumentId>,
        page: Page,
    ) -> Result<(Vec<Document>, i64)> {
        if let Some(index_id) = &filter.index_id {
            self.get_index(ctx, index_id).await?;
        }
        if let Some(id) = duplicate_of {
            let original = self
                .store
                .get_document(&ctx.project.id, id)
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Document, id))?;
            if filter
                .content_sha256
                .as_ref()
                .is_some_and(|s| Some(s) != original.content_sha256.as_ref())
            {
                return Ok((Vec::new(), 0));
            }
            filter.content_sha256 = original.content_sha256;
            filter.exclude_id = Some(original.id);
        }
        Ok(self.store.list_documents(&ctx.project.id, &filter, page).await?)
    }

    /// Idempotent: deleting an unknown or already deleted document succeeds.
    /// With `index_id`, a document of another index is left alone.
    pub async fn delete_document(
        &self,
        ctx: &AuthContext,
        id: &DocumentId,
        index_id: Option<&IndexId>,
        hard: bool,
    ) -> Result<()> {
        if let Some(index_id) = index_id {
            let doc = self.store.get_document(&ctx.project.id, id).await?;
            if doc.is_none_or(|d| &d.index_id != index_id) {
                return Ok(());
            }
        }
        let action = if hard {
            actions::DOCUMENT_HARD_DELETE
        } else {
            actions::DOCUMENT_DELETE
        };
        let audit = document_audit(ctx, action, id);
        self.store
            .delete_document(&ctx.project.id, id, hard, &audit)
            .await?;
        Ok(())
    }
}
