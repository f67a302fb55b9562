//! The integration tests of `kiln-sandbox`, one binary for link time, with
//! the fake host and the helpers every area shares.

mod completion;
mod console;
mod errors;
mod host;
mod isolation;
mod limits;
mod modules;
mod suspend;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::sandbox::{
    CancelFlag, HostFunctions, Sandbox, SandboxError, SandboxLimits, SandboxModule, SandboxOutcome,
};
use kiln_sandbox::QuickJsSandbox;
use serde_json::{Value, json};

/// Limits small enough that failing tests fail fast.
fn limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 16 * 1024 * 1024,
        stack_bytes: 256 * 1024,
        time: Duration::from_secs(5),
        output_bytes: 4 * 1024,
        host_calls_in_flight: 16,
        cpu_group: 0,
    }
}

/// What a fake host function does when called.
#[derive(Debug, Clone)]
enum Reply {
    /// Resolves with `{ "name": ..., "args": [...] }`.
    Echo,
    /// Resolves with this value.
    Value(Value),
    /// Rejects with this message.
    Fail(&'static str),
    /// Resolves with this value after a delay.
    After(Duration, Value),
    /// Never resolves.
    Never,
    /// Resolves with this value once it gets one of the semaphore's permits.
    Until(Arc<tokio::sync::Semaphore>, Value),
}

/// A host whose functions reply as scripted, and which records its calls.
#[derive(Debug, Default)]
struct FakeHost {
    replies: HashMap<String, Reply>,
    calls: Mutex<Vec<(String, Value)>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    finished: AtomicUsize,
    dropped_unfinished: AtomicUsize,
    modules: Vec<SandboxModule>,
    module_calls: Mutex<Vec<(String, String)>>,
    /// Functions that wait on a person (`input()`).
    person: Vec<String>,
}

impl FakeHost {
    fn new(replies: &[(&str, Reply)]) -> Arc<FakeHost> {
        Arc::new(FakeHost {
            replies: replies
                .iter()
                .map(|(name, reply)| ((*name).to_owned(), reply.clone()))
                .collect(),
            ..FakeHost::default()
        })
    }

    fn empty() -> Arc<FakeHost> {
        FakeHost::new(&[])
    }

    /// A host with these functions and `(name, source)` skill modules.
    fn with_modules(replies: &[(&str, Reply)], modules: &[(&str, &str)]) -> Arc<FakeHost> {
        let mut host = Arc::into_inner(FakeHost::new(replies)).unwrap();
        host.modules = modules
            .iter()
            .map(|(name, source)| SandboxModule::source(name, &format!("skills/{name}.js"), source))
            .collect();
        Arc::new(host)
    }

    /// A host with these functions, of which `person` wait on a person.
    fn with_person(replies: &[(&str, Reply)], person: &[&str], modules: &[(&str, &str)]) -> Arc<FakeHost> {
        let mut host = Arc::into_inner(FakeHost::with_modules(replies, modules)).unwrap();
        host.person = person.iter().map(|name| (*name).to_owned()).collect();
        Arc::new(host)
    }

    fn module_calls(&self) -> Vec<(String, String)> {
        self.module_calls.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

/// Counts a call as running until it is dropped, finished or not.
struct Running<'a> {
    host: &'a FakeHost,
    finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.host.running.fetch_sub(1, Ordering::SeqCst);
        let counter = if self.finished {
            &self.host.finished
        } else {
            &self.host.dropped_unfinished
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl HostFunctions for FakeHost {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.replies.keys().cloned().collect();
        names.sort();
        names
    }

    async fn call(&self, name: &str, args: Value) -> Result<Value, String> {
        self.calls.lock().unwrap().push((name.to_owned(), args.clone()));
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        let mut guard = Running {
            host: self,
            finished: false,
        };
        let reply = match self.replies[name].clone() {
            Reply::Echo => Ok(json!({ "name": name, "args": args })),
            Reply::Value(value) => Ok(value),
            Reply::Fail(message) => Err(message.to_owned()),
            Reply::After(delay, value) => {
                tokio::time::sleep(delay).await;
                Ok(value)
            }
            Reply::Never => std::future::pending().await,
            Reply::Until(gate, value) => {
                gate.acquire().await.map_err(|error| error.to_string())?.forget();
                Ok(value)
            }
        };
        guard.finished = true;
        reply
    }

    fn modules(&self) -> &[SandboxModule] {
        &self.modules
    }

    fn waits_on_a_person(&self, name: &str) -> bool {
        self.person.iter().any(|person| person == name)
    }

    fn module_called(&self, module: &str, function: &str) {
        self.module_calls
            .lock()
            .unwrap()
            .push((module.to_owned(), function.to_owned()));
    }
}

async fn run_with(code: &str, host: Arc<FakeHost>, limits: SandboxLimits) -> SandboxOutcome {
    QuickJsSandbox::new()
        .run(code, host, limits, CancelFlag::new())
        .await
}

async fn run(code: &str) -> SandboxOutcome {
    run_with(code, FakeHost::empty(), limits()).await
}

/// Runs `code` with no host and checks its result.
async fn check(code: &str, expected: Result<Value, SandboxError>) {
    let outcome = run(code).await;
    assert_eq!(outcome.result, expected, "code: {code}");
}

/// Runs `code` with no host and returns what it threw.
async fn thrown(code: &str) -> (String, Option<String>) {
    match run(code).await.result {
        Err(SandboxError::Thrown { message, stack }) => (message, stack),
        other => panic!("`{code}` did not throw: {other:?}"),
    }
}
