//! The composition root: the one place that knows every concrete type.
//!
//! `kiln serve` and the integration tests both build the server through
//! [`server::start`], so tests exercise exactly the wiring users run.

pub mod config;
pub mod server;
