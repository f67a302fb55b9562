//! Kiln's JavaScript sandbox: [`QuickJsSandbox`] implements `kiln-core`'s
//! [`Sandbox`] port with embedded QuickJS (QuickJS-NG through `rquickjs`,
//! vendored C, no download), so model-written code runs in process with
//! bounded memory, stack, time and output, and reaches nothing but the host
//! functions the caller injects.
//!
//! # Isolation
//!
//! Every block gets a fresh QuickJS runtime and context, which no other
//! block has used and which are dropped when it ends: a global set by one
//! block does not exist in the next, and nothing leaks between blocks or
//! sessions. The context has the standard built-ins (plus
//! QuickJS's `queueMicrotask`, `atob`/`btoa`, `performance.now`), and no
//! ambient I/O: no module loader (`import()` rejects), no `fetch`, no
//! timers (`setTimeout` is absent), no `print`. What the code may reach is
//! only:
//!
//! * the host functions of [`HostFunctions::names`]: `search` becomes a
//!   global, `data.get` a method of a global object `data`. Each is async:
//!   its arguments go to the host as one JSON array (BigInts as strings), and
//!   its promise resolves with the host's JSON reply or rejects with
//!   `Error(message)`. Calls may overlap (`Promise.all`);
//! * `console.log`/`info`/`warn`/`error`/`debug` (and `trace`, `dir`), which
//!   append one line per call to [`SandboxOutcome::console`]: strings as they
//!   are, other values Node-like (objects as JSON, errors as
//!   `TypeError: message`), joined by spaces;
//! * `require(name)`, over the modules of [`HostFunctions::modules`] only
//!   (an agent's skill modules): the module is declared and evaluated as an
//!   ES module the first time a block requires it, its top level running
//!   synchronously (one that awaits cannot be required), and `require`
//!   returns its exports, frozen, each exported function wrapped so that a
//!   call is noted to [`HostFunctions::module_called`] (at most
//!   [`kiln_core::sandbox::MAX_MODULE_CALL_NOTES`] per block). A module may
//!   `require` another; `import` finds nothing. [`Sandbox::inspect_module`]
//!   does the same in a fresh context without host functions and lists the
//!   exports, or says where the module failed.
//!
//! # The completion value
//!
//! The code runs as a script with top-level `await`. Its result is the
//! script's completion value, as in a REPL or `eval`: the value of the last
//! expression statement evaluated (`let x = 1` alone gives `undefined`).
//! When the code has a top-level `return` (which a script cannot have), it
//! runs instead as the body of an `async function`, and its result is what it
//! returns: `null` if it ends without returning. Either way the value is
//! converted with `JSON.stringify`: `undefined`, functions and symbols give
//! `null`, BigInts their decimal string, `NaN` and infinities `null`; a
//! cycle fails the block with `TypeError: circular reference`. The code runs
//! in sloppy mode, like a Node script.
//!
//! # Errors
//!
//! A parse error is [`SandboxError::Syntax`] with QuickJS's message and its
//! place, as in `unexpected token in expression: ';' at block.js:2:7`. An
//! uncaught throw is [`SandboxError::Thrown`]: an `Error` as `String(error)`
//! (`TypeError: not a function`) with its stack; a string as it is; any other
//! value as JSON. Failures of the sandbox itself, which the port has no
//! variant for, read as thrown `InternalError: ...`.
//!
//! # Limits, and how each is enforced
//!
//! * **Memory**: the runtime allocates through a metering allocator
//!   (`meter.rs`) that refuses allocations past `memory_bytes`, the runtime
//!   and context's own 100-odd KiB included; QuickJS then throws, and an
//!   uncaught out-of-memory error is [`SandboxError::OutOfMemory`]. The code
//!   may catch it and go on.
//! * **Stack**: QuickJS checks its stack use against `stack_bytes` (at least
//!   64 KiB) on every call; runaway recursion throws `RangeError: Maximum
//!   call stack size exceeded`, which uncaught is
//!   [`SandboxError::StackOverflow`]. The block's thread has that much stack
//!   plus 1 MiB, so the check always comes before the real end.
//! * **Time**: one deadline, `time` after [`Sandbox::run`] was called,
//!   covers everything. While JavaScript runs, QuickJS's interrupt handler
//!   (polled every few thousand instructions, also inside regular
//!   expressions) stops it with an uncatchable error; while the code awaits
//!   host calls, the event loop wakes every 5 ms. Past the deadline the block
//!   ends with [`SandboxError::Timeout`] and its running host calls are
//!   aborted.
//!   Time the host reports through [`HostFunctions::paused`] (a turn
//!   waiting for a person to answer `input()`) moves the deadline on.
//! * **CPU**: code runs only while its block holds one of the process's
//!   CPU turns, one per core (`cpu.rs`); a block gives its turn back while
//!   it waits for host calls, and after a 10 ms slice when others wait,
//!   the freed turn going to the [`SandboxLimits::cpu_group`] (tenant)
//!   that holds fewest. One tenant's spinning blocks cannot starve
//!   another's.
//! * **Cancel**: the same two checks read the [`CancelFlag`], giving
//!   [`SandboxError::Cancelled`] within milliseconds.
//! * **Output**: console lines are cut on a char boundary at `output_bytes`
//!   and [`SandboxOutcome::console_truncated`] is set; past that, console
//!   calls return at once, and a huge line is cut inside JavaScript before
//!   it is copied out, so output cannot grow the host's memory.
//!
//! The block ends when its promise has settled and the host calls it
//! started have finished, as Node waits for pending I/O before it exits: a
//! call the code did not await still completes (within the time limit). A
//! promise that can never settle (no job is queued and no host call is
//! running) fails the block at once with a thrown error saying so, rather
//! than at the deadline.
//!
//! # Threads
//!
//! JavaScript runs synchronously until it awaits, so a block must not run on
//! a Tokio worker: a 30-second loop would stall every task on that worker.
//! Each block runs on a sandbox thread (`threads.rs`) with the stack its
//! limit needs, which `spawn_blocking`'s pool cannot promise, and owns its
//! runtime there, so the runtime never crosses threads and needs no locks.
//! Idle threads are kept, each holding a runtime and context made while it
//! waited, so a block does not pay for them; no block ever sees a runtime
//! another block used. Host calls run as tasks on the caller's Tokio runtime,
//! where its clients and pools live, and send their replies back over a
//! channel. The caller awaits the outcome on a oneshot channel, with a
//! backstop 250 ms past the deadline (or a cancel) in case the engine is
//! stuck in native code the interrupt handler cannot reach, and dropping its
//! future stops the block. The runtime is torn down after the reply is
//! sent, off the caller's path. [`Sandbox::run`] must be called inside a
//! Tokio runtime with time enabled.
//!
//! # Unsafe code
//!
//! Two small modules allow it, each with its reason: `meter.rs` implements
//! rquickjs's `unsafe trait Allocator` by delegating to its own allocator,
//! and `prelude.rs` loads the prelude's bytecode, compiled in process, as
//! parsing it anew would cost more than the rest of a block.

