//! Kiln's domain, with no HTTP, SQL, network client or JS engine in it.
//!
//! One service per engine, each with a narrow storage port of its own and
//! handles to exactly the sibling services it uses, all built once by the
//! composition root (`kiln-cli`'s `server::start`):
//!
//! * [`control::ControlPlane`]: projects, keys, authentication, vaults,
//!   templates, the audit log, metrics;
//! * [`rag::Rag`]: indexes, documents, ingestion, search;
//! * [`gateway::LlmGateway`]: model resolution, provider clients, usage,
//!   chat and conversations (uses the control plane's secrets and RAG);
//! * [`agents::AgentConfigs`]: agents as code: source manifests, agent
//!   configs, drafts, versions, skills (uses RAG for index names);
//! * [`runtime::AgentRuntime`]: sessions, turns, events, input, cancel
//!   (uses the gateway, RAG and the agent configs).
//!
//! Architecture invariant: this crate depends on no other `kiln-*` crate and
//! never on axum, sqlx, reqwest or rquickjs (CI checks it with `cargo tree -i`);
//! its tests in `tests/it` do, to run the engines over real parts.
//! Its top-level modules form layers with no cycle (ARCHITECTURE.md; CI
//! checks it with `.ci/check-architecture`).

pub mod agents;
pub mod audit;
pub mod auth;
pub mod control;
pub mod crypto;
pub mod error;
pub mod evals;
pub mod gateway;
pub mod ids;
pub mod issues;
pub mod llm;
pub mod mcp;
pub mod names;
pub mod page;
pub mod project;
pub mod rag;
pub mod runtime;
pub mod sandbox;
pub mod schedules;
pub mod studio;
pub mod template;
pub mod time;
pub mod usage;
pub mod vault;
pub mod webhooks;

pub use error::{Error, Result, StoreError, StoreResult};
