//! [`MemoryVectors`]: exact nearest-neighbour search over chunk embeddings,
//! held in memory and rebuilt from the database's search log at startup.
//!
//! Why brute force over int8 rather than an HNSW graph:
//! * Inserts and deletes are instant and exact. A document's chunks are
//!   searchable as soon as `apply` returns, a removal leaves no tombstones in
//!   a graph, and results depend on no build parameter or random graph
//!   layout, so replicas agree (up to the order of exactly tied scores).
//! * It is fast enough. Quantised to one byte per dimension, 100k chunks of
//!   384 dimensions are a 38 MB scan, which the auto-vectorised integer dot
//!   product below does in about 2 ms on two idle cores, 3 ms on one (see
//!   `examples/search_bench.rs`). An HNSW index answers in about 1 ms but
//!   takes minutes to build and misses a few per cent of the true neighbours
//!   (CRATES.md section 5). Time grows linearly: well past a few hundred
//!   thousand vectors per search, put an ANN index behind the same port.
//! * int8 keeps a quarter of f32's memory and bandwidth. Each vector is
//!   scaled so its largest component is ±127 and keeps its own scale, which
//!   moves cosines by well under 1%: against exact f32 cosine, recall@10 was
//!   0.98 on 100k `kiln/hash-384` vectors.
//!
//! Layout: per RAG index (and per dimension, should an index ever hold two),
//! one contiguous `Vec<i8>` with parallel vectors of per-vector factors, chunk
//! ids and document ids. Removing a vector moves the last one into its slot,
//! so the arrays stay dense and `apply` of a document costs O(its chunks).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{PoisonError, RwLock};

use kiln_core::ids::{ChunkId, DocumentId, IndexId, ProjectId};
use kiln_core::rag::{ChunkEntry, SearchChange, SearchHit, VectorIndex};

/// Above this many candidate vectors a search is split across threads;
/// below it, starting threads costs more than it saves.
const PARALLEL_THRESHOLD: usize = 20_000;

/// Lanes of the dot product's accumulators; any dimension works, multiples
/// of this are fastest.
const LANES: usize = 32;

/// The in-memory vector index. See the module docs.
pub struct MemoryVectors {
    inner: RwLock<Inner>,
    applied_seq: AtomicI64,
    threads: usize,
}

