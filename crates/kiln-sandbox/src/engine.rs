//! One block from start to end, on its own thread: a fresh runtime and
//! context, the prelude, the model's code, and a small event loop that runs
//! promise jobs and settles host calls until the block's promise settles or a
//! limit stops it. Everything here is synchronous; the async side is in
//! `lib.rs`. A block that waits on a person may instead be suspended and
//! later run again by replay (`replay.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kiln_core::sandbox::{CancelFlag, HostFunctions, ModuleBody, SandboxError, SandboxLimits, SandboxModule};
use rquickjs::context::EvalOptions;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Exception, Function, IntoJs, Module, Object, Promise, Runtime, Value};
use serde_json::Value as Json;
use tokio::runtime::Handle;

use crate::console::Console;
use crate::cpu::CpuTurn;
use crate::host::{HostCalls, HostReply, ReplyChannel};
use crate::meter::{Meter, MeteredAllocator};
use crate::prelude;
use crate::replay::{Record, SUSPEND_AFTER, fresh_seed};

/// The least interpreter stack a block gets, whatever its limits say:
/// QuickJS reads a stack size of 0 as "unchecked", which would let deep
/// recursion overflow the thread's real stack.
const MIN_STACK_BYTES: usize = 64 * 1024;

/// Thread stack beyond the interpreter's limit, for the frames below the
/// limit's mark and for native code (ours and QuickJS's) called at the
/// deepest point.
const STACK_MARGIN_BYTES: usize = 1024 * 1024;

/// How often the event loop looks at the cancel flag and the clock while it
/// waits for host calls. A caller that stops waiting also sends a wake-up on
/// the reply channel, so this bounds only a `CancelFlag`'s delay; it is long
/// enough that many blocks paused on slow host calls (a person answering
/// `input()`) cost next to nothing.
const POLL: Duration = Duration::from_millis(50);

/// How many promise jobs run between two looks at the clock (the interrupt
/// handler also covers long jobs).
const JOBS_PER_CHECK: u32 = 1024;

/// Heap allowed past the limit once the block has failed, so its error can
/// still be described after it ran out of memory.
const REPORT_HEADROOM_BYTES: usize = 256 * 1024;

/// The file name in stack traces and syntax errors.
const FILE_NAME: &str = "block.js";

/// A block with a top-level `return` runs as the body of this function. The
/// prefix has no newline, so line numbers stay those of the code.
const WRAP_PREFIX: &str = "(async function () {";
const WRAP_SUFFIX: &str = "\n})()";

/// QuickJS's parse error for a `return` outside a function.
const RETURN_OUTSIDE_FUNCTION: &str = "return not in a function";

/// The reply when the code awaits a promise that nothing can settle.
const NEVER_SETTLES: &str = "Error: the code awaits a promise that can never settle \
     (no host call is running, and there are no timers)";

/// What a job runs after the prelude.
pub(crate) enum Program {
    /// The model's code.
    Block(String),
    /// Requires this module and lists its exports
    /// ([`kiln_core::sandbox::Sandbox::inspect_module`]).
    Inspect(String),
}

/// What the sandbox thread needs to run one block.
pub(crate) struct Job {
    pub(crate) program: Program,
    pub(crate) host: Arc<dyn HostFunctions>,
    pub(crate) limits: SandboxLimits,
    pub(crate) cancel: CancelFlag,
    /// Set when the caller stopped waiting (its future was dropped).
    pub(crate) abandoned: Arc<AtomicBool>,
    pub(crate) deadline: Option<Instant>,
    /// The caller's runtime, where host calls run.
    pub(crate) runtime: Handle,
    /// Where host calls reply, made by the caller so it can wake the event
    /// loop when it stops waiting, and read the replies itself while the
    /// block is suspended.
    pub(crate) replies: ReplyChannel,
    pub(crate) inbox: Receiver<HostReply>,
    /// On a run after a suspension, the record to replay.
    pub(crate) record: Option<Record>,
}

/// How a run of a block on a thread ended.
pub(crate) enum Ended {
    Finished(Finished),
    /// Suspended while it waits on a person: the job, with its record, to
    /// run again once one of the calls it waits on replies.
    Suspended(Box<Job>),
}

