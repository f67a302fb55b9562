//! The time limit and cancellation, while JavaScript runs and while it
//! awaits host calls, and promises that can never settle.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kiln_core::sandbox::{CancelFlag, Sandbox, SandboxError, SandboxLimits};
use kiln_sandbox::QuickJsSandbox;
use serde_json::json;

use crate::{FakeHost, Reply, limits, run_with};

const TIME: Duration = Duration::from_millis(300);

/// How late a stopped block may end: a loaded CI machine has two cores.
const SLACK: Duration = Duration::from_millis(700);

fn short() -> SandboxLimits {
    SandboxLimits {
        time: TIME,
        ..limits()
    }
}

/// Runs `code` with a 300 ms limit and checks it timed out on time.
async fn check_timeout(code: &str, host: Arc<FakeHost>) {
    let outcome = run_with(code, host, short()).await;
    assert_eq!(outcome.result, Err(SandboxError::Timeout), "code: {code}");
    assert!(outcome.elapsed >= TIME, "{code}: {:?}", outcome.elapsed);
    assert!(outcome.elapsed < TIME + SLACK, "{code}: {:?}", outcome.elapsed);
}

#[tokio::test]
async fn an_endless_loop_times_out() {
    check_timeout("while (true) {}", FakeHost::empty()).await;
}

#[tokio::test]
async fn endless_work_in_jobs_and_regexps_times_out() {
    check_timeout("for (;;) await null", FakeHost::empty()).await;
    check_timeout(
        "(function f() { Promise.resolve().then(f) })(); await new Promise(() => {})",
        FakeHost::empty(),
    )
    .await;
    check_timeout("/(a+)+b/.test('a'.repeat(40))", FakeHost::empty()).await;
    check_timeout(
        "try { while (true) {} } catch (e) { 'caught' }",
        FakeHost::empty(),
    )
    .await;
}

#[tokio::test]
async fn a_loop_of_quick_host_calls_times_out() {
    check_timeout("for (;;) await tick()", FakeHost::new(&[("tick", Reply::Echo)])).await;
}

#[tokio::test]
async fn awaiting_a_host_call_that_never_returns_times_out() {
    let host = FakeHost::new(&[("hang", Reply::Never)]);
    check_timeout("await hang()", host.clone()).await;
    assert_aborted(&host).await;
}

/// Checks the host's one call was dropped unfinished rather than left
/// running: aborted tasks are dropped on the runtime's next turn.
pub(super) async fn assert_aborted(host: &FakeHost) {
    for _ in 0..100 {
        if host.dropped_unfinished.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.dropped_unfinished.load(Ordering::SeqCst), 1);
    assert_eq!(host.running.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn console_output_survives_a_timeout() {
    let outcome = run_with(
        "console.log('started'); while (true) {}",
        FakeHost::empty(),
        short(),
    )
    .await;
    assert_eq!(outcome.result, Err(SandboxError::Timeout));
    assert_eq!(outcome.console, "started");
}

/// Runs `code` with a 10 s limit, cancels it after 100 ms from another task,
/// and checks it stopped promptly.
async fn check_cancel(code: &str, host: Arc<FakeHost>) {
    let cancel = CancelFlag::new();
    let canceller = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        }
    });
    let limits = SandboxLimits {
        time: Duration::from_secs(10),
        ..limits()
    };
    let outcome = QuickJsSandbox::new().run(code, host, limits, cancel).await;
    canceller.await.unwrap();
    assert_eq!(outcome.result, Err(SandboxError::Cancelled), "code: {code}");
    assert!(
        outcome.elapsed >= Duration::from_millis(100),
        "{:?}",
        outcome.elapsed
    );
    assert!(
        outcome.elapsed < Duration::from_millis(100) + SLACK,
        "{:?}",
        outcome.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_running_loop() {
    check_cancel("let n = 0; while (true) n++", FakeHost::empty()).await;
}

#[tokio::test]
async fn cancelling_stops_a_block_awaiting_the_host() {
    let host = FakeHost::new(&[("hang", Reply::Never)]);
    check_cancel("await hang()", host.clone()).await;
    assert_aborted(&host).await;
}

#[tokio::test]
async fn a_cancelled_flag_stops_the_block_before_it_runs() {
    let cancel = CancelFlag::new();
    cancel.cancel();
    let outcome = QuickJsSandbox::new()
        .run("1 + 1", FakeHost::empty(), limits(), cancel)
        .await;
    assert_eq!(outcome.result, Err(SandboxError::Cancelled));
}

#[tokio::test]
async fn a_zero_time_limit_times_out_at_once() {
    let limits = SandboxLimits {
        time: Duration::ZERO,
        ..limits()
    };
    let outcome = run_with("1 + 1", FakeHost::empty(), limits).await;
    assert_eq!(outcome.result, Err(SandboxError::Timeout));
}

#[tokio::test]
async fn dropping_the_run_stops_the_block() {
    let host = FakeHost::new(&[("tick", Reply::Echo)]);
    let limits = SandboxLimits {
        time: Duration::from_secs(10),
        ..limits()
    };
    let run = run_with("for (;;) await tick()", host.clone(), limits);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), run)
            .await
            .is_err()
    );
    let calls = |host: &FakeHost| host.calls().len();
    let after_drop = calls(&host);
    assert!(after_drop > 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // At most the call in flight when the run was dropped comes after.
    assert!(
        calls(&host) <= after_drop + 1,
        "{after_drop} then {}",
        calls(&host)
    );
}

