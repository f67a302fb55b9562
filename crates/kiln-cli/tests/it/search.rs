//! CONTRACT §2.3 ingestion and §2.4 search: every format through the
//! pipeline, extraction siblings, hybrid search in chunk and document mode,
//! and what search must never return.

use std::time::Duration;

use kiln_sdk::api::{Document, SearchRequest};
use kiln_sdk::{DocumentQuery, UploadOptions};
use serde_json::{Value, json};

use crate::backends;
use crate::documents::{index, meta};
use crate::harness::{TestApp, api_err};

backends!(
    every_format_is_ingested,
    hybrid_search_finds_the_passage,
    search_sees_only_live_latest_documents,
    a_replica_searches_what_another_server_ingested,
    chat_with_rag_cites_the_passage,
);

const WAIT: Duration = Duration::from_secs(30);

async fn put(app: &TestApp, idx: &str, filename: &str, body: &[u8], name: Option<&str>) -> Document {
    let doc = app
        .client
        .upload_document_bytes(
            idx,
            filename,
            body.to_vec(),
            &UploadOptions {
                name: name.map(str::to_owned),
                metadata: Some(meta(json!({"source": "test"}))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.client.wait_for_document(&doc.id, WAIT).await.unwrap()
}

fn query(q: &str) -> SearchRequest {
    SearchRequest {
        query: q.into(),
        ..Default::default()
    }
}

const GUIDE: &str = "# Account\n\n## Passwords\n\nTo reset your password, open Settings → Security and press \
    Send reset link. The link expires after 30 minutes.\n\n## Billing\n\nInvoices are emailed on the first \
    day of each month as PDF attachments.\n";

async fn every_format_is_ingested(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;

    let md = put(app, &idx, "guide.md", GUIDE.as_bytes(), Some("guide")).await;
    assert_eq!(md.status, "ready");
    assert_eq!(md.chunk_count, 2, "one chunk per section");
    assert_eq!(md.page_count, None);

    let txt = put(
        app,
        &idx,
        "notes.txt",
        b"Plain notes about the warehouse in Lyon.",
        None,
    )
    .await;
    assert_eq!((txt.status.as_str(), txt.chunk_count), ("ready", 1));
    let csv = put(
        app,
        &idx,
        "staff.csv",
        b"name,city\nAda,Paris\n\"Lin, Jr.\",Oslo\n",
        None,
    )
    .await;
    assert_eq!((csv.status.as_str(), csv.chunk_count), ("ready", 1));
    let json_doc = put(app, &idx, "config.json", b"{\"a\": 1}", None).await;
    assert_eq!((json_doc.status.as_str(), json_doc.chunk_count), ("stored", 0));

    // PDF, DOCX and HTML: the original is stored, a Markdown sibling carries the chunks.
    let pdf_bytes =
        kiln_extract::fixtures::pdf(&[&["Quarterly turbine inspection."], &["Blade wear within limits."]]);
    let pdf = put(app, &idx, "report.pdf", &pdf_bytes, Some("reports/q3.pdf")).await;
    assert_eq!(
        (pdf.status.as_str(), pdf.chunk_count, pdf.page_count),
        ("stored", 0, Some(2))
    );
    assert_eq!(pdf.content_type, "application/pdf");
    let siblings = c
        .list_documents(&DocumentQuery {
            parent_id: Some(pdf.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(siblings.total, 1);
    let sibling = &siblings.data[0];
    assert_eq!(sibling.content_type, "text/markdown");
    assert_eq!(sibling.filename, "report.pdf.md");
    assert_eq!(sibling.name.as_deref(), Some("reports/q3.pdf.md"));
    assert_eq!(sibling.status, "ready");
    assert!(sibling.chunk_count >= 1);
    assert_eq!(
        sibling.metadata,
        meta(json!({"source": "test", "derived_from": "extraction"}))
    );
    assert_eq!((sibling.version, sibling.is_latest), (1, true));
    let derived = c
        .list_documents(&DocumentQuery {
            derived_from: Some("extraction".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        derived.data.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![sibling.id.as_str()]
    );

    let docx_bytes = kiln_extract::fixtures::docx(&[
        ("Heading1", "Onboarding"),
        ("", "Badges are issued at the front desk."),
    ]);
    let docx = put(app, &idx, "onboarding.docx", &docx_bytes, None).await;
    assert_eq!(docx.status, "stored");
    let html = put(
        app,
        &idx,
        "faq.html",
        b"<html><head><script>var secret = 1;</script></head><body><h1>FAQ</h1><p>Parking is free on weekends.</p></body></html>",
        None,
    )
    .await;
    assert_eq!(html.status, "stored");

    // Broken files end in `error` with a useful message; others are unaffected.
    let broken = put(
        app,
        &idx,
        "broken.pdf",
        b"%PDF-1.4 this is not really a pdf",
        None,
    )
    .await;
    assert_eq!(broken.status, "error");
    let message = broken.error_message.unwrap_or_default();
    assert!(message.to_lowercase().contains("pdf"), "{message}");
    let bad_docx = put(app, &idx, "broken.docx", b"PK not a zip", None).await;
    assert_eq!(bad_docx.status, "error");

    // Every chunked text is searchable; hits cite the siblings, never the originals.
    for (q, expected) in [
        ("turbine blade wear", "report.pdf.md"),
        ("badges front desk", "onboarding.docx.md"),
        ("parking weekends", "faq.html.md"),
        ("warehouse Lyon", "notes.txt"),
        ("Lin Oslo", "staff.csv"),
    ] {
        let hits = c.search_index(&idx, &query(q)).await.unwrap();
        assert_eq!(
            hits.first().map(|h| h.filename.as_str()),
            Some(expected),
            "query `{q}`"
        );
    }
    let scripts = c.search_index(&idx, &query("secret")).await.unwrap();
    assert!(
        scripts.iter().all(|h| !h.content.contains("var secret")),
        "scripts are not indexed"
    );
}

async fn hybrid_search_finds_the_passage(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let other = index(app, "other").await;
    let guide = put(app, &idx, "guide.md", GUIDE.as_bytes(), Some("guide")).await;
    put(
        app,
        &other,
        "other.md",
        b"# Other\n\nPassword rules for the other team.",
        None,
    )
    .await;

    // Chunk mode: the passage that answers comes first, with its document.
    let hits = c
        .search_index(&idx, &query("how do I reset my password"))
        .await
        .unwrap();
    let top = &hits[0];
    assert!(top.content.contains("Send reset link"), "{}", top.content);
    assert_eq!(top.document_id, guide.id);
    assert_eq!(top.document_name.as_deref(), Some("guide"));
    assert_eq!(top.document_metadata, meta(json!({"source": "test"})));
    assert_eq!(top.metadata.get("section"), Some(&json!("Account > Passwords")));
    assert!(hits.iter().all(|h| h.score > 0.0 && h.score <= 1.0));
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "sorted by score"
    );
    // Morphology and a typo still find it (stemming, character n-grams).
    let variant = c.search_index(&idx, &query("resetting passwrd")).await.unwrap();
    assert!(variant[0].content.contains("Send reset link"));

    // Project scope sees both indexes; index_id / indexId narrow it.
    let everywhere = c.search_documents(&query("password")).await.unwrap();
    let mut files: Vec<&str> = everywhere.iter().map(|d| d.filename.as_str()).collect();
    files.sort();
    assert_eq!(files, vec!["guide.md", "other.md"]);
    let scoped = c
        .search(&SearchRequest {
            index_id: Some(other.clone()),
            ..query("password")
        })
        .await
        .unwrap();
    assert!(scoped.iter().all(|h| h.filename == "other.md"));
    assert_eq!(scoped.len(), 1);
    let camel: Value = app
        .http()
        .post(app.url("/api/sdk/search"))
        .header("X-API-Key", &app.key)
        .json(&json!({"query": "password", "indexId": other, "result_type": "chunk"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let camel_hits = camel["results"].as_array().unwrap();
    assert!(camel_hits.iter().all(|h| h["filename"] == "other.md"), "{camel}");

    // top_k, min_score.
    let one = c
        .search(&SearchRequest {
            top_k: Some(1),
            ..query("password")
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    // min_score keeps exactly the hits at or above it: between the best
    // and the worst score of the unfiltered list, some stay, some go.
    let all = c.search(&query("invoices emailed password")).await.unwrap();
    let (best, worst) = (all[0].score, all[all.len() - 1].score);
    assert!(best > worst, "scores differ: {all:#?}");
    let threshold = (best + worst) / 2.0;
    let kept = c
        .search(&SearchRequest {
            min_score: Some(threshold),
            ..query("invoices emailed password")
        })
        .await
        .unwrap();
    let expected: Vec<&str> = all
        .iter()
        .filter(|h| h.score >= threshold)
        .map(|h| h.chunk_id.as_str())
        .collect();
    let got: Vec<&str> = kept.iter().map(|h| h.chunk_id.as_str()).collect();
    assert_eq!(got, expected);
    assert!(
        !got.is_empty() && got.len() < all.len(),
        "{got:?} of {}",
        all.len()
    );
    assert!(kept[0].content.contains("Invoices"));

    // Document mode: one row per document with its best chunk.
    let docs = c.search_documents(&query("password invoices")).await.unwrap();
    assert_eq!(docs.len(), 2, "two documents, not one row per chunk");
    let best = docs.iter().find(|d| d.document_id == guide.id).unwrap();
    assert_eq!(best.index_id, idx);
    assert_eq!(best.content_sha256, guide.content_sha256);
    assert!(!best.best_chunk.preview.is_empty() && best.best_chunk.preview.chars().count() <= 300);

    // Modes: bm25 and vector alone both answer.
    for mode in ["bm25", "vector"] {
        let hits = c
            .search_index(
                &idx,
                &SearchRequest {
                    mode: Some(mode.into()),
                    ..query("reset password")
                },
            )
            .await
            .unwrap();
        assert!(hits[0].content.contains("Send reset link"), "mode {mode}");
    }

    // Bad input.
    api_err(c.search(&query("  ")).await, 400, "validation_failed");
    let bad_type: Value = app
        .http()
        .post(app.url("/api/sdk/search"))
        .header("X-API-Key", &app.key)
        .json(&json!({"query": "x", "result_type": "paragraph"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad_type["field"], "result_type");
    api_err(c.search_index("nope", &query("x")).await, 404, "NOT_FOUND");
    // Another project finds nothing of ours, and cannot name our index.
    let (_, stranger) = app.key_for("stranger").await;
    assert!(stranger.search(&query("password")).await.unwrap().is_empty());
    api_err(
        stranger.search_index(&idx, &query("password")).await,
        404,
        "NOT_FOUND",
    );
}

async fn search_sees_only_live_latest_documents(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    let v1 = put(
        app,
        &idx,
        "faq.md",
        b"# FAQ\n\nThe office opens at nine.",
        Some("faq"),
    )
    .await;
    let found = c.search(&query("office opens")).await.unwrap();
    assert_eq!(found[0].document_id, v1.id);

    // A new version replaces the old one in search.
    let v2 = put(
        app,
        &idx,
        "faq.md",
        b"# FAQ\n\nThe office opens at ten.",
        Some("faq"),
    )
    .await;
    let hits = c.search(&query("office opens")).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.document_id.as_str()).collect::<Vec<_>>(),
        vec![v2.id.as_str()]
    );

    // Soft delete: gone from search.
    c.delete_document(&v2.id, false).await.unwrap();
    assert!(c.search(&query("office opens")).await.unwrap().is_empty());

    // Deleting a PDF deletes its sibling too.
    let pdf_bytes = kiln_extract::fixtures::pdf(&[&["Emergency exits are marked in green."]]);
    let pdf = put(app, &idx, "safety.pdf", &pdf_bytes, None).await;
    assert_eq!(c.search(&query("emergency exits")).await.unwrap().len(), 1);
    c.delete_document(&pdf.id, true).await.unwrap();
    assert!(c.search(&query("emergency exits")).await.unwrap().is_empty());
    let orphans = c
        .list_documents(&DocumentQuery {
            parent_id: Some(pdf.id.clone()),
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(orphans.total, 0, "the hard delete cascaded to the sibling");

    // Deleting the index removes its documents and their search entries.
    put(app, &idx, "kept.md", b"# Kept\n\nLunch is served at noon.", None).await;
    assert_eq!(c.search(&query("lunch noon")).await.unwrap().len(), 1);
    c.delete_index(&idx).await.unwrap();
    assert!(c.search(&query("lunch noon")).await.unwrap().is_empty());
    assert_eq!(
        c.list_documents(&DocumentQuery {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .total,
        0
    );
}

/// A second server on the same database (its own, empty search directory,
/// no ingestion) answers the same as the server that ingested.
async fn a_replica_searches_what_another_server_ingested(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "docs").await;
    put(app, &idx, "guide.md", GUIDE.as_bytes(), None).await;
    let (replica, rc, _dir) = app.replica(0).await;
    let q = query("invoices first day of the month");
    let here = c.search(&q).await.unwrap();
    let there = rc.search(&q).await.unwrap();
    assert!(!here.is_empty());
    assert_eq!(
        here.iter().map(|h| (&h.chunk_id, h.score)).collect::<Vec<_>>(),
        there.iter().map(|h| (&h.chunk_id, h.score)).collect::<Vec<_>>()
    );
    // A change made through one server is seen by the other's next search.
    let later = put(
        app,
        &idx,
        "later.md",
        b"# Later\n\nThe canteen sells espresso.",
        None,
    )
    .await;
    let seen = rc.search(&query("canteen espresso")).await.unwrap();
    assert_eq!(
        seen.first().map(|h| h.document_id.as_str()),
        Some(later.id.as_str())
    );
    rc.delete_document(&later.id, false).await.unwrap();
    let after = c.search(&query("canteen espresso")).await.unwrap();
    assert!(
        after.iter().all(|h| h.document_id != later.id),
        "deleted through the replica"
    );
    replica.shutdown().await.unwrap();
}

/// Acknowledged uploads are in the database before the 201: a server that
/// never ingests them (it "crashed"), or a worker that died holding one,
/// loses nothing; the next server with workers finishes them.
async fn uploads_survive_a_crash(app: &TestApp) {
    use kiln_core::rag::store::RagStore;
    let c = &app.client;
    let idx = index(app, "docs").await;
    let none = UploadOptions::default();
    let a = c
        .upload_document_bytes(
            &idx,
            "a.md",
            b"# A\n\nAardvarks sleep in burrows.".to_vec(),
            &none,
        )
        .await
        .unwrap();
    let b = c
        .upload_document_bytes(&idx, "b.md", b"# B\n\nBadgers dig setts.".to_vec(), &none)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.get_document(&a.id).await.unwrap().status,
        "pending",
        "this server does not ingest"
    );

    // A worker claimed `b` and died: its lease ran out long ago.
    let store = app.second_store().await;
    let long_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let claimed = store
        .claim_document(long_ago, 1_000, "dead-worker", 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id.as_str(), a.id, "oldest first");
    // Only the claim's holder may renew it.
    let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
    assert!(
        !store
            .renew_document_claim(&claimed.id, "another-worker", far)
            .await
            .unwrap()
    );
    store.close().await;
    assert_eq!(c.get_document(&a.id).await.unwrap().status, "processing");

    let (replica, _rc, _dir) = app.replica(1).await;
    for doc in [&a, &b] {
        let done = c.wait_for_document(&doc.id, WAIT).await.unwrap();
        assert_eq!(
            (done.status.as_str(), done.chunk_count),
            ("ready", 1),
            "{}",
            doc.filename
        );
    }
    let hits = c.search(&query("badgers setts")).await.unwrap();
    assert_eq!(hits[0].document_id, b.id);
    replica.shutdown().await.unwrap();
}

mod decompression_bombs_end_in_error_and_the_server_goes_on {
    use crate::harness::{Backend, TestApp, TestOptions};

    /// The bombs are 300 KB; the tests' upload limit is smaller.
    fn options() -> TestOptions {
        TestOptions {
            upload_limit: 1 << 20,
            ..TestOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::start_with(Backend::Sqlite, options()).await.unwrap();
        super::decompression_bombs_end_in_error_and_the_server_goes_on(&app).await;
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(app) = TestApp::start_with(Backend::Postgres, options()).await else {
            return;
        };
        super::decompression_bombs_end_in_error_and_the_server_goes_on(&app).await;
        app.stop().await;
    }
}

/// A DOCX (ZIP) and a PDF (Flate) of a few hundred KB that unpack to
/// 300 MiB, and a DOCX that declares a 4 GiB part: each ends `error` with
/// a message naming the cause, and the server goes on ingesting.
async fn decompression_bombs_end_in_error_and_the_server_goes_on(app: &TestApp) {
    let c = &app.client;
    let idx = index(app, "hostile").await;
    let none = UploadOptions::default();
    let bombs = [
        (
            "bomb.docx",
            kiln_extract::fixtures::zip_bomb(300 << 20),
            "unpack to more than 256 MiB",
        ),
        (
            "bomb.pdf",
            kiln_extract::fixtures::pdf_bomb(300 << 20),
            "unpack to more than 256 MiB",
        ),
        (
            "declares.docx",
            kiln_extract::fixtures::zip_declaring(u32::MAX),
            "unpack to more than 256 MiB",
        ),
    ];
    let mut uploaded = Vec::new();
    for (name, bytes, _) in &bombs {
        assert!(bytes.len() < 1 << 20, "{name}: {} bytes", bytes.len());
        uploaded.push(
            c.upload_document_bytes(&idx, name, bytes.clone(), &none)
                .await
                .unwrap(),
        );
    }
    for (doc, (name, _, expected)) in uploaded.iter().zip(&bombs) {
        let done = c.wait_for_document(&doc.id, WAIT).await.unwrap();
        assert_eq!(done.status, "error", "{name}");
        let message = done.error_message.unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message}");
    }
    let fine = put(
        app,
        &idx,
        "fine.md",
        b"# Fine

Still ingesting.",
        None,
    )
    .await;
    assert_eq!(fine.status, "ready");
}

/// The child process that extracts PDF and DOCX text has its own memory
/// limit: a file that passes the unpacking check but needs more than the
/// limit ends that process, with an error naming the limit, and never the
/// caller.
#[test]
fn extraction_runs_in_a_process_with_its_own_memory_limit() {
    use kiln_core::rag::{DocumentKind, TextExtractor};
    let worker = kiln_extract::IsolatedExtractor::new(
        env!("CARGO_BIN_EXE_kiln"),
        &["extract-worker"],
        kiln_extract::WorkerLimits {
            memory_bytes: 64 << 20,
            cpu_seconds: 60,
        },
    );
    let bomb = kiln_extract::fixtures::zip_bomb(200 << 20);
    let error = worker.extract(DocumentKind::Docx, &bomb).unwrap_err();
    assert!(error.contains("ran out of memory (64 MiB)"), "{error}");
    let pdf = kiln_extract::fixtures::pdf(&[&["Blade wear within limits."]]);
    let extracted = worker.extract(DocumentKind::Pdf, &pdf).unwrap();
    assert_eq!(
        (extracted.markdown.trim(), extracted.page_count),
        ("Blade wear within limits.", Some(1))
    );
    let error = worker
        .extract(DocumentKind::Pdf, b"%PDF-1.5 garbage")
        .unwrap_err();
    assert!(error.starts_with("could not read the PDF"), "{error}");
}

mod a_file_that_keeps_killing_its_reader {
    use crate::harness::{Backend, TestApp, TestOptions};

    fn options() -> TestOptions {
        TestOptions {
            ingest_workers: 0,
            ..TestOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::start_with(Backend::Sqlite, options()).await.unwrap();
        super::a_file_that_keeps_killing_its_reader(&app).await;
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(app) = TestApp::start_with(Backend::Postgres, options()).await else {
            return;
        };
        super::a_file_that_keeps_killing_its_reader(&app).await;
        app.stop().await;
    }
}

/// A document whose every claim died with its worker (three times) is
/// marked `error` at the next claim instead of being read again, so a file
/// that crashes the server cannot crash-loop it.
async fn a_file_that_keeps_killing_its_reader(app: &TestApp) {
    use kiln_core::rag::store::RagStore;
    let c = &app.client;
    let idx = index(app, "docs").await;
    let doc = c
        .upload_document_bytes(
            &idx,
            "killer.md",
            b"# Killer

Pretend this crashes the reader."
                .to_vec(),
            &UploadOptions::default(),
        )
        .await
        .unwrap();
    let store = app.second_store().await;
    let start = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for attempt in 0..3 {
        // Each claim's lease ran out before the next: its worker died.
        let claimed = store
            .claim_document(start + attempt * 10_000, 1_000, "dying-worker", 3)
            .await
            .unwrap()
            .expect("claimed again");
        assert_eq!(claimed.id.as_str(), doc.id);
    }
    store.close().await;
    let (replica, _rc, _dir) = app.replica(1).await;
    let done = c.wait_for_document(&doc.id, WAIT).await.unwrap();
    assert_eq!(done.status, "error");
    let message = done.error_message.unwrap_or_default();
    assert!(
        message.contains("started 3 times and never finished"),
        "{message}"
    );
    // The next upload is read as usual.
    let next = put(
        app,
        &idx,
        "next.md",
        b"# Next

Fine.",
        None,
    )
    .await;
    assert_eq!(next.status, "ready");
    replica.shutdown().await.unwrap();
}

mod uploads_survive_a_crash {
    use crate::harness::{Backend, TestApp, TestOptions};

    fn options() -> TestOptions {
        TestOptions {
            ingest_workers: 0,
            ..TestOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::start_with(Backend::Sqlite, options()).await.unwrap();
        super::uploads_survive_a_crash(&app).await;
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(app) = TestApp::start_with(Backend::Postgres, options()).await else {
            return;
        };
        super::uploads_survive_a_crash(&app).await;
        app.stop().await;
    }
}

/// `use_rag` on chat: the best passages go to the model (the offline model
/// quotes them with their document's name).
async fn chat_with_rag_cites_the_passage(app: &TestApp) {
    use kiln_sdk::api::{ChatCompletionInput, ChatMessage, CreateConversation, SendMessage};
    let c = &app.client;
    let idx = index(app, "docs").await;
    put(app, &idx, "guide.md", GUIDE.as_bytes(), Some("account-guide")).await;
    let ask = |use_rag: bool| ChatCompletionInput {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "How do I reset my password?".into(),
        }],
        use_rag: Some(use_rag),
        index_id: Some(idx.clone()),
        model: Some("kiln/offline".into()),
    };
    let answer = c.chat_completion(&ask(true)).await.unwrap();
    let text = &answer.choices[0].message.content;
    assert!(
        text.contains("Send reset link") && text.contains("account-guide"),
        "{text}"
    );
    let plain = c.chat_completion(&ask(false)).await.unwrap();
    assert!(
        !plain.choices[0].message.content.contains("Send reset link"),
        "no passages without use_rag"
    );

    let conversation = c
        .create_conversation(&CreateConversation {
            model: Some("kiln/offline".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let reply = c
        .send_message(
            &conversation.id,
            &SendMessage {
                content: "When are invoices emailed?".into(),
                use_rag: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        reply.message.content.contains("first day of each month"),
        "{}",
        reply.message.content
    );
}
