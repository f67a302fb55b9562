//! Per-key rate limits: a token bucket per (API key, kind of call) on this
//! server, for the calls that cost the most (a turn, a chat completion, an
//! upload). A bucket holds up to `burst` calls and refills at `per_minute`;
//! an empty bucket refuses with the seconds until the next call fits
//! (`Error::RateLimited`, 429 `rate_limited` at the edge). Buckets live in
//! memory: each server counts its own calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::ids::ApiKeyId;

/// Buckets kept before full (idle) ones are dropped.
const SWEEP_AT: usize = 10_000;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    /// Agent turns: `run` and messages sent to the queue.
    Run,
    /// Chat completions (`/api/sdk/chat/completions`, `/v1/chat/completions`,
    /// conversation messages).
    Chat,
    /// Document uploads.
    Upload,
}

impl RateKind {
    fn noun(self) -> &'static str {
        match self {
            RateKind::Run => "agent runs",
            RateKind::Chat => "chat completions",
            RateKind::Upload => "uploads",
        }
    }
}

/// One limit: `per_minute` calls refilled evenly, up to `burst` at once.
/// `per_minute == 0` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const OFF: RateLimit = RateLimit {
        per_minute: 0,
        burst: 0,
    };

    /// `per_minute` with a burst of a quarter of it (at least one).
    pub fn per_minute(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute,
            burst: (per_minute / 4).max(1),
        }
    }
}

/// The limits of every kind, per API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub run: RateLimit,
    pub chat: RateLimit,
    pub upload: RateLimit,
}

impl RateLimits {
    pub const OFF: RateLimits = RateLimits {
        run: RateLimit::OFF,
        chat: RateLimit::OFF,
        upload: RateLimit::OFF,
    };

    fn of(&self, kind: RateKind) -> RateLimit {
        match kind {
            RateKind::Run => self.run,
            RateKind::Chat => self.chat,
            RateKind::Upload => self.upload,
        }
    }
}

impl Default for RateLimits {
    /// Generous enough for any interactive use; a loop hammering one key
    /// is held to it.
    fn default() -> Self {
        RateLimits {
            run: RateLimit::per_minute(1200),
            chat: RateLimit::per_minute(3000),
            upload: RateLimit::per_minute(1200),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(ApiKeyId, RateKind), Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call of `kind` from `key`'s bucket, or refuses.
    pub(crate) fn take(&self, key: &ApiKeyId, kind: RateKind) -> Result<()> {
        let limit = self.limits.of(kind);
        if limit.per_minute == 0 {
            return Ok(());
        }
        let burst = f64::from(limit.burst.max(1));
        let per_second = f64::from(limit.per_minute) / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry((key.clone(), kind)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64;
        Err(Error::RateLimited {
            message: format!(
                "too many {} for this API key: at most {} a minute ({} at once); retry in {wait} s",
                kind.noun(),
                limit.per_minute,
                limit.burst.max(1)
            ),
            retry_after_seconds: wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_the_wait() {
        let limiter = RateLimiter::new(RateLimits {
            run: RateLimit {
                per_minute: 6,
                burst: 3,
            },
            ..RateLimits::OFF
        });
        let key = ApiKeyId::from_string("k1");
        for _ in 0..3 {
            limiter.take(&key, RateKind::Run).unwrap();
        }
        match limiter.take(&key, RateKind::Run) {
            Err(Error::RateLimited {
                retry_after_seconds, ..
            }) => assert_eq!(retry_after_seconds, 10),
            other => panic!("{other:?}"),
        }
        // Other keys and other kinds have their own buckets; off is off.
        limiter.take(&ApiKeyId::from_string("k2"), RateKind::Run).unwrap();
        for _ in 0..100 {
            limiter.take(&key, RateKind::Chat).unwrap();
        }
    }
}
