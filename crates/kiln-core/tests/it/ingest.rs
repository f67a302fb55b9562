//! The ingestion pipeline, driven through `Rag` alone: an upload becomes
//! searchable, and a file that cannot be read ends in `error`.

use std::time::Duration;

use kiln_core::rag::document::{Document, DocumentStatus};
use kiln_core::rag::documents::Upload;
use kiln_core::rag::search::SearchQuery;
use kiln_core::runtime::RuntimeConfig;

use crate::harness::{Engines, Reading};

async fn upload(engines: &Engines, filename: &str, bytes: Vec<u8>) -> Document {
    let index = engines
        .rag
        .create_index(&engines.ctx, &format!("docs-{filename}"), None, None)
        .await
        .unwrap();
    engines
        .rag
        .upload_document(
            &engines.ctx,
            Upload {
                index_id: index.id,
                filename: filename.to_owned(),
                part_content_type: None,
                bytes,
                name: None,
                parent_id: None,
                if_version: None,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap()
}

/// Runs one ingestion worker until the document leaves `pending`.
async fn ingested(engines: &Engines, doc: &Document) -> Document {
    let stop = stop_signal();
    let worker = tokio::spawn(engines.rag.clone().run_ingest_worker(stop.1));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let doc = loop {
        let now = engines
            .rag
            .get_document(&engines.ctx, &doc.id, None, false)
            .await
            .unwrap();
        if now.status != DocumentStatus::Pending && now.status != DocumentStatus::Processing {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {:?} after 30 s",
            now.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.0.send(());
    worker.await.unwrap();
    doc
}

/// A shutdown signal for the worker: send to stop it.
fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, impl Future<Output = ()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test]
async fn an_upload_is_chunked_embedded_and_searchable() {
    let engines = Engines::start(RuntimeConfig::default()).await;
    let text = "# Refunds\n\nRefunds are issued within 14 days of a return.\n\n# Shipping\n\nParcels ship on weekdays.";
    let doc = upload(&engines, "policy.md", text.as_bytes().to_vec()).await;
    assert_eq!(doc.status, DocumentStatus::Pending);

    let doc = ingested(&engines, &doc).await;
    assert_eq!(doc.status, DocumentStatus::Ready, "{:?}", doc.error_message);
    assert_eq!(doc.chunk_count, 2, "one chunk per section");
    let hits = engines
        .rag
        .search(
            &engines.ctx,
            SearchQuery {
                query: "when are refunds issued".into(),
                top_k: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits[0].record.document.id, doc.id);
    assert!(
        hits[0].record.content.contains("14 days"),
        "{:?}",
        hits[0].record.content
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_read_ends_in_error_and_is_not_searchable() {
    let engines = Engines::start(RuntimeConfig::default()).await;
    let doc = upload(
        &engines,
        "broken.pdf",
        b"%PDF-1.7 this is not really a PDF refunds".to_vec(),
    )
    .await;
    let doc = ingested(&engines, &doc).await;
    assert_eq!(doc.status, DocumentStatus::Error);
    assert!(doc.error_message.as_deref().is_some_and(|m| !m.is_empty()));
    assert_eq!(doc.chunk_count, 0);
    let hits = engines
        .rag
        .search(
            &engines.ctx,
            SearchQuery {
                query: "refunds".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    // A good file in the same project still goes through.
    let good = upload(&engines, "ok.md", b"# Hours\n\nOpen nine to five.".to_vec()).await;
    assert_eq!(ingested(&engines, &good).await.status, DocumentStatus::Ready);
}

/// Reads like the server's extractor, slowly, counting its reads.
struct SlowExtractor {
    reads: std::sync::atomic::AtomicUsize,
    takes: Duration,
}

impl kiln_core::rag::TextExtractor for SlowExtractor {
    fn extract(
        &self,
        kind: kiln_core::rag::DocumentKind,
        bytes: &[u8],
    ) -> Result<kiln_core::rag::Extracted, String> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.takes);
        kiln_core::rag::TextExtractor::extract(&kiln_extract::Extractor, kind, bytes)
    }
}

/// A worker reading a document for three times its lease keeps the claim
/// by renewing it: a second worker looking after the first lease would
/// have run out finds nothing to take, and the file is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_read_keeps_its_claim_by_renewing_it() {
    let slow = std::sync::Arc::new(SlowExtractor {
        reads: Default::default(),
        takes: Duration::from_secs(3),
    });
    let engines = Engines::start_with(
        RuntimeConfig::default(),
        Reading {
            extractor: slow.clone(),
            ingest_lease: Duration::from_secs(1),
        },
    )
    .await;
    let doc = upload(&engines, "slow.md", b"# Slow\n\nTortoises win races.".to_vec()).await;
    let first = stop_signal();
    let first_worker = tokio::spawn(engines.rag.clone().run_ingest_worker(first.1));
    while slow.reads.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Twice the lease later, a second worker looks for work at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = stop_signal();
    let second_worker = tokio::spawn(engines.rag.clone().run_ingest_worker(second.1));
    let done = ingested(&engines, &doc).await;
    assert_eq!(done.status, DocumentStatus::Ready, "{:?}", done.error_message);
    assert_eq!(
        slow.reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second worker took over a claim that was being renewed"
    );
    for (stop, worker) in [(first.0, first_worker), (second.0, second_worker)] {
        let _ = stop.send(());
        worker.await.unwrap();
    }
}
