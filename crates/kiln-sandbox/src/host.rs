//! Host calls made by JavaScript: each runs as a task on the caller's Tokio
//! runtime (where the host's clients and pools live), and its reply comes
//! back to the sandbox thread over a channel, where it settles the call's
//! promise. The JavaScript side of a call is in `prelude.js`.
//!
//! Everything that comes into the block from outside passes here (replies,
//! clock readings, the random seed), so this is also where a block's
//! [`Record`] is kept and, when the block runs again after a suspension,
//! replayed (`replay.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_core::sandbox::{HostFunctions, MAX_MODULE_CALL_NOTES};
use rquickjs::{Ctx, Function, Promise};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::replay::{Cursor, Record};

/// A finished host call, sent to the sandbox thread: its JSON text (encoded
/// on the host's side), or the rejection's message.
#[derive(Debug)]
pub(crate) struct HostReply {
    pub(crate) id: u64,
    pub(crate) result: Result<String, String>,
}

impl HostReply {
    /// Settles nothing; makes the waiting event loop look at its flags.
    pub(crate) fn wake() -> HostReply {
        HostReply {
            id: u64::MAX,
            result: Ok(String::new()),
        }
    }
}

/// Where host calls' replies go: the channel the sandbox thread reads, and
/// a notice for the caller's task, which reads the channel itself while
/// the block is suspended.
#[derive(Clone)]
pub(crate) struct ReplyChannel {
    pub(crate) sender: Sender<HostReply>,
    pub(crate) notify: Arc<Notify>,
}

impl ReplyChannel {
    pub(crate) fn send(&self, reply: HostReply) {
        // The block may have ended already; then the reply is moot.
        let _ = self.sender.send(reply);
        self.notify.notify_one();
    }
}

/// A host call whose promise is pending.
struct Pending<'js> {
    name: String,
    resolve: Function<'js>,
    reject: Function<'js>,
    /// The call's task; `None` for a call a replay answers from the record.
    task: Option<AbortHandle>,
}

/// Why a replay cannot go on: the code did not run as it did before.
const DIVERGED: &str = "the code ran differently when it was run again after waiting for input() \
     (code that waits on a person is run again from the start when the answer comes, with the \
     earlier calls answered from a record; it must make the same calls in the same order)";

/// The host calls of one block.
///
/// `pending` holds JavaScript functions, and this value is itself owned by a
/// JavaScript function (the native `hostCall`): a cycle the garbage
/// collector cannot see. [`HostCalls::abort_all`] breaks it and must run
/// before the context is freed.
pub(crate) struct HostCalls<'js> {
    host: Arc<dyn HostFunctions>,
    runtime: Handle,
    replies: ReplyChannel,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending<'js>>>,
    notes: Cell<u32>,
    /// What came in so far; on a replay, also what is still to be replayed.
    record: RefCell<Record>,
    /// How far a replay has come through `record`.
    cursor: RefCell<Cursor>,
    /// Set when a replay found the code running differently.
    diverged: Cell<bool>,
}

