//! `TantivyIndex`: BM25 ranking, stemming, scoping by project and index,
//! removals, and the sequence number kept across a reopen.

use kiln_core::ids::{DocumentId, IndexId, ProjectId};
use kiln_core::rag::{LexicalIndex, SearchChange};
use kiln_search::TantivyIndex;

use crate::{chunk, index_ids};

/// A row of a test corpus: project, index, document, chunk, text.
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn upserts(rows: &[Row<'_>]) -> Vec<SearchChange> {
    let mut changes: Vec<SearchChange> = Vec::new();
    for &(project, index, document, chunk_id, text) in rows {
        let entry = chunk(project, index, document, chunk_id, text, Vec::new());
        match changes.last_mut() {
            Some(SearchChange::Upsert { document_id, chunks }) if document_id.as_str() == document => {
                chunks.push(entry)
            }
            _ => changes.push(SearchChange::Upsert {
                document_id: DocumentId::from_string(document),
                chunks: vec![entry],
            }),
        }
    }
    changes
}

fn lexical_with(rows: &[Row<'_>]) -> TantivyIndex {
    let lexical = TantivyIndex::in_memory();
    lexical.apply(&upserts(rows), 1).expect("apply");
    lexical
}

/// The chunk ids found, best first.
fn search(lexical: &TantivyIndex, project: &str, indexes: &[&str], query: &str) -> Vec<String> {
    lexical
        .search(&ProjectId::from_string(project), &index_ids(indexes), query, 10)
        .expect("search")
        .into_iter()
        .map(|hit| hit.chunk_id.into_string())
        .collect()
}

const HELP_CENTER: &[Row<'static>] = &[
    (
        "p1",
        "i1",
        "d1",
        "c-reset",
        "To reset your password, open the login page and choose Forgot password.",
    ),
    (
        "p1",
        "i1",
        "d1",
        "c-policy",
        "Passwords must have at least twelve characters.",
    ),
    (
        "p1",
        "i1",
        "d2",
        "c-billing",
        "Invoices are sent on the first day of each month; billing questions go to finance.",
    ),
    (
        "p1",
        "i1",
        "d2",
        "c-refund",
        "Refunds for annual plans are prorated.",
    ),
];

#[test]
fn the_chunk_with_the_query_terms_ranks_first() {
    let lexical = lexical_with(HELP_CENTER);
    let hits = search(&lexical, "p1", &["i1"], "reset password");
    assert_eq!(hits, ["c-reset", "c-policy"]);
    assert_eq!(
        search(&lexical, "p1", &["i1"], "When is the invoice sent?"),
        ["c-billing"]
    );
}

#[test]
fn scores_are_bm25_and_k_limits_the_hits() {
    let lexical = lexical_with(HELP_CENTER);
    let hits = lexical
        .search(
            &ProjectId::from_string("p1"),
            &index_ids(&["i1"]),
            "password reset",
            1,
        )
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id.as_str(), "c-reset");
    assert!(hits[0].score > 0.0);
    let none = lexical
        .search(&ProjectId::from_string("p1"), &index_ids(&["i1"]), "password", 0)
        .expect("search");
    assert!(none.is_empty());
}

#[test]
fn inflected_forms_match() {
    let lexical = lexical_with(HELP_CENTER);
    assert_eq!(
        search(&lexical, "p1", &["i1"], "Resetting passwords")[0],
        "c-reset"
    );
    assert_eq!(search(&lexical, "p1", &["i1"], "refund"), ["c-refund"]);
    assert_eq!(search(&lexical, "p1", &["i1"], "INVOICE"), ["c-billing"]);
}

#[test]
fn stopwords_punctuation_and_query_syntax_are_not_errors() {
    let lexical = lexical_with(HELP_CENTER);
    for query in ["", "   ", "?!...", "the of and to", "How do I do it?"] {
        assert_eq!(
            search(&lexical, "p1", &["i1"], query),
            Vec::<String>::new(),
            "{query:?}"
        );
    }
    // Query syntax is read as words: no field `error`, no exclusion, no phrase.
    assert_eq!(
        search(&lexical, "p1", &["i1"], r#"error: "refunds -annual AND (plans"#),
        ["c-refund"]
    );
    assert_eq!(
        search(&lexical, "p1", &["i1"], "project:p1 billing"),
        ["c-billing"]
    );
}

#[test]
fn only_the_given_project_and_indexes_are_searched() {
    let lexical = lexical_with(&[
        ("p1", "i1", "d1", "c-p1-i1", "reset password"),
        ("p1", "i2", "d2", "c-p1-i2", "reset password"),
        ("p2", "i3", "d3", "c-p2-i3", "reset password"),
    ]);
    assert_eq!(search(&lexical, "p1", &["i1"], "password"), ["c-p1-i1"]);
    let mut both = search(&lexical, "p1", &["i1", "i2"], "password");
    both.sort();
    assert_eq!(both, ["c-p1-i1", "c-p1-i2"]);
    // Another project's index is not searched even when named.
    assert_eq!(search(&lexical, "p1", &["i3"], "password"), Vec::<String>::new());
    assert_eq!(
        search(&lexical, "p2", &["i1", "i2", "i3"], "password"),
        ["c-p2-i3"]
    );
    assert_eq!(search(&lexical, "p1", &[], "password"), Vec::<String>::new());
}

#[test]
fn removed_documents_and_indexes_are_not_found() {
    let lexical = lexical_with(&[
        ("p1", "i1", "d1", "c1", "reset password"),
        ("p1", "i1", "d2", "c2", "password policy"),
        ("p1", "i2", "d3", "c3", "password manager"),
    ]);
    let p1 = ProjectId::from_string("p1");
    lexical
        .apply(
            &[SearchChange::RemoveDocument {
                project_id: p1.clone(),
                document_id: DocumentId::from_string("d1"),
            }],
            2,
        )
        .expect("apply");
    assert_eq!(search(&lexical, "p1", &["i1", "i2"], "password").len(), 2);
    assert_eq!(search(&lexical, "p1", &["i1"], "reset"), Vec::<String>::new());

    lexical
        .apply(
            &[SearchChange::RemoveIndex {
                project_id: p1,
                index_id: IndexId::from_string("i1"),
            }],
            3,
        )
        .expect("apply");
    assert_eq!(search(&lexical, "p1", &["i1", "i2"], "password"), ["c3"]);
    assert_eq!(lexical.applied_seq(), 3);
}

#[test]
fn an_upsert_replaces_the_documents_chunks() {
    let lexical = lexical_with(&[("p1", "i1", "d1", "c1", "reset password")]);
    lexical
        .apply(&upserts(&[("p1", "i1", "d1", "c2", "billing invoice")]), 2)
        .expect("apply");
    assert_eq!(search(&lexical, "p1", &["i1"], "password"), Vec::<String>::new());
    assert_eq!(search(&lexical, "p1", &["i1"], "invoice"), ["c2"]);
    // The same document twice in one batch: the last one wins.
    let mut changes = upserts(&[("p1", "i1", "d1", "c3", "first version")]);
    changes.extend(upserts(&[("p1", "i1", "d1", "c4", "second version")]));
    lexical.apply(&changes, 3).expect("apply");
    assert_eq!(search(&lexical, "p1", &["i1"], "version"), ["c4"]);
}

#[test]
fn the_sequence_number_survives_a_reopen_and_clear_resets_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lexical");
    {
        let lexical = TantivyIndex::open(&path).expect("create");
        assert_eq!(lexical.applied_seq(), 0);
        lexical.apply(&upserts(HELP_CENTER), 41).expect("apply");
        // An empty batch still records its number.
        lexical.apply(&[], 42).expect("apply");
        assert_eq!(lexical.applied_seq(), 42);
    }
    {
        let lexical = TantivyIndex::open(&path).expect("reopen");
        assert_eq!(lexical.applied_seq(), 42);
        assert_eq!(search(&lexical, "p1", &["i1"], "reset password")[0], "c-reset");
        lexical.clear().expect("clear");
        assert_eq!(lexical.applied_seq(), 0);
        assert_eq!(
            search(&lexical, "p1", &["i1"], "reset password"),
            Vec::<String>::new()
        );
    }
    let lexical = TantivyIndex::open(&path).expect("reopen");
    assert_eq!(lexical.applied_seq(), 0);
    assert_eq!(search(&lexical, "p1", &["i1"], "password"), Vec::<String>::new());
}

#[test]
fn a_second_writer_on_the_same_directory_is_an_error_after_a_wait() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = TantivyIndex::open(dir.path()).expect("open");
    // The second waits for the lock (a server killed a moment ago may still
    // hold it), then says who it thinks holds it.
    let second = TantivyIndex::open(dir.path());
    let error = second.expect_err("the directory is locked").to_string();
    assert!(
        error.contains("locked by another process (is another kiln serving this data directory?)"),
        "{error}"
    );
}

#[test]
fn a_lock_let_go_while_opening_waits_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = TantivyIndex::open(dir.path()).expect("open");
    let path = dir.path().to_owned();
    let second = std::thread::spawn(move || TantivyIndex::open(&path));
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(first);
    second
        .join()
        .expect("no panic")
        .expect("opened once the first let go");
}
