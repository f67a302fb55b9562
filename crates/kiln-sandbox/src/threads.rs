//! The threads blocks run on. A block runs synchronously until it awaits, so
//! it must not run on a Tokio worker (a 30-second loop would stall every task
//! there), and it needs a stack at least as big as its interpreter limit,
//! which `spawn_blocking`'s pool cannot promise. So blocks run on threads of
//! their own, and a few idle ones are kept: a fresh thread costs 40-100 µs
//! and starts with cold caches, as much again as the block itself. An idle
//! thread also holds a [`Fresh`] runtime and context, made while it waited,
//! so the next block skips the 50-120 µs that costs. Each block still gets a
//! runtime no other block has used; only the thread is reused.
//!
//! Sandbox threads run at the lowest CPU priority there is: under Linux's
//! `SCHED_IDLE` policy (elsewhere niced, [`SANDBOX_NICE`]). Blocks that spin
//! on every core slow each other, but a server thread (HTTP, the event log,
//! other projects' requests) that wakes takes the core at once: the
//! scheduler preempts an idle-policy thread on every wake-up, where a merely
//! niced one may first finish its slice (milliseconds). Which block gets the
//! sandbox's share of the CPU is `cpu.rs`'s business.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SendError, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::engine::Fresh;

/// The stack of pooled threads. Blocks whose limit needs more get a thread
/// of their own; only the pages a block touches are committed.
const POOLED_STACK_BYTES: usize = 8 * 1024 * 1024;

/// The niceness of sandbox threads (Linux: per thread); the scheduler then
/// gives a server thread about ten times a sandbox thread's share of a
/// contended core.
const SANDBOX_NICE: i32 = 10;

/// How many threads may wait for work.
const MAX_IDLE: usize = 8;

/// How long a thread waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A block to run, given the thread's fresh runtime if it has one.
pub(crate) type Work = Box<dyn FnOnce(Option<Fresh>) + Send>;

/// A pooled thread waiting for work.
struct Idle {
    id: u64,
    work: Sender<Work>,
}

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn idle() -> MutexGuard<'static, Vec<Idle>> {
    // Nothing panics while holding the lock; a poisoned list is still sound.
    IDLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` on a thread with at least `stack_bytes` of stack.
pub(crate) fn execute(stack_bytes: usize, work: Work) -> io::Result<()> {
    if stack_bytes > POOLED_STACK_BYTES {
        return spawn(stack_bytes, work, false);
    }
    // A thread is only off the list while it works or is about to receive
    // work, so the one popped here is alive and listening.
    let popped = idle().pop();
    match popped {
        Some(idle) => match idle.work.send(work) {
            Ok(()) => Ok(()),
            Err(SendError(work)) => spawn(POOLED_STACK_BYTES, work, true),
        },
        None => spawn(POOLED_STACK_BYTES, work, true),
    }
}

fn spawn(stack_bytes: usize, work: Work, pooled: bool) -> io::Result<()> {
    thread::Builder::new()
        .name("kiln-sandbox".to_owned())
        .stack_size(stack_bytes)
        .spawn(move || {
            // Best effort: a thread left at the default priority still runs.
            lower_priority();
            if pooled { serve(work) } else { work(None) }
        })
        .map(drop)
}

/// Puts the calling thread at the lowest CPU priority.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), SANDBOX_NICE);
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads `param` only during the call,
        // and pid 0 names the calling thread; lowering a thread's own
        // policy needs no privilege.
        #[allow(unsafe_code, reason = "libc call without a safe wrapper in rustix")]
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

/// A pooled thread's life: work, then wait on the idle list for more.
fn serve(mut work: Work) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (work_tx, work_rx) = mpsc::channel();
    let mut fresh = None;
    loop {
        work(fresh.take());
        fresh = Fresh::new().ok();
        {
            let mut idle = idle();
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                id,
                work: work_tx.clone(),
            });
        }
        work = match work_rx.recv_timeout(IDLE_TIMEOUT) {
            Ok(work) => work,
            Err(_) => {
                let mut idle = idle();
                if let Some(at) = idle.iter().position(|idle| idle.id == id) {
                    idle.swap_remove(at);
                    return;
                }
                drop(idle);
                // A caller took this thread off the list as it timed out:
                // its work is on the way. (`work_tx` is held, so this ends.)
                match work_rx.recv() {
                    Ok(work) => work,
                    Err(_) => return,
                }
            }
        };
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Work runs under `SCHED_IDLE`, pooled or on a thread of its own.
    #[test]
    fn blocks_run_at_idle_priority() {
        for stack in [POOLED_STACK_BYTES, 2 * POOLED_STACK_BYTES] {
            let (tx, rx) = mpsc::channel();
            execute(
                stack,
                Box::new(move |_| {
                    // SAFETY: reads the calling thread's policy; no pointers.
                    #[allow(unsafe_code, reason = "libc call without a safe wrapper in rustix")]
                    let policy = unsafe { libc::sched_getscheduler(0) };
                    let _ = tx.send(policy);
                }),
            )
            .unwrap();
            assert_eq!(rx.recv().unwrap(), libc::SCHED_IDLE, "stack {stack}");
        }
    }
}