/// How a block ended, without its timing.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) result: Result<Json, SandboxError>,
    pub(crate) console: String,
    pub(crate) console_truncated: bool,
}

impl Finished {
    pub(crate) fn failed(error: SandboxError) -> Finished {
        Finished {
            result: Err(error),
            console: String::new(),
            console_truncated: false,
        }
    }
}

/// A failure of the sandbox itself, not of the code. The port has no variant
/// for it, so it reads like QuickJS's own internal errors.
pub(crate) fn internal(message: &str) -> SandboxError {
    SandboxError::Thrown {
        message: format!("InternalError: {message}"),
        stack: None,
    }
}

/// The stack the block's thread needs.
pub(crate) fn thread_stack_bytes(limits: &SandboxLimits) -> usize {
    interpreter_stack_bytes(limits).saturating_add(STACK_MARGIN_BYTES)
}

fn interpreter_stack_bytes(limits: &SandboxLimits) -> usize {
    limits.stack_bytes.max(MIN_STACK_BYTES)
}

/// How a block's code ended on this run.
enum BlockEnd {
    Done(Result<Json, SandboxError>),
    Suspended(Record),
}

/// Why the event loop stopped before the block ended.
enum Halt {
    Failed(SandboxError),
    /// The block waits on a person alone: suspend it.
    Suspend,
}

impl From<SandboxError> for Halt {
    fn from(error: SandboxError) -> Halt {
        Halt::Failed(error)
    }
}

/// Why the block was stopped from outside the code.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Timeout,
    Cancelled,
}

impl From<Stop> for SandboxError {
    fn from(stop: Stop) -> SandboxError {
        match stop {
            Stop::Timeout => SandboxError::Timeout,
            Stop::Cancelled => SandboxError::Cancelled,
        }
    }
}

/// The deadline and the cancel flags, shared by the interrupt handler and the
/// event loop. The first reason to stop sticks.
#[derive(Clone)]
struct Watch {
    /// The block's CPU turn (`cpu.rs`): held while its code runs.
    cpu: Rc<CpuTurn>,
    deadline: Option<Instant>,
    /// Tells how long the block has waited on a person (not counted).
    host: Arc<dyn HostFunctions>,
    cancel: CancelFlag,
    abandoned: Arc<AtomicBool>,
    stop: Rc<Cell<Option<Stop>>>,
}

impl Watch {
    /// The deadline moved by the time the host reports as paused.
    fn deadline(&self) -> Option<Instant> {
        self.deadline
            .and_then(|deadline| deadline.checked_add(self.host.paused()))
    }

    /// Looks at the flags and the clock.
    fn check(&self) -> Option<Stop> {
        if let Some(stop) = self.stop.get() {
            return Some(stop);
        }
        let stop = if self.cancel.is_cancelled() || self.abandoned.load(Ordering::Relaxed) {
            Stop::Cancelled
        } else if self.deadline().is_some_and(|deadline| Instant::now() >= deadline) {
            Stop::Timeout
        } else {
            return None;
        };
        self.stop.set(Some(stop));
        Some(stop)
    }

    /// Whether the block was already stopped.
    fn stopped(&self) -> Option<Stop> {
        self.stop.get()
    }
}

/// A fresh runtime and context, never used by any block. A pooled thread
/// makes the next one as soon as it is idle, so the block that comes along
/// does not wait for it; a block that finds none makes its own.
pub(crate) struct Fresh {
    runtime: Runtime,
    context: Context,
    meter: Rc<Meter>,
}

impl Fresh {
    pub(crate) fn new() -> Result<Fresh, SandboxError> {
        let meter = Meter::new();
        let runtime = Runtime::new_with_alloc(MeteredAllocator(meter.clone()))
            .map_err(|_| internal("cannot create a QuickJS runtime"))?;
        let context = Context::full(&runtime).map_err(|_| internal("cannot create a QuickJS context"))?;
        Ok(Fresh {
            runtime,
            context,
            meter,
        })
    }
}