impl std::fmt::Debug for MemoryVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryVectors")
            .field("len", &self.len())
            .field("applied_seq", &self.applied_seq())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryVectors {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryVectors {
    /// An empty index that splits large searches over all available cores.
    pub fn new() -> Self {
        Self::with_threads(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// An empty index that uses at most `threads` threads per search.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            applied_seq: AtomicI64::new(0),
            threads: threads.max(1),
        }
    }
}

#[derive(Default)]
struct Inner {
    indexes: HashMap<IndexId, IndexVectors>,
    /// The RAG indexes holding each document's chunks (in practice one).
    documents: HashMap<DocumentId, Vec<IndexId>>,
    len: usize,
}

struct IndexVectors {
    project_id: ProjectId,
    /// One per dimension; an index normally has exactly one.
    slabs: Vec<Slab>,
}

/// The vectors of one index with one dimension, densely packed.
struct Slab {
    dimension: usize,
    /// `dimension` quantised components per vector.
    values: Vec<i8>,
    /// Per vector, `1 / (scale * norm)`: multiplies an integer dot product
    /// into a cosine. Zero for a zero vector.
    factors: Vec<f32>,
    chunk_ids: Vec<ChunkId>,
    document_ids: Vec<DocumentId>,
    /// The slots of each document's vectors.
    slots: HashMap<DocumentId, Vec<u32>>,
}

impl Slab {
    fn new(dimension: usize) -> Self {
        Self {
            dimension,
            values: Vec::new(),
            factors: Vec::new(),
            chunk_ids: Vec::new(),
            document_ids: Vec::new(),
            slots: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.factors.len()
    }

    fn push(&mut self, chunk: &ChunkEntry) {
        let slot = u32::try_from(self.len()).expect("fewer than 2^32 vectors per index");
        let factor = quantise_into(&chunk.embedding, &mut self.values);
        self.factors.push(factor);
        self.chunk_ids.push(chunk.chunk_id.clone());
        self.document_ids.push(chunk.document_id.clone());
        self.slots
            .entry(chunk.document_id.clone())
            .or_default()
            .push(slot);
    }

    /// Removes every vector of `document_id`; returns how many.
    fn remove_document(&mut self, document_id: &DocumentId) -> usize {
        let Some(mut slots) = self.slots.remove(document_id) else {
            return 0;
        };
        // Highest first: the last vector, moved into a freed slot, is then
        // never one still to be removed.
        slots.sort_unstable_by(|a, b| b.cmp(a));
        for &slot in &slots {
            self.swap_remove(slot as usize);
        }
        slots.len()
    }

    fn swap_remove(&mut self, slot: usize) {
        let last = self.len() - 1;
        let dimension = self.dimension;
        if slot != last {
            self.values
                .copy_within(last * dimension..(last + 1) * dimension, slot * dimension);
        }
        self.values.truncate(last * dimension);
        self.factors.swap_remove(slot);
        self.chunk_ids.swap_remove(slot);
        self.document_ids.swap_remove(slot);
        if slot != last {
            let moved = &self.document_ids[slot];
            if let Some(slots) = self.slots.get_mut(moved)
                && let Some(s) = slots.iter_mut().find(|s| **s as usize == last)
            {
                *s = slot as u32;
            }
        }
    }
}

impl Inner {
    fn insert(&mut self, chunk: &ChunkEntry) {
        let dimension = chunk.embedding.len();
        if dimension == 0 {
            return;
        }
        let index = self
            .indexes
            .entry(chunk.index_id.clone())
            .or_insert_with(|| IndexVectors {
                project_id: chunk.project_id.clone(),
                slabs: Vec::new(),
            });
        let slab = match index.slabs.iter().position(|s| s.dimension == dimension) {
            Some(i) => &mut index.slabs[i],
            None => {
                index.slabs.push(Slab::new(dimension));
                index.slabs.last_mut().expect("just pushed")
            }
        };
        slab.push(chunk);
        let indexes = self.documents.entry(chunk.document_id.clone()).or_default();
        if !indexes.contains(&chunk.index_id) {
            indexes.push(chunk.index_id.clone());
        }
        self.len += 1;
    }

    fn remove_document(&mut self, document_id: &DocumentId) {
        let Some(index_ids) = self.documents.remove(document_id) else {
            return;
        };
        for index_id in index_ids {
            if let Some(index) = self.indexes.get_mut(&index_id) {
                for slab in &mut index.slabs {
                    self.len -= slab.remove_document(document_id);
                }
                index.slabs.retain(|s| s.len() > 0);
                if index.slabs.is_empty() {
                    self.indexes.remove(&index_id);
                }
            }
        }
    }

    fn remove_index(&mut self, index_id: &IndexId) {
        let Some(index) = self.indexes.remove(index_id) else {
            return;
        };
        for slab in index.slabs {
            self.len -= slab.len();
            for document_id in slab.slots.keys() {
                if let Some(indexes) = self.documents.get_mut(document_id) {
                    indexes.retain(|i| i != index_id);
                    if indexes.is_empty() {
                        self.documents.remove(document_id);
                    }
                }
            }
        }
    }
}

impl VectorIndex for MemoryVectors {
    fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    fn apply(&self, changes: &[SearchChange], seq: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            match change {
                SearchChange::Upsert { document_id, chunks } => {
                    inner.remove_document(document_id);
                    for chunk in chunks {
                        inner.insert(chunk);
                    }
                }
                SearchChange::RemoveDocument { document_id, .. } => inner.remove_document(document_id),
                SearchChange::RemoveIndex { index_id, .. } => inner.remove_index(index_id),
            }
        }
        self.applied_seq.store(seq, Ordering::Release);
    }

    fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        *inner = Inner::default();
        self.applied_seq.store(0, Ordering::Release);
    }

    fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).len
    }

    fn search(
        &self,
        project_id: &ProjectId,
        index_ids: &[IndexId],
        query: &[f32],
        k: usize,
    ) -> Vec<SearchHit> {
        if k == 0 || query.is_empty() {
            return Vec::new();
        }
        let mut query_values = Vec::with_capacity(query.len());
        let query_factor = quantise_into(query, &mut query_values);
        if query_factor == 0.0 {
            // A zero query (a text of stopwords) is equally far from everything.
            return Vec::new();
        }
        let query_values: Vec<i16> = query_values.into_iter().map(i16::from).collect();

        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut slabs: Vec<&Slab> = Vec::new();
        for (i, index_id) in index_ids.iter().enumerate() {
            if index_ids[..i].contains(index_id) {
                continue;
            }
            let Some(index) = inner.indexes.get(index_id) else {
                continue;
            };
            if index.project_id != *project_id {
                continue;
            }
            slabs.extend(index.slabs.iter().filter(|s| s.dimension == query.len()));
        }

        let total: usize = slabs.iter().map(|s| s.len()).sum();
        // Each thread gets at least half the threshold's worth of vectors.
        let parts = if total > PARALLEL_THRESHOLD {
            self.threads.min(total / (PARALLEL_THRESHOLD / 2))
        } else {
            1
        };
        let mut candidates = if parts == 1 {
            let work: Vec<_> = slabs.iter().enumerate().map(|(i, s)| (i, 0..s.len())).collect();
            scan(&slabs, &work, &query_values, k)
        } else {
            let work = split(&slabs, parts);
            std::thread::scope(|scope| {
                let (first, rest) = work.split_first().expect("at least one part");
                let handles: Vec<_> = rest
                    .iter()
                    .map(|part| scope.spawn(|| scan(&slabs, part, &query_values, k)))
                    .collect();
                let mut all = scan(&slabs, first, &query_values, k);
                for handle in handles {
                    all.extend(handle.join().expect("a vector scan does not panic"));
                }
                all
            })
        };

        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.truncate(k);
        candidates
            .into_iter()
            .map(|c| SearchHit {
                chunk_id: slabs[c.slab].chunk_ids[c.slot].clone(),
                score: c.score * query_factor,
            })
            .collect()
    }
}

