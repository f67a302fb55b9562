//! `MemoryVectors`: int8 search agrees with exact f32 cosine, and scoping,
//! removal and dimensions behave.

use kiln_core::ids::{DocumentId, IndexId, ProjectId};
use kiln_core::rag::{ChunkEntry, SearchChange, VectorIndex};
use kiln_search::MemoryVectors;

use crate::{Rng, chunk, cosine, index_ids};

/// Upserts of `per_document` random unit vectors per document; chunk ids
/// are `c{n}`, document ids `d{n / per_document}`.
fn random_documents(
    rng: &mut Rng,
    project: &str,
    index: &str,
    count: usize,
    per_document: usize,
    dimension: usize,
) -> (Vec<SearchChange>, Vec<ChunkEntry>) {
    let chunks: Vec<ChunkEntry> = (0..count)
        .map(|n| {
            let document = format!("{index}-d{}", n / per_document);
            chunk(
                project,
                index,
                &document,
                &format!("{index}-c{n}"),
                "",
                rng.unit_vector(dimension),
            )
        })
        .collect();
    let changes = chunks
        .chunk_by(|a, b| a.document_id == b.document_id)
        .map(|group| SearchChange::Upsert {
            document_id: group[0].document_id.clone(),
            chunks: group.to_vec(),
        })
        .collect();
    (changes, chunks)
}

fn search(vectors: &MemoryVectors, project: &str, indexes: &[&str], query: &[f32], k: usize) -> Vec<String> {
    vectors
        .search(&ProjectId::from_string(project), &index_ids(indexes), query, k)
        .into_iter()
        .map(|hit| hit.chunk_id.into_string())
        .collect()
}