/// Runs one block on the current thread, which must not be a Tokio worker:
/// this blocks until the block ends or is suspended. `send` gets the
/// outcome as soon as it is known; the runtime is torn down after that, off
/// the caller's path.
pub(crate) fn run(job: Job, fresh: Option<Fresh>, send: impl FnOnce(Ended)) {
    let (ended, teardown) = run_job(job, fresh);
    send(ended);
    drop(teardown);
}

/// A used runtime and context, to be freed (the context first).
struct Teardown {
    _context: Context,
    _runtime: Runtime,
}

fn run_job(mut job: Job, fresh: Option<Fresh>) -> (Ended, Option<Teardown>) {
    let reply = |finished| (Ended::Finished(finished), None);
    let record = job.record.take().unwrap_or_else(|| Record::new(fresh_seed()));
    let watch = Watch {
        cpu: Rc::new(CpuTurn::new(job.limits.cpu_group)),
        deadline: job.deadline,
        host: job.host.clone(),
        cancel: job.cancel.clone(),
        abandoned: job.abandoned.clone(),
        stop: Rc::new(Cell::new(None)),
    };
    if let Some(stop) = watch.check() {
        return reply(Finished::failed(stop.into()));
    }
    let fresh = match fresh.map_or_else(Fresh::new, Ok) {
        Ok(fresh) => fresh,
        Err(error) => return reply(Finished::failed(error)),
    };
    let Fresh {
        runtime,
        context,
        meter,
    } = fresh;
    // The limit starts now: until the runtime and context exist nothing is
    // refused, as QuickJS and rquickjs do not survive failing to create them.
    // Their 100-odd KiB count against it.
    meter.arm(job.limits.memory_bytes);
    runtime.set_max_stack_size(interpreter_stack_bytes(&job.limits));
    runtime.set_interrupt_handler(Some(Box::new({
        let watch = watch.clone();
        // A block that ran its slice while others wait for a turn yields.
        move || watch.check().is_some() || !watch.cpu.maybe_yield(|| watch.check().is_some())
    })));
    // Native code that allocates yields too (a stop found there is acted on
    // at the next interrupt check).
    meter.set_yield_point({
        let watch = watch.clone();
        move || {
            watch.cpu.maybe_yield(|| watch.check().is_some());
        }
    });
    let console = Rc::new(RefCell::new(Console::new(job.limits.output_bytes)));

    if !watch.cpu.acquire(|| watch.check().is_some()) {
        let stop = watch.stopped().unwrap_or(Stop::Cancelled);
        return reply(Finished::failed(stop.into()));
    }
    let end = context.with(|ctx| run_block(&ctx, &job, record, &watch, &meter, &console));
    watch.cpu.release();

    let ended = match end {
        BlockEnd::Done(result) => {
            let (console, console_truncated) = console.replace(Console::new(0)).into_parts();
            Ended::Finished(Finished {
                result,
                console,
                console_truncated,
            })
        }
        // Its console output is made again when it runs again.
        BlockEnd::Suspended(record) => {
            job.record = Some(record);
            Ended::Suspended(Box::new(job))
        }
    };
    let teardown = Teardown {
        _context: context,
        _runtime: runtime,
    };
    (ended, Some(teardown))
}

fn run_block<'js>(
    ctx: &Ctx<'js>,
    job: &Job,
    record: Record,
    watch: &Watch,
    meter: &Meter,
    console: &Rc<RefCell<Console>>,
) -> BlockEnd {
    let calls = Rc::new(HostCalls::new(
        job.host.clone(),
        job.runtime.clone(),
        job.replies.clone(),
        record,
    ));
    let _abort_calls = AbortOnDrop(&calls);
    match run_code(ctx, job, &calls, watch, meter, console) {
        Ok(json) => BlockEnd::Done(Ok(json)),
        Err(Halt::Failed(error)) => BlockEnd::Done(Err(error)),
        Err(Halt::Suspend) => BlockEnd::Suspended(calls.suspend()),
    }
}

