//! `WebhookStore`: sessions' webhooks and the delivery outbox. The outbox
//! rows themselves are written by the event log's append (in its
//! transaction), not through this port.

use async_trait::async_trait;

use super::{Delivery, DueDelivery, SessionWebhook};
use crate::error::StoreResult;
use crate::ids::{ProjectId, SessionId, WebhookDeliveryId};
use crate::time::Timestamp;

/// The outcome of one attempt, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: WebhookDeliveryId,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// Set when a 2xx answered.
    pub delivered_at: Option<Timestamp>,
    /// Set when another attempt follows.
    pub next_attempt_at: Option<Timestamp>,
    /// Given up.
    pub failed: bool,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Replaces the session's webhooks; `false` when the session is not in
    /// the project.
    async fn replace_webhooks(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        webhooks: &[SessionWebhook],
    ) -> StoreResult<bool>;
    /// In the order given.
    async fn list_webhooks(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
    ) -> StoreResult<Vec<SessionWebhook>>;
    /// Newest first.
    async fn list_deliveries(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
    /// Claims up to `limit` pending deliveries due at `now`, oldest first:
    /// counts the attempt and moves `next_attempt_at` to `lease_until`, so
    /// no other server sends them meanwhile.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>>;
    async fn record_attempt(&self, attempt: &Attempt) -> StoreResult<()>;
}
