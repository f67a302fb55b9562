//! Host calls made by JavaScript: each runs as a task on the caller's Tokio
//! runtime (where the host's clients and pools live), and its reply comes
//! back to the sandbox thread over a channel, where it settles the call's
//! promise. The JavaScript side of a call is in `prelude.js`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use kiln_core::sandbox::{HostFunctions, MAX_MODULE_CALL_NOTES};
use rquickjs::{Ctx, Function, Promise};
use serde_json::Value as Json;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

/// A finished host call, sent to the sandbox thread.
#[derive(Debug)]
pub(crate) struct HostReply {
    id: u64,
    result: Result<Json, String>,
}

impl HostReply {
    /// Settles nothing; makes the waiting event loop look at its flags.
    pub(crate) fn wake() -> HostReply {
        HostReply {
            id: u64::MAX,
            result: Ok(Json::Null),
        }
    }
}

/// A host call whose promise is pending.
struct Pending<'js> {
    resolve: Function<'js>,
    reject: Function<'js>,
    task: AbortHandle,
}

/// The host calls of one block.
///
/// `pending` holds JavaScript functions, and this value is itself owned by a
/// JavaScript function (the native `hostCall`): a cycle the garbage
/// collector cannot see. [`HostCalls::abort_all`] breaks it and must run
/// before the context is freed.
pub(crate) struct HostCalls<'js> {
    host: Arc<dyn HostFunctions>,
    runtime: Handle,
    replies: Sender<HostReply>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending<'js>>>,
    notes: Cell<u32>,
}

impl<'js> HostCalls<'js> {
    pub(crate) fn new(
        host: Arc<dyn HostFunctions>,
        runtime: Handle,
        replies: Sender<HostReply>,
    ) -> HostCalls<'js> {
        HostCalls {
            host,
            runtime,
            replies,
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            notes: Cell::new(0),
        }
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
        let args: Json = match serde_json::from_str(args) {
            Ok(args) => args,
            Err(error) => {
                reject.call::<_, ()>((format!("the arguments of `{name}` are not JSON: {error}"),))?;
                return Ok(promise);
            }
        };
        let id = self.next_id();
        let host = self.host.clone();
        let mut reply = ReplyOnDrop {
            id,
            name: name.clone(),
            replies: Some(self.replies.clone()),
        };
        let task = self.runtime.spawn(async move {
            let result = host.call(&name, args).await;
            reply.send(result);
        });
        self.pending.borrow_mut().insert(
            id,
            Pending {
                resolve,
                reject,
                task: task.abort_handle(),
            },
        );
        Ok(promise)
    }

    /// Tells the host that the code called `function` of skill module
    /// `module`, up to [`MAX_MODULE_CALL_NOTES`] times per block.
    pub(crate) fn note_module_call(&self, module: &str, function: &str) {
        if self.notes.get() >= MAX_MODULE_CALL_NOTES {
            return;
        }
        self.notes.set(self.notes.get() + 1);
        self.host.module_called(module, function);
    }

    /// Whether a call is still running, so that a pending promise may yet
    /// settle.
    pub(crate) fn in_flight(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// Settles the promise of a finished call. Queues jobs; runs none.
    pub(crate) fn settle(&self, reply: HostReply) -> rquickjs::Result<()> {
        let Some(pending) = self.pending.borrow_mut().remove(&reply.id) else {
            return Ok(());
        };
        match reply.result {
            Ok(json) => pending.resolve.call((json.to_string(),)),
            Err(message) => pending.reject.call((message,)),
        }
    }

    /// Stops every call still running and drops its promise's functions.
    pub(crate) fn abort_all(&self) {
        for (_, pending) in self.pending.borrow_mut().drain() {
            pending.task.abort();
        }
    }
}

/// Sends the call's reply, or, if the task panicked or was aborted first, a
/// failure (which nobody reads after an abort).
struct ReplyOnDrop {
    id: u64,
    name: String,
    replies: Option<Sender<HostReply>>,
}

impl ReplyOnDrop {
    fn send(&mut self, result: Result<Json, String>) {
        if let Some(replies) = self.replies.take() {
            // The block may have ended already; then the reply is moot.
            let _ = replies.send(HostReply { id: self.id, result });
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
