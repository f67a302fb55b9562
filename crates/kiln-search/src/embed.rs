//! `kiln/hash-384`: a built-in embedder that needs no model file, no network
//! and no GPU, so RAG works out of the box and tests are deterministic.
//!
//! It is a feature-hashing bag of words, not a language model: texts are
//! close when they share (stemmed) words, word pairs and spelling fragments.
//! That is enough to rank "How do I reset my password?" near "resetting
//! passwords" and away from "billing invoice", and it is fast (tens of MB/s
//! on one core), but it knows no synonyms. Use a real embedding model when
//! paraphrases matter.
//!
//! Features of a text: its words (lowercased, stopwords dropped, lightly
//! stemmed, see [`crate::text`]), weight 1; pairs of consecutive kept words,
//! weight 0.5; and the character trigrams of each word padded with `#`
//! (`#re`, `res`, ..., `et#`), weight 0.3 each, so a typical word's trigrams
//! weigh about as much as the word itself. Each feature's count `tf` enters as
//! `1 + ln tf`, so a repeated word does not drown the rest.
//!
//! Why a fixed hash (FNV-1a 64 plus a mixing step) and not std's hasher:
//! vectors are stored with the chunks and compared with query vectors made by
//! another process, perhaps years later. std's `DefaultHasher` is seeded per
//! process and its algorithm may change between Rust releases; these vectors
//! must be identical forever for the name `kiln/hash-384`. Any change to the
//! features, weights, hash or dimensions needs a new name.

use async_trait::async_trait;
use kiln_core::llm::{Embedder, Embeddings, LlmError};

use crate::text::{MAX_WORD_BYTES, for_each_word, is_stopword, stem};

/// The name recorded with vectors made by [`HashEmbedder`].
pub const HASH_EMBEDDER_NAME: &str = "kiln/hash-384";

/// The length of every [`HashEmbedder`] vector.
pub const DIMENSIONS: usize = 384;

const WEIGHT_UNIGRAM: f32 = 1.0;
const WEIGHT_BIGRAM: f32 = 0.5;
const WEIGHT_TRIGRAM: f32 = 0.3;

// Feature kinds, stored in the low two bits of a feature's hash.
const KIND_UNIGRAM: u64 = 0;
const KIND_BIGRAM: u64 = 1;
const KIND_TRIGRAM: u64 = 2;
const KIND_MASK: u64 = 0b11;
const SIGN_BIT: u64 = 0b100;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The built-in, deterministic embedder. See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashEmbedder;

impl HashEmbedder {
    pub fn new() -> Self {
        Self
    }

    /// The unit-length vector of `text` (all zeros when it has no words
    /// other than stopwords).
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        embed_counting(text, &mut Scratch::default()).0
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn name(&self) -> String {
        HASH_EMBEDDER_NAME.to_owned()
    }

    /// Hashed n-grams mostly repeat the lexical evidence BM25 already
    /// counts, so hybrid search gives their ranking half the weight.
    fn hybrid_weight(&self) -> f64 {
        0.5
    }

    /// Embeds on the calling thread: about 30 µs per KB of text, so a batch
    /// of chunks takes milliseconds, not seconds.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError> {
        let mut scratch = Scratch::default();
        let mut prompt_tokens: u64 = 0;
        let vectors = texts
            .iter()
            .map(|text| {
                let (vector, words) = embed_counting(text, &mut scratch);
                prompt_tokens += words;
                vector
            })
            .collect();
        Ok(Embeddings {
            model: self.name(),
            vectors,
            prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
        })
    }
}

/// Buffers reused across the texts of one batch.
#[derive(Default)]
struct Scratch {
    word: String,
    previous: String,
    padded: Vec<u8>,
    features: Vec<u64>,
}

/// Returns the vector of `text` and its number of words (stopwords included).
fn embed_counting(text: &str, scratch: &mut Scratch) -> (Vec<f32>, u64) {
    let Scratch {
        word,
        previous,
        padded,
        features,
    } = scratch;
    features.clear();
    previous.clear();
    let mut words = 0u64;
    for_each_word(text, word, |word| {
        words += 1;
        if word.len() > MAX_WORD_BYTES || is_stopword(word) {
            return;
        }
        stem(word);
        push_features(word, previous, padded, features);
        std::mem::swap(word, previous);
    });

    // Count each distinct feature: sort, then walk the runs.
    features.sort_unstable();
    let mut vector = vec![0.0f32; DIMENSIONS];
    let mut start = 0;
    while start < features.len() {
        let feature = features[start];
        let mut end = start + 1;
        while end < features.len() && features[end] == feature {
            end += 1;
        }
        let tf = (end - start) as f32;
        let kind_weight = match feature & KIND_MASK {
            KIND_UNIGRAM => WEIGHT_UNIGRAM,
            KIND_BIGRAM => WEIGHT_BIGRAM,
            _ => WEIGHT_TRIGRAM,
        };
        let weight = kind_weight * (1.0 + tf.ln());
        let dimension = (((feature >> 32) * DIMENSIONS as u64) >> 32) as usize;
        vector[dimension] += if feature & SIGN_BIT == 0 { weight } else { -weight };
        start = end;
    }

    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    (vector, words)
}

/// Pushes the features of one kept, stemmed word: its unigram, its bigram
/// with the previous kept word, and its padded character trigrams.
fn push_features(word: &str, previous: &str, padded: &mut Vec<u8>, features: &mut Vec<u64>) {
    features.push(feature(fnv(fnv(FNV_OFFSET, b"u"), word.as_bytes()), KIND_UNIGRAM));
    if !previous.is_empty() {
        let state = fnv(fnv(FNV_OFFSET, b"b"), previous.as_bytes());
        features.push(feature(fnv(fnv(state, b" "), word.as_bytes()), KIND_BIGRAM));
    }

    padded.clear();
    padded.push(b'#');
    padded.extend_from_slice(word.as_bytes());
    padded.push(b'#');
    let trigram_seed = fnv(FNV_OFFSET, b"t");
    if word.is_ascii() {
        for trigram in padded.windows(3) {
            features.push(feature(fnv(trigram_seed, trigram), KIND_TRIGRAM));
        }
    } else {
        // Trigrams of characters, not bytes: hash three whole UTF-8 sequences.
        let padded = std::str::from_utf8(padded).unwrap_or_default();
        let starts: Vec<usize> = padded
            .char_indices()
            .map(|(i, _)| i)
            .chain([padded.len()])
            .collect();
        for window in starts.windows(4) {
            features.push(feature(
                fnv(trigram_seed, &padded.as_bytes()[window[0]..window[3]]),
                KIND_TRIGRAM,
            ));
        }
    }
}

/// FNV-1a 64, continuing from `state`.
fn fnv(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// Spreads FNV's bits (its high bits mix poorly on short inputs) with
/// MurmurHash3's finaliser, then stores the feature's kind in the low bits.
/// The dimension comes from bits 32..64, the sign from bit 2.
fn feature(hash: u64, kind: u64) -> u64 {
    let mut h = hash;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h & !KIND_MASK) | kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn non_ascii_words_get_character_trigrams() {
        let mut features = Vec::new();
        push_features("café", "", &mut Vec::new(), &mut features);
        // One unigram and the trigrams of `#café#`: #ca caf afé fé#.
        assert_eq!(features.len(), 1 + 4);
    }
}
