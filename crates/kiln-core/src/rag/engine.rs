//! The RAG engine's moving parts: the ingestion workers and the catch-up of
//! the derived search structures from the search log.
//!
//! Ingestion: a worker claims a pending document with a lease (so a crashed
//! worker's document is picked up again once the lease runs out, and at the
//! next start on SQLite), extracts, chunks and embeds it on the blocking
//! pool, and records the outcome, chunks and search-log entry in one
//! transaction conditional on still holding the claim.
//!
//! Search freshness: before a search (and after each ingestion) the engine
//! reads the newest committed search-log number and replays what its
//! structures have not seen. The lexical index persists the number with its
//! commits; the vectors live in memory and are loaded from the database on
//! first use.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::sha256_hex;
use crate::error::{Result, StoreError};
use crate::ids::{ChunkId, DocumentId};
use crate::rag::Rag;
use crate::rag::chunk::{TextChunk, chunk_markdown};
use crate::rag::document::{
    DERIVED_FROM_EXTRACTION, Document, DocumentStatus, IndexEmbedder, Ingested, NewChunk,
};
use crate::rag::store::SearchOp;
use crate::rag::{
    ChunkEntry, DocumentKind, Extracted, LexicalIndex, SearchChange, VectorIndex, search_failed, unit_length,
};
use crate::time::now;
use serde_json::{Map, Value};

/// How long a worker's claim on a document lasts unless renewed (a third
/// of it before it runs out) before another worker may take it over.
pub const INGEST_LEASE: Duration = Duration::from_secs(20);
/// How often an idle worker looks for work it was not told about (uploads
/// on another server, expired leases).
pub const INGEST_POLL: Duration = Duration::from_secs(5);
/// Longest a document's extraction and chunking may take.
pub const EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);
/// Claims of one document before it is marked `error`: each earlier one
/// ended with its worker or server dying (a file that crashes the reader
/// must not crash-loop the server).
pub const MAX_INGEST_ATTEMPTS: i64 = 3;
/// Search-log entries replayed per batch.
const REPLAY_BATCH: i64 = 500;
/// Documents loaded per page when a structure is rebuilt.
const REBUILD_DOCUMENTS: i64 = 200;

/// What the search catch-up knows of the structures it keeps.
#[derive(Default)]
pub(crate) struct SyncState {
    /// The vectors were loaded from the database at least once.
    vectors_loaded: bool,
}

fn now_ms() -> i64 {
    now().timestamp_millis()
}

impl Rag {
    /// Returns documents claimed by a previous run to `pending`, at start:
    /// every one when this server is the only one on its database (SQLite),
    /// else (`mine_only`) the ones this server held when it stopped.
    pub async fn release_ingest_claims(&self, mine_only: bool) -> Result<u64> {
        Ok(self.store.release_claims(mine_only).await?)
    }

    /// Brings the search structures up to date now (at start, so the first
    /// search does not pay for loading them).
    pub async fn catch_up_search(&self) -> Result<()> {
        self.sync_search().await
    }

