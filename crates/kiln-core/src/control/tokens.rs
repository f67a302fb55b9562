//! Short-lived access tokens: an API key exchanged for a token a browser
//! may hold. A token acts as the key that made it (revoking the key ends
//! its tokens), for the key's project, optionally for one session only, and
//! until it expires.
//!
//! Tokens are stateless: `kiln_tok_<payload>.<mac>`, the payload the
//! base64url JSON `{"p": project, "k": key, "s": session?, "e": unix
//! expiry}`, the MAC an HMAC-SHA256 under a key derived from the KEK, so
//! every server on the database accepts every server's tokens without a
//! table or a lookup beyond the key's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use crate::auth::AuthContext;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, SessionId};
use crate::time::{Timestamp, now};

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "kiln_tok_";
/// A token's lifetime when none is asked for: 15 minutes.
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 900;
/// The longest lifetime: a day.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 86_400;

type TokenMac = hmac::Hmac<sha2::Sha256>;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    p: String,
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    e: i64,
}

/// A token as issued.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Timestamp,
}

impl ControlPlane {
    fn token_mac(&self) -> Result<TokenMac> {
        let key = self.kek()?.derive("access-token");
        Ok(<TokenMac as KeyInit>::new_from_slice(&key).expect("HMAC takes a 32-byte key"))
    }

    /// `POST /tokens`: a token for the caller's key and project, scoped to
    /// `session` when given (the caller checked it is the project's).
    /// Only an API key mints tokens.
    pub fn issue_token(
        &self,
        ctx: &AuthContext,
        ttl_seconds: Option<i64>,
        session: Option<&SessionId>,
    ) -> Result<IssuedToken> {
        if ctx.via_token {
            return Err(Error::Unauthorized(
                "a token cannot create tokens; use an API key".into(),
            ));
        }
        let ttl = ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS);
        if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
            return Err(Error::validation(
                format!("ttl_seconds must be between 1 and {MAX_TOKEN_TTL_SECONDS}"),
                Some("ttl_seconds"),
            ));
        }
        let expires_at = now() + chrono::Duration::seconds(ttl);
        let claims = Claims {
            p: ctx.project.id.to_string(),
            k: ctx.key_id.to_string(),
            s: session.map(ToString::to_string),
            e: expires_at.timestamp(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let mut mac = self.token_mac()?;
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(IssuedToken {
            token: format!("{TOKEN_PREFIX}{payload}.{signature}"),
            expires_at,
        })
    }

    /// The context of a token: its key's (still not revoked), its project,
    /// its session scope. Expired, altered or foreign tokens are 401.
    pub(super) async fn authenticate_token(&self, raw: &str) -> Result<AuthContext> {
        let invalid = || Error::Unauthorized("invalid token".into());
        let body = raw.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let (payload, signature) = body.split_once('.').ok_or_else(invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        let mut mac = self.token_mac().map_err(|_| invalid())?;
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(invalid)?;
        if claims.e <= now().timestamp() {
            return Err(Error::Unauthorized("token has expired".into()));
        }
        // Checked above on every use; the key behind it is looked up at most
        // once per auth-cache period.
        let cache_key = crate::crypto::hash_api_key(raw);
        if let Some(ctx) = self.auth_cache.get(&cache_key) {
            return Ok(ctx);
        }
        let mut ctx = self
            .context_of_key(&ApiKeyId::from_string(claims.k))
            .await
            .map_err(|_| Error::Unauthorized("the API key behind this token was revoked".into()))?;
        if ctx.project.id.as_str() != claims.p {
            return Err(invalid());
        }
        ctx.session = claims.s.map(SessionId::from_string);
        ctx.via_token = true;
        self.auth_cache.insert(cache_key, ctx.clone());
        Ok(ctx)
    }
}