mod console;
mod cpu;
mod engine;
mod host;
mod meter;
mod prelude;
mod replay;
mod threads;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kiln_core::sandbox::{
    CancelFlag, HostFunctions, ModuleError, ModuleExport, Sandbox, SandboxError, SandboxLimits,
    SandboxModule, SandboxOutcome,
};
use serde_json::Value as Json;
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};

use crate::engine::{Ended, Finished, Job, Program};
use crate::host::ReplyChannel;

/// How long past the deadline (or after a cancel) the caller waits for a
/// stuck engine before giving up on it.
const BACKSTOP_GRACE: Duration = Duration::from_millis(250);

/// How often a suspended block looks at its deadline, which moves on while
/// it waits on a person (replies and cancels wake it at once).
const SUSPENDED_LOOK: Duration = Duration::from_secs(30);

/// How often the caller looks at the cancel flag while it waits.
const BACKSTOP_TICK: Duration = Duration::from_millis(50);

/// Blocks suspended now: waiting on a person with neither a thread nor a
/// heap (see `replay.rs`).
static SUSPENDED: AtomicUsize = AtomicUsize::new(0);

/// Blocks run again by replay since the process started.
static REPLAYED: AtomicU64 = AtomicU64::new(0);

/// How many blocks wait on a person suspended, holding neither a thread nor
/// a QuickJS heap, at this moment (all sandboxes of the process).
pub fn suspended_blocks() -> usize {
    SUSPENDED.load(Ordering::Relaxed)
}

/// How many times a suspended block was run again, by replay, since the
/// process started.
pub fn replayed_blocks() -> u64 {
    REPLAYED.load(Ordering::Relaxed)
}

/// Counts a block as suspended while it lives.
struct SuspendedCount;

impl SuspendedCount {
    fn new() -> SuspendedCount {
        SUSPENDED.fetch_add(1, Ordering::Relaxed);
        SuspendedCount
    }
}

