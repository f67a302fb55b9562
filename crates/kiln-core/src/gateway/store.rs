//! The LLM gateway's storage port: stored conversations. (Usage goes
//! through [`crate::usage::UsageStore`].)
//!
//! Every method takes the caller's `ProjectId` and filters on it; mutating
//! methods write their audit entry in the same transaction.

use async_trait::async_trait;

use crate::audit::NewAudit;
use crate::error::StoreResult;
use crate::gateway::chat::{Conversation, ConversationMessage};
use crate::ids::{ConversationId, ProjectId};
use crate::page::Page;
use crate::usage::LlmCall;

#[async_trait]
pub trait GatewayStore: Send + Sync {
    async fn create_conversation(&self, conversation: &Conversation, audit: &NewAudit) -> StoreResult<()>;
    /// Newest first.
    async fn list_conversations(&self, project_id: &ProjectId, page: Page) -> StoreResult<Vec<Conversation>>;
    async fn get_conversation(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>>;
    /// Oldest first.
    async fn conversation_messages(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
    ) -> StoreResult<Vec<ConversationMessage>>;
    /// Deletes the conversation and its messages.
    async fn delete_conversation(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
        audit: &NewAudit,
    ) -> StoreResult<bool>;
    /// Stores a user message, the reply and the call's usage in one
    /// transaction, if the conversation still holds `expected_messages`
    /// messages. `None` when the conversation is gone, `Some(false)` when
    /// its history changed meanwhile (nothing written), `Some(true)` when
    /// stored.
    async fn append_exchange(
        &self,
        project_id: &ProjectId,
        expected_messages: i64,
        user: &ConversationMessage,
        reply: &ConversationMessage,
        call: &LlmCall,
        audit: &NewAudit,
    ) -> StoreResult<Option<bool>>;
}
