//! API keys: generation, and the authentication cache on the request path.
//!
//! Every `/api/sdk` request authenticates, so the lookup is cached: a key's
//! hash maps to its project for `ttl` (default 2 s). Revoking a key or
//! changing the project through this process clears the cache at once; a
//! revocation made by another process (the CLI, another replica) takes effect
//! within the TTL. `last_used_at` is written at most once a minute per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::ids::ApiKeyId;
use crate::project::Project;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "kiln_";
const KEY_RANDOM_CHARS: usize = 40;
/// How many leading characters of a key are stored in clear to recognise it.
pub const DISPLAY_PREFIX_CHARS: usize = 12;
/// `last_used_at` is refreshed when older than this.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// `kiln_` followed by 40 random alphanumerics (about 238 bits).
pub fn generate_api_key() -> String {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// Who a request is: the key and the project it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthContext {
    pub key_id: ApiKeyId,
    pub project: Project,
    /// Set when the caller holds a short-lived token scoped to one session:
    /// the HTTP edge lets it reach only that session.
    pub session: Option<crate::ids::SessionId>,
    /// Authenticated by a short-lived token rather than the key itself.
    pub via_token: bool,
}

#[derive(Debug)]
pub(crate) struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (AuthContext, Instant)>>,
}

impl AuthCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key_hash: &str) -> Option<AuthContext> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (ctx, at) = entries.get(key_hash)?;
        (at.elapsed() < self.ttl).then(|| ctx.clone())
    }

    pub(crate) fn insert(&self, key_hash: String, ctx: AuthContext) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 10_000 {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert(key_hash, (ctx, Instant::now()));
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_path_safe() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(a[KEY_PREFIX.len()..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