impl Drop for SuspendedCount {
    fn drop(&mut self) {
        SUSPENDED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The QuickJS sandbox: each [`Sandbox::run`] gets a fresh runtime on its
/// own thread, so it may be called from many tasks at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuickJsSandbox {
    _private: (),
}

impl QuickJsSandbox {
    pub fn new() -> QuickJsSandbox {
        QuickJsSandbox::default()
    }
}

#[async_trait]
impl Sandbox for QuickJsSandbox {
    async fn run(
        &self,
        code: &str,
        host: Arc<dyn HostFunctions>,
        limits: SandboxLimits,
        cancel: CancelFlag,
    ) -> SandboxOutcome {
        let started = Instant::now();
        let finished = run_program(Program::Block(code.to_owned()), host, limits, cancel, started).await;
        SandboxOutcome {
            result: finished.result,
            console: finished.console,
            console_truncated: finished.console_truncated,
            elapsed: started.elapsed(),
        }
    }

    async fn inspect_module(
        &self,
        modules: &[SandboxModule],
        name: &str,
        limits: SandboxLimits,
    ) -> Result<Vec<ModuleExport>, ModuleError> {
        let file = modules
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.file.clone())
            .unwrap_or_default();
        let host = Arc::new(ModulesOnly(modules.to_vec()));
        let finished = run_program(
            Program::Inspect(name.to_owned()),
            host,
            limits,
            CancelFlag::new(),
            Instant::now(),
        )
        .await;
        match finished.result {
            Ok(exports) => exports_of(exports),
            Err(error) => Err(module_error(error, &file)),
        }
    }
}

