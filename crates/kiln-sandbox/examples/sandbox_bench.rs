//! Measures what a block costs beyond its own work: handing it to a sandbox
//! thread, a fresh runtime and context, the prelude, a trivial block, and
//! the reply. Blocks run back to back, and then paced 1 ms apart, as an
//! agent's blocks are: back to back, the thread is still tearing down the
//! last runtime and making the next when the block comes.
//!
//! Run with `cargo run --release -p kiln-sandbox --example sandbox_bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kiln_core::sandbox::{CancelFlag, HostFunctions, Sandbox, SandboxLimits};
use kiln_sandbox::QuickJsSandbox;
use serde_json::{Value, json};

const WARM_UP: usize = 200;
const ITERATIONS: usize = 2_000;

/// A host with no functions.
struct NoHost;

#[async_trait]
impl HostFunctions for NoHost {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn call(&self, name: &str, _args: Value) -> Result<Value, String> {
        Err(format!("no host function `{name}`"))
    }
}

/// The sorted times of `ITERATIONS` runs of `code`, `pause` apart.
async fn measure(sandbox: &QuickJsSandbox, code: &str, pause: Duration) -> Vec<Duration> {
    let host: Arc<dyn HostFunctions> = Arc::new(NoHost);
    let mut times = Vec::with_capacity(ITERATIONS);
    for i in 0..WARM_UP + ITERATIONS {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let started = Instant::now();
        let outcome = sandbox
            .run(code, host.clone(), SandboxLimits::default(), CancelFlag::new())
            .await;
        let took = started.elapsed();
        assert_eq!(outcome.result, Ok(json!(2)), "{code}");
        if i >= WARM_UP {
            times.push(took);
        }
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let sandbox = QuickJsSandbox::new();
    for (mode, pause) in [
        ("back to back", Duration::ZERO),
        ("1 ms apart", Duration::from_millis(1)),
    ] {
        for code in ["1 + 1", "return 1 + 1"] {
            let times = measure(&sandbox, code, pause).await;
            println!(
                "run({code:?}) x {ITERATIONS}, {mode}: p50 {:?}, p99 {:?}, max {:?}",
                percentile(&times, 0.50),
                percentile(&times, 0.99),
                times[times.len() - 1],
            );
        }
    }
}