/// Quantises `vector` onto the end of `out` and returns its factor
/// (`1 / (scale * norm)`), or 0 for a zero or non-finite vector, which is
/// then stored as zeros.
fn quantise_into(vector: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if max == 0.0 || !max.is_finite() || !norm.is_finite() {
        out.extend(std::iter::repeat_n(0, vector.len()));
        return 0.0;
    }
    let scale = 127.0 / max;
    // In range by construction: |x * scale| <= 127.
    out.extend(vector.iter().map(|x| (x * scale).round() as i8));
    1.0 / (scale * norm)
}

/// A scored vector: `score` is the cosine without the query's factor.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    slab: usize,
    slot: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// By score; ties go to the earlier vector, so results are stable.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.slab.cmp(&self.slab))
            .then_with(|| other.slot.cmp(&self.slot))
    }
}

/// Splits all vectors of `slabs` into `parts` runs of about equal length.
fn split(slabs: &[&Slab], parts: usize) -> Vec<Vec<(usize, Range<usize>)>> {
    let total: usize = slabs.iter().map(|s| s.len()).sum();
    let per_part = total.div_ceil(parts);
    let mut work = vec![Vec::new()];
    let mut room = per_part;
    for (i, slab) in slabs.iter().enumerate() {
        let mut start = 0;
        while start < slab.len() {
            if room == 0 {
                work.push(Vec::new());
                room = per_part;
            }
            let end = slab.len().min(start + room);
            work.last_mut().expect("never empty").push((i, start..end));
            room -= end - start;
            start = end;
        }
    }
    work
}

