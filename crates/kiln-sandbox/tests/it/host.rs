//! Host functions: globals and dotted names, JSON arguments and replies,
//! rejections, and calls in flight together.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kiln_core::sandbox::{SandboxError, SandboxLimits};
use serde_json::json;

use crate::{FakeHost, Reply, limits, run_with};

#[tokio::test]
async fn plain_and_dotted_names_become_globals_and_methods() {
    let host = FakeHost::new(&[
        ("search", Reply::Echo),
        ("data.get", Reply::Echo),
        ("data.put", Reply::Echo),
        ("a.b.c", Reply::Echo),
    ]);
    let code = r#"
        const found = await search("kiln", 3);
        const got = await data.get({ key: "k" });
        await data.put();
        const deep = await a.b.c(true);
        [found, got, deep, typeof data.put, data.get.name, typeof search]
    "#;
    let outcome = run_with(code, host.clone(), limits()).await;
    assert_eq!(
        outcome.result,
        Ok(json!([
            { "name": "search", "args": ["kiln", 3] },
            { "name": "data.get", "args": [{ "key": "k" }] },
            { "name": "a.b.c", "args": [true] },
            "function",
            "get",
            "function",
        ]))
    );
    assert_eq!(
        host.calls(),
        vec![
            ("search".to_owned(), json!(["kiln", 3])),
            ("data.get".to_owned(), json!([{ "key": "k" }])),
            ("data.put".to_owned(), json!([])),
            ("a.b.c".to_owned(), json!([true])),
        ]
    );
}

#[tokio::test]
async fn arguments_travel_as_json() {
    let host = FakeHost::new(&[("echo", Reply::Echo)]);
    let code = "(await echo(undefined, 1n, [undefined], { f() {} }, NaN)).args";
    let outcome = run_with(code, host, limits()).await;
    assert_eq!(outcome.result, Ok(json!([null, "1", [null], {}, null])));
}

#[tokio::test]
async fn host_functions_return_promises_of_parsed_json() {
    let host = FakeHost::new(&[(
        "data.get",
        Reply::Value(json!({ "items": ["a", "b"], "n": null })),
    )]);
    let code =
        "const p = data.get(); const reply = await p; [p instanceof Promise, reply.items.length, reply.n]";
    let outcome = run_with(code, host, limits()).await;
    assert_eq!(outcome.result, Ok(json!([true, 2, null])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_concurrently_under_promise_all() {
    let delay = Duration::from_millis(300);
    let host = FakeHost::new(&[
        ("slow", Reply::After(delay, json!("slow"))),
        ("slower", Reply::After(delay, json!("slower"))),
    ]);
    let code = "await Promise.all([slow(1), slower(2), slow(3)])";
    let outcome = run_with(code, host.clone(), limits()).await;
    assert_eq!(outcome.result, Ok(json!(["slow", "slower", "slow"])));
    assert_eq!(host.most_running.load(Ordering::SeqCst), 3);
}

/// `Promise.all` over many calls runs `host_calls_in_flight` at a time: the
/// rest wait in the block and each takes the slot of a call that ended,
/// rejected ones included, whatever the code did to the prototypes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_in_flight_bound_wait_their_turn() {
    let host = FakeHost::new(&[
        ("slow", Reply::After(Duration::from_millis(5), json!("ok"))),
        ("broken", Reply::Fail("no")),
    ]);
    let code = r#"
        Object.defineProperty(Object.prototype, "next", { set() { throw new Error("tampered") } });
        Array.prototype.push = () => { throw new Error("tampered") };
        const failed = await Promise.all(
            Array.from({ length: 20 }, () => broken().then(() => "resolved", (e) => e.message)),
        );
        const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => slow(i)));
        [failed.filter((m) => m === "no").length, replies.length, replies.every((r) => r === "ok")]
    "#;
    let bounded = SandboxLimits {
        host_calls_in_flight: 4,
        ..limits()
    };
    let outcome = run_with(code, host.clone(), bounded).await;
    assert_eq!(outcome.result, Ok(json!([20, 200, true])));
    assert_eq!(host.calls().len(), 220);
    assert_eq!(host.most_running.load(Ordering::SeqCst), 4);
    assert_eq!(host.finished.load(Ordering::SeqCst), 220);
}

#[tokio::test]
async fn a_rejected_call_can_be_caught() {
    let host = FakeHost::new(&[("fetch", Reply::Fail("HTTP 404 for `https://example.com`"))]);
    let code = r#"
        try {
            await fetch("https://example.com");
            "not reached"
        } catch (e) {
            [e instanceof Error, e.message]
        }
    "#;
    let outcome = run_with(code, host, limits()).await;
    assert_eq!(
        outcome.result,
        Ok(json!([true, "HTTP 404 for `https://example.com`"]))
    );
}

#[tokio::test]
async fn an_uncaught_rejection_fails_the_block() {
    let host = FakeHost::new(&[("fetch", Reply::Fail("connection refused"))]);
    let outcome = run_with("await fetch('x')", host, limits()).await;
    let Err(SandboxError::Thrown { message, stack }) = outcome.result else {
        panic!("expected a thrown error, got {:?}", outcome.result);
    };
    assert_eq!(message, "Error: connection refused");
    assert!(stack.is_some());
}

#[tokio::test]
async fn elapsed_includes_time_spent_in_host_calls() {
    let delay = Duration::from_millis(100);
    let host = FakeHost::new(&[("slow", Reply::After(delay, json!(1)))]);
    let outcome = run_with("await slow()", host, limits()).await;
    assert_eq!(outcome.result, Ok(json!(1)));
    assert!(outcome.elapsed >= delay, "{:?}", outcome.elapsed);
}

#[tokio::test]
async fn calls_not_awaited_finish_before_the_block_ends() {
    let delay = Duration::from_millis(100);
    let host = FakeHost::new(&[("data.put", Reply::After(delay, json!("stored")))]);
    let code = "data.put({ k: 1 }).then((reply) => console.log(reply)); 'returned'";
    let outcome = run_with(code, host.clone(), limits()).await;
    assert_eq!(outcome.result, Ok(json!("returned")));
    assert_eq!(outcome.console, "stored");
    assert_eq!(host.finished.load(Ordering::SeqCst), 1);
    assert!(outcome.elapsed >= delay, "{:?}", outcome.elapsed);
}