    /// Runs one ingestion worker until `shutdown` resolves. Each loop claims
    /// one document; an idle worker waits for an upload or the poll tick.
    pub async fn run_ingest_worker(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let token = uuid::Uuid::new_v4().to_string();
            let claimed = self
                .store
                .claim_document(
                    now_ms(),
                    self.setup.ingest_lease.as_millis() as i64,
                    &token,
                    MAX_INGEST_ATTEMPTS,
                )
                .await;
            match claimed {
                Ok(Some(doc)) => {
                    if let Err(e) = self.ingest(&doc, &token).await {
                        // The claim stays; its lease runs out and the
                        // document is tried again.
                        tracing::warn!(document = %doc.id, error = %e, "ingestion failed to record its outcome");
                    }
                    continue;
                }
                Ok(None) => {
                    // Out of work: bring search up to date now, in one
                    // batch, so the next search does not wait for it (an
                    // index commit costs milliseconds however small).
                    if let Err(e) = self.sync_search().await {
                        tracing::warn!(error = %e, "search catch-up failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not claim a document"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.work.notified() => {}
                () = tokio::time::sleep(INGEST_POLL) => {}
            }
        }
    }

    /// Extracts, chunks and embeds one claimed document and records it,
    /// renewing the claim meanwhile.
    async fn ingest(&self, doc: &Document, token: &str) -> Result<()> {
        let prepared = tokio::select! {
            prepared = self.prepare(doc) => prepared,
            () = self.keep_claim(doc, token) => {
                tracing::info!(document = %doc.id, "claim lost while reading the document");
                return Ok(());
            }
        };
        let outcome = match prepared {
            Ok(outcome) => outcome,
            Err(Ingest::Failed(message)) => Ingested::Failed(message),
            Err(Ingest::Store(e)) => return Err(e.into()),
        };
        let embedder = match &outcome {
            Ingested::Chunked { chunks, .. } | Ingested::Sibling { chunks, .. } => {
                chunks.first().map(|c| IndexEmbedder {
                    name: self.setup.embedder.name(),
                    dimensions: c.embedding.len() as i64,
                })
            }
            Ingested::Failed(_) => None,
        };
        let recorded = self
            .store
            .finish_document(doc, token, &outcome, embedder.as_ref())
            .await?;
        if !recorded {
            tracing::info!(document = %doc.id, "claim lost before the outcome was recorded");
        }
        Ok(())
    }

    /// Renews the claim on `doc` a third of a lease before it runs out;
    /// resolves once the claim is lost.
    async fn keep_claim(&self, doc: &Document, token: &str) {
        let lease = self.setup.ingest_lease;
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = now_ms() + lease.as_millis() as i64;
            match self.store.renew_document_claim(&doc.id, token, until).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(document = %doc.id, error = %e, "renewing a document's claim failed; retrying")
                }
            }
        }
    }

    /// What ingesting `doc` produced: its chunks with their vectors, and
    /// the Markdown sibling for kinds that have one. Nothing is written.
    async fn prepare(&self, doc: &Document) -> Result<Ingested, Ingest> {
        let bytes = self
            .store
            .document_bytes(&doc.project_id, &doc.id)
            .await?
            .ok_or_else(|| Ingest::Failed("the document's bytes are missing".into()))?;
        let kind = DocumentKind::from_content_type(&doc.content_type);
        let (extracted, pieces) = self.extract_and_chunk(kind, bytes).await?;
        let vectors = self.embed(doc, &pieces).await?;
        let chunks: Vec<NewChunk> = pieces.into_iter().zip(vectors).map(new_chunk).collect();
        let page_count = extracted.page_count.map(i64::from);
        if !kind.has_sibling() {
            return Ok(Ingested::Chunked { chunks, page_count });
        }
        let markdown = extracted.markdown;
        Ok(Ingested::Sibling {
            sibling: Box::new(markdown_sibling(doc, &markdown, chunks.len())),
            markdown,
            chunks,
            page_count,
        })
    }

    /// Extraction and chunking, on the blocking pool and within
    /// [`EXTRACT_TIMEOUT`].
    async fn extract_and_chunk(
        &self,
        kind: DocumentKind,
        bytes: Vec<u8>,
    ) -> Result<(Extracted, Vec<TextChunk>), Ingest> {
        let extractor = self.setup.extractor.clone();
        let options = self.setup.chunking;
        let work = tokio::task::spawn_blocking(move || {
            let extracted = extractor.extract(kind, &bytes)?;
            let pieces = chunk_markdown(&extracted.markdown, options);
            Ok::<_, String>((extracted, pieces))
        });
        // A pathological file must not hold a worker forever. (The blocking
        // thread cannot be stopped; it finishes on its own and is ignored.)
        tokio::time::timeout(EXTRACT_TIMEOUT, work)
            .await
            .map_err(|_| {
                Ingest::Failed(format!(
                    "extracting the text took longer than {} s; the file is too complex to read",
                    EXTRACT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|_| Ingest::Failed("extraction crashed on this file".into()))?
            .map_err(Ingest::Failed)
    }

    /// One vector per chunk, from this server's embedder, which must be the
    /// one the index's vectors came from, with the same dimensions.
    async fn embed(&self, doc: &Document, pieces: &[TextChunk]) -> Result<Vec<Vec<f32>>, Ingest> {
        let recorded = self.store.index_embedder(&doc.project_id, &doc.index_id).await?;
        let embedder = &self.setup.embedder;
        if let Some(recorded) = &recorded
            && recorded.name != embedder.name()
        {
            return Err(Ingest::Failed(format!(
                "the index holds vectors from `{}` but this server embeds with `{}`; \
                 re-create the index to switch embedders",
                recorded.name,
                embedder.name()
            )));
        }
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = pieces.iter().map(|p| p.content.clone()).collect();
        let vectors = embedder
            .embed(&texts)
            .await
            .map_err(|e| Ingest::Failed(format!("embedding failed: {e}")))?
            .vectors;
        if vectors.len() != texts.len() {
            return Err(Ingest::Failed(format!(
                "the embedder returned {} vectors for {} chunks",
                vectors.len(),
                texts.len()
            )));
        }
        let dims = recorded.as_ref().map(|r| r.dimensions);
        if let Some(v) = vectors
            .iter()
            .find(|v| dims.is_some_and(|d| d != v.len() as i64) || v.len() != vectors[0].len())
        {
            return Err(Ingest::Failed(format!(
                "the embedder returned {}-dimensional vectors but the index holds {}-dimensional ones",
                v.len(),
                dims.unwrap_or(vectors[0].len() as i64)
            )));
        }
        Ok(vectors)
    }

    /// Brings the search structures up to the newest committed search-log
    /// entry. Serialised: one catch-up at a time per server.
    pub(crate) async fn sync_search(&self) -> Result<()> {
        let mut state = self.sync.lock().await;
        let target = self.store.search_seq().await?;
        let lexical = self.setup.lexical.clone();
        let vectors = self.setup.vectors.clone();
        let lexical_stale = lexical.applied_seq() > target;
        if !state.vectors_loaded || lexical_stale || (lexical.applied_seq() == 0 && target > 0) {
            let rebuild_lexical = lexical_stale || lexical.applied_seq() == 0;
            self.rebuild_search(&lexical, &vectors, rebuild_lexical, target)
                .await?;
            state.vectors_loaded = true;
        }
        loop {
            let from = lexical.applied_seq().min(vectors.applied_seq());
            if from >= target {
                return Ok(());
            }
            let entries = self.store.search_log_after(from, REPLAY_BATCH).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(());
            };
            let mut lexical_changes = Vec::new();
            let mut vector_changes = Vec::new();
            for entry in entries {
                let change = match entry.op {
                    SearchOp::Add => {
                        let Some(document_id) = entry.document_id else {
                            continue;
                        };
                        let chunks = self.store.searchable_chunks(&document_id).await?;
                        if chunks.is_empty() {
                            SearchChange::RemoveDocument {
                                project_id: entry.project_id,
                                document_id,
                            }
                        } else {
                            SearchChange::Upsert { document_id, chunks }
                        }
                    }
                    SearchOp::Remove => {
                        let Some(document_id) = entry.document_id else {
                            continue;
                        };
                        SearchChange::RemoveDocument {
                            project_id: entry.project_id,
                            document_id,
                        }
                    }
                    SearchOp::DropIndex => SearchChange::RemoveIndex {
                        project_id: entry.project_id,
                        index_id: entry.index_id,
                    },
                };
                if entry.seq > vectors.applied_seq() {
                    vector_changes.push(change.clone());
                }
                if entry.seq > lexical.applied_seq() {
                    lexical_changes.push(change);
                }
            }
            let (l, v) = (lexical.clone(), vectors.clone());
            tokio::task::spawn_blocking(move || {
                if last > v.applied_seq() {
                    v.apply(&vector_changes, last);
                }
                if last > l.applied_seq() {
                    l.apply(&lexical_changes, last)?;
                }
                Ok::<_, crate::rag::SearchError>(())
            })
            .await
            .map_err(|_| search_failed("applying search changes panicked"))?
            .map_err(search_failed)?;
        }
    }

    /// Reloads the vectors (and the lexical index when asked) from every
    /// searchable chunk, as of `seq` or later.
    async fn rebuild_search(
        &self,
        lexical: &Arc<dyn LexicalIndex>,
        vectors: &Arc<dyn VectorIndex>,
        rebuild_lexical: bool,
        seq: i64,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        {
            let (l, v) = (lexical.clone(), vectors.clone());
            tokio::task::spawn_blocking(move || {
                v.clear();
                if rebuild_lexical { l.clear() } else { Ok(()) }
            })
            .await
            .map_err(|_| search_failed("clearing the search index panicked"))?
            .map_err(search_failed)?;
        }
        let mut after: Option<DocumentId> = None;
        let mut loaded = 0usize;
        loop {
            let page = self
                .store
                .searchable_chunks_after(after.as_ref(), REBUILD_DOCUMENTS)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.document_id.clone());
            loaded += page.len();
            let changes = group_by_document(page);
            let (l, v) = (lexical.clone(), vectors.clone());
            tokio::task::spawn_blocking(move || {
                v.apply(&changes, seq);
                if rebuild_lexical {
                    l.apply(&changes, seq)
                } else {
                    Ok(())
                }
            })
            .await
            .map_err(|_| search_failed("rebuilding the search index panicked"))?
            .map_err(search_failed)?;
        }
        tracing::info!(
            chunks = loaded,
            ms = started.elapsed().as_millis() as u64,
            "search structures loaded"
        );
        Ok(())
    }
}

