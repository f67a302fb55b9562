//! Kiln's domain, with no HTTP, SQL, network client or JS engine in it.
//!
//! The server and the CLI call [`Kiln`], the application service; it owns the
//! rules (names, limits, audit actions, encryption) and talks to storage only
//! through the [`Store`] port, which `kiln-store` implements for SQLite and
//! PostgreSQL.
//!
//! Architecture invariant: this crate depends on no other `kiln-*` crate and
//! never on axum, sqlx, reqwest or rquickjs (CI checks it with `cargo tree -i`).

pub mod audit;
pub mod auth;
pub mod chat;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod index;
pub mod kiln;
pub mod llm;
pub mod names;
pub mod page;
pub mod project;
pub mod rag;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod template;
pub mod time;
pub mod vault;

pub use error::{Error, Result, StoreError};
pub use kiln::{Kiln, KilnConfig};
pub use store::Store;
