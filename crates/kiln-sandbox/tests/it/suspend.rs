//! A block waiting on a person gives up its thread and heap, and comes back
//! by replay when answered (`src/replay.rs`). The tests share the process's
//! suspension counters, so they take turns.

use std::sync::atomic::AtomicUsize;

use kiln_sandbox::{replayed_blocks, suspended_blocks};
use tokio::sync::Mutex as AsyncMutex;

use super::*;

/// One suspension test at a time: they read process-wide counters.
static TURN: AsyncMutex<()> = AsyncMutex::const_new(());

/// Longer than the engine waits before it suspends a block.
const ANSWER_AFTER: Duration = Duration::from_millis(300);

fn generous() -> SandboxLimits {
    SandboxLimits {
        time: Duration::from_secs(10),
        ..limits()
    }
}

/// Waits until `count` blocks are suspended.
async fn until_suspended(count: usize) {
    for _ in 0..1000 {
        if suspended_blocks() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} blocks suspended, not {count}", suspended_blocks());
}

#[tokio::test]
async fn a_block_waiting_on_a_person_is_suspended_and_replayed_to_the_same_state() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(
        &[
            ("lookup", Reply::Echo),
            ("ask", Reply::After(ANSWER_AFTER, json!("Ada"))),
        ],
        &["ask"],
        &[("greet", "export function hello(name) { return `hello ${name}`; }")],
    );
    let replayed = replayed_blocks();
    let code = r#"
        const found = await lookup("first");
        console.log("before", found.args[0]);
        const greeting = require("greet").hello("you");
        const random = Math.random();
        const date = Date.now();
        const perf = performance.now();
        const made = new Date();
        const answer = await ask("name?");
        console.log("after", answer);
        const again = await lookup(answer);
        return {
            answer,
            again: again.args[0],
            greeting,
            // Values read before the wait are those of the first run.
            random, date, perf, made: made.getTime(),
            waited: Date.now() - date,
            isDate: made instanceof Date && new Date(0).toISOString() === "1970-01-01T00:00:00.000Z",
        };
    "#;
    let run = tokio::spawn({
        let host = host.clone();
        async move { run_with(code, host, generous()).await }
    });
    until_suspended(1).await;
    // The values read before the wait, as the first run saw them.
    let outcome = run.await.unwrap();
    assert_eq!(suspended_blocks(), 0);
    assert_eq!(replayed_blocks(), replayed + 1);
    let value = outcome.result.expect("the block ends well");
    assert_eq!(value["answer"], json!("Ada"));
    assert_eq!(value["again"], json!("Ada"));
    assert_eq!(value["greeting"], json!("hello you"));
    assert_eq!(value["isDate"], json!(true));
    assert_eq!(
        value["made"], value["date"],
        "new Date() and Date.now() read the recorded clock"
    );
    let waited = value["waited"].as_f64().unwrap();
    assert!(
        waited >= 250.0,
        "Date.now() before the wait is the first run's: {waited} ms"
    );
    let random = value["random"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&random));
    // Every host call was made once: the replay answered the first two
    // from the record.
    let names: Vec<String> = host.calls().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["lookup", "ask", "lookup"]);
    // The skill call was noted once, not again by the replay.
    assert_eq!(host.module_calls(), [("greet".to_owned(), "hello".to_owned())]);
    // The output is the whole block's, each line once.
    assert_eq!(outcome.console, "before first\nafter Ada");
}

#[tokio::test]
async fn a_quick_answer_is_settled_without_a_suspension() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(
        &[("ask", Reply::After(Duration::from_millis(5), json!("now")))],
        &["ask"],
        &[],
    );
    let replayed = replayed_blocks();
    let outcome = run_with("await ask()", host, generous()).await;
    assert_eq!(outcome.result, Ok(json!("now")));
    assert_eq!(replayed_blocks(), replayed);
}

#[tokio::test]
async fn a_block_also_waiting_on_other_calls_keeps_its_thread() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(
        &[
            ("ask", Reply::After(ANSWER_AFTER, json!("yes"))),
            ("slow", Reply::After(ANSWER_AFTER * 2, json!("done"))),
        ],
        &["ask"],
        &[],
    );
    let replayed = replayed_blocks();
    let run = tokio::spawn({
        let host = host.clone();
        async move { run_with("await Promise.all([ask(), slow()])", host, generous()).await }
    });
    tokio::time::sleep(ANSWER_AFTER / 2).await;
    assert_eq!(
        suspended_blocks(),
        0,
        "a block waiting on `slow` is not suspended"
    );
    let outcome = run.await.unwrap();
    assert_eq!(outcome.result, Ok(json!(["yes", "done"])));
    assert_eq!(replayed_blocks(), replayed);
}

