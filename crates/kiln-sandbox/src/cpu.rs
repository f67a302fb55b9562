//! CPU turns: JavaScript runs only while its block holds one of the
//! process's turns, one per core, so blocks take turns on the CPU the way a
//! scheduler would, but fairly between tenants rather than between
//! threads. Without it, one tenant with twelve spinning blocks on two cores
//! leaves another tenant's single block a thirteenth of the CPU.
//!
//! * A block holds a turn while its code runs, and gives it back while it
//!   waits for host calls (`ai()`, `fetch()`, an `input()` answer).
//! * A freed turn goes to the waiting block whose group (tenant) holds the
//!   fewest, the earliest among equals.
//! * A block that has run for [`SLICE`] while others wait gives its turn
//!   back at the next interrupt check (every few thousand instructions)
//!   or allocation, and waits like the rest: a spinning block cannot keep
//!   a core.
//! * A block whose group holds at least two more turns than a waiting
//!   block's group gives its turn back at once, without finishing its
//!   slice: another tenant's first block waits microseconds, not a slice.
//!
//! Waiting for a turn still counts against the block's time limit, and a
//! cancel or the deadline ends the wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a block runs before it yields to a waiting one.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// How often a waiting block looks at its deadline and cancel flag.
const WAIT_CHECK: Duration = Duration::from_millis(5);

/// The process's CPU turns.
struct Gate {
    turns: usize,
    state: Mutex<GateState>,
    freed: Condvar,
    /// How many blocks wait (`state.waiting.len()`), read at every check
    /// without the lock.
    waiting: AtomicUsize,
}

#[derive(Default)]
struct GateState {
    running: usize,
    /// Turns held per group.
    held: HashMap<u64, usize>,
    /// Waiting blocks: `(ticket, group)`, in arrival order.
    waiting: Vec<(u64, u64)>,
    next_ticket: u64,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| Gate {
        turns: std::thread::available_parallelism().map_or(2, usize::from).max(1),
        state: Mutex::new(GateState::default()),
        freed: Condvar::new(),
        waiting: AtomicUsize::new(0),
    })
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GateState {
    /// Whether a waiting block's group holds at least two fewer turns than
    /// `group`: handing it one of `group`'s makes the split fairer.
    fn poorer_waits(&self, group: u64) -> bool {
        let mine = self.held.get(&group).copied().unwrap_or(0);
        self.waiting
            .iter()
            .any(|(_, g)| self.held.get(g).copied().unwrap_or(0) + 1 < mine)
    }

    /// The waiting ticket a free turn goes to.
    fn next(&self) -> Option<u64> {
        self.waiting
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, group))| (self.held.get(group).copied().unwrap_or(0), *i))
            .map(|(_, (ticket, _))| *ticket)
    }

    fn take(&mut self, group: u64) {
        self.running += 1;
        *self.held.entry(group).or_default() += 1;
    }

    fn give_back(&mut self, group: u64) {
        self.running -= 1;
        if let Some(held) = self.held.get_mut(&group) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&group);
            }
        }
    }
}

/// One block's place in the gate.
pub(crate) struct CpuTurn {
    group: u64,
    /// Since when it holds a turn; `None` while it holds none.
    since: std::cell::Cell<Option<Instant>>,
}

impl CpuTurn {
    pub(crate) fn new(group: u64) -> CpuTurn {
        CpuTurn {
            group,
            since: std::cell::Cell::new(None),
        }
    }

    /// Waits for a turn; `false` when `stopped` said to stop first.
    pub(crate) fn acquire(&self, mut stopped: impl FnMut() -> bool) -> bool {
        if self.since.get().is_some() {
            return true;
        }
        let gate = gate();
        let mut state = gate.state();
        if state.running < gate.turns && state.waiting.is_empty() {
            state.take(self.group);
            self.since.set(Some(Instant::now()));
            return true;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, self.group));
        gate.waiting.store(state.waiting.len(), Ordering::Relaxed);
        loop {
            if state.running < gate.turns && state.next() == Some(ticket) {
                state.waiting.retain(|(t, _)| *t != ticket);
                gate.waiting.store(state.waiting.len(), Ordering::Relaxed);
                state.take(self.group);
                drop(state);
                // Others may fit too.
                gate.freed.notify_all();
                self.since.set(Some(Instant::now()));
                return true;
            }
            state = gate
                .freed
                .wait_timeout(state, WAIT_CHECK)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if stopped() {
                state.waiting.retain(|(t, _)| *t != ticket);
                gate.waiting.store(state.waiting.len(), Ordering::Relaxed);
                drop(state);
                gate.freed.notify_all();
                return false;
            }
        }
    }

    /// Gives the turn back (before waiting on host calls, at the end).
    pub(crate) fn release(&self) {
        if self.since.take().is_none() {
            return;
        }
        let gate = gate();
        gate.state().give_back(self.group);
        gate.freed.notify_all();
    }

    /// At an interrupt check or an allocation: after a [`SLICE`] of
    /// running with others waiting, or at once when a poorer group waits,
    /// gives the turn back and waits for one again. `false` when `stopped`
    /// said to stop while waiting.
    pub(crate) fn maybe_yield(&self, stopped: impl FnMut() -> bool) -> bool {
        let Some(since) = self.since.get() else {
            return true;
        };
        let gate = gate();
        if gate.waiting.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let yields = {
            let state = gate.state();
            !state.waiting.is_empty() && (since.elapsed() >= SLICE || state.poorer_waits(self.group))
        };
        if !yields {
            return true;
        }
        self.release();
        self.acquire(stopped)
    }
}

impl Drop for CpuTurn {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_turn_goes_to_the_group_holding_fewest() {
        let mut state = GateState::default();
        state.take(1);
        state.take(1);
        state.waiting = vec![(10, 1), (11, 2), (12, 1)];
        assert_eq!(state.next(), Some(11));
        state.take(2);
        state.waiting.retain(|(t, _)| *t != 11);
        state.give_back(1);
        // Group 1 holds 1, group 2 holds 1: the earliest waiter.
        assert_eq!(state.next(), Some(10));
    }

    #[test]
    fn a_group_two_turns_richer_than_a_waiter_yields_at_once() {
        let mut state = GateState::default();
        state.take(1);
        state.take(1);
        state.waiting = vec![(10, 1)];
        // Only group 1's own blocks wait: it keeps its slices.
        assert!(!state.poorer_waits(1));
        state.waiting.push((11, 2));
        assert!(state.poorer_waits(1));
        // One turn each: the slice decides.
        state.give_back(1);
        state.take(2);
        assert!(!state.poorer_waits(1));
        assert!(!state.poorer_waits(2));
    }
}
