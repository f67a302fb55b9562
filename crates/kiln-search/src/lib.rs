//! Kiln's embedded search: the search structures behind `kiln-core`'s RAG
//! ports, all in process, with no service to run and no model to download.
//!
//! * [`TantivyIndex`] implements [`LexicalIndex`](kiln_core::rag::LexicalIndex):
//!   BM25 over chunk text in a local tantivy directory.
//! * [`MemoryVectors`] implements [`VectorIndex`](kiln_core::rag::VectorIndex):
//!   exact cosine search over int8-quantised vectors in memory.
//! * [`HashEmbedder`] implements [`Embedder`](kiln_core::llm::Embedder):
//!   `kiln/hash-384`, a deterministic feature-hashing embedder, so RAG works
//!   without an embedding provider.
//!
//! Both search structures are caches of the database's search log: they are
//! rebuilt or caught up by replaying it, so neither needs to be the source of
//! truth, and neither knows about SQL or HTTP.

mod embed;
mod lexical;
mod text;
mod vectors;

pub use embed::{DIMENSIONS, HASH_EMBEDDER_NAME, HashEmbedder};
pub use lexical::TantivyIndex;
pub use vectors::MemoryVectors;
