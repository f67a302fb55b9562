//! The ports the RAG engine drives: text extraction, and the two derived
//! search structures (lexical and vector). Both search ports are blocking
//! (CPU and local-disk work); the engine calls them on the blocking pool.

use crate::ids::{ChunkId, DocumentId, IndexId, ProjectId};
use crate::rag::DocumentKind;

/// Text pulled out of an upload, as Markdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub markdown: String,
    /// Pages, for paged formats (PDF); `None` otherwise.
    pub page_count: Option<u32>,
}

/// Turns an indexable upload into Markdown. The message of an error is shown
/// to the user as the document's `error_message`, so it says what is wrong
/// with the file (`"not a PDF: missing %PDF header"`), not where in the code.
pub trait TextExtractor: Send + Sync {
    fn extract(&self, kind: DocumentKind, bytes: &[u8]) -> Result<Extracted, String>;
}

/// One chunk as the search structures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEntry {
    pub chunk_id: ChunkId,
    pub document_id: DocumentId,
    pub index_id: IndexId,
    pub project_id: ProjectId,
    pub text: String,
    /// Unit-length (or zero) embedding; every chunk of one index has the
    /// same dimension.
    pub embedding: Vec<f32>,
}

/// A change to what is searchable, replayed from the search log in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchChange {
    /// The document's chunks become searchable (replacing any it had).
    Upsert {
        document_id: DocumentId,
        chunks: Vec<ChunkEntry>,
    },
    /// The document is no longer searchable (superseded, deleted).
    RemoveDocument {
        project_id: ProjectId,
        document_id: DocumentId,
    },
    /// The index and all of its documents are gone.
    RemoveIndex {
        project_id: ProjectId,
        index_id: IndexId,
    },
}

/// A scored chunk. Scores are comparable within one result list only.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub chunk_id: ChunkId,
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchError(pub String);

/// Full-text (BM25) search over chunk text.
pub trait LexicalIndex: Send + Sync {
    /// The last search-log sequence number whose change is durably applied.
    fn applied_seq(&self) -> i64;
    /// Applies `changes` in order and durably records `seq` with them, all
    /// or nothing.
    fn apply(&self, changes: &[SearchChange], seq: i64) -> Result<(), SearchError>;
    /// Drops everything (before a rebuild from the database).
    fn clear(&self) -> Result<(), SearchError>;
    /// The best `k` chunks of `project_id` in `index_ids` for `query`.
    fn search(
        &self,
        project_id: &ProjectId,
        index_ids: &[IndexId],
        query: &str,
        k: usize,
    ) -> Result<Vec<SearchHit>, SearchError>;
}

/// Nearest-neighbour search over chunk embeddings (cosine similarity).
pub trait VectorIndex: Send + Sync {
    /// The last search-log sequence number applied (in memory).
    fn applied_seq(&self) -> i64;
    fn apply(&self, changes: &[SearchChange], seq: i64);
    fn clear(&self);
    /// Number of vectors held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `k` chunks of `project_id` in `index_ids` most similar to `query`
    /// (unit length); the score is the cosine similarity.
    fn search(
        &self,
        project_id: &ProjectId,
        index_ids: &[IndexId],
        query: &[f32],
        k: usize,
    ) -> Vec<SearchHit>;
}
