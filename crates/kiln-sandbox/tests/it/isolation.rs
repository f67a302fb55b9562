//! Isolation: a fresh context per block, no ambient I/O, and many blocks at
//! once.

use std::sync::Arc;

use kiln_core::sandbox::{CancelFlag, HostFunctions, Sandbox, SandboxError};
use kiln_sandbox::QuickJsSandbox;
use serde_json::json;

use crate::{FakeHost, Reply, check, limits, thrown};

#[tokio::test]
async fn each_block_gets_a_fresh_context() {
    let sandbox = QuickJsSandbox::new();
    let first = sandbox
        .run(
            "globalThis.leak = 1; var declared = 2; Array.prototype.extra = 3; 'set'",
            FakeHost::empty(),
            limits(),
            CancelFlag::new(),
        )
        .await;
    assert_eq!(first.result, Ok(json!("set")));
    let second = sandbox
        .run(
            "[typeof leak, typeof declared, [].extra]",
            FakeHost::empty(),
            limits(),
            CancelFlag::new(),
        )
        .await;
    assert_eq!(second.result, Ok(json!(["undefined", "undefined", null])));
}

#[tokio::test]
async fn there_is_no_ambient_io() {
    check(
        "[typeof fetch, typeof setTimeout, typeof process, typeof print, typeof std, typeof os, typeof module]",
        Ok(json!(vec!["undefined"; 7])),
    )
    .await;
    // `require` reaches only the skill modules the host gives.
    let (message, _) = thrown("require('fs')").await;
    assert_eq!(
        message,
        "Error: no skill module named `fs` (this agent has no skill modules)"
    );
    let (message, _) = thrown("await import('fs')").await;
    assert_eq!(message, "ReferenceError: could not load module 'fs'");
    check(
        "import fs from 'fs'",
        Err(SandboxError::Syntax(
            "Unexpected identifier 'fs' at block.js:1:8".to_owned(),
        )),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_blocks_run_at_once() {
    let sandbox = Arc::new(QuickJsSandbox::new());
    let host = FakeHost::new(&[("double", Reply::Echo)]);
    let runs = (0..32).map(|n| {
        let sandbox = sandbox.clone();
        let host: Arc<dyn HostFunctions> = host.clone();
        tokio::spawn(async move {
            let code = format!("globalThis.mine = {n}; const r = await double({n}); [mine, r.args[0]]");
            sandbox.run(&code, host, limits(), CancelFlag::new()).await
        })
    });
    let runs: Vec<_> = runs.collect();
    for (n, run) in runs.into_iter().enumerate() {
        let outcome = run.await.unwrap();
        assert_eq!(outcome.result, Ok(json!([n, n])));
    }
}

#[test]
fn the_sandbox_is_a_shareable_port() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<QuickJsSandbox>();
    let _port: Arc<dyn Sandbox> = Arc::new(QuickJsSandbox::default());
}