/// A chunk ready to record, its section trail in its metadata.
fn new_chunk((piece, embedding): (TextChunk, Vec<f32>)) -> NewChunk {
    let mut metadata = Map::new();
    if !piece.headings.is_empty() {
        metadata.insert("section".into(), Value::String(piece.headings.join(" > ")));
    }
    NewChunk {
        id: ChunkId::generate(),
        chunk_index: piece.index as i64,
        content: piece.content,
        metadata,
        embedding: unit_length(embedding),
    }
}

/// The Markdown extracted from `doc`, as a ready document of its own that
/// carries the chunks (the original stays `stored`).
fn markdown_sibling(doc: &Document, markdown: &str, chunk_count: usize) -> Document {
    let mut metadata = doc.metadata.clone();
    metadata.insert(
        "derived_from".into(),
        Value::String(DERIVED_FROM_EXTRACTION.into()),
    );
    let at = now();
    Document {
        id: DocumentId::generate(),
        project_id: doc.project_id.clone(),
        index_id: doc.index_id.clone(),
        filename: format!("{}.md", doc.filename),
        content_type: "text/markdown".into(),
        file_size: markdown.len() as i64,
        status: DocumentStatus::Ready,
        error_message: None,
        page_count: None,
        chunk_count: chunk_count as i64,
        name: doc.name.as_ref().map(|n| format!("{n}.md")),
        version: 1,
        is_latest: true,
        metadata,
        parent_id: Some(doc.id.clone()),
        created_by_api_key_id: doc.created_by_api_key_id.clone(),
        content_sha256: Some(sha256_hex(markdown.as_bytes())),
        deleted_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// A page of chunks (ordered by document) as one upsert per document.
fn group_by_document(chunks: Vec<ChunkEntry>) -> Vec<SearchChange> {
    let mut by_doc: Vec<(DocumentId, Vec<ChunkEntry>)> = Vec::new();
    for chunk in chunks {
        match by_doc.last_mut() {
            Some((d, list)) if *d == chunk.document_id => list.push(chunk),
            _ => by_doc.push((chunk.document_id.clone(), vec![chunk])),
        }
    }
    by_doc
        .into_iter()
        .map(|(document_id, chunks)| SearchChange::Upsert { document_id, chunks })
        .collect()
}

/// Why preparing a document stopped.
enum Ingest {
    /// The file is at fault: the document ends in `error`.
    Failed(String),
    /// Storage is at fault: leave the claim, try again later.
    Store(StoreError),
}

impl From<StoreError> for Ingest {
    fn from(e: StoreError) -> Self {
        Ingest::Store(e)
    }
}
