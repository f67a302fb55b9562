//! Hybrid search (CONTRACT §2.4): BM25 over chunk text and cosine
//! similarity over chunk embeddings, fused by reciprocal rank.
//!
//! Why reciprocal-rank fusion: BM25 scores and cosine similarities live on
//! unrelated scales that shift with the corpus and the query; ranks do not.
//! A chunk's fused score is `Σ 1/(K + rank)` over the lists it appears in,
//! divided by the best score possible (first in every list), so the score is
//! in [0, 1], 1 meaning "first by both measures". The vector list counts with
//! the embedder's [`hybrid_weight`](crate::llm::Embedder::hybrid_weight):
//! 1 for a model, 0.5 for the built-in hashed n-grams, whose ranking is mostly
//! lexical evidence BM25 already has (on the labelled set in
//! `crates/kiln-bench/retrieval`, equal weights tie BM25 while 0.5 beats it). `mode` narrows search to
//! one list (`bm25` or `vector`); in `vector` mode the score is the cosine
//! similarity itself, clamped to [0, 1].

use std::collections::HashMap;

use crate::auth::AuthContext;
use crate::error::{Error, Result};
use crate::ids::{ChunkId, IndexId};
use crate::rag::document::ChunkRecord;
use crate::rag::{Rag, SearchHit, search_failed, unit_length};

