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
    keys_are_stored_hashed_and_use_is_tracked,
    short_lived_tokens_act_as_their_key_within_their_scope
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

async fn short_lived_tokens_act_as_their_key_within_their_scope(app: &TestApp) {
    use kiln_sdk::api::CreateSession;
    let c = &app.client;
    let session = c.create_session(&CreateSession::default()).await.unwrap();
    let other_session = c.create_session(&CreateSession::default()).await.unwrap();

    // A project token works wherever the key does, as header or bearer.
    let issued = c.create_token(Some(60), None).await.unwrap();
    assert!(issued.token.starts_with("kiln_tok_"));
    let left = issued.expires_at - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(50) && left <= chrono::Duration::seconds(60),
        "{left}"
    );
    let project = app.client_with_key(&issued.token);
    assert_eq!(
        project.get_project().await.unwrap().id,
        c.get_project().await.unwrap().id
    );
    assert_eq!(project.list_sessions(None, None).await.unwrap().len(), 2);
    let bearer = app
        .http()
        .get(app.url("/api/sdk/project"))
        .bearer_auth(&issued.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    // A token cannot mint tokens.
    api_err(project.create_token(None, None).await, 401, "unauthorized");

    // A session token reaches its session only; the rest is 404.
    let scoped = c.create_token(None, Some(&session.id)).await.unwrap();
    let scoped = app.client_with_key(&scoped.token);
    assert_eq!(
        scoped.get_session(&session.id).await.unwrap().session.id,
        session.id
    );
    assert!(scoped.list_queue(&session.id).await.unwrap().is_empty());
    api_err(scoped.get_session(&other_session.id).await, 404, "NOT_FOUND");
    api_err(scoped.list_sessions(None, None).await, 404, "NOT_FOUND");
    api_err(scoped.get_project().await, 404, "NOT_FOUND");
    api_err(scoped.list_indexes().await, 404, "NOT_FOUND");

    // Bad requests.
    api_err(c.create_token(Some(0), None).await, 400, "validation_failed");
    api_err(c.create_token(Some(86_401), None).await, 400, "validation_failed");
    api_err(c.create_token(None, Some("missing")).await, 404, "NOT_FOUND");
    // Altered, foreign and expired tokens are 401.
    let mut altered = issued.token.clone();
    altered.pop();
    altered.push(if issued.token.ends_with('A') { 'B' } else { 'A' });
    api_err(
        app.client_with_key(&altered).get_project().await,
        401,
        "unauthorized",
    );
    api_err(
        app.client_with_key("kiln_tok_e30.AAAA").get_project().await,
        401,
        "unauthorized",
    );
    let short = c.create_token(Some(1), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = api_err(
        app.client_with_key(&short.token).get_project().await,
        401,
        "unauthorized",
    );
    assert!(expired.message.contains("expired"), "{expired:?}");
    // Another project's session cannot be named.
    let (_, other) = app.key_for("tokens-other").await;
    api_err(
        other.create_token(None, Some(&session.id)).await,
        404,
        "NOT_FOUND",
    );
}
