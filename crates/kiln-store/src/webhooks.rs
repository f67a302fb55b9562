//! `impl WebhookStore for SqlStore`: sessions' webhooks and the delivery
//! outbox (whose rows the event log's append writes: `OUTBOX_SQL`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use kiln_core::StoreResult;
use kiln_core::crypto::SealedValue;
use kiln_core::ids::{ProjectId, SessionId, TurnId, WebhookDeliveryId, WebhookId};
use kiln_core::time::Timestamp;
use kiln_core::webhooks::store::{Attempt, WebhookStore};
use kiln_core::webhooks::{Delivery, DueDelivery, SessionWebhook, WebhookEvent};

use crate::connect::SqlStore;
use crate::db::{DatabaseKind, Db, db_err};

const DELIVERY_COLUMNS: &str = "d.id, d.project_id, d.session_id, d.url, d.event_type, d.run_id, d.session_status, \
     d.session_error, d.prompt_tokens, d.completion_tokens, d.attempt, d.status_code, d.last_error, d.created_at, \
     d.delivered_at, d.next_attempt_at";

#[derive(sqlx::FromRow)]
struct WebhookRow {
    url: String,
    events: String,
    secret_ciphertext: Option<Vec<u8>>,
    secret_wrapped_key: Option<Vec<u8>>,
    secret_kek_id: Option<String>,
    created_at: DateTime<Utc>,
}

fn sealed(
    ciphertext: Option<Vec<u8>>,
    wrapped_key: Option<Vec<u8>>,
    kek_id: Option<String>,
) -> Option<SealedValue> {
    match (ciphertext, wrapped_key, kek_id) {
        (Some(ciphertext), Some(wrapped_key), Some(kek_id)) => Some(SealedValue {
            ciphertext,
            wrapped_key,
            kek_id,
        }),
        _ => None,
    }
}

/// `''` (every event) or `,a,b,`: the outbox's `LIKE` filter reads it.
fn encode_events(events: &[WebhookEvent]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    format!(",{},", names.join(","))
}

fn decode_events(events: &str) -> Vec<WebhookEvent> {
    events.split(',').filter_map(WebhookEvent::parse).collect()
}

impl From<WebhookRow> for SessionWebhook {
    fn from(r: WebhookRow) -> Self {
        SessionWebhook {
            url: r.url,
            events: decode_events(&r.events),
            secret: sealed(r.secret_ciphertext, r.secret_wrapped_key, r.secret_kek_id),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    project_id: String,
    session_id: String,
    url: String,
    event_type: String,
    run_id: String,
    session_status: String,
    session_error: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    attempt: i64,
    status_code: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            id: WebhookDeliveryId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            session_id: SessionId::from_string(r.session_id),
            url: r.url,
            event: WebhookEvent::parse(&r.event_type).unwrap_or(WebhookEvent::Completed),
            run_id: TurnId::from_string(r.run_id),
            session_status: r.session_status,
            session_error: r.session_error,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            attempt: r.attempt,
            status_code: r.status_code,
            error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
            next_attempt_at: r.next_attempt_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    webhook_found: Option<String>,
    secret_ciphertext: Option<Vec<u8>>,
    secret_wrapped_key: Option<Vec<u8>>,
    secret_kek_id: Option<String>,
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn replace_webhooks(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        webhooks: &[SessionWebhook],
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT id FROM agent_sessions WHERE project_id = $1 AND id = $2")
                    .bind(project_id.as_str())
                    .bind(session_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if found.is_none() {
                return Ok(false);
            }
            sqlx::query("DELETE FROM session_webhooks WHERE project_id = $1 AND session_id = $2")
                .bind(project_id.as_str())
                .bind(session_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for (position, w) in webhooks.iter().enumerate() {
                let secret = w.secret.as_ref();
                sqlx::query(
                    "INSERT INTO session_webhooks (id, project_id, session_id, position, url, events, \
                     secret_ciphertext, secret_wrapped_key, secret_kek_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(WebhookId::generate().as_str())
                .bind(project_id.as_str())
                .bind(session_id.as_str())
                .bind(position as i64)
                .bind(&w.url)
                .bind(encode_events(&w.events))
                .bind(secret.map(|s| s.ciphertext.clone()))
                .bind(secret.map(|s| s.wrapped_key.clone()))
                .bind(secret.map(|s| s.kek_id.clone()))
                .bind(w.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn list_webhooks(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
    ) -> StoreResult<Vec<SessionWebhook>> {
        let rows: Vec<WebhookRow> = read!(self, |pool| sqlx::query_as(
            "SELECT url, events, secret_ciphertext, secret_wrapped_key, secret_kek_id, created_at \
             FROM session_webhooks WHERE project_id = $1 AND session_id = $2 ORDER BY position"
        )
        .bind(project_id.as_str())
        .bind(session_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?);
        Ok(rows.into_iter().map(SessionWebhook::from).collect())
    }

    async fn list_deliveries(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.project_id = $1 AND d.session_id = $2 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3"
        );
        let rows: Vec<DeliveryRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(session_id.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        // The claim: count the attempt and push the row's due time to the
        // lease, only if it is still pending and due (another server's
        // claim of the same row then matches nothing).
        let lock = match self.kind() {
            DatabaseKind::Postgres => " FOR UPDATE SKIP LOCKED",
            DatabaseKind::Sqlite => "",
        };
        let pick = format!(
            "SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2{lock}"
        );
        let select = format!(
            "SELECT {DELIVERY_COLUMNS}, w.id AS webhook_found, w.secret_ciphertext, w.secret_wrapped_key, \
             w.secret_kek_id FROM webhook_deliveries d LEFT JOIN session_webhooks w ON w.id = d.webhook_id \
             WHERE d.id = $1"
        );
        write_tx!(self, |tx| {
            let ids: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(pick))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            let mut due = Vec::with_capacity(ids.len());
            for (id,) in ids {
                let claimed = sqlx::query(
                    "UPDATE webhook_deliveries SET attempt = attempt + 1, next_attempt_at = $1 \
                     WHERE id = $2 AND state = 'pending' AND next_attempt_at <= $3",
                )
                .bind(lease_until)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if claimed.rows_affected() == 0 {
                    continue;
                }
                let row: DueRow = sqlx::query_as(AssertSqlSafe(select.clone()))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                due.push(DueDelivery {
                    webhook_gone: row.webhook_found.is_none(),
                    secret: sealed(row.secret_ciphertext, row.secret_wrapped_key, row.secret_kek_id),
                    delivery: Delivery::from(row.delivery),
                });
            }
            tx.commit().await.map_err(db_err)?;
            Ok(due)
        })
    }

    async fn record_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        let state = match (attempt.delivered_at, attempt.failed) {
            (Some(_), _) => "delivered",
            (None, true) => "failed",
            (None, false) => "pending",
        };
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, status_code = $2, last_error = $3, delivered_at = $4, \
                 next_attempt_at = $5 WHERE id = $6",
            )
            .bind(state)
            .bind(attempt.status_code)
            .bind(attempt.error.as_deref())
            .bind(attempt.delivered_at)
            .bind(attempt.next_attempt_at)
            .bind(attempt.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }
}