#[tokio::test]
async fn a_promise_that_can_never_settle_fails_at_once() {
    let outcome = run_with("await new Promise(() => {})", FakeHost::empty(), limits()).await;
    let Err(SandboxError::Thrown { message, .. }) = outcome.result else {
        panic!("expected a thrown error, got {:?}", outcome.result);
    };
    assert!(message.contains("can never settle"), "{message}");
    assert!(outcome.elapsed < Duration::from_secs(1), "{:?}", outcome.elapsed);
}

#[tokio::test]
async fn a_block_waits_for_a_slow_host_within_its_time() {
    let host = FakeHost::new(&[("slow", Reply::After(Duration::from_millis(100), json!("late")))]);
    let outcome = run_with("await slow()", host, short()).await;
    assert_eq!(outcome.result, Ok(json!("late")));
}

/// A host whose one call waits on a person: the wait is reported as paused
/// and does not count against the block's time limit.
struct PausingHost {
    wait: Duration,
    paused: std::sync::Mutex<Duration>,
}

#[async_trait::async_trait]
impl kiln_core::sandbox::HostFunctions for PausingHost {
    fn names(&self) -> Vec<String> {
        vec!["ask".to_owned()]
    }

    async fn call(&self, _name: &str, _args: serde_json::Value) -> Result<serde_json::Value, String> {
        tokio::time::sleep(self.wait).await;
        *self.paused.lock().unwrap() += self.wait;
        Ok(serde_json::json!("yes"))
    }

    fn paused(&self) -> Duration {
        // While waiting the whole wait counts as paused, as a turn's clock does.
        *self.paused.lock().unwrap() + self.wait
    }
}

#[tokio::test]
async fn time_spent_paused_on_a_person_does_not_count() {
    let limits = SandboxLimits {
        time: Duration::from_millis(300),
        ..limits()
    };
    let host = Arc::new(PausingHost {
        wait: Duration::from_millis(600),
        paused: Default::default(),
    });
    let outcome = QuickJsSandbox::new()
        .run("await ask()", host, limits, CancelFlag::new())
        .await;
    assert_eq!(outcome.result, Ok(serde_json::json!("yes")));
    // A loop still hits the limit.
    let host = Arc::new(PausingHost {
        wait: Duration::ZERO,
        paused: Default::default(),
    });
    let outcome = QuickJsSandbox::new()
        .run("while (true) {}", host, limits, CancelFlag::new())
        .await;
    assert_eq!(outcome.result, Err(SandboxError::Timeout));
}
