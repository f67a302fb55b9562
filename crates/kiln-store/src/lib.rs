//! The sqlx adapter for every storage port of `kiln-core` (`ControlStore`,
//! `UsageStore`, `GatewayStore`, `RagStore`, `AgentConfigStore`,
//! `AgentStore`, `EvalStore`, `ScheduleStore`, `WebhookStore`), over SQLite or
//! PostgreSQL.
//!
//! One implementation serves both databases: each method's SQL is written
//! once with `$N` placeholders (which SQLite accepts too) and expanded by the
//! [`read!`] and [`write_tx!`] macros into one arm per backend, so both arms
//! are type-checked against their own driver. Columns use native types on
//! PostgreSQL (TIMESTAMPTZ, JSONB, BYTEA) and text/blob on SQLite; the row
//! structs decode from either.
//!
//! SQLite runs in WAL mode with one writer connection and a small reader
//! pool; write transactions start with `BEGIN IMMEDIATE`, so another process
//! on the same file (the CLI beside a running server) waits on the busy
//! timeout instead of failing.

#[macro_use]
mod macros;
mod agent_configs;
mod agents;
mod claims;
mod connect;
mod control;
mod db;
mod evals;
mod event_log;
mod files;
mod gateway;
mod held;
mod queue;
mod rag;
mod rows;
mod schedules;
mod tool_calls;
mod webhooks;

pub use connect::{SqlStore, redact_url};
pub use db::DatabaseKind;
