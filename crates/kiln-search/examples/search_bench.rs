//! Measures the embedded search at the scale it is designed for: 100k chunks
//! in one RAG index. It exists so the figures quoted in the module docs can
//! be checked on any machine:
//!
//! ```text
//! cargo run --release -p kiln-search --example search_bench [chunks] [dir]
//! ```
//!
//! The lexical index goes to a fresh temporary directory, or into `dir`
//! (which must be empty) to compare disks.
//!
//! The corpus is synthetic: a vocabulary of 5k made-up words (the commonest
//! ranks are English stopwords) drawn with a Zipf distribution, 80-200 words
//! per chunk, 50 chunks per document. It reports embedding throughput,
//! indexing and apply times, and search latency at 10k and at all chunks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kiln_core::ids::{ChunkId, DocumentId, IndexId, ProjectId};
use kiln_core::rag::{ChunkEntry, LexicalIndex, SearchChange, VectorIndex};
use kiln_search::{HashEmbedder, MemoryVectors, TantivyIndex};

const VOCABULARY: usize = 5_000;
const CHUNKS_PER_DOCUMENT: usize = 50;
const QUERIES: usize = 1_000;
const SMALL: usize = 10_000;

fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("a number of chunks"));
    assert!(
        total > SMALL && total.is_multiple_of(CHUNKS_PER_DOCUMENT),
        "use a multiple of 50 above 10k"
    );
    let mut rng = Rng(2024);
    let words = vocabulary(&mut rng);
    let zipf = Zipf::new(words.len());

    // Texts.
    let texts: Vec<String> = (0..total)
        .map(|_| {
            let len = 80 + (rng.next_u64() % 121) as usize;
            let mut text = String::new();
            for i in 0..len {
                if i > 0 {
                    text.push(if i % 17 == 0 { '.' } else { ' ' });
                    if i % 17 == 0 {
                        text.push(' ');
                    }
                }
                text.push_str(&words[zipf.sample(&mut rng)]);
            }
            text
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "corpus: {total} chunks, {:.1} MB of text, {:.0} bytes per chunk",
        mb(bytes),
        bytes as f64 / total as f64
    );

    // Embedding, on one thread.
    let embedder = HashEmbedder::new();
    let started = Instant::now();
    let embeddings: Vec<Vec<f32>> = texts.iter().map(|t| embedder.embed_one(t)).collect();
    let elapsed = started.elapsed();
    println!(
        "embed (kiln/hash-384, 1 thread): {:.2} s, {:.1} MB/s, {:.0} µs per chunk",
        elapsed.as_secs_f64(),
        mb(bytes) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / total as f64
    );

    let project = ProjectId::from_string("bench-project");
    let index = IndexId::from_string("bench-index");
    let documents: Vec<SearchChange> = texts
        .iter()
        .zip(embeddings)
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(CHUNKS_PER_DOCUMENT)
        .enumerate()
        .map(|(d, group)| {
            let document_id = DocumentId::from_string(format!("d{d}"));
            let chunks = group
                .iter()
                .map(|(c, (text, embedding))| ChunkEntry {
                    chunk_id: ChunkId::from_string(format!("c{c}")),
                    document_id: document_id.clone(),
                    index_id: index.clone(),
                    project_id: project.clone(),
                    text: (*text).clone(),
                    embedding: embedding.clone(),
                })
                .collect();
            SearchChange::Upsert { document_id, chunks }
        })
        .collect();
    drop(texts);

    // Queries: 2-5 words that are not stopwords, and their vectors.
    let queries: Vec<String> = (0..QUERIES)
        .map(|_| {
            let len = 2 + (rng.next_u64() % 4) as usize;
            let mut query = Vec::new();
            while query.len() < len {
                let rank = zipf.sample(&mut rng);
                if rank >= STOPWORDS.len() {
                    query.push(words[rank].as_str());
                }
            }
            query.join(" ")
        })
        .collect();
    let query_vectors: Vec<Vec<f32>> = queries.iter().map(|q| embedder.embed_one(q)).collect();

    let temp = tempfile::tempdir().expect("a temp dir");
    let dir = std::env::args()
        .nth(2)
        .map_or_else(|| temp.path().to_owned(), std::path::PathBuf::from);
    let lexical = TantivyIndex::open(&dir).expect("open the lexical index");
    let vectors = MemoryVectors::new();
    let vectors_1 = MemoryVectors::with_threads(1);
    let small_documents = SMALL / CHUNKS_PER_DOCUMENT;
    let mut seq = 0;
    let mut lexical_time = Duration::ZERO;
    let mut vector_time = Duration::ZERO;
    for (stage, range) in [
        (SMALL, 0..small_documents),
        (total, small_documents..documents.len()),
    ] {
        println!("\n== {stage} chunks ==");
        let indexes = std::slice::from_ref(&index);

        // Vectors first, so tantivy's background merges do not share the CPU.
        // One document per apply, as ingestion does.
        for document in &documents[range.clone()] {
            let started = Instant::now();
            vectors.apply(std::slice::from_ref(document), seq);
            vector_time += started.elapsed();
            vectors_1.apply(std::slice::from_ref(document), seq);
        }
        println!(
            "vector apply so far: {:.0} ms ({:.1} µs per 50-chunk document)",
            vector_time.as_secs_f64() * 1e3,
            vector_time.as_secs_f64() * 1e6 / (stage / CHUNKS_PER_DOCUMENT) as f64
        );
        report(
            &format!("vector top-10 ({} threads)", threads()),
            &query_vectors,
            |q| {
                assert_eq!(vectors.search(&project, indexes, q, 10).len(), 10);
            },
        );
        report("vector top-10 (1 thread)", &query_vectors, |q| {
            assert_eq!(vectors_1.search(&project, indexes, q, 10).len(), 10);
        });

        // The lexical index, in commits of 100 documents (5000 chunks).
        for batch in documents[range].chunks(100) {
            seq += 1;
            let started = Instant::now();
            lexical.apply(batch, seq).expect("apply");
            lexical_time += started.elapsed();
        }
        println!(
            "tantivy indexing so far: {:.2} s ({:.0} chunks/s, commits of 5000 chunks)",
            lexical_time.as_secs_f64(),
            stage as f64 / lexical_time.as_secs_f64()
        );
        let mut empty = 0;
        report("tantivy top-10", &queries, |q| {
            let hits = lexical.search(&project, indexes, q, 10).expect("search");
            empty += usize::from(hits.is_empty());
        });
        println!("  ({empty} of {QUERIES} queries found nothing)");
    }
    drop(vectors_1);

    // Replacing one document in the full index: the incremental cost.
    let mut lexical_apply = Vec::new();
    let mut vector_apply = Vec::new();
    for document in documents.iter().step_by(documents.len() / 50).take(50) {
        seq += 1;
        let started = Instant::now();
        lexical.apply(std::slice::from_ref(document), seq).expect("apply");
        lexical_apply.push(started.elapsed());
        let started = Instant::now();
        vectors.apply(std::slice::from_ref(document), seq);
        vector_apply.push(started.elapsed());
    }
    println!("\n== replacing one 50-chunk document in {total} chunks ==");
    println!("tantivy apply + commit: {}", percentiles(&mut lexical_apply));
    println!("vector apply: {}", percentiles(&mut vector_apply));

    // How much int8 loses against exact f32 cosine.
    let all: Vec<&ChunkEntry> = documents
        .iter()
        .flat_map(|d| match d {
            SearchChange::Upsert { chunks, .. } => chunks.iter(),
            _ => unreachable!("only upserts"),
        })
        .collect();
    let (mut top1, mut overlap) = (0, 0);
    let sample = 100;
    for query in query_vectors.iter().take(sample) {
        let mut exact: Vec<(f32, &str)> = all
            .iter()
            .map(|c| {
                (
                    c.embedding.iter().zip(query).map(|(a, b)| a * b).sum(),
                    c.chunk_id.as_str(),
                )
            })
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let exact: Vec<&str> = exact.iter().take(10).map(|e| e.1).collect();
        let found = vectors.search(&project, std::slice::from_ref(&index), query, 10);
        top1 += usize::from(found[0].chunk_id.as_str() == exact[0]);
        overlap += found
            .iter()
            .filter(|h| exact.contains(&h.chunk_id.as_str()))
            .count();
    }
    println!(
        "\nint8 vs exact f32 cosine ({sample} queries): top-1 identical {top1}/{sample}, recall@10 {:.3}",
        overlap as f64 / (sample * 10) as f64
    );

    // The embedder's sense of similarity, for the record.
    let pairs = [
        ("reset password", "How do I reset my password?"),
        ("reset password", "resetting passwords"),
        ("reset password", "billing invoice"),
    ];
    for (a, b) in pairs {
        let (va, vb) = (embedder.embed_one(a), embedder.embed_one(b));
        let cosine: f32 = va.iter().zip(&vb).map(|(x, y)| x * y).sum();
        println!("cosine({a:?}, {b:?}) = {cosine:.3}");
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn report<Q>(what: &str, queries: &[Q], mut run: impl FnMut(&Q)) {
    // One warm-up pass over a few queries.
    queries.iter().take(20).for_each(&mut run);
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let started = Instant::now();
            run(q);
            started.elapsed()
        })
        .collect();
    println!("{what}: {}", percentiles(&mut times));
}