/// `top_k` default and cap (CONTRACT §4.2.14).
pub const DEFAULT_TOP_K: usize = 10;
pub const MAX_TOP_K: usize = 100;
/// Document mode fetches this many chunks per wanted document.
const DOCUMENT_MODE_FANOUT: usize = 5;
/// The rank constant of reciprocal-rank fusion (the customary 60).
const RRF_K: f64 = 60.0;
/// Candidates taken from each list before fusing.
const FUSION_DEPTH: usize = 20;
/// Extra fused candidates read from the database, for hits the database no
/// longer considers searchable (a change not yet replayed).
const HYDRATION_SLACK: usize = 5;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 4000;
/// Characters of the best chunk in a document result's `preview`.
pub const PREVIEW_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultType {
    #[default]
    Chunk,
    Document,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    #[default]
    Hybrid,
    /// BM25 only.
    Lexical,
    /// Embeddings only.
    Vector,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub query: String,
    pub top_k: Option<i64>,
    pub min_score: Option<f64>,
    pub result_type: ResultType,
    /// Search one index; `None` searches the whole project.
    pub index_id: Option<IndexId>,
    pub mode: SearchMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoredChunk {
    pub record: ChunkRecord,
    pub score: f64,
}

/// Fuses ranked lists: chunk → reciprocal-rank score, normalised by the
/// best possible (first in every list searched, empty ones included).
pub fn fuse(lists: &[(f64, Vec<SearchHit>)]) -> Vec<(ChunkId, f64)> {
    let best: f64 = lists
        .iter()
        .map(|(w, _)| w / (RRF_K + 1.0))
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut scores: HashMap<ChunkId, f64> = HashMap::new();
    for (weight, list) in lists {
        for (rank, hit) in list.iter().enumerate() {
            *scores.entry(hit.chunk_id.clone()).or_default() += weight / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(ChunkId, f64)> = scores.into_iter().map(|(id, s)| (id, s / best)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
    fused
}

impl Rag {
    /// Chunks (or, in document mode, each document's best chunk) ranked by
    /// score, highest first.
    pub async fn search(&self, ctx: &AuthContext, q: SearchQuery) -> Result<Vec<ScoredChunk>> {
        let (query, top_k) = parse_query(&q)?;
        let index_ids: Vec<IndexId> = match &q.index_id {
            Some(id) => vec![self.get_index(ctx, id).await?.id],
            None => self.list_indexes(ctx).await?.into_iter().map(|i| i.id).collect(),
        };
        if index_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.sync_search().await?;

        let wanted = match q.result_type {
            ResultType::Chunk => top_k,
            ResultType::Document => top_k * DOCUMENT_MODE_FANOUT,
        };
        // Fusion needs candidates beyond the first few of each list: a chunk
        // ranked 8th by both measures belongs above one ranked 1st by one.
        let fetch = wanted.max(FUSION_DEPTH);
        // The two lists are independent: run them at once.
        let (lexical, vector) = tokio::try_join!(
            self.lexical_hits(ctx, &index_ids, query, fetch, q.mode),
            self.vector_hits(ctx, &index_ids, query, fetch, q.mode),
        )?;
        let scored: Vec<(ChunkId, f64)> = match q.mode {
            SearchMode::Vector => vector
                .iter()
                .map(|h| (h.chunk_id.clone(), f64::from(h.score).clamp(0.0, 1.0)))
                .collect(),
            SearchMode::Lexical => fuse(&[(1.0, lexical)]),
            SearchMode::Hybrid => fuse(&[(1.0, lexical), (self.setup.embedder.hybrid_weight(), vector)]),
        };
        let min_score = q.min_score.unwrap_or(0.0);
        let scored: Vec<(ChunkId, f64)> = scored
            .into_iter()
            .filter(|(_, s)| *s >= min_score)
            .take(wanted + HYDRATION_SLACK)
            .collect();
        self.hydrate(ctx, scored, top_k, q.result_type).await
    }

    /// The BM25 list (empty in vector mode).
    async fn lexical_hits(
        &self,
        ctx: &AuthContext,
        index_ids: &[IndexId],
        query: &str,
        fetch: usize,
        mode: SearchMode,
    ) -> Result<Vec<SearchHit>> {
        if mode == SearchMode::Vector {
            return Ok(Vec::new());
        }
        let (l, p, ids, text) = (
            self.setup.lexical.clone(),
            ctx.project.id.clone(),
            index_ids.to_vec(),
            query.to_owned(),
        );
        tokio::task::spawn_blocking(move || l.search(&p, &ids, &text, fetch))
            .await
            .map_err(search_failed)?
            .map_err(search_failed)
    }

    /// The cosine list over the indexes whose vectors came from this
    /// server's embedder (empty in lexical mode).
    async fn vector_hits(
        &self,
        ctx: &AuthContext,
        index_ids: &[IndexId],
        query: &str,
        fetch: usize,
        mode: SearchMode,
    ) -> Result<Vec<SearchHit>> {
        if mode == SearchMode::Lexical {
            return Ok(Vec::new());
        }
        let embedder = self.setup.embedder.clone();
        let mut comparable = Vec::new();
        for id in index_ids {
            match self.store.index_embedder(&ctx.project.id, id).await? {
                Some(e) if e.name == embedder.name() => comparable.push(id.clone()),
                _ => {}
            }
        }
        if comparable.is_empty() {
            return Ok(Vec::new());
        }
        let embedded = embedder.embed(&[query.to_owned()]).await?;
        let query_vector = embedded.vectors.into_iter().next().unwrap_or_default();
        let (v, p) = (self.setup.vectors.clone(), ctx.project.id.clone());
        let mut hits =
            tokio::task::spawn_blocking(move || v.search(&p, &comparable, &unit_length(query_vector), fetch))
                .await
                .map_err(search_failed)?;
        // Orthogonal or opposite vectors are not similar at all.
        hits.retain(|h| h.score > 0.0);
        Ok(hits)
    }

    /// The scored chunks as records from the database, in score order,
    /// skipping what is no longer searchable there, one per document in
    /// document mode, `top_k` at most.
    async fn hydrate(
        &self,
        ctx: &AuthContext,
        scored: Vec<(ChunkId, f64)>,
        top_k: usize,
        result_type: ResultType,
    ) -> Result<Vec<ScoredChunk>> {
        let ids: Vec<ChunkId> = scored.iter().map(|(id, _)| id.clone()).collect();
        let mut records: HashMap<ChunkId, ChunkRecord> = self
            .store
            .chunk_records(&ctx.project.id, &ids)
            .await?
            .into_iter()
            .map(|r| (r.chunk_id.clone(), r))
            .collect();
        let mut results = Vec::with_capacity(top_k);
        let mut seen_documents = std::collections::HashSet::new();
        for (id, score) in scored {
            let Some(record) = records.remove(&id) else {
                continue;
            };
            if result_type == ResultType::Document && !seen_documents.insert(record.document.id.clone()) {
                continue;
            }
            results.push(ScoredChunk { record, score });
            if results.len() == top_k {
                break;
            }
        }
        Ok(results)
    }
}

/// The trimmed query and `top_k`, checked.
fn parse_query(q: &SearchQuery) -> Result<(&str, usize)> {
    let query = q.query.trim();
    if query.is_empty() {
        return Err(Error::validation("query must not be empty", Some("query")));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::validation(
            format!("query is longer than {MAX_QUERY_CHARS} characters"),
            Some("query"),
        ));
    }
    if q.min_score.is_some_and(|s| !s.is_finite()) {
        return Err(Error::validation("min_score must be a number", Some("min_score")));
    }
    let top_k = match q.top_k {
        Some(k) if k > 0 => (k as usize).min(MAX_TOP_K),
        _ => DEFAULT_TOP_K,
    };
    Ok((query, top_k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(ids: &[&str]) -> Vec<SearchHit> {
        ids.iter()
            .map(|id| SearchHit {
                chunk_id: ChunkId::from_string(id.to_string()),
                score: 1.0,
            })
            .collect()
    }

    #[test]
    fn fusion_rewards_agreement_and_stays_in_the_unit_interval() {
        let fused = fuse(&[(1.0, hits(&["a", "b", "c"])), (1.0, hits(&["b", "d"]))]);
        assert_eq!(
            fused[0].0.as_str(),
            "b",
            "second and first beats first and absent"
        );
        assert!(fused.iter().all(|(_, s)| *s > 0.0 && *s <= 1.0));
        let top = fuse(&[(1.0, hits(&["x"])), (1.0, hits(&["x"]))]);
        assert!((top[0].1 - 1.0).abs() < 1e-9, "first in both lists scores 1");
        let half = fuse(&[(1.0, hits(&["x", "y"])), (1.0, Vec::new())]);
        assert!(
            (half[0].1 - 0.5).abs() < 1e-9,
            "first in one of two lists scores 0.5"
        );
        let single = fuse(&[(1.0, hits(&["x", "y"]))]);
        assert!(
            (single[0].1 - 1.0).abs() < 1e-9,
            "one list searched: its first scores 1"
        );
    }
}
