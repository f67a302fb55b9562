//! Turn claims: a session is claimed for a turn by a conditional `UPDATE`
//! of its row, with a lease the owner renews. Shared by `begin_turn` and
//! the queue.

use kiln_core::ids::{ProjectId, SessionId, TurnId};
use kiln_core::runtime::session::SessionStatus;
use kiln_core::time::{Timestamp, now};

use crate::db::DatabaseKind;

/// A lease time as SQL. On PostgreSQL, servers sharing the database judge
/// each other's leases, so a lease is kept on the database's clock: `at`
/// (on this server's clock) becomes `now() + (at - this server's now)`, and
/// a skewed server clock cannot make a live turn look expired. SQLite has
/// one server: its clock is the clock.
pub(crate) fn lease_sql(kind: DatabaseKind, placeholder: &str, at: Timestamp) -> (String, LeaseValue) {
    match kind {
        DatabaseKind::Postgres => (
            format!("(now() + {placeholder} * INTERVAL '1 millisecond')"),
            LeaseValue::Millis((at - now()).num_milliseconds()),
        ),
        DatabaseKind::Sqlite => (placeholder.to_owned(), LeaseValue::At(at)),
    }
}

/// What [`lease_sql`]'s placeholder binds.
#[derive(Clone)]
pub(crate) enum LeaseValue {
    Millis(i64),
    At(Timestamp),
}

pub(crate) fn bind_lease<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    value: &LeaseValue,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Timestamp: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match value {
        LeaseValue::Millis(ms) => query.bind(*ms),
        LeaseValue::At(at) => query.bind(*at),
    }
}

/// The claim of a free session for turn `$1`: `$3` is the lease (see
/// `lease_sql`), `$7` this server's id, and with `queue_empty` the
/// session's queue must be empty.
pub(crate) fn claim_sql(lease: &str, queue_empty: bool) -> String {
    let queue = if queue_empty {
        " AND NOT EXISTS (SELECT 1 FROM agent_queued_turns q WHERE q.session_id = agent_sessions.id)"
    } else {
        ""
    };
    format!(
        "UPDATE agent_sessions SET turn_id = $1, status = $2, lease_until = {lease}, updated_at = $4, \
         turn_server = $7 WHERE id = $5 AND project_id = $6 AND turn_id IS NULL{queue}"
    )
}

/// What [`claim_sql`]'s parameters bind (owned, so that a claim can be
/// written from a task of its own).
#[derive(Clone)]
pub(crate) struct Claim {
    pub(crate) turn: TurnId,
    pub(crate) lease: LeaseValue,
    pub(crate) at: Timestamp,
    pub(crate) session: SessionId,
    pub(crate) project: ProjectId,
    pub(crate) server: String,
}

/// Binds a claim's `$1`–`$7` onto `query`.
pub(crate) fn bind_claim<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    claim: &'q Claim,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Timestamp: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let query = query
        .bind(claim.turn.as_str())
        .bind(SessionStatus::Running.as_str());
    bind_lease(query, &claim.lease)
        .bind(claim.at)
        .bind(claim.session.as_str())
        .bind(claim.project.as_str())
        .bind(claim.server.as_str())
}
