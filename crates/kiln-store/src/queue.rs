//! The per-session queue's SQL (`AgentStore`'s queue methods delegate here).
//!
//! The claim is the same conditional `UPDATE` as `begin_turn`'s: a session
//! is free when no turn holds it; `run` also needs an empty queue, so a
//! direct run cannot overtake queued turns. Taking the first queued turn
//! off the queue, claiming the session for it and logging its user message
//! happen in one transaction: two servers draining one database cannot both
//! run it (on PostgreSQL the claim's row lock serialises them; the loser's
//! `UPDATE` matches nothing and it rolls back).

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use kiln_core::StoreResult;
use kiln_core::ids::{ApiKeyId, ProjectId, SessionId, TurnId};
use kiln_core::runtime::event::StoredEvent;
use kiln_core::runtime::store::{Enqueue, NewEvent, QueuedTurn, Reorder};
use kiln_core::time::Timestamp;

use crate::claims::{Claim, bind_claim, claim_sql, lease_sql};
use crate::connect::SqlStore;
use crate::db::{DatabaseKind, Db, db_err};
use crate::event_log::{AppendSql, append_row};

const QUEUE_COLUMNS: &str = "id, project_id, session_id, key_id, message, position, created_at";

#[derive(sqlx::FromRow)]
struct QueuedRow {
    id: String,
    project_id: String,
    session_id: String,
    key_id: String,
    message: String,
    position: i64,
    created_at: DateTime<Utc>,
}

impl From<QueuedRow> for QueuedTurn {
    fn from(r: QueuedRow) -> Self {
        QueuedTurn {
            id: TurnId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            session_id: SessionId::from_string(r.session_id),
            key_id: ApiKeyId::from_string(r.key_id),
            message: r.message,
            position: r.position,
            created_at: r.created_at,
        }
    }
}

/// The queue as read: positions renumbered from 1 in order.
fn numbered(rows: Vec<QueuedRow>) -> Vec<QueuedTurn> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| QueuedTurn {
            position: i as i64 + 1,
            ..QueuedTurn::from(row)
        })
        .collect()
}