fn percentiles(times: &mut [Duration]) -> String {
    times.sort();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    format!("p50 {:?}, p99 {:?} (n={})", at(50), at(99), times.len())
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// The commonest ranks, as in English text.
const STOPWORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "by",
    "this", "are", "or", "from",
];

/// `VOCABULARY` distinct words: the stopwords, then made-up words of 2-4
/// syllables.
fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const CONSONANTS: &[u8] = b"bcdfghklmnprstvwz";
    const VOWELS: &[u8] = b"aeiou";
    let mut seen: HashSet<String> = STOPWORDS.iter().map(|w| (*w).to_owned()).collect();
    let mut words: Vec<String> = STOPWORDS.iter().map(|w| (*w).to_owned()).collect();
    while words.len() < VOCABULARY {
        let syllables = 2 + (rng.next_u64() % 3) as usize;
        let mut word = String::new();
        for _ in 0..syllables {
            word.push(CONSONANTS[(rng.next_u64() % CONSONANTS.len() as u64) as usize] as char);
            word.push(VOWELS[(rng.next_u64() % VOWELS.len() as u64) as usize] as char);
        }
        if rng.next_u64().is_multiple_of(3) {
            word.push(CONSONANTS[(rng.next_u64() % CONSONANTS.len() as u64) as usize] as char);
        }
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// Ranks drawn with probability proportional to `1 / (rank + 1)`.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut sum = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                sum += 1.0 / (rank + 1) as f64;
                sum
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().expect("non-empty");
        let target = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cumulative
            .partition_point(|&c| c < target)
            .min(self.cumulative.len() - 1)
    }
}

/// SplitMix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
