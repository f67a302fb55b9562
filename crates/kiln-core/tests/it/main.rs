//! The engines alone: each service built over a real SQLite store in a
//! temporary directory and the in-repo fake provider (real HTTP to a
//! scripted model), with no HTTP server in front. What a handler would do,
//! these tests do by calling the service.

mod harness;
mod ingest;
mod turns;