#[tokio::test]
async fn many_waits_suspend_and_replay_in_order() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(
        &[
            ("first", Reply::After(ANSWER_AFTER, json!(1))),
            ("second", Reply::After(ANSWER_AFTER * 2, json!(2))),
            ("echo", Reply::Echo),
        ],
        &["first", "second"],
        &[],
    );
    let replayed = replayed_blocks();
    // Two waits at once, answered at different times, then one more.
    let code = r#"
        const seen = [];
        const both = await Promise.all([
            first().then((v) => { seen.push("first"); return v; }),
            second().then((v) => { seen.push("second"); return v; }),
        ]);
        const third = await first();
        const last = await echo(seen.length);
        console.log(seen.join(","));
        [both, third, last.args[0], seen]
    "#;
    let outcome = run_with(code, host.clone(), generous()).await;
    assert_eq!(outcome.result, Ok(json!([[1, 2], 1, 2, ["first", "second"]])));
    assert_eq!(outcome.console, "first,second");
    // Suspended after each of the three waits began, replayed three times.
    assert_eq!(replayed_blocks(), replayed + 3);
    let names: Vec<String> = host.calls().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["first", "second", "first", "echo"]);
}

#[tokio::test]
async fn hundreds_of_suspended_blocks_hold_no_thread() {
    let _turn = TURN.lock().await;
    let answers = Arc::new(tokio::sync::Semaphore::new(0));
    let host = FakeHost::with_person(
        &[("ask", Reply::Until(answers.clone(), json!("ok")))],
        &["ask"],
        &[],
    );
    let runs: Vec<_> = (0..300)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move { run_with(&format!("[{i}, await ask()]"), host, generous()).await })
        })
        .collect();
    until_suspended(300).await;
    let threads = sandbox_threads();
    // The pool keeps a few idle threads; none is held by a waiting block.
    assert!(threads <= 64, "{threads} sandbox threads while 300 blocks wait");
    answers.add_permits(300);
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(run.await.unwrap().result, Ok(json!([i, "ok"])));
    }
    assert_eq!(suspended_blocks(), 0);
}

/// Threads of this process named `kiln-sandbox` (Linux; elsewhere 0).
fn sandbox_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == "kiln-sandbox")
        })
        .count()
}

#[tokio::test]
async fn cancelling_or_dropping_a_suspended_block_stops_its_wait() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(&[("ask", Reply::Never)], &["ask"], &[]);
    let cancel = CancelFlag::new();
    let run = tokio::spawn({
        let (host, cancel) = (host.clone(), cancel.clone());
        async move {
            QuickJsSandbox::new()
                .run("await ask()", host, generous(), cancel)
                .await
        }
    });
    until_suspended(1).await;
    cancel.cancel();
    let outcome = run.await.unwrap();
    assert_eq!(outcome.result, Err(SandboxError::Cancelled));
    assert!(outcome.elapsed < Duration::from_secs(2), "{:?}", outcome.elapsed);
    assert_eq!(suspended_blocks(), 0);
    super::limits::assert_aborted(&host).await;

    let host = FakeHost::with_person(&[("ask", Reply::Never)], &["ask"], &[]);
    let run = tokio::spawn({
        let host = host.clone();
        async move { run_with("await ask()", host, generous()).await }
    });
    until_suspended(1).await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    assert_eq!(suspended_blocks(), 0);
    super::limits::assert_aborted(&host).await;
}

#[tokio::test]
async fn a_suspended_block_still_times_out() {
    let _turn = TURN.lock().await;
    let host = FakeHost::with_person(&[("ask", Reply::Never)], &["ask"], &[]);
    let limits = SandboxLimits {
        time: Duration::from_millis(400),
        ..limits()
    };
    let outcome = run_with("await ask()", host.clone(), limits).await;
    assert_eq!(outcome.result, Err(SandboxError::Timeout));
    assert!(outcome.elapsed < Duration::from_secs(2), "{:?}", outcome.elapsed);
    super::limits::assert_aborted(&host).await;
}

/// A host whose first run offers `a` and later runs `b`: code that picks
/// between them runs differently on its replay.
struct ChangingHost {
    runs: AtomicUsize,
}

#[async_trait]
impl HostFunctions for ChangingHost {
    fn names(&self) -> Vec<String> {
        let first = self.runs.fetch_add(1, Ordering::SeqCst) == 0;
        vec![if first { "a" } else { "b" }.to_owned(), "ask".to_owned()]
    }

    async fn call(&self, name: &str, _args: Value) -> Result<Value, String> {
        if name == "ask" {
            tokio::time::sleep(ANSWER_AFTER).await;
        }
        Ok(json!(name))
    }

    fn waits_on_a_person(&self, name: &str) -> bool {
        name == "ask"
    }
}

#[tokio::test]
async fn a_replay_that_runs_differently_fails_the_block_clearly() {
    let _turn = TURN.lock().await;
    let host = Arc::new(ChangingHost {
        runs: AtomicUsize::new(0),
    });
    let code = r#"
        const got = typeof a === "function" ? await a() : await b();
        [got, await ask()]
    "#;
    let outcome = QuickJsSandbox::new()
        .run(code, host, generous(), CancelFlag::new())
        .await;
    match outcome.result {
        Err(SandboxError::Thrown { message, .. }) => {
            assert!(message.contains("ran differently"), "{message}");
            assert!(message.contains("input()"), "{message}");
        }
        other => panic!("expected the replay to fail, got {other:?}"),
    }
}
