//! Envelope encryption for secrets and hashing for API keys.
//!
//! Each secret write draws a fresh 256-bit data key and nonce, encrypts the
//! value with AES-256-GCM under that data key, and wraps the data key with the
//! key-encryption key (KEK) under a nonce of its own. Both seals bind the
//! secret's project, vault and name as associated data, so a row copied to
//! another vault or name fails to open. The KEK's id (a hash prefix) is
//! stored with each secret so a later rotation can tell which KEK to use.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const NONCE_LEN: usize = 12;

/// The key-encryption key. `Debug` never prints the bytes.
#[derive(Clone)]
pub struct Kek {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a KEK string was refused (the value itself is never echoed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KekError {
    #[error("the key-encryption key is not valid base64")]
    NotBase64,
    #[error("the key-encryption key must decode to 32 bytes, got {0}")]
    WrongLength(usize),
}

impl Kek {
    /// Parses standard base64 of exactly 32 bytes (surrounding whitespace is ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, KekError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| KekError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KekError::WrongLength(bytes.len()))?;
        Ok(Self::from_bytes(key))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let id = format!("kek_{}", hex::encode(&digest[..8]));
        Kek { key, id }
    }

    /// A fresh random KEK, base64-encoded, for `kiln serve` to persist.
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another purpose (signing access tokens), derived from
    /// this one so every server with the KEK derives the same.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"kiln:derive:");
        hasher.update(purpose.as_bytes());
        hasher.update(b":");
        hasher.update(self.key);
        hasher.finalize().into()
    }
}

/// A sealed secret as stored: value ciphertext and wrapped data key, each
/// prefixed by its nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub kek_id: String,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = random_nonce();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return Err(Error::Crypto);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| Error::Crypto)
}

impl Kek {
    /// Encrypts `plaintext` under a fresh data key bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> SealedValue {
        let mut data_key = [0u8; 32];
        rand::rng().fill_bytes(&mut data_key);
        let ciphertext = seal(&data_key, plaintext, format!("kiln:value:{context}").as_bytes());
        let wrapped_key = seal(&self.key, &data_key, format!("kiln:dek:{context}").as_bytes());
        data_key.fill(0);
        SealedValue {
            ciphertext,
            wrapped_key,
            kek_id: self.id.clone(),
        }
    }

    /// Decrypts a value sealed by [`Kek::seal`] with the same `context`.
    pub fn open(&self, sealed: &SealedValue, context: &str) -> Result<Vec<u8>> {
        if sealed.kek_id != self.id {
            return Err(Error::Crypto);
        }
        let data_key = open(
            &self.key,
            &sealed.wrapped_key,
            format!("kiln:dek:{context}").as_bytes(),
        )?;
        let data_key: [u8; 32] = data_key.as_slice().try_into().map_err(|_| Error::Crypto)?;
        open(
            &data_key,
            &sealed.ciphertext,
            format!("kiln:value:{context}").as_bytes(),
        )
    }
}

/// Hex SHA-256 of an API key: keys are high-entropy, so a fast hash is
/// enough, and it lets a lookup be one indexed equality.
pub fn hash_api_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// Lowercase hex SHA-256 (API key hashes, `content_sha256` of uploads).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_base64(&Kek::generate_base64()).unwrap()
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let kek = kek();
        let sealed = kek.seal(b"sk-live-123", "p1/v1/openai_api_key");
        assert_eq!(kek.open(&sealed, "p1/v1/openai_api_key").unwrap(), b"sk-live-123");
        assert!(kek.open(&sealed, "p1/v2/openai_api_key").is_err());
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"sk-live-123"));
    }

    #[test]
    fn every_seal_uses_a_fresh_key_and_nonce() {
        let kek = kek();
        let a = kek.seal(b"same", "ctx");
        let b = kek.seal(b"same", "ctx");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_ne!(a.wrapped_key, b.wrapped_key);
    }

    #[test]
    fn another_kek_cannot_open() {
        let sealed = kek().seal(b"v", "ctx");
        let mut forged = sealed.clone();
        let other = kek();
        forged.kek_id = other.id().to_owned();
        assert!(other.open(&forged, "ctx").is_err());
    }

    #[test]
    fn kek_parsing_rejects_bad_input_without_echoing_it() {
        assert_eq!(Kek::from_base64("not base64!").unwrap_err(), KekError::NotBase64);
        assert_eq!(
            Kek::from_base64("c2hvcnQ=").unwrap_err(),
            KekError::WrongLength(5)
        );
    }
}