/// Runs `program` on a sandbox thread with `host`, within `limits` counted
/// from `started`.
async fn run_program(
    program: Program,
    host: Arc<dyn HostFunctions>,
    limits: SandboxLimits,
    cancel: CancelFlag,
    started: Instant,
) -> Finished {
    let deadline = started.checked_add(limits.time);
    let Ok(runtime) = Handle::try_current() else {
        return Finished::failed(engine::internal("the sandbox must run inside a Tokio runtime"));
    };
    let abandoned = Arc::new(AtomicBool::new(false));
    let (sender, inbox) = std::sync::mpsc::channel();
    let replies = ReplyChannel {
        sender,
        notify: Arc::new(Notify::new()),
    };
    let _abandon_on_drop = AbandonOnDrop(abandoned.clone(), replies.clone());
    let paused = host.clone();
    let mut job = Job {
        program,
        host,
        limits,
        cancel: cancel.clone(),
        abandoned,
        deadline,
        runtime,
        replies,
        inbox,
        record: None,
    };
    loop {
        match run_on_thread(job, &limits, deadline, paused.as_ref(), &cancel).await {
            Ended::Finished(finished) => return finished,
            Ended::Suspended(suspended) => {
                let counted = SuspendedCount::new();
                job = match wait_suspended(*suspended, deadline, paused.as_ref(), &cancel).await {
                    Ok(job) => job,
                    Err(finished) => return finished,
                };
                drop(counted);
                REPLAYED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Waits, without a thread, for a reply to one of the calls a suspended
/// block waits on; then the block is to run again, with the reply added to
/// its record. Ends it on a cancel or past its deadline (the time it waits
/// on a person does not count, as on its thread).
async fn wait_suspended(
    mut job: Job,
    deadline: Option<Instant>,
    host: &dyn HostFunctions,
    cancel: &CancelFlag,
) -> Result<Job, Finished> {
    loop {
        let notify = job.replies.notify.clone();
        let notified = notify.notified();
        let mut answered = false;
        while let Ok(reply) = job.inbox.try_recv() {
            let Some(record) = job.record.as_mut() else {
                return Err(Finished::failed(engine::internal(
                    "a suspended block has no record",
                )));
            };
            if record.running.remove(&reply.id).is_some() {
                record.add_answer(reply.id, reply.result);
                answered = true;
            }
        }
        if cancel.is_cancelled() || job.abandoned.load(Ordering::Relaxed) {
            return Err(Finished::failed(SandboxError::Cancelled));
        }
        // Waiting on a person moves the deadline on as it goes, so look
        // again now and then; a reply or a cancel wakes this at once.
        let left = deadline
            .and_then(|deadline| deadline.checked_add(host.paused()))
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(Finished::failed(SandboxError::Timeout));
        }
        if answered {
            return Ok(job);
        }
        let nap = left.map_or(SUSPENDED_LOOK, |left| left.min(SUSPENDED_LOOK));
        tokio::select! {
            () = notified => {}
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// The host of [`Sandbox::inspect_module`]: the modules, and no functions.
struct ModulesOnly(Vec<SandboxModule>);

#[async_trait]
impl HostFunctions for ModulesOnly {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    async fn call(&self, name: &str, _args: Json) -> Result<Json, String> {
        Err(format!("`{name}` is not available while a module is inspected"))
    }
    fn modules(&self) -> &[SandboxModule] {
        &self.0
    }
}

/// The prelude's `[{ name, params }]` as exports.
fn exports_of(json: Json) -> Result<Vec<ModuleExport>, ModuleError> {
    let unreadable = || ModuleError {
        error: engine::internal("the module's exports cannot be read"),
        line: None,
        column: None,
    };
    let Json::Array(items) = json else {
        return Err(unreadable());
    };
    items
        .into_iter()
        .map(|item| {
            let name = item.get("name").and_then(Json::as_str).ok_or_else(unreadable)?;
            let params = item.get("params").and_then(Json::as_array).map(|params| {
                params
                    .iter()
                    .filter_map(Json::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            Ok(ModuleExport {
                name: name.to_owned(),
                params,
            })
        })
        .collect()
}

/// How a module failed, with the place in `file` its stack names first. A
/// thrown `SyntaxError` is the module not parsing: it reads like a block's
/// syntax error, `message at file:line:column`.
fn module_error(error: SandboxError, file: &str) -> ModuleError {
    let SandboxError::Thrown { message, stack } = error else {
        return ModuleError {
            error,
            line: None,
            column: None,
        };
    };
    let place = stack.as_deref().and_then(|stack| place_in(stack, file));
    let (line, column) = place.map_or((None, None), |(line, column)| (Some(line), Some(column)));
    let error = match (message.strip_prefix("SyntaxError: "), place) {
        (Some(message), Some((line, column))) => {
            SandboxError::Syntax(format!("{message} at {file}:{line}:{column}"))
        }
        (Some(message), None) => SandboxError::Syntax(message.to_owned()),
        (None, _) => SandboxError::Thrown { message, stack },
    };
    ModuleError { error, line, column }
}

/// The first `file:line:column` of `file` in a QuickJS stack, whose frames
/// read `at name (file:line:column)` or `at file:line:column`.
fn place_in(stack: &str, file: &str) -> Option<(u32, u32)> {
    if file.is_empty() {
        return None;
    }
    let needle = format!("{file}:");
    stack.lines().find_map(|frame| {
        let start = frame.find(&needle)? + needle.len();
        let mut numbers = frame[start..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty());
        let line = numbers.next()?.parse().ok()?;
        let column = numbers.next()?.parse().ok()?;
        Some((line, column))
    })
}

/// Runs `job` on a sandbox thread and waits for it, giving up a little
/// after the deadline or a cancel if the thread does not answer.
async fn run_on_thread(
    job: Job,
    limits: &SandboxLimits,
    deadline: Option<Instant>,
    host: &dyn HostFunctions,
    cancel: &CancelFlag,
) -> Ended {
    let (done_tx, mut done) = oneshot::channel();
    let work = Box::new(move |fresh| {
        engine::run(job, fresh, |ended| {
            // The caller may have given up; then nobody reads this.
            let _ = done_tx.send(ended);
        });
    });
    let failed = |error| Ended::Finished(Finished::failed(error));
    if let Err(error) = threads::execute(engine::thread_stack_bytes(limits), work) {
        return failed(engine::internal(&format!(
            "cannot start a sandbox thread: {error}"
        )));
    }

    let mut cancelled_at = None;
    loop {
        tokio::select! {
            finished = &mut done => {
                return finished.unwrap_or_else(|_| {
                    failed(engine::internal("the sandbox thread panicked"))
                });
            }
            () = tokio::time::sleep(BACKSTOP_TICK) => {
                let now = Instant::now();
                if deadline
                    .and_then(|deadline| deadline.checked_add(BACKSTOP_GRACE + host.paused()))
                    .is_some_and(|backstop| now >= backstop)
                {
                    return failed(SandboxError::Timeout);
                }
                if cancel.is_cancelled() {
                    let cancelled_at = *cancelled_at.get_or_insert(now);
                    if now >= cancelled_at + BACKSTOP_GRACE {
                        return failed(SandboxError::Cancelled);
                    }
                }
            }
        }
    }
}

/// Tells the engine to stop when the caller's future is dropped.
struct AbandonOnDrop(Arc<AtomicBool>, ReplyChannel);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        // A block waiting on host calls sees the flag at once.
        self.1.send(host::HostReply::wake());
    }
}
