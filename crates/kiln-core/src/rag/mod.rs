//! The `rag` engine: documents, their ingestion (extract → chunk → embed →
//! index), and hybrid search.
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
pub mod kind;
pub mod ports;
pub mod search;
pub mod store;

pub use kind::{DocumentKind, content_type_for};
pub use ports::{
    ChunkEntry, Extracted, LexicalIndex, SearchChange, SearchError, SearchHit, TextExtractor, VectorIndex,
};