impl SqlStore {
    pub(crate) async fn enqueue_turn_sql(
        &self,
        queued: &QueuedTurn,
        lease_until: Timestamp,
        first: &NewEvent,
        max: i64,
    ) -> StoreResult<Enqueue> {
        let postgres = self.kind() == DatabaseKind::Postgres;
        let (lease, lease_value) = lease_sql(self.kind(), "$3", lease_until);
        let claim = claim_sql(&lease, true);
        let (project_id, id, turn) = (&queued.project_id, &queued.session_id, &queued.id);
        write_tx!(self, |tx| {
            // The session row first: on PostgreSQL its lock orders this
            // against a drain or another enqueue of the same session.
            let lock = if postgres { " FOR UPDATE" } else { "" };
            let exists = sqlx::query(AssertSqlSafe(format!(
                "SELECT id FROM agent_sessions WHERE id = $1 AND project_id = $2{lock}"
            )))
            .bind(id.as_str())
            .bind(project_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if exists.is_none() {
                return Ok(Enqueue::NotFound);
            }
            let claimed = Claim {
                turn: turn.clone(),
                lease: lease_value,
                at: first.at,
                session: id.clone(),
                project: project_id.clone(),
                server: self.server_id.clone(),
            };
            let claimed = bind_claim(sqlx::query(AssertSqlSafe(claim)), &claimed)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if claimed.rows_affected() == 1 {
                let how = AppendSql::in_transaction(self.kind());
                let row = append_row!(tx, how, project_id, id, turn, first).ok_or_else(|| {
                    kiln_core::StoreError::Database("a claimed session refused its first event".into())
                })?;
                tx.commit().await.map_err(db_err)?;
                return Ok(Enqueue::Started(Box::new(row)));
            }
            let (count, last): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MAX(position) FROM agent_queued_turns WHERE session_id = $1 AND project_id = $2",
            )
            .bind(id.as_str())
            .bind(project_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if count >= max {
                return Ok(Enqueue::Full);
            }
            sqlx::query(
                "INSERT INTO agent_queued_turns (id, project_id, session_id, key_id, message, position, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(turn.as_str())
            .bind(project_id.as_str())
            .bind(id.as_str())
            .bind(queued.key_id.as_str())
            .bind(&queued.message)
            .bind(last.unwrap_or(0) + 1)
            .bind(queued.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(Enqueue::Queued { position: count + 1 })
        })
    }

    pub(crate) async fn begin_queued_turn_sql(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        lease_until: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Option<(QueuedTurn, StoredEvent)>> {
        // Most sessions have nothing queued when a turn ends: a read says so
        // without taking the writer (and on SQLite without three round
        // trips to it). This runs after the ended turn's last append
        // committed, and enqueueing claims or queues under the session
        // row's lock (SQLite: the one writer) in one transaction, so a turn
        // queued before that commit is seen here and one queued after it
        // found the session free and started itself.
        let queued: Option<i64> = read!(self, |pool| {
            sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM agent_queued_turns WHERE session_id = $1 AND project_id = $2 LIMIT 1"
        )
        .bind(id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?
        });
        if queued.is_none() {
            return Ok(None);
        }
        let (lease, lease_value) = lease_sql(self.kind(), "$3", lease_until);
        let claim = claim_sql(&lease, false);
        let first_sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM agent_queued_turns WHERE session_id = $1 AND project_id = $2 \
             ORDER BY position, created_at LIMIT 1"
        );
        write_tx!(self, |tx| {
            let next: Option<QueuedRow> = sqlx::query_as(AssertSqlSafe(first_sql))
                .bind(id.as_str())
                .bind(project_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(next) = next else { return Ok(None) };
            let queued = QueuedTurn {
                position: 1,
                ..QueuedTurn::from(next)
            };
            let claimed = Claim {
                turn: queued.id.clone(),
                lease: lease_value,
                at,
                session: id.clone(),
                project: project_id.clone(),
                server: self.server_id.clone(),
            };
            let claimed = bind_claim(sqlx::query(AssertSqlSafe(claim)), &claimed)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if claimed.rows_affected() != 1 {
                // Busy (or being claimed by another server): leave it.
                return Ok(None);
            }
            let taken = sqlx::query("DELETE FROM agent_queued_turns WHERE id = $1 AND session_id = $2")
                .bind(queued.id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if taken.rows_affected() != 1 {
                // Cancelled meanwhile: roll the claim back.
                return Ok(None);
            }
            let first = NewEvent::user_message(&queued.message, at);
            let how = AppendSql::in_transaction(self.kind());
            let row = append_row!(tx, how, project_id, id, &queued.id, &first).ok_or_else(|| {
                kiln_core::StoreError::Database("a claimed session refused its first event".into())
            })?;
            tx.commit().await.map_err(db_err)?;
            Ok(Some((queued, row)))
        })
    }

    pub(crate) async fn queued_turns_sql(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
    ) -> StoreResult<Vec<QueuedTurn>> {
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM agent_queued_turns WHERE session_id = $1 AND project_id = $2 \
             ORDER BY position, created_at"
        );
        let rows: Vec<QueuedRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(project_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(numbered(rows))
    }

    pub(crate) async fn delete_queued_turn_sql(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        queued: &TurnId,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "DELETE FROM agent_queued_turns WHERE id = $1 AND session_id = $2 AND project_id = $3",
            )
            .bind(queued.as_str())
            .bind(id.as_str())
            .bind(project_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    pub(crate) async fn reorder_queue_sql(
        &self,
        project_id: &ProjectId,
        id: &SessionId,
        order: &[TurnId],
    ) -> StoreResult<Reorder> {
        let postgres = self.kind() == DatabaseKind::Postgres;
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM agent_queued_turns WHERE session_id = $1 AND project_id = $2 \
             ORDER BY position, created_at{}",
            if postgres { " FOR UPDATE" } else { "" }
        );
        write_tx!(self, |tx| {
            let rows: Vec<QueuedRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(id.as_str())
                .bind(project_id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(unknown) = order.iter().find(|o| !rows.iter().any(|r| r.id == o.as_str())) {
                return Ok(Reorder::Unknown(unknown.clone()));
            }
            let mut ordered: Vec<QueuedRow> = Vec::with_capacity(rows.len());
            let mut rest = rows;
            for wanted in order {
                if let Some(i) = rest.iter().position(|r| r.id == wanted.as_str()) {
                    ordered.push(rest.remove(i));
                }
            }
            ordered.extend(rest);
            for (i, row) in ordered.iter_mut().enumerate() {
                row.position = i as i64 + 1;
                sqlx::query("UPDATE agent_queued_turns SET position = $1 WHERE id = $2")
                    .bind(row.position)
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(Reorder::Done(numbered(ordered)))
        })
    }

    pub(crate) async fn sessions_with_ready_queue_sql(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<(ProjectId, SessionId)>> {
        let rows: Vec<(String, String)> = read!(self, |pool| sqlx::query_as(
            "SELECT DISTINCT q.project_id, q.session_id FROM agent_queued_turns q \
             JOIN agent_sessions s ON s.id = q.session_id WHERE s.turn_id IS NULL LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err)?);
        Ok(rows
            .into_iter()
            .map(|(p, s)| (ProjectId::from_string(p), SessionId::from_string(s)))
            .collect())
    }
}
