//! Suspending a block that waits on a person, and bringing it back by
//! replay.
//!
//! A block whose code awaits `input()` may wait minutes for an answer. Held
//! the plain way it pins a thread (and its stack) and a QuickJS heap the
//! whole time: 355 KB and a thread per waiting turn. So once a block has
//! waited a little ([`SUSPEND_AFTER`]) on calls that
//! [`HostFunctions::waits_on_a_person`](kiln_core::sandbox::HostFunctions::waits_on_a_person)
//! alone, the engine ends it and keeps only a [`Record`] of what came into
//! it from outside: the names of the host calls it started, the replies it
//! settled in the order they came, its clock readings and its random seed.
//! The waiting calls' tasks go on running. When one of them replies, the
//! block runs again from the start on a fresh runtime, and every call it
//! makes that the record holds is answered from the record, in the same
//! order and at the same points (after the jobs of the previous reply have
//! run), so the code reaches the point where it waited without calling the
//! host again; then the new reply is settled and it goes on live.
//!
//! This needs the code to run the same way twice given the same inputs.
//! JavaScript in the sandbox is deterministic but for the clock and
//! `Math.random`: the prelude routes `Date`, `performance.now()` and
//! `Math.random` through the record (a seeded generator and recorded clock
//! readings). A call the replay starts under another name than the record
//! has at that place fails the block with a clear error rather than handing
//! it a reply meant for another call. Skill-call notes already made are not
//! made again; console output is made again, identically, and the block's
//! output is the whole of it.
//!
//! The record is bounded ([`RECORD_BYTES`]); a block that outgrows it is not
//! suspended and waits on its thread as before. The cost of coming back is
//! the code's own CPU time up to the wait, run once more.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::AbortHandle;

/// How long a block waits on a person on its thread before it is suspended:
/// a quick answer (a client answering at once) costs no replay.
pub(crate) const SUSPEND_AFTER: Duration = Duration::from_millis(50);

/// The most a record may hold (reply texts, call names, 8 bytes per clock
/// reading); past it the block is no longer suspended.
pub(crate) const RECORD_BYTES: usize = 8 * 1024 * 1024;

/// Bytes a clock reading counts for.
const READING_BYTES: usize = 8;

/// What came into a block from outside, in order: enough to run it again
/// to the same point. See the module's docs.
#[derive(Debug)]
pub(crate) struct Record {
    /// `Math.random`'s seed.
    pub(crate) seed: u64,
    /// When the block first started, in ms since the epoch
    /// (`performance.timeOrigin`).
    pub(crate) origin: f64,
    /// The names of the host calls started, by call id (ids count from 0).
    pub(crate) calls: Vec<String>,
    /// Replies in the order they were settled: the call id and its JSON
    /// text, or the rejection's message.
    pub(crate) settled: Vec<(u64, Result<String, String>)>,
    /// Clock readings (`Date`, `performance.now()`), in order.
    pub(crate) readings: Vec<f64>,
    /// Skill-call notes made.
    pub(crate) notes: u32,
    /// What the record holds, in [`RECORD_BYTES`]' terms.
    bytes: usize,
    /// Whether it holds everything: false once it outgrew its bound.
    complete: bool,
    /// The calls still running while the block is suspended, by id.
    pub(crate) running: HashMap<u64, AbortHandle>,
}

impl Record {
    pub(crate) fn new(seed: u64) -> Record {
        Record {
            seed,
            origin: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |elapsed| elapsed.as_secs_f64() * 1000.0),
            calls: Vec::new(),
            settled: Vec::new(),
            readings: Vec::new(),
            notes: 0,
            bytes: 0,
            complete: true,
            running: HashMap::new(),
        }
    }

    /// Whether the block can be run again to where it is now.
    pub(crate) fn complete(&self) -> bool {
        self.complete
    }

    pub(crate) fn add_call(&mut self, name: &str) {
        if self.grow(name.len()) {
            self.calls.push(name.to_owned());
        }
    }

    pub(crate) fn add_settled(&mut self, id: u64, result: &Result<String, String>) {
        let len = match result {
            Ok(text) | Err(text) => text.len(),
        };
        if self.grow(len) {
            self.settled.push((id, result.clone()));
        }
    }

    pub(crate) fn add_reading(&mut self, reading: f64) {
        if self.grow(READING_BYTES) {
            self.readings.push(reading);
        }
    }

    /// The answer that brings a suspended block back: kept whatever its
    /// size, as the block cannot go on without it.
    pub(crate) fn add_answer(&mut self, id: u64, result: Result<String, String>) {
        self.bytes = self.bytes.saturating_add(match &result {
            Ok(text) | Err(text) => text.len(),
        });
        self.settled.push((id, result));
    }

    /// Counts `bytes` more; past the bound the record gives up and lets go
    /// of what it held.
    fn grow(&mut self, bytes: usize) -> bool {
        if !self.complete {
            return false;
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > RECORD_BYTES {
            self.complete = false;
            self.calls = Vec::new();
            self.settled = Vec::new();
            self.readings = Vec::new();
            return false;
        }
        true
    }
}

impl Drop for Record {
    /// A record dropped while its block is suspended (the run was cancelled,
    /// timed out or abandoned) stops the calls it was waiting on.
    fn drop(&mut self) {
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }
}

/// How far a replay has come through its record.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Calls with an id below this were made before: answered from the
    /// record.
    pub(crate) calls: u64,
    /// The next recorded reply to settle.
    pub(crate) settled: usize,
    /// The next recorded clock reading.
    pub(crate) readings: usize,
    /// Skill-call notes already made before.
    pub(crate) notes: u32,
}

impl Cursor {
    /// A cursor at the start of `record`: everything in it is to be replayed.
    pub(crate) fn replaying(record: &Record) -> Cursor {
        Cursor {
            calls: record.calls.len() as u64,
            settled: 0,
            readings: 0,
            notes: record.notes,
        }
    }
}

/// A seed for `Math.random`, from the process's hash keys and the clock.
pub(crate) fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_past_its_bound_gives_up_and_lets_go() {
        let mut record = Record::new(1);
        record.add_call("input");
        record.add_settled(0, &Ok("\"yes\"".to_owned()));
        record.add_reading(1.0);
        assert!(record.complete());
        assert_eq!(record.calls, ["input"]);
        assert_eq!(record.readings, [1.0]);
        record.add_settled(1, &Ok("x".repeat(RECORD_BYTES)));
        assert!(!record.complete());
        assert!(record.calls.is_empty() && record.settled.is_empty() && record.readings.is_empty());
        record.add_call("fetch");
        assert!(record.calls.is_empty());
    }
}