fn run_code<'js>(
    ctx: &Ctx<'js>,
    job: &Job,
    calls: &Rc<HostCalls<'js>>,
    watch: &Watch,
    meter: &Meter,
    console: &Rc<RefCell<Console>>,
) -> Result<Json, Halt> {
    let replies = &job.inbox;

    let mut block = Block {
        ctx: ctx.clone(),
        watch,
        meter,
        describe: None,
    };
    let helpers = block.prelude(calls, console, job)?;
    let code = match &job.program {
        Program::Block(code) => code,
        Program::Inspect(name) => return Ok(block.inspect(&helpers, name)?),
    };
    let (promise, shape) = block.evaluate(code)?;
    let value = block.drive(&promise, calls, replies)?;
    let value = match shape {
        Shape::Script => value
            .into_object()
            .and_then(|object| object.get::<_, Value>("value").ok()),
        Shape::Function => Some(value),
    };
    let json = match value {
        Some(value) => block.to_json(&helpers.result_json, value)?,
        None => Json::Null,
    };
    block.finish_calls(calls, replies)?;
    Ok(json)
}

/// Stops the block's host calls and breaks the cycle through their
/// promises, on every way out of the block.
struct AbortOnDrop<'a, 'js>(&'a HostCalls<'js>);

impl Drop for AbortOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// How the code was run, which decides where its value is.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// As a script with top-level await: the promise resolves to
    /// `{ value }`, `value` being the completion value.
    Script,
    /// As the body of an async function: the promise resolves to what it
    /// returns.
    Function,
}

/// The prelude's helpers the engine calls.
struct Helpers<'js> {
    /// The completion value as JSON text.
    result_json: Function<'js>,
    /// A module's exports as JSON text.
    inspect_module: Function<'js>,
}

/// One block's context and what reads its outcome.
struct Block<'a, 'js> {
    ctx: Ctx<'js>,
    watch: &'a Watch,
    meter: &'a Meter,
    /// The prelude's `describe`, once it ran.
    describe: Option<Function<'js>>,
}

