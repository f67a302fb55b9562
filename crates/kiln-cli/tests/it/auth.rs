//! API keys: 401 for missing, unknown and revoked keys; hashed at rest;
//! `last_used_at` tracked.

use std::time::{Duration, Instant};

use kiln_core::crypto::hash_api_key;
use std::sync::Arc;

use kiln_core::control::{ControlConfig, ControlPlane};
use kiln_core::usage::UsageLog;

use crate::backends;
use crate::harness::{TestApp, api_err};

backends!(
    bad_keys_get_401,
    revocation_applies_at_once_here_and_within_the_ttl_elsewhere,
    keys_are_stored_hashed_and_use_is_tracked
);

async fn bad_keys_get_401(app: &TestApp) {
    let no_key = app.http().get(app.url("/api/sdk/project")).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    let body: serde_json::Value = no_key.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["error"], "unauthorized");

    api_err(
        app.client_with_key("kiln_not-a-real-key").get_project().await,
        401,
        "unauthorized",
    );
    // The prefix alone means nothing: a key is looked up by exact match.
    api_err(
        app.client_with_key(&app.key[..20]).get_project().await,
        401,
        "unauthorized",
    );
    let err = app.client_with_key("").get_metrics().await.unwrap_err();
    assert!(err.is_unauthorized());
}

async fn revocation_applies_at_once_here_and_within_the_ttl_elsewhere(app: &TestApp) {
    // Revoked through this server: immediate.
    let (first_id, first) = app.key_for("default").await;
    first.get_project().await.unwrap();
    assert!(app.server.control.revoke_key(&first_id).await.unwrap());
    api_err(first.get_project().await, 401, "unauthorized");
    assert!(
        !app.server.control.revoke_key(&first_id).await.unwrap(),
        "second revoke is a no-op"
    );

    // Revoked by another process on the same database: within the cache TTL.
    let (second_id, second) = app.key_for("default").await;
    second.get_project().await.unwrap();
    let second_store = app.second_store().await;
    let usage = Arc::new(UsageLog::new(second_store.clone()));
    let other = ControlPlane::new(second_store, usage, ControlConfig::default());
    assert!(other.revoke_key(&second_id).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match second.get_project().await {
            Err(e) if e.is_unauthorized() => break,
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("revoked key still accepted after 5 s: {other:?}"),
        }
    }
    // The bootstrap key is unaffected.
    app.client.get_project().await.unwrap();
}

async fn keys_are_stored_hashed_and_use_is_tracked(app: &TestApp) {
    let keys = app.server.control.list_keys(None).await.unwrap();
    assert_eq!(keys.len(), 1);
    let stored = &keys[0].key;
    assert_eq!(stored.key_hash, hash_api_key(&app.key));
    assert_ne!(stored.key_hash, app.key);
    assert_eq!(stored.prefix, app.key[..12]);
    assert!(stored.prefix.len() < app.key.len());
    assert_eq!(stored.last_used_at, None, "not used yet");

    app.client.get_project().await.unwrap();
    let keys = app.server.control.list_keys(None).await.unwrap();
    let used = keys[0].key.last_used_at.expect("last_used_at set on first use");
    assert!((chrono::Utc::now() - used).num_seconds() < 60);
}
