//! The `Sandbox` port: run one block of model-written JavaScript with
//! bounded memory, time and output, and no ambient I/O. Everything the code
//! can reach (search, fetch, input, …) is a host function the caller
//! injects, so the sandbox knows nothing about agents.
//!
//! `kiln-sandbox` implements it with embedded QuickJS: a fresh runtime and
//! context per block, so nothing leaks from one block (or session) to the
//! next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

/// Bounds of one code block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Heap the block may allocate.
    pub memory_bytes: usize,
    /// Native stack the interpreter may use (bounds recursion).
    pub stack_bytes: usize,
    /// Wall-clock time for the whole block, host calls included.
    pub time: Duration,
    /// Captured `console` output kept; the rest is cut and flagged.
    pub output_bytes: usize,
    /// Host calls of the block running at once (at least 1); later calls
    /// wait in the block, their arguments inside its memory, until one
    /// ends, so `Promise.all` over thousands of calls runs this many at a
    /// time.
    pub host_calls_in_flight: u32,
    /// Whose CPU share the block draws on (the agent runtime: its
    /// project): blocks take turns on the cores fairly between groups.
    pub cpu_group: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 64 * 1024 * 1024,
            stack_bytes: 1024 * 1024,
            time: Duration::from_secs(30),
            output_bytes: 64 * 1024,
            host_calls_in_flight: 16,
            cpu_group: 0,
        }
    }
}

/// Stops a running block from outside (a cancelled turn). Read by polling
/// ([`CancelFlag::is_cancelled`]) where code runs, awaited
/// ([`CancelFlag::cancelled`]) where a block waits without a thread.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
}

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }
    /// Resolves once the flag is set.
    pub async fn cancelled(&self) {
        loop {
            // Registered before the look, so a cancel in between still wakes it.
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// A module a block may `require` by name: one of an agent's skill modules
/// (`skills/<name>.js`), an ES module whose exports `require(name)` returns,
/// or functions the host serves under that name (an MCP server's tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxModule {
    /// What `require` takes (`pricing`).
    pub name: String,
    /// The file name in stack traces and errors (`skills/pricing.js`).
    pub file: String,
    pub body: ModuleBody,
}

/// What a module is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleBody {
    /// An ES module's source, run in the sandbox.
    Source(String),
    /// Functions the host serves: `require(name).f(...args)` is the host
    /// call `<name>.f` (async, like every host function; no skill-call
    /// note: the host reports its own calls).
    Host(Vec<String>),
}

impl SandboxModule {
    /// An ES module.
    pub fn source(name: &str, file: &str, source: &str) -> SandboxModule {
        SandboxModule {
            name: name.to_owned(),
            file: file.to_owned(),
            body: ModuleBody::Source(source.to_owned()),
        }
    }

    /// Functions the host serves.
    pub fn host(name: &str, functions: Vec<String>) -> SandboxModule {
        SandboxModule {
            name: name.to_owned(),
            file: String::new(),
            body: ModuleBody::Host(functions),
        }
    }
}

/// How many calls of exported functions one block reports through
/// [`HostFunctions::module_called`]; later calls run without a note, so a
/// loop over a skill function does not flood the session with events.
pub const MAX_MODULE_CALL_NOTES: u32 = 100;

/// One export of a module, as [`Sandbox::inspect_module`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleExport {
    pub name: String,
    /// `Some(parameter names)` for a function; `None` for any other value.
    pub params: Option<Vec<String>>,
}

/// Why a module cannot be required, with the place in its own file when
/// the error has one there.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleError {
    /// [`SandboxError::Syntax`] when it does not parse; `Timeout` when its
    /// top level runs past the limit; `Thrown` when it throws.
    pub error: SandboxError,
    /// 1-based, in the module's file.
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// The functions a block may call, injected per run. A name with a dot
/// (`data.get`) is exposed as a method of a global object (`data`).
/// Every host function is async in JavaScript (returns a promise) and takes
/// its arguments as one JSON array.
#[async_trait]
pub trait HostFunctions: Send + Sync {
    /// The names to expose, e.g. `["search", "fetch", "data.get"]`.
    fn names(&self) -> Vec<String>;
    /// Calls `name` with the JS arguments (as a JSON array). `Err` rejects
    /// the promise with that message, which the code may catch.
    async fn call(&self, name: &str, args: Value) -> Result<Value, String>;
    /// Time spent waiting on a person (an `input()` answer) since the block
    /// started; the block's time limit does not count it.
    fn paused(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether a call of `name` may wait long on someone outside (a person
    /// answering `input()`). While a block waits on such calls alone, the
    /// sandbox may let go of its thread and heap, and when one is answered
    /// run the code again from the start, answering the calls it made
    /// before from a record instead of calling the host again; so a block
    /// waiting on a person costs only that record. Calls of other names
    /// keep the block running. No name by default.
    fn waits_on_a_person(&self, _name: &str) -> bool {
        false
    }
    /// The modules `require(name)` may return; none by default.
    fn modules(&self) -> &[SandboxModule] {
        &[]
    }
    /// The code called `function`, an export of `module` (an agent's skill
    /// call). Called on the sandbox thread, in the middle of the code, so it
    /// must not block: record the call and report it later (before the
    /// block's next host call runs, and when the block has ended).
    fn module_called(&self, _module: &str, _function: &str) {}
}

/// How a block ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SandboxError {
    /// The code does not parse.
    Syntax(String),
    /// The code threw (and did not catch) this.
    Thrown { message: String, stack: Option<String> },
    /// The time limit passed.
    Timeout,
    /// The memory limit was hit.
    OutOfMemory,
    /// Recursion exceeded the stack limit.
    StackOverflow,
    /// The caller cancelled the block.
    Cancelled,
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::Syntax(m) => write!(f, "SyntaxError: {m}"),
            SandboxError::Thrown { message, .. } => write!(f, "{message}"),
            SandboxError::Timeout => f.write_str("the code ran past its time limit"),
            SandboxError::OutOfMemory => f.write_str("the code ran out of memory"),
            SandboxError::StackOverflow => f.write_str("maximum call stack size exceeded"),
            SandboxError::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The result of one block: its completion value (the value of the last
/// expression statement, or what a top-level `return` in an async body
/// gives, as JSON; `undefined` is `null`), the console output, and timing.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxOutcome {
    pub result: Result<Value, SandboxError>,
    /// `console.log/info/warn/error` lines, joined by newlines.
    pub console: String,
    /// Output beyond `output_bytes` was dropped.
    pub console_truncated: bool,
    pub elapsed: Duration,
}

#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Runs `code` in a fresh context with `host`'s functions, within
    /// `limits`, until it settles, times out, or `cancel` is set. Never
    /// panics and never leaves anything running behind it.
    async fn run(
        &self,
        code: &str,
        host: Arc<dyn HostFunctions>,
        limits: SandboxLimits,
        cancel: CancelFlag,
    ) -> SandboxOutcome;

    /// Requires `name` among `modules` in a fresh context without host
    /// functions, within `limits`, and lists its exports: how a skill module
    /// is checked before it is stored. Its top level runs, so one that
    /// loops forever ends in `Timeout`.
    async fn inspect_module(
        &self,
        modules: &[SandboxModule],
        name: &str,
        limits: SandboxLimits,
    ) -> Result<Vec<ModuleExport>, ModuleError>;
}