impl<'js> Block<'_, 'js> {
    /// Installs `console`, the host functions and `require`; returns the
    /// helpers the engine uses.
    fn prelude(
        &mut self,
        calls: &Rc<HostCalls<'js>>,
        console: &Rc<RefCell<Console>>,
        job: &Job,
    ) -> Result<Helpers<'js>, SandboxError> {
        let host_call = Function::new(self.ctx.clone(), {
            let calls = calls.clone();
            move |ctx: Ctx<'js>, name: String, args: String| calls.start(&ctx, name, &args)
        })
        .map_err(|error| self.failure(error))?;
        let console_write = Function::new(self.ctx.clone(), {
            let console = console.clone();
            move |line: String| console.borrow_mut().write(&line)
        })
        .map_err(|error| self.failure(error))?;
        let load_module = Function::new(self.ctx.clone(), {
            let host = job.host.clone();
            move |ctx: Ctx<'js>, name: String| load_module(&ctx, host.modules(), &name)
        })
        .map_err(|error| self.failure(error))?;
        let module_called = Function::new(self.ctx.clone(), {
            let calls = calls.clone();
            move |module: String, function: String| calls.note_module_call(&module, &function)
        })
        .map_err(|error| self.failure(error))?;
        let clock = Function::new(self.ctx.clone(), {
            let calls = calls.clone();
            move |performance: bool| calls.clock(performance)
        })
        .map_err(|error| self.failure(error))?;
        let seed = calls.seed();
        let bytecode = prelude::bytecode().map_err(|error| internal(&error))?;
        let setup = prelude::load(&self.ctx, bytecode).map_err(|error| self.failure(error))?;
        let helpers: Object = setup
            .call((
                host_call,
                console_write,
                job.host.names(),
                load_module,
                module_called,
                clock,
                // rquickjs calls with at most seven arguments.
                vec![
                    job.limits.output_bytes as f64,
                    f64::from(job.limits.host_calls_in_flight.max(1)),
                    f64::from((seed >> 32) as u32),
                    f64::from(seed as u32),
                    calls.origin(),
                ],
            ))
            .map_err(|error| self.failure(error))?;
        let result_json: Function = helpers.get("resultJson").map_err(|error| self.failure(error))?;
        let inspect_module: Function = helpers
            .get("inspectModule")
            .map_err(|error| self.failure(error))?;
        let describe: Function = helpers.get("describe").map_err(|error| self.failure(error))?;
        self.describe = Some(describe);
        Ok(Helpers {
            result_json,
            inspect_module,
        })
    }

    /// Requires the module `name` and lists its exports, as JSON
    /// (`[{ name, params }]`, `params` null for a value).
    fn inspect(&self, helpers: &Helpers<'js>, name: &str) -> Result<Json, SandboxError> {
        let json: String = helpers
            .inspect_module
            .call((name,))
            .map_err(|error| self.failure(error))?;
        serde_json::from_str(&json)
            .map_err(|error| internal(&format!("the exports cannot be read as JSON: {error}")))
    }

    /// Starts the code: as a script with top-level await, or, when it has a
    /// top-level `return`, as the body of an async function.
    fn evaluate(&self, code: &str) -> Result<(Promise<'js>, Shape), SandboxError> {
        match self
            .ctx
            .eval_with_options::<Promise, _>(code, eval_options(true, FILE_NAME))
        {
            Ok(promise) => return Ok((promise, Shape::Script)),
            Err(rquickjs::Error::Exception) => {}
            Err(error) => return Err(self.failure(error)),
        }
        let thrown = self.ctx.catch();
        match self.syntax_error(&thrown) {
            Some((message, _)) if message == RETURN_OUTSIDE_FUNCTION => {}
            Some((message, location)) => return Err(syntax(&message, location, 0)),
            None => return Err(self.classify(thrown)),
        }

        let wrapped = format!("{WRAP_PREFIX}{code}{WRAP_SUFFIX}");
        match self
            .ctx
            .eval_with_options::<Promise, _>(wrapped, eval_options(false, FILE_NAME))
        {
            Ok(promise) => Ok((promise, Shape::Function)),
            Err(rquickjs::Error::Exception) => {
                let thrown = self.ctx.catch();
                match self.syntax_error(&thrown) {
                    Some((message, location)) => Err(syntax(&message, location, WRAP_PREFIX.len())),
                    None => Err(self.classify(thrown)),
                }
            }
            Err(error) => Err(self.failure(error)),
        }
    }

    /// Runs jobs and settles host calls until `promise` settles.
    fn drive(
        &self,
        promise: &Promise<'js>,
        calls: &HostCalls<'js>,
        replies: &Receiver<HostReply>,
    ) -> Result<Value<'js>, Halt> {
        loop {
            self.run_jobs(calls)?;
            if promise.state() != PromiseState::Pending {
                return match promise.result::<Value>() {
                    Some(Ok(value)) => Ok(value),
                    Some(Err(error)) => Err(self.failure(error).into()),
                    None => Err(internal("a settled promise has no result").into()),
                };
            }
            if !calls.in_flight() {
                return Err(SandboxError::Thrown {
                    message: NEVER_SETTLES.to_owned(),
                    stack: None,
                }
                .into());
            }
            self.settle_next(calls, replies)?;
        }
    }

    /// Lets the host calls the code started but did not await finish (and
    /// their callbacks run), as Node lets pending I/O finish before it exits.
    fn finish_calls(&self, calls: &HostCalls<'js>, replies: &Receiver<HostReply>) -> Result<(), Halt> {
        loop {
            self.run_jobs(calls)?;
            if !calls.in_flight() {
                return Ok(());
            }
            self.settle_next(calls, replies)?;
        }
    }

    /// Runs promise jobs until none is left; fails the block if a replay
    /// found its code running differently.
    fn run_jobs(&self, calls: &HostCalls<'js>) -> Result<(), SandboxError> {
        let mut jobs: u32 = 0;
        while self.ctx.execute_pending_job() {
            jobs = jobs.wrapping_add(1);
            let stop = if jobs.is_multiple_of(JOBS_PER_CHECK) {
                self.watch.check()
            } else {
                self.watch.stopped()
            };
            if let Some(stop) = stop {
                return Err(stop.into());
            }
        }
        if let Some(stop) = self.watch.stopped() {
            return Err(stop.into());
        }
        match calls.diverged() {
            Some(message) => Err(SandboxError::Thrown { message, stack: None }),
            None => Ok(()),
        }
    }

    /// Settles the next host reply: on a replay the record's next one;
    /// otherwise it waits for one, looking at the clock and the cancel flag
    /// every few milliseconds, and suspends the block once it has waited
    /// [`SUSPEND_AFTER`] on a person alone.
    fn settle_next(&self, calls: &HostCalls<'js>, replies: &Receiver<HostReply>) -> Result<(), Halt> {
        if let Some(reply) = calls.next_replayed() {
            return calls
                .settle(reply, true)
                .map_err(|error| self.failure(error).into());
        }
        // No code runs while the block waits: another block may.
        self.watch.cpu.release();
        let suspend_at = calls.may_suspend().then(|| Instant::now() + SUSPEND_AFTER);
        loop {
            // Replies may come back to back, never leaving the wait below
            // to time out: look on every round.
            if let Some(stop) = self.watch.check() {
                return Err(SandboxError::from(stop).into());
            }
            let now = Instant::now();
            if suspend_at.is_some_and(|at| now >= at) {
                return Err(Halt::Suspend);
            }
            let mut wait = self
                .watch
                .deadline()
                .map_or(POLL, |deadline| deadline.saturating_duration_since(now).min(POLL));
            if let Some(at) = suspend_at {
                wait = wait.min(at.saturating_duration_since(now));
            }
            match replies.recv_timeout(wait) {
                Ok(reply) => {
                    if !self.watch.cpu.acquire(|| self.watch.check().is_some()) {
                        let stop = self.watch.stopped().unwrap_or(Stop::Cancelled);
                        return Err(SandboxError::from(stop).into());
                    }
                    return calls
                        .settle(reply, false)
                        .map_err(|error| self.failure(error).into());
                }
                Err(RecvTimeoutError::Timeout) => {}
                // `calls` holds a sender, so the channel stays open.
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(internal("the host call channel closed").into());
                }
            }
        }
    }

    /// The completion value as JSON, through the prelude's `resultJson`.
    fn to_json(&self, result_json: &Function<'js>, value: Value<'js>) -> Result<Json, SandboxError> {
        let json: Option<String> = result_json.call((value,)).map_err(|error| self.failure(error))?;
        match json {
            None => Ok(Json::Null),
            Some(json) => serde_json::from_str(&json)
                .map_err(|error| internal(&format!("the result cannot be read as JSON: {error}"))),
        }
    }

    /// The `(message, location)` of a SyntaxError, or `None` for any other
    /// value.
    fn syntax_error(&self, thrown: &Value<'js>) -> Option<(String, Option<String>)> {
        if self.watch.stopped().is_some() {
            return None;
        }
        let error = thrown.as_object()?;
        let name: String = error.get("name").ok()?;
        if name != "SyntaxError" {
            return None;
        }
        let message: String = error.get("message").ok()?;
        let stack: Option<String> = error.get("stack").ok().flatten();
        let location = stack.as_deref().and_then(|stack| {
            let line = stack.lines().next()?.trim();
            Some(line.strip_prefix("at ")?.to_owned())
        });
        Some((message, location))
    }

    /// Maps an error from the engine to how the block ended.
    fn failure(&self, error: rquickjs::Error) -> SandboxError {
        match error {
            rquickjs::Error::Exception => {
                let thrown = self.ctx.catch();
                self.classify(thrown)
            }
            _ if let Some(stop) = self.watch.stopped() => stop.into(),
            _ if self.meter.refused() => SandboxError::OutOfMemory,
            rquickjs::Error::Allocation => SandboxError::OutOfMemory,
            error => internal(&error.to_string()),
        }
    }

    /// Maps an uncaught exception to how the block ended.
    fn classify(&self, thrown: Value<'js>) -> SandboxError {
        if let Some(stop) = self.watch.stopped() {
            return stop.into();
        }
        // QuickJS throws `null` when it cannot even allocate its error.
        if thrown.is_null() && self.meter.refused() {
            return SandboxError::OutOfMemory;
        }
        self.meter.allow_past_limit(REPORT_HEADROOM_BYTES);
        let Some(describe) = &self.describe else {
            return if self.meter.refused() {
                SandboxError::OutOfMemory
            } else {
                internal("the sandbox failed before the code ran")
            };
        };
        let described = describe.call::<_, Object>((thrown,)).and_then(|described| {
            let message: String = described.get("message")?;
            let stack: Option<String> = described.get("stack")?;
            Ok((message, stack))
        });
        match described {
            Ok((message, stack)) => match message.as_str() {
                "InternalError: out of memory" => SandboxError::OutOfMemory,
                "RangeError: Maximum call stack size exceeded" | "InternalError: stack overflow" => {
                    SandboxError::StackOverflow
                }
                "InternalError: interrupted" => SandboxError::Timeout,
                _ => SandboxError::Thrown {
                    message,
                    stack: stack.map(|stack| stack.trim_end().to_owned()),
                },
            },
            Err(error) => {
                if matches!(error, rquickjs::Error::Exception) {
                    self.ctx.catch();
                }
                if let Some(stop) = self.watch.stopped() {
                    stop.into()
                } else if self.meter.refused() {
                    SandboxError::OutOfMemory
                } else {
                    internal(&format!("the thrown value cannot be described: {error}"))
                }
            }
        }
    }
}

