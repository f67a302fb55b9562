//! Route modules, one per contract section. Each exposes `routes()`, which
//! registers its handlers with their OpenAPI descriptions.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod chat;
pub(crate) mod documents;
pub(crate) mod evals;
pub(crate) mod files;
pub(crate) mod indexes;
pub(crate) mod legacy;
pub(crate) mod openai;
pub(crate) mod project;
pub(crate) mod queue;
pub(crate) mod realtime;
pub(crate) mod schedules;
pub(crate) mod source;
pub(crate) mod studio;
pub(crate) mod system;
pub(crate) mod templates;
pub(crate) mod tokens;
pub(crate) mod vaults;
pub(crate) mod webhooks;
