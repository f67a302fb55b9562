//! [`TantivyIndex`]: BM25 search over chunk text, embedded in the process
//! and stored in a local directory beside the database.
//!
//! Why it is shaped this way:
//! * One tantivy index for every project and RAG index, with the ids as
//!   untokenised fields: a search filters on them, and removing a document or
//!   a whole RAG index is one `delete_term`. Per-index tantivy directories
//!   would mean thousands of open files and writers.
//! * The index is a cache of the database's search log. Each `apply` is one
//!   tantivy commit that carries the log's sequence number in its payload, so
//!   the changes and the number become durable together and a restart knows
//!   where to resume replaying.
//! * Queries are not parsed with tantivy's query syntax. Users type questions,
//!   and in `error: connection refused` or `what does -v do?` the syntax reads
//!   a field name or an exclusion. The query goes through the same analyzer as
//!   the text and its terms are OR-ed, so no input is an error and a query of
//!   only stopwords or punctuation finds nothing.
//! * The text is indexed with term frequencies but no positions (no phrase
//!   queries), which keeps the index small.
//! * A commit is durable, so it waits for several fsyncs: about 100 ms on a
//!   VM disk, 12 ms on tmpfs, however few the changes. Catching up should
//!   pass many changes to one `apply`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use kiln_core::ids::{ChunkId, IndexId, ProjectId};
use kiln_core::rag::{LexicalIndex, SearchChange, SearchError, SearchHit};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::text::{MAX_WORD_BYTES, STOPWORDS};

/// The analyzer of the `text` field, registered under this name.
const ANALYZER: &str = "kiln_en";

/// The writer's indexing memory: segments are flushed when it fills.
const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// How long opening waits for the writer's lock held by another process
/// (one killed a moment ago whose lock the system has not yet let go,
/// or another server on the same data directory).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The lexical index. Cheap to share behind an `Arc`; searches run
/// concurrently with each other and with `apply`.
pub struct TantivyIndex {
    fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    analyzer: TextAnalyzer,
    applied_seq: AtomicI64,
}

#[derive(Clone, Copy)]
struct Fields {
    project: Field,
    index: Field,
    document: Field,
    chunk: Field,
    text: Field,
}

impl std::fmt::Debug for TantivyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyIndex")
            .field("applied_seq", &self.applied_seq())
            .finish_non_exhaustive()
    }
}

impl TantivyIndex {
    /// Opens the index stored in `dir`, creating the directory and an empty
    /// index if missing. Fails if another writer holds the directory, or if
    /// it holds an index with another schema.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SearchError(format!("cannot create `{}`: {e}", dir.display())))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| SearchError(format!("cannot open `{}`: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let index = Index::open_or_create(directory, schema).map_err(|e| tantivy_error("open", e))?;
        Self::from_index(index, fields)
    }

    /// An index held in memory only (for tests).
    pub fn in_memory() -> Self {
        let (schema, fields) = schema();
        Self::from_index(Index::create_in_ram(schema), fields).expect("an index in memory opens")
    }

    fn from_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        let analyzer = analyzer();
        index.tokenizers().register(ANALYZER, analyzer.clone());
        let waiting_since = std::time::Instant::now();
        let writer = loop {
            match index.writer_with_num_threads(1, WRITER_MEMORY_BYTES) {
                Ok(writer) => break writer,
                Err(tantivy::TantivyError::LockFailure(
                    tantivy::directory::error::LockError::LockBusy,
                    _,
                )) => {
                    if waiting_since.elapsed() >= LOCK_WAIT {
                        return Err(SearchError(format!(
                            "the search index is locked by another process (is another kiln serving this \
                             data directory?); waited {} s",
                            LOCK_WAIT.as_secs()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(tantivy_error("open the writer", e)),
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| tantivy_error("open the reader", e))?;
        let metas = index
            .load_metas()
            .map_err(|e| tantivy_error("read the commit", e))?;
        let applied_seq = metas.payload.as_deref().and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(Self {
            fields,
            writer: Mutex::new(writer),
            reader,
            analyzer,
            applied_seq: AtomicI64::new(applied_seq),
        })
    }

    /// Commits what the writer holds with `seq` as the payload, then makes
    /// it visible to searches. On failure nothing of it is kept.
    fn commit(&self, writer: &mut IndexWriter<TantivyDocument>, seq: i64) -> Result<(), SearchError> {
        let committed = writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&seq.to_string());
            prepared.commit()
        });
        if let Err(e) = committed {
            // Drop the uncommitted changes so the next apply starts clean.
            let _ = writer.rollback();
            return Err(tantivy_error("commit", e));
        }
        self.applied_seq.store(seq, Ordering::Release);
        self.reader
            .reload()
            .map_err(|e| tantivy_error("reload the reader", e))
    }

    /// The distinct analysed terms of `query`.
    fn query_terms(&self, query: &str) -> BTreeSet<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(query);
        let mut terms = BTreeSet::new();
        while let Some(token) = stream.next() {
            terms.insert(token.text.clone());
        }
        terms
    }
}