/// `require(name)`'s native half: declares and evaluates the module, and
/// returns its namespace. Its top level runs here, synchronously (the
/// interrupt handler still bounds it); a module that awaits at its top level
/// cannot be required, as `require` returns at once.
fn load_module<'js>(ctx: &Ctx<'js>, modules: &[SandboxModule], name: &str) -> rquickjs::Result<Value<'js>> {
    let Some(module) = modules.iter().find(|m| m.name == name) else {
        let known: Vec<String> = modules.iter().map(|m| format!("`{}`", m.name)).collect();
        let known = if known.is_empty() {
            "this agent has no skill modules".to_owned()
        } else {
            format!("this agent's skill modules: {}", known.join(", "))
        };
        return Err(Exception::throw_message(
            ctx,
            &format!("no skill module named `{name}` ({known})"),
        ));
    };
    let source = match &module.body {
        ModuleBody::Source(source) => source,
        // The prelude makes a host function of each name.
        ModuleBody::Host(functions) => return functions.clone().into_js(ctx),
    };
    let declared = Module::declare(ctx.clone(), module.file.as_str(), source.as_str())?;
    let (evaluated, promise) = declared.eval()?;
    match promise.state() {
        PromiseState::Resolved => Ok(evaluated.namespace()?.into_value()),
        PromiseState::Rejected => match promise.result::<Value>() {
            Some(Err(error)) => Err(error),
            _ => Err(Exception::throw_internal(ctx, "a rejected module has no reason")),
        },
        PromiseState::Pending => Err(Exception::throw_message(
            ctx,
            &format!(
                "skill module `{name}` awaits at its top level; `require` returns at once, so await inside its functions instead"
            ),
        )),
    }
}

