//! `HashEmbedder`: stable, unit-length vectors whose cosine follows shared
//! words, including inflected ones.

use kiln_core::llm::Embedder;
use kiln_search::{DIMENSIONS, HASH_EMBEDDER_NAME, HashEmbedder};

use crate::{cosine, ready};

fn similarity(a: &str, b: &str) -> f32 {
    let embedder = HashEmbedder::new();
    cosine(&embedder.embed_one(a), &embedder.embed_one(b))
}

#[test]
fn vectors_are_deterministic_and_unit_length() {
    let embedder = HashEmbedder::new();
    let text = "Kiln keeps chunks and their embeddings in the database; the search index is a cache.";
    let vector = embedder.embed_one(text);
    assert_eq!(vector.len(), DIMENSIONS);
    assert_eq!(vector, embedder.embed_one(text));
    assert_eq!(vector, HashEmbedder::new().embed_one(text));
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn vectors_never_change_between_versions() {
    // Frozen: stored chunk vectors are compared with query vectors made by
    // later builds. If this fails, the embedder needs a new name.
    let vector = HashEmbedder::new().embed_one("reset password");
    let nonzero: Vec<(usize, f32)> = vector
        .iter()
        .enumerate()
        .filter(|(_, x)| **x != 0.0)
        .map(|(i, x)| (i, (x * 1e4).round() / 1e4))
        .collect();
    assert_eq!(nonzero, GOLDEN_RESET_PASSWORD);
}

const GOLDEN_RESET_PASSWORD: &[(usize, f32)] = &[
    (5, -0.3849),
    (28, 0.4811),
    (30, -0.1443),
    (41, 0.1443),
    (127, -0.1443),
    (176, 0.1443),
    (178, 0.1443),
    (242, -0.1443),
    (262, 0.1443),
    (282, -0.1443),
    (303, -0.1443),
    (341, -0.1443),
    (356, -0.6255),
    (365, -0.1443),
];

#[test]
fn empty_and_stopword_texts_give_the_zero_vector() {
    let embedder = HashEmbedder::new();
    for text in ["", "  ?! ...", "How do I do it?"] {
        assert_eq!(embedder.embed_one(text), vec![0.0; DIMENSIONS], "{text:?}");
    }
}

#[test]
fn a_question_is_closer_to_its_topic_than_to_another() {
    let query = "reset password";
    let near = similarity(query, "How do I reset my password?");
    let far = similarity(query, "billing invoice");
    assert!(near > 0.6, "near {near}");
    assert!(far < 0.1, "far {far}");
}

#[test]
fn inflected_words_stay_close() {
    let variant = similarity("reset password", "resetting passwords");
    assert!(variant > 0.95, "variant {variant}");
    let question = similarity("How do I reset my password?", "Resetting forgotten passwords");
    let other = similarity("How do I reset my password?", "Invoices are billed monthly");
    assert!(question > other + 0.3, "question {question}, other {other}");
    // A misspelling still shares most trigrams.
    let typo = similarity("password", "pasword");
    assert!(typo > 0.3, "typo {typo}");
}

#[test]
fn embed_batches_in_order_and_counts_words() {
    let embedder = HashEmbedder::new();
    let texts = vec![
        "How do I reset my password?".to_owned(),
        String::new(),
        "billing invoice".to_owned(),
    ];
    let embeddings = ready(embedder.embed(&texts)).expect("the hash embedder does not fail");
    assert_eq!(embedder.name(), HASH_EMBEDDER_NAME);
    assert_eq!(embeddings.model, "kiln/hash-384");
    assert_eq!(embeddings.prompt_tokens, 6 + 2);
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| embedder.embed_one(t)).collect();
    assert_eq!(embeddings.vectors, expected);
}
