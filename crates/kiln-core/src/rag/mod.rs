//! The RAG service: indexes, documents, their ingestion (extract → chunk →
//! embed → index), and hybrid search.
//!
//! Why it is shaped this way:
//! * The database is the source of truth: document rows, their bytes, their
//!   chunks (text and vector) and a *search log* (one row per change to what
//!   is searchable, numbered by a counter whose row lock orders commits).
//! * The search structures ([`LexicalIndex`], [`VectorIndex`]) are derived
//!   caches kept current by replaying that log, so a server that crashed, or
//!   a second server on the same PostgreSQL database, catches up before it
//!   answers and every replica returns the same results.
//! * Ingestion runs off the request path: an upload is committed as
//!   `pending` (bytes included) before it is acknowledged, and a worker
//!   claims pending documents with a lease, so a restart resumes them.

pub mod chunk;
pub mod document;
pub mod documents;
pub mod engine;
pub mod index;
pub mod kind;
pub mod ports;
pub mod search;
pub mod store;

pub use index::Index;
pub use kind::{DocumentKind, content_type_for};
pub use ports::{
    ChunkEntry, Extracted, LexicalIndex, SearchChange, SearchError, SearchHit, TextExtractor, VectorIndex,
};

use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

use crate::llm::Embedder;
use chunk::ChunkOptions;
use store::RagStore;

/// What the server wires in for RAG.
#[derive(Clone)]
pub struct RagSetup {
    pub extractor: Arc<dyn TextExtractor>,
    /// Embeds chunks and queries; one per deployment.
    pub embedder: Arc<dyn Embedder>,
    pub lexical: Arc<dyn LexicalIndex>,
    pub vectors: Arc<dyn VectorIndex>,
    pub chunking: ChunkOptions,
    /// Uploads above this many bytes are refused with 413.
    pub max_upload_bytes: u64,
    /// How long a worker's claim on a document lasts unless renewed
    /// ([`engine::INGEST_LEASE`] by default).
    pub ingest_lease: std::time::Duration,
}

/// The RAG service of one server. It uses no other service.
pub struct Rag {
    store: Arc<dyn RagStore>,
    setup: RagSetup,
    /// Wakes an idle ingestion worker when an upload arrives.
    work: Notify,
    /// Serialises the search catch-up.
    sync: Mutex<engine::SyncState>,
}

impl Rag {
    pub fn new(store: Arc<dyn RagStore>, setup: RagSetup) -> Rag {
        Rag {
            store,
            setup,
            work: Notify::new(),
            sync: Mutex::new(engine::SyncState::default()),
        }
    }

    /// Uploads above this many bytes are refused.
    pub fn max_upload_bytes(&self) -> u64 {
        self.setup.max_upload_bytes
    }
}

/// A failure of the search structures, reported as a storage failure (the
/// caller sees 500; the message goes to the log).
pub(crate) fn search_failed(e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Store(crate::StoreError::Database(format!("search index: {e}")))
}

/// `v` scaled to unit length (a zero vector stays zero), so cosine
/// similarity is a dot product.
pub(crate) fn unit_length(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
