//! The server's sandbox capacity, shared between projects.
//!
//! [`BlockSlots`]: code blocks running at once. A block waits for a slot;
//! a freed slot goes to the waiting project that holds the fewest, so a
//! project that starts a hundred blocks does not starve one that starts
//! one, and no project may hold more than three quarters of the slots
//! while others might want them. A lone project can still use that much.
//!
//! [`PausedBlocks`]: blocks waiting for a person's `input()` answer. The
//! sandbox suspends such a block (no thread, no heap; it is replayed when
//! answered), but each still holds its turn, its record and its answer's
//! place, so they are capped per server and per project (half the
//! server's); past a cap `input()` rejects at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::ids::ProjectId;

/// Slots for running blocks.
pub(crate) struct BlockSlots {
    per_project: usize,
    state: Mutex<SlotState>,
}

struct SlotState {
    free: usize,
    held: HashMap<ProjectId, usize>,
    waiting: VecDeque<Waiter>,
}

struct Waiter {
    project: ProjectId,
    grant: oneshot::Sender<BlockSlot>,
}

/// A running block's slot; dropping it hands it on.
pub(crate) struct BlockSlot {
    slots: Arc<BlockSlots>,
    project: ProjectId,
}

impl Drop for BlockSlot {
    fn drop(&mut self) {
        self.slots.release(&self.project);
    }
}

