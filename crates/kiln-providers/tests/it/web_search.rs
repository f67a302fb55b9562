//! `web_search()`'s engines against the fake provider's Brave and SearXNG
//! endpoints, and the guard on a project's own engine URL.

use kiln_core::runtime::web_search::{WebSearch, WebSearchEngine};
use kiln_providers::fake::FakeProvider;
use kiln_providers::web_search::HttpWebSearch;

#[tokio::test]
async fn brave_and_searxng_answers_become_hits_and_vault_urls_are_guarded() {
    let fake = FakeProvider::start().await;
    let brave = WebSearchEngine::Brave {
        api_key: "k".into(),
        base_url: Some(fake.base_url().to_owned()),
    };
    let open = HttpWebSearch::new(true);
    let hits = open.search(&brave, true, "rust", 2).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].title, "Result 1 for rust");
    assert_eq!(hits[1].snippet, "Snippet 2 about rust.");

    let searxng = WebSearchEngine::Searxng {
        base_url: fake.base_url().to_owned(),
    };
    let hits = open.search(&searxng, true, "rust", 1).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].url, "https://example.com/1");

    // A URL from a vault may not reach 127.0.0.1 unless the operator allows it;
    // the operator's own (the environment's) may.
    let guarded = HttpWebSearch::new(false);
    let refused = guarded.search(&brave, true, "rust", 2).await.unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert_eq!(guarded.search(&brave, false, "rust", 2).await.unwrap().len(), 2);

    // An engine's error status is reported, without the key.
    let keyless = WebSearchEngine::Brave {
        api_key: String::new(),
        base_url: Some(fake.base_url().to_owned()),
    };
    let failed = open.search(&keyless, false, "rust", 2).await.unwrap_err();
    assert!(failed.contains("401"), "{failed}");
}
