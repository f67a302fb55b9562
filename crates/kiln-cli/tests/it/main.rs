//! Integration tests: the real server on a free port with a fresh database,
//! driven over real HTTP through the Rust SDK. Every test written with
//! `backends!` runs twice: on SQLite, and on PostgreSQL when
//! `KILN_TEST_DATABASE_URL` is set (each test in a schema of its own).

#![allow(
    unreachable_pub,
    reason = "items of a test binary are shared between its modules"
)]

mod harness;

mod agents;
mod audit;
mod auth;
mod binary;
mod chat;
mod client_tools;
mod code_cli;
mod console;
mod conventions;
mod documents;
mod evals;
mod faults;
mod files;
mod indexes;
mod isolation;
mod legacy;
mod mcp;
mod openapi;
mod project;
mod queue;
mod realtime;
mod schedules;
mod search;
mod skills;
mod source;
mod studio;
mod templates;
mod vaults;
mod webhooks;