impl LexicalIndex for TantivyIndex {
    fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    fn apply(&self, changes: &[SearchChange], seq: i64) -> Result<(), SearchError> {
        let Fields {
            project,
            index,
            document,
            chunk,
            text,
        } = self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            match change {
                SearchChange::Upsert { document_id, chunks } => {
                    writer.delete_term(Term::from_field_text(document, document_id.as_str()));
                    for entry in chunks {
                        let mut doc = TantivyDocument::new();
                        doc.add_text(project, entry.project_id.as_str());
                        doc.add_text(index, entry.index_id.as_str());
                        doc.add_text(document, document_id.as_str());
                        doc.add_text(chunk, entry.chunk_id.as_str());
                        doc.add_text(text, &entry.text);
                        if let Err(e) = writer.add_document(doc) {
                            let _ = writer.rollback();
                            return Err(tantivy_error("add a chunk", e));
                        }
                    }
                }
                SearchChange::RemoveDocument { document_id, .. } => {
                    writer.delete_term(Term::from_field_text(document, document_id.as_str()));
                }
                // Index ids are globally unique, so the project is not needed.
                SearchChange::RemoveIndex { index_id, .. } => {
                    writer.delete_term(Term::from_field_text(index, index_id.as_str()));
                }
            }
        }
        self.commit(&mut writer, seq)
    }

    fn clear(&self) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer
            .delete_all_documents()
            .map_err(|e| tantivy_error("clear", e))?;
        self.commit(&mut writer, 0)
    }

    fn search(
        &self,
        project_id: &ProjectId,
        index_ids: &[IndexId],
        query: &str,
        k: usize,
    ) -> Result<Vec<SearchHit>, SearchError> {
        if index_ids.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let Fields {
            project,
            index,
            chunk,
            text,
            ..
        } = self.fields;
        let terms = self.query_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let text_query = BooleanQuery::new_multiterms_query(
            terms.iter().map(|t| Term::from_field_text(text, t)).collect(),
        );
        // The filters score 0 so that scores are pure BM25 of the text.
        let project_filter = term_query(project, project_id.as_str());
        let index_filter = BooleanQuery::new(
            index_ids
                .iter()
                .map(|id| (Occur::Should, term_query(index, id.as_str())))
                .collect(),
        );
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(text_query) as Box<dyn Query>),
            (Occur::Must, Box::new(ConstScoreQuery::new(project_filter, 0.0))),
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(index_filter), 0.0)),
            ),
        ]);

        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())
            .map_err(|e| tantivy_error("search", e))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| tantivy_error("read a hit", e))?;
            let chunk_id = doc
                .get_first(chunk)
                .and_then(|value| value.as_str())
                .ok_or_else(|| SearchError("a hit has no chunk id".to_owned()))?;
            hits.push(SearchHit {
                chunk_id: ChunkId::from_string(chunk_id),
                score,
            });
        }
        Ok(hits)
    }
}

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        project: builder.add_text_field("project", STRING),
        index: builder.add_text_field("index", STRING),
        document: builder.add_text_field("document", STRING),
        chunk: builder.add_text_field("chunk", STRING | STORED),
        text: builder.add_text_field("text", text_options),
    };
    (builder.build(), fields)
}

/// Unicode words, lowercased, without [`STOPWORDS`], Snowball-stemmed.
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES + 1))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(STOPWORDS.iter().map(|w| (*w).to_owned())))
        .filter(Stemmer::new(Language::English))
        .build()
}

fn tantivy_error(doing: &str, error: tantivy::TantivyError) -> SearchError {
    SearchError(format!("tantivy could not {doing}: {error}"))
}