impl BlockSlots {
    pub(crate) fn new(total: usize) -> BlockSlots {
        let total = total.max(1);
        BlockSlots {
            per_project: (total - total / 4).max(1),
            state: Mutex::new(SlotState {
                free: total,
                held: HashMap::new(),
                waiting: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `project`'s blocks holding a slot and waiting for one, and the
    /// most it may hold.
    pub(crate) fn use_by(&self, project: &ProjectId) -> (usize, usize, usize) {
        let state = self.state();
        let waiting = state
            .waiting
            .iter()
            .filter(|w| &w.project == project && !w.grant.is_closed())
            .count();
        (
            state.held.get(project).copied().unwrap_or(0),
            waiting,
            self.per_project,
        )
    }

    /// Waits for a slot for a block of `project`.
    pub(crate) async fn acquire(self: &Arc<Self>, project: &ProjectId) -> BlockSlot {
        let granted = {
            let mut state = self.state();
            let held = state.held.get(project).copied().unwrap_or(0);
            if state.free > 0 && held < self.per_project {
                state.free -= 1;
                *state.held.entry(project.clone()).or_default() += 1;
                return BlockSlot {
                    slots: self.clone(),
                    project: project.clone(),
                };
            }
            let (grant, granted) = oneshot::channel();
            state.waiting.push_back(Waiter {
                project: project.clone(),
                grant,
            });
            granted
        };
        // The sender lives in the queue until a slot is granted; a slot
        // granted to a waiter that went away is dropped, which hands it on.
        match granted.await {
            Ok(slot) => slot,
            Err(_) => unreachable!("a waiter's sender is dropped only after sending"),
        }
    }

    /// Gives a slot back and grants it to the waiting project that holds
    /// the fewest (the earliest among equals), within its share.
    fn release(self: &Arc<Self>, project: &ProjectId) {
        let mut state = self.state();
        give_back(&mut state.held, project);
        state.free += 1;
        loop {
            let pick = state
                .waiting
                .iter()
                .enumerate()
                .map(|(i, w)| (i, state.held.get(&w.project).copied().unwrap_or(0)))
                .filter(|(_, held)| *held < self.per_project)
                .min_by_key(|(i, held)| (*held, *i))
                .map(|(i, _)| i);
            let Some(i) = pick else { return };
            let waiter = state.waiting.remove(i).expect("picked from the queue");
            if waiter.grant.is_closed() {
                continue;
            }
            state.free -= 1;
            *state.held.entry(waiter.project.clone()).or_default() += 1;
            let slot = BlockSlot {
                slots: self.clone(),
                project: waiter.project,
            };
            drop(state);
            // A waiter gone since: the returned slot drops and hands on.
            let _ = waiter.grant.send(slot);
            return;
        }
    }
}

/// One fewer held by `project`; a project holding none leaves the map.
fn give_back(held: &mut HashMap<ProjectId, usize>, project: &ProjectId) {
    if let Some(count) = held.get_mut(project) {
        *count -= 1;
        if *count == 0 {
            held.remove(project);
        }
    }
}

/// Blocks waiting for `input()` answers.
pub(crate) struct PausedBlocks {
    total: usize,
    per_project: usize,
    state: Mutex<(usize, HashMap<ProjectId, usize>)>,
}

/// One paused block's place; dropping it frees it.
pub(crate) struct PausedBlock {
    paused: Arc<PausedBlocks>,
    project: ProjectId,
}

impl Drop for PausedBlock {
    fn drop(&mut self) {
        let mut state = self.paused.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        give_back(&mut state.1, &self.project);
    }
}

impl PausedBlocks {
    pub(crate) fn new(total: usize) -> PausedBlocks {
        let total = total.max(1);
        PausedBlocks {
            total,
            per_project: (total / 2).max(1),
            state: Mutex::new((0, HashMap::new())),
        }
    }

    /// `project`'s paused blocks and the most it may have.
    pub(crate) fn use_by(&self, project: &ProjectId) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.1.get(project).copied().unwrap_or(0), self.per_project)
    }

    /// A place for a block of `project` to wait, or why there is none.
    pub(crate) fn try_pause(self: &Arc<Self>, project: &ProjectId) -> Result<PausedBlock, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let held = state.1.get(project).copied().unwrap_or(0);
        if held >= self.per_project {
            return Err(format!(
                "input() is refused: this project already has {held} code blocks waiting for answers, \
                 its share of the server; answer or cancel some first"
            ));
        }
        if state.0 >= self.total {
            return Err(format!(
                "input() is refused: this server already has {} code blocks waiting for answers, its \
                 limit; answer or cancel some first",
                self.total
            ));
        }
        state.0 += 1;
        *state.1.entry(project.clone()).or_default() += 1;
        Ok(PausedBlock {
            paused: self.clone(),
            project: project.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str) -> ProjectId {
        ProjectId::from_string(name.to_owned())
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_project_holding_fewest() {
        let slots = Arc::new(BlockSlots::new(4));
        let (a, b) = (project("a"), project("b"));
        // `a` takes its three quarters, then queues two more; `b` queues one.
        let mut held: Vec<BlockSlot> = Vec::new();
        for _ in 0..3 {
            held.push(slots.acquire(&a).await);
        }
        let a_waits = tokio::spawn({
            let (slots, a) = (slots.clone(), a.clone());
            async move { slots.acquire(&a).await }
        });
        tokio::task::yield_now().await;
        let b_first = slots.acquire(&b).await;
        let b_waits = tokio::spawn({
            let (slots, b) = (slots.clone(), b.clone());
            async move { slots.acquire(&b).await }
        });
        tokio::task::yield_now().await;
        // Every slot is taken: a holds 3 (its share), b 1.
        assert_eq!(slots.state().free, 0);
        // One of a's ends: b (1 held) goes before a (2 held).
        held.pop();
        let b_second = b_waits.await.unwrap();
        assert!(!a_waits.is_finished());
        assert_eq!(slots.state().held.get(&b), Some(&2));
        drop((b_first, b_second));
        let a_fourth = a_waits.await.unwrap();
        assert_eq!(slots.state().held.get(&a), Some(&3));
        drop(a_fourth);
        drop(held);
        let state = slots.state();
        assert_eq!((state.free, state.held.len()), (4, 0));
    }

    #[tokio::test]
    async fn a_waiter_that_went_away_does_not_keep_a_slot() {
        let slots = Arc::new(BlockSlots::new(1));
        let a = project("a");
        let first = slots.acquire(&a).await;
        let gone = tokio::spawn({
            let (slots, a) = (slots.clone(), a.clone());
            async move { slots.acquire(&a).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(first);
        let again = slots.acquire(&a).await;
        drop(again);
        assert_eq!(slots.state().free, 1);
    }

    #[test]
    fn paused_blocks_are_capped_per_server_and_per_project() {
        let paused = Arc::new(PausedBlocks::new(4));
        let (a, b, c) = (project("a"), project("b"), project("c"));
        let a1 = paused.try_pause(&a).unwrap();
        let _a2 = paused.try_pause(&a).unwrap();
        let error = paused.try_pause(&a).err().unwrap();
        assert!(error.contains("this project already has 2"), "{error}");
        let _b1 = paused.try_pause(&b).unwrap();
        let _b2 = paused.try_pause(&b).unwrap();
        let error = paused.try_pause(&c).err().unwrap();
        assert!(error.contains("this server already has 4"), "{error}");
        drop(a1);
        assert!(paused.try_pause(&c).is_ok());
    }
}