fn eval_options(top_level_await: bool, file_name: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    // Sloppy mode, like a script in Node; `"use strict"` still works.
    options.strict = false;
    options.promise = top_level_await;
    options.filename = Some(file_name.to_owned());
    options
}

/// A syntax error's message with its place, as `message at block.js:L:C`;
/// `shift` is the wrapper's length on line 1.
fn syntax(message: &str, location: Option<String>, shift: usize) -> SandboxError {
    let Some(location) = location else {
        return SandboxError::Syntax(message.to_owned());
    };
    let location = match location.rsplitn(3, ':').collect::<Vec<_>>()[..] {
        [column, "1", file] if shift > 0 => match column.parse::<usize>() {
            Ok(column) => format!("{file}:1:{}", column.saturating_sub(shift).max(1)),
            Err(_) => location.clone(),
        },
        _ => location.clone(),
    };
    SandboxError::Syntax(format!("{message} at {location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_their_place_without_the_wrapper() {
        assert_eq!(
            syntax("unexpected token", Some("block.js:1:25".to_owned()), 20),
            SandboxError::Syntax("unexpected token at block.js:1:5".to_owned())
        );
        assert_eq!(
            syntax("unexpected token", Some("block.js:3:7".to_owned()), 20),
            SandboxError::Syntax("unexpected token at block.js:3:7".to_owned())
        );
        assert_eq!(
            syntax("unexpected end of input", None, 0),
            SandboxError::Syntax("unexpected end of input".to_owned())
        );
    }
}
