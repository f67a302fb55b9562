//! Documents: uploads into an index, versioned by logical name, with the
//! Markdown siblings extraction produces (CONTRACT §2.3).

use serde_json::{Map, Value};

use crate::ids::{ApiKeyId, DocumentId, IndexId, ProjectId};
use crate::time::Timestamp;

/// Where a document is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    /// Acknowledged, waiting for a worker.
    Pending,
    /// A worker holds it.
    Processing,
    /// Chunked and searchable.
    Ready,
    /// Kept as bytes only: not indexable, or an original whose Markdown
    /// sibling carries the chunks.
    Stored,
    /// Extraction or embedding failed; `error_message` says why.
    Error,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Pending => "pending",
            DocumentStatus::Processing => "processing",
            DocumentStatus::Ready => "ready",
            DocumentStatus::Stored => "stored",
            DocumentStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<DocumentStatus> {
        Some(match s {
            "pending" => DocumentStatus::Pending,
            "processing" => DocumentStatus::Processing,
            "ready" => DocumentStatus::Ready,
            "stored" => DocumentStatus::Stored,
            "error" => DocumentStatus::Error,
            _ => return None,
        })
    }

    /// Whether the pipeline is done with it.
    pub fn is_settled(self) -> bool {
        !matches!(self, DocumentStatus::Pending | DocumentStatus::Processing)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    pub project_id: ProjectId,
    pub index_id: IndexId,
    pub filename: String,
    pub content_type: String,
    pub file_size: i64,
    pub status: DocumentStatus,
    pub error_message: Option<String>,
    pub page_count: Option<i64>,
    pub chunk_count: i64,
    pub name: Option<String>,
    pub version: i64,
    pub is_latest: bool,
    pub metadata: Map<String, Value>,
    pub parent_id: Option<DocumentId>,
    pub created_by_api_key_id: Option<ApiKeyId>,
    pub content_sha256: Option<String>,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `metadata.derived_from` of an extracted Markdown sibling.
pub const DERIVED_FROM_EXTRACTION: &str = "extraction";

/// Filters of the document list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentFilter {
    pub index_id: Option<IndexId>,
    /// Case-insensitive substring of `filename`.
    pub q: Option<String>,
    /// `metadata.<key> = value`, every pair must match (`source` is one).
    pub metadata: Vec<(String, String)>,
    pub parent_id: Option<DocumentId>,
    pub content_sha256: Option<String>,
    /// Leave this document out (used by `duplicate_of`).
    pub exclude_id: Option<DocumentId>,
    pub include_deleted: bool,
}

/// A chunk as written by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub id: crate::ids::ChunkId,
    pub chunk_index: i64,
    pub content: String,
    pub metadata: Map<String, Value>,
    pub embedding: Vec<f32>,
}

/// The result of processing one claimed document.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Chunked in place (Markdown, text, CSV): the document becomes `ready`.
    Chunked {
        chunks: Vec<NewChunk>,
        page_count: Option<i64>,
    },
    /// Extracted into a Markdown sibling that carries the chunks; the
    /// original becomes `stored`.
    Sibling {
        sibling: Box<Document>,
        markdown: String,
        chunks: Vec<NewChunk>,
        page_count: Option<i64>,
    },
    /// The document ends in `error` with this message.
    Failed(String),
}

/// The embedder an index's vectors came from; recorded at first ingestion
/// so vectors of different models or sizes are never mixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEmbedder {
    pub name: String,
    pub dimensions: i64,
}

/// A hit resolved to its chunk and document (what search returns).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    pub chunk_id: crate::ids::ChunkId,
    pub chunk_index: i64,
    pub content: String,
    pub metadata: Map<String, Value>,
    pub document: Document,
}
