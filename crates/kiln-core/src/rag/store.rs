//! The storage port of the RAG engine: indexes, documents, the ingestion
//! pipeline's claims, and the search log.
//!
//! Every method that reads project data takes the caller's `ProjectId`,
//! except the pipeline's and the search log's, which work across projects
//! on behalf of the server (a worker claims whatever is pending; the search
//! structures mirror every project), and never answer a caller directly.

use async_trait::async_trait;

use crate::audit::NewAudit;
use crate::error::StoreResult;
use crate::ids::{ChunkId, DocumentId, IndexId, ProjectId};
use crate::page::Page;
use crate::rag::ChunkEntry;
use crate::rag::document::{ChunkRecord, Document, DocumentFilter, IndexEmbedder, Ingested};
use crate::rag::index::Index;

/// What `insert_document` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionedInsert {
    /// Written with this version (and `is_latest`).
    Inserted { version: i64 },
    /// `if_version` did not match; nothing was written. `current_version`
    /// is the live latest version of the name, 0 when there is none.
    Conflict { current_version: i64 },
}

/// What a search-log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOp {
    /// The document's chunks became searchable.
    Add,
    /// The document stopped being searchable.
    Remove,
    /// The index and all of its documents are gone.
    DropIndex,
}

impl SearchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchOp::Add => "add",
            SearchOp::Remove => "remove",
            SearchOp::DropIndex => "drop_index",
        }
    }

    pub fn parse(s: &str) -> Option<SearchOp> {
        Some(match s {
            "add" => SearchOp::Add,
            "remove" => SearchOp::Remove,
            "drop_index" => SearchOp::DropIndex,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchLogEntry {
    pub seq: i64,
    pub project_id: ProjectId,
    pub index_id: IndexId,
    pub document_id: Option<DocumentId>,
    pub op: SearchOp,
}

#[async_trait]
pub trait RagStore: Send + Sync {
    // Indexes.
    async fn create_index(&self, index: &Index, audit: &NewAudit) -> StoreResult<()>;
    /// By name.
    async fn list_indexes(&self, project_id: &ProjectId) -> StoreResult<Vec<Index>>;
    async fn get_index(&self, project_id: &ProjectId, id: &IndexId) -> StoreResult<Option<Index>>;
    /// Replaces name, description and metadata; `Ok(false)` when it is gone.
    async fn update_index(&self, index: &Index, audit: &NewAudit) -> StoreResult<bool>;
    /// Deletes the index and everything in it.
    async fn delete_index(&self, project_id: &ProjectId, id: &IndexId, audit: &NewAudit)
    -> StoreResult<bool>;

    // Documents.
    /// Writes the document row and its bytes. With a `name`, versions on
    /// (index, name): the live latest row (if any) stops being latest and
    /// the new row gets `max(version) + 1` over every row of that name. With
    /// `if_version`, compares it to the live latest version first.
    async fn insert_document(
        &self,
        doc: &Document,
        bytes: &[u8],
        if_version: Option<i64>,
        audit: &NewAudit,
    ) -> StoreResult<VersionedInsert>;
    /// The row, soft-deleted or not.
    async fn get_document(&self, project_id: &ProjectId, id: &DocumentId) -> StoreResult<Option<Document>>;
    /// Without `version`, the live latest row of the name; with it, exactly
    /// that version (soft-deleted included).
    async fn document_by_name(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
        name: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<Document>>;
    /// Every version of the name, newest first, soft-deleted included.
    async fn document_versions(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
        name: &str,
    ) -> StoreResult<Vec<Document>>;
    /// Latest rows (plus soft-deleted ones when asked), newest first, and
    /// the total matching the filter.
    async fn list_documents(
        &self,
        project_id: &ProjectId,
        filter: &DocumentFilter,
        page: Page,
    ) -> StoreResult<(Vec<Document>, i64)>;
    /// Soft (sets `deleted_at`, clears `is_latest`) or hard (row, bytes and
    /// chunks gone) delete of the document and its extraction siblings.
    /// `Ok(false)` when there was nothing to delete.
    async fn delete_document(
        &self,
        project_id: &ProjectId,
        id: &DocumentId,
        hard: bool,
        audit: &NewAudit,
    ) -> StoreResult<bool>;

    // The pipeline.
    /// Claims the oldest pending document, or one whose worker's lease ran
    /// out, for `lease_ms`; the claim is identified by `token`. A document
    /// already claimed `max_attempts` times (each ended by a worker or
    /// server that died) is marked `error` instead, in the same
    /// transaction, and the next is tried.
    async fn claim_document(
        &self,
        now_ms: i64,
        lease_ms: i64,
        token: &str,
        max_attempts: i64,
    ) -> StoreResult<Option<Document>>;
    /// Returns claimed documents to `pending` at start: every one when this
    /// server is the only one on the database, else (`mine_only`) those
    /// this server claimed before it restarted.
    async fn release_claims(&self, mine_only: bool) -> StoreResult<u64>;
    /// Extends the claim `token` holds on document `id` to `until_ms`;
    /// `Ok(false)` when the claim was lost meanwhile.
    async fn renew_document_claim(&self, id: &DocumentId, token: &str, until_ms: i64) -> StoreResult<bool>;
    async fn document_bytes(&self, project_id: &ProjectId, id: &DocumentId) -> StoreResult<Option<Vec<u8>>>;
    /// The embedder recorded for the index, if it has vectors yet.
    async fn index_embedder(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
    ) -> StoreResult<Option<IndexEmbedder>>;
    /// Records the outcome of a claim in one transaction: status, chunks,
    /// the sibling, the index's embedder, and the search-log entry.
    /// `Ok(false)` when the claim was lost (another worker took over after
    /// the lease, or the document was hard-deleted); nothing is written then.
    async fn finish_document(
        &self,
        doc: &Document,
        token: &str,
        outcome: &Ingested,
        embedder: Option<&IndexEmbedder>,
    ) -> StoreResult<bool>;

    // The search log and what it points at.
    /// The newest search-log sequence number committed.
    async fn search_seq(&self) -> StoreResult<i64>;
    async fn search_log_after(&self, seq: i64, limit: i64) -> StoreResult<Vec<SearchLogEntry>>;
    /// The chunks of a document, when it is searchable now (ready, latest,
    /// live); empty otherwise.
    async fn searchable_chunks(&self, document_id: &DocumentId) -> StoreResult<Vec<ChunkEntry>>;
    /// The chunks of the next `documents` searchable documents after
    /// `after`, in document-id then chunk order (for rebuilds).
    async fn searchable_chunks_after(
        &self,
        after: Option<&DocumentId>,
        documents: i64,
    ) -> StoreResult<Vec<ChunkEntry>>;
    /// The searchable chunks among `chunk_ids`, with their documents.
    async fn chunk_records(
        &self,
        project_id: &ProjectId,
        chunk_ids: &[ChunkId],
    ) -> StoreResult<Vec<ChunkRecord>>;
}