impl<'js> HostCalls<'js> {
    /// The calls of a block starting afresh (`record` new) or running again
    /// after a suspension (`record` as it was then).
    pub(crate) fn new(
        host: Arc<dyn HostFunctions>,
        runtime: Handle,
        replies: ReplyChannel,
        record: Record,
    ) -> HostCalls<'js> {
        HostCalls {
            host,
            runtime,
            replies,
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            notes: Cell::new(0),
            cursor: RefCell::new(Cursor::replaying(&record)),
            record: RefCell::new(record),
            diverged: Cell::new(false),
        }
    }

    /// `Math.random`'s seed.
    pub(crate) fn seed(&self) -> u64 {
        self.record.borrow().seed
    }

    /// `performance.timeOrigin`: when the block first started.
    pub(crate) fn origin(&self) -> f64 {
        self.record.borrow().origin
    }

    /// A clock reading: `Date.now()` (`performance == false`) or
    /// `performance.now()`, as recorded on a replay.
    pub(crate) fn clock(&self, performance: bool) -> f64 {
        let mut cursor = self.cursor.borrow_mut();
        let mut record = self.record.borrow_mut();
        if let Some(reading) = record.readings.get(cursor.readings) {
            cursor.readings += 1;
            return *reading;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |elapsed| elapsed.as_secs_f64() * 1000.0);
        let reading = if performance {
            now - record.origin
        } else {
            now.floor()
        };
        record.add_reading(reading);
        cursor.readings = record.readings.len();
        reading
    }

    /// Whether a replay found the code running differently.
    pub(crate) fn diverged(&self) -> Option<String> {
        self.diverged.get().then(|| DIVERGED.to_owned())
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Starts `name` with the JSON array `args` and returns its promise,
    /// which resolves with the reply's JSON text or rejects with its message.
    pub(crate) fn start(&self, ctx: &Ctx<'js>, name: String, args: &str) -> rquickjs::Result<Promise<'js>> {
        let (promise, resolve, reject) = ctx.promise()?;
        let args: serde_json::Value = match serde_json::from_str(args) {
            Ok(args) => args,
            Err(error) => {
                reject.call::<_, ()>((format!("the arguments of `{name}` are not JSON: {error}"),))?;
                return Ok(promise);
            }
        };
        let id = self.next_id();
        let task = if id < self.cursor.borrow().calls {
            // Made before the block was suspended: its reply is in the
            // record, or (a call still waiting) comes from its task.
            let mut record = self.record.borrow_mut();
            if record.calls.get(id as usize) != Some(&name) {
                self.diverged.set(true);
                drop(record);
                reject.call::<_, ()>((DIVERGED,))?;
                return Ok(promise);
            }
            record.running.remove(&id)
        } else {
            Some(self.spawn(id, name.clone(), args))
        };
        self.pending.borrow_mut().insert(
            id,
            Pending {
                name,
                resolve,
                reject,
                task,
            },
        );
        Ok(promise)
    }

    /// Starts call `id` on the host as a task that sends its reply.
    fn spawn(&self, id: u64, name: String, args: serde_json::Value) -> AbortHandle {
        self.record.borrow_mut().add_call(&name);
        self.cursor.borrow_mut().calls = id + 1;
        let host = self.host.clone();
        let mut reply = ReplyOnDrop {
            id,
            name: name.clone(),
            replies: Some(self.replies.clone()),
        };
        self.runtime
            .spawn(async move {
                let result = host.call(&name, args).await;
                reply.send(result.map(|json| json.to_string()));
            })
            .abort_handle()
    }

    /// Tells the host that the code called `function` of skill module
    /// `module`, up to [`MAX_MODULE_CALL_NOTES`] times per block.
    pub(crate) fn note_module_call(&self, module: &str, function: &str) {
        let made = self.notes.get();
        if made >= MAX_MODULE_CALL_NOTES {
            return;
        }
        self.notes.set(made + 1);
        // A replay does not tell the host again.
        if made >= self.cursor.borrow().notes {
            self.host.module_called(module, function);
        }
    }

    /// Whether a call is still running, so that a pending promise may yet
    /// settle.
    pub(crate) fn in_flight(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// The next reply a replay settles from the record, if it has one left.
    pub(crate) fn next_replayed(&self) -> Option<HostReply> {
        let mut cursor = self.cursor.borrow_mut();
        let record = self.record.borrow();
        let (id, result) = record.settled.get(cursor.settled)?;
        cursor.settled += 1;
        Some(HostReply {
            id: *id,
            result: result.clone(),
        })
    }

    /// Settles the promise of a finished call, recording the reply (unless
    /// it is `replayed` from the record). Queues jobs; runs none.
    pub(crate) fn settle(&self, reply: HostReply, replayed: bool) -> rquickjs::Result<()> {
        let Some(pending) = self.pending.borrow_mut().remove(&reply.id) else {
            if replayed {
                // The record settles a call the code has not made again.
                self.diverged.set(true);
            }
            return Ok(());
        };
        if !replayed {
            self.record.borrow_mut().add_settled(reply.id, &reply.result);
            self.cursor.borrow_mut().settled = self.record.borrow().settled.len();
        }
        match reply.result {
            Ok(json) => pending.resolve.call((json,)),
            Err(message) => pending.reject.call((message,)),
        }
    }

    /// Whether the block may be suspended now: the calls it waits on all
    /// wait on a person, nothing is left to replay, and the record holds
    /// all it needs.
    pub(crate) fn may_suspend(&self) -> bool {
        let pending = self.pending.borrow();
        let record = self.record.borrow();
        !pending.is_empty()
            && record.complete()
            && self.cursor.borrow().settled == record.settled.len()
            && pending
                .values()
                .all(|call| call.task.is_some() && self.host.waits_on_a_person(&call.name))
    }

    /// Ends the block's part in its calls for a suspension: the running
    /// calls' tasks move to the record, which is returned.
    pub(crate) fn suspend(&self) -> Record {
        let mut record = self.record.replace(Record::new(0));
        record.notes = self.notes.get();
        for (id, pending) in self.pending.borrow_mut().drain() {
            if let Some(task) = pending.task {
                record.running.insert(id, task);
            }
        }
        record
    }

    /// Stops every call still running and drops its promise's functions.
    pub(crate) fn abort_all(&self) {
        for (_, pending) in self.pending.borrow_mut().drain() {
            if let Some(task) = pending.task {
                task.abort();
            }
        }
        // A replayed block's record may still hold tasks of calls it had
        // not made again yet.
        for (_, task) in self.record.borrow_mut().running.drain() {
            task.abort();
        }
    }
}

/// Sends the call's reply, or, if the task panicked or was aborted first, a
/// failure (which nobody reads after an abort).
struct ReplyOnDrop {
    id: u64,
    name: String,
    replies: Option<ReplyChannel>,
}

impl ReplyOnDrop {
    fn send(&mut self, result: Result<String, String>) {
        if let Some(replies) = self.replies.take() {
            replies.send(HostReply { id: self.id, result });
        }
    }
}

impl Drop for ReplyOnDrop {
    fn drop(&mut self) {
        if self.replies.is_some() {
            let message = format!("host function `{}` failed", self.name);
            self.send(Err(message));
        }
    }
}
