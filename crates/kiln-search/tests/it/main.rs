//! The integration tests of `kiln-search`, one binary for link time, with the
//! helpers every area shares.

mod embed;
mod lexical;
mod vectors;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use kiln_core::ids::{ChunkId, DocumentId, IndexId, ProjectId};
use kiln_core::rag::ChunkEntry;

/// One chunk, with ids spelled as plain strings.
fn chunk(
    project: &str,
    index: &str,
    document: &str,
    chunk: &str,
    text: &str,
    embedding: Vec<f32>,
) -> ChunkEntry {
    ChunkEntry {
        chunk_id: ChunkId::from_string(chunk),
        document_id: DocumentId::from_string(document),
        index_id: IndexId::from_string(index),
        project_id: ProjectId::from_string(project),
        text: text.to_owned(),
        embedding,
    }
}

fn index_ids(ids: &[&str]) -> Vec<IndexId> {
    ids.iter().map(|id| IndexId::from_string(*id)).collect()
}

/// Polls a future that never waits (the embedder's) to its end.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited"),
    }
}

/// A small deterministic generator (SplitMix64), so random tests repeat.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn signed_unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A random unit vector.
    fn unit_vector(&mut self, dimension: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dimension).map(|_| self.signed_unit()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