/// The exact top `k` by f32 cosine.
fn brute_force(chunks: &[ChunkEntry], query: &[f32], k: usize) -> Vec<String> {
    let mut scored: Vec<(f32, &str)> = chunks
        .iter()
        .map(|c| (cosine(&c.embedding, query), c.chunk_id.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id.to_owned()).collect()
}

#[test]
fn int8_search_agrees_with_exact_f32_cosine() {
    let mut rng = Rng(7);
    let vectors = MemoryVectors::new();
    let (changes, chunks) = random_documents(&mut rng, "p1", "i1", 5_000, 50, 384);
    vectors.apply(&changes, 1);
    assert_eq!(vectors.len(), 5_000);

    let queries = 40;
    let (mut top1_same, mut overlap) = (0, 0);
    for _ in 0..queries {
        let query = rng.unit_vector(384);
        let found = search(&vectors, "p1", &["i1"], &query, 10);
        let exact = brute_force(&chunks, &query, 10);
        assert_eq!(found.len(), 10);
        top1_same += usize::from(found[0] == exact[0]);
        overlap += found.iter().filter(|id| exact.contains(id)).count();
    }
    assert!(
        top1_same * 10 >= queries * 9,
        "top-1 identical for {top1_same} of {queries}"
    );
    assert!(
        overlap >= queries * 9,
        "top-10 overlap {overlap} of {}",
        queries * 10
    );
}

#[test]
fn scores_are_cosines() {
    let mut rng = Rng(8);
    let vectors = MemoryVectors::new();
    let (changes, chunks) = random_documents(&mut rng, "p1", "i1", 100, 10, 384);
    vectors.apply(&changes, 1);
    let target = &chunks[42];
    let hits = vectors.search(
        &ProjectId::from_string("p1"),
        &index_ids(&["i1"]),
        &target.embedding,
        3,
    );
    assert_eq!(hits[0].chunk_id, target.chunk_id);
    assert!(
        (hits[0].score - 1.0).abs() < 0.01,
        "self-similarity {}",
        hits[0].score
    );
    let exact = cosine(
        &chunks
            .iter()
            .find(|c| c.chunk_id == hits[1].chunk_id)
            .expect("known")
            .embedding,
        &target.embedding,
    );
    assert!(
        (hits[1].score - exact).abs() < 0.01,
        "score {} vs cosine {exact}",
        hits[1].score
    );
    // A vector that is not unit length has the same cosine.
    let doubled: Vec<f32> = target.embedding.iter().map(|x| x * 2.0).collect();
    let again = vectors.search(&ProjectId::from_string("p1"), &index_ids(&["i1"]), &doubled, 1);
    assert!((again[0].score - hits[0].score).abs() < 1e-6);
}

#[test]
fn a_parallel_scan_finds_the_same_hits() {
    let mut rng = Rng(9);
    let (changes, _) = random_documents(&mut rng, "p1", "i1", 12_000, 100, 48);
    let (more, _) = random_documents(&mut rng, "p1", "i2", 12_000, 100, 48);
    let serial = MemoryVectors::with_threads(1);
    let parallel = MemoryVectors::with_threads(3);
    for vectors in [&serial, &parallel] {
        vectors.apply(&changes, 1);
        vectors.apply(&more, 2);
    }
    for _ in 0..5 {
        let query = rng.unit_vector(48);
        let expected = search(&serial, "p1", &["i1", "i2"], &query, 10);
        assert_eq!(search(&parallel, "p1", &["i1", "i2"], &query, 10), expected);
    }
}

#[test]
fn only_the_given_project_and_indexes_are_searched() {
    let vectors = MemoryVectors::new();
    let v = vec![0.6, 0.8, 0.0];
    vectors.apply(
        &[
            SearchChange::Upsert {
                document_id: DocumentId::from_string("d1"),
                chunks: vec![chunk("p1", "i1", "d1", "c1", "", v.clone())],
            },
            SearchChange::Upsert {
                document_id: DocumentId::from_string("d2"),
                chunks: vec![chunk("p1", "i2", "d2", "c2", "", v.clone())],
            },
            SearchChange::Upsert {
                document_id: DocumentId::from_string("d3"),
                chunks: vec![chunk("p2", "i3", "d3", "c3", "", v.clone())],
            },
        ],
        1,
    );
    assert_eq!(search(&vectors, "p1", &["i1"], &v, 10), ["c1"]);
    let mut both = search(&vectors, "p1", &["i1", "i2", "i1"], &v, 10);
    both.sort();
    assert_eq!(both, ["c1", "c2"]);
    assert_eq!(search(&vectors, "p1", &["i3"], &v, 10), Vec::<String>::new());
    assert_eq!(search(&vectors, "p2", &["i1", "i2", "i3"], &v, 10), ["c3"]);
    assert_eq!(search(&vectors, "p1", &[], &v, 10), Vec::<String>::new());
    assert_eq!(
        search(&vectors, "p1", &["i1"], &[0.0, 0.0, 0.0], 10),
        Vec::<String>::new()
    );
}

#[test]
fn removed_vectors_are_never_found_and_the_rest_still_are() {
    let mut rng = Rng(10);
    let vectors = MemoryVectors::new();
    let (changes, chunks) = random_documents(&mut rng, "p1", "i1", 1_000, 10, 32);
    let (other, other_chunks) = random_documents(&mut rng, "p1", "i2", 100, 10, 32);
    vectors.apply(&changes, 1);
    vectors.apply(&other, 2);
    let p1 = ProjectId::from_string("p1");
    // Remove every third document, the first and the last included.
    let removed: Vec<SearchChange> = (0..100)
        .step_by(3)
        .chain([98])
        .map(|d| SearchChange::RemoveDocument {
            project_id: p1.clone(),
            document_id: DocumentId::from_string(format!("i1-d{d}")),
        })
        .collect();
    vectors.apply(&removed, 3);
    assert_eq!(vectors.applied_seq(), 3);
    assert_eq!(vectors.len(), 1_100 - 35 * 10);

    for chunk in &chunks {
        let d: usize = chunk.document_id.as_str()["i1-d".len()..]
            .parse()
            .expect("numbered");
        let hits = search(&vectors, "p1", &["i1"], &chunk.embedding, 1);
        if d.is_multiple_of(3) || d == 98 {
            assert_ne!(hits[0], chunk.chunk_id.as_str(), "removed chunk found");
        } else {
            assert_eq!(hits[0], chunk.chunk_id.as_str(), "kept chunk lost");
        }
    }

    vectors.apply(
        &[SearchChange::RemoveIndex {
            project_id: p1,
            index_id: IndexId::from_string("i1"),
        }],
        4,
    );
    assert_eq!(vectors.len(), 100);
    assert_eq!(
        search(&vectors, "p1", &["i1"], &chunks[1].embedding, 10),
        Vec::<String>::new()
    );
    assert_eq!(
        search(&vectors, "p1", &["i2"], &other_chunks[5].embedding, 1),
        [other_chunks[5].chunk_id.as_str()]
    );

    vectors.clear();
    assert_eq!((vectors.len(), vectors.applied_seq()), (0, 0));
    assert!(vectors.is_empty());
}

#[test]
fn an_upsert_replaces_the_documents_vectors() {
    let vectors = MemoryVectors::new();
    let d1 = DocumentId::from_string("d1");
    let old = vec![1.0, 0.0];
    let new = vec![0.0, 1.0];
    vectors.apply(
        &[SearchChange::Upsert {
            document_id: d1.clone(),
            chunks: vec![chunk("p1", "i1", "d1", "c-old", "", old.clone())],
        }],
        1,
    );
    vectors.apply(
        &[SearchChange::Upsert {
            document_id: d1,
            chunks: vec![chunk("p1", "i1", "d1", "c-new", "", new)],
        }],
        2,
    );
    assert_eq!(vectors.len(), 1);
    assert_eq!(search(&vectors, "p1", &["i1"], &old, 10), ["c-new"]);
}

#[test]
fn vectors_of_another_dimension_are_skipped() {
    let vectors = MemoryVectors::new();
    vectors.apply(
        &[
            SearchChange::Upsert {
                document_id: DocumentId::from_string("d1"),
                chunks: vec![chunk("p1", "i1", "d1", "c4", "", vec![0.5; 4])],
            },
            SearchChange::Upsert {
                document_id: DocumentId::from_string("d2"),
                chunks: vec![chunk("p1", "i2", "d2", "c3", "", vec![0.5; 3])],
            },
        ],
        1,
    );
    assert_eq!(search(&vectors, "p1", &["i1", "i2"], &[0.5; 3], 10), ["c3"]);
    assert_eq!(search(&vectors, "p1", &["i1", "i2"], &[0.5; 4], 10), ["c4"]);
    assert_eq!(
        search(&vectors, "p1", &["i1", "i2"], &[0.5; 5], 10),
        Vec::<String>::new()
    );
}