/// The best `k` vectors of the given runs, by exact integer dot product
/// with `query` times each vector's factor.
fn scan(slabs: &[&Slab], work: &[(usize, Range<usize>)], query: &[i16], k: usize) -> Vec<Candidate> {
    let dimension = query.len();
    // A min-heap of the best so far (reversed order).
    let mut best: BinaryHeap<std::cmp::Reverse<Candidate>> = BinaryHeap::with_capacity(k + 1);
    for (slab_index, range) in work {
        let slab = slabs[*slab_index];
        let values = &slab.values[range.start * dimension..range.end * dimension];
        let factors = &slab.factors[range.clone()];
        for ((offset, vector), factor) in values.chunks_exact(dimension).enumerate().zip(factors) {
            let score = dot(query, vector) as f32 * factor;
            let candidate = Candidate {
                score,
                slab: *slab_index,
                slot: range.start + offset,
            };
            if best.len() < k {
                best.push(std::cmp::Reverse(candidate));
            } else if let Some(mut worst) = best.peek_mut()
                && candidate > worst.0
            {
                *worst = std::cmp::Reverse(candidate);
            }
        }
    }
    best.into_iter().map(|c| c.0).collect()
}

/// The dot product of a quantised query, widened once to i16, with a
/// quantised vector. Written as fixed-width lanes of multiply-adds into i32
/// so LLVM vectorises it with baseline SSE2 (`pmaddwd`; no `target-cpu`
/// needed). Widening the query once per search, not per vector, made it
/// about 15% faster. Cannot overflow below 133k dimensions (127² each).
///
/// Not inlined: inlined into the scan loop with a known length, LLVM
/// unrolled it fully and lost the vectorisation (5× slower, measured).
#[inline(never)]
fn dot(query: &[i16], vector: &[i8]) -> i32 {
    let mut acc = [0i32; LANES];
    let query_chunks = query.chunks_exact(LANES);
    let vector_chunks = vector.chunks_exact(LANES);
    let tail: i32 = query_chunks
        .remainder()
        .iter()
        .zip(vector_chunks.remainder())
        .map(|(q, v)| i32::from(*q) * i32::from(*v))
        .sum();
    for (q, v) in query_chunks.zip(vector_chunks) {
        for lane in 0..LANES {
            acc[lane] += i32::from(q[lane]) * i32::from(v[lane]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_loop_for_any_length() {
        for len in [0, 1, 31, 32, 33, 384, 1000] {
            let a: Vec<i8> = (0..len).map(|i: i32| (i * 37 % 255 - 127) as i8).collect();
            let b: Vec<i8> = (0..len).map(|i: i32| (i * 91 % 255 - 127) as i8).collect();
            let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            let wide: Vec<i16> = a.iter().map(|&x| i16::from(x)).collect();
            assert_eq!(dot(&wide, &b), plain, "length {len}");
        }
    }

    #[test]
    fn split_covers_everything_once_in_about_equal_parts() {
        let slabs: Vec<Slab> = [10usize, 3, 7]
            .iter()
            .map(|&n| {
                let mut slab = Slab::new(1);
                slab.factors = vec![1.0; n];
                slab
            })
            .collect();
        let slabs: Vec<&Slab> = slabs.iter().collect();
        let work = split(&slabs, 3);
        assert_eq!(work.len(), 3);
        let sizes: Vec<usize> = work
            .iter()
            .map(|p| p.iter().map(|(_, r)| r.len()).sum())
            .collect();
        assert_eq!(sizes, [7, 7, 6]);
        let mut covered: Vec<(usize, usize)> = work
            .iter()
            .flatten()
            .flat_map(|(s, r)| r.clone().map(move |i| (*s, i)))
            .collect();
        covered.sort_unstable();
        covered.dedup();
        assert_eq!(covered.len(), 20);
    }
}
