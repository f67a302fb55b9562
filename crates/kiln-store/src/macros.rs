//! The macros every query module uses: one body, one arm per backend, plus
//! the bind values of dynamically built `WHERE` clauses.

use chrono::{DateTime, Utc};

/// A value bound to a placeholder of dynamically built SQL.
pub(crate) enum Bind {
    Text(String),
    Time(DateTime<Utc>),
}

/// Runs `$body` with `$pool` bound to a connection of the backend's read
/// pool (`&mut` a connection: a body that runs several queries reborrows it
/// with `&mut *pool`), once per backend arm so each is type-checked against
/// its own driver.
macro_rules! read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            Db::Sqlite { read, .. } => {
                // A held connection (see `held`), not the pool itself.
                let mut held = read.acquire().await.map_err(db_err)?;
                let $pool = &mut *held;
                $body
            }
            Db::Postgres(pg) => {
                let mut held = pg.acquire().await.map_err(db_err)?;
                let $pool = &mut *held;
                $body
            }
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx`; the body commits.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.db {
            Db::Sqlite { write, .. } => {
                let mut held = write.acquire().await.map_err(db_err)?;
                #[allow(unused_mut)]
                let mut $tx = sqlx::Connection::begin_with(&mut *held, "BEGIN IMMEDIATE")
                    .await
                    .map_err(db_err)?;
                $body
            }
            Db::Postgres(pg) => {
                #[allow(unused_mut)]
                let mut $tx = pg.begin().await.map_err(db_err)?;
                $body
            }
        }
    };
}

/// Appends the audit entry inside the caller's transaction.
macro_rules! insert_audit {
    ($tx:ident, $audit:expr) => {{
        let a: &NewAudit = $audit;
        sqlx::query(
            "INSERT INTO audit_log (id, project_id, actor_user_id, actor_api_key_id, action, subject_type, \
             subject_id, agent_version_id, session_id, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9)",
        )
        .bind(a.id.as_str())
        .bind(a.project_id.as_str())
        .bind(a.actor.user_id.as_deref())
        .bind(a.actor.api_key_id.as_ref().map(|k| k.as_str()))
        .bind(a.action)
        .bind(a.subject_type())
        .bind(&a.subject_id)
        .bind(Json(&a.metadata))
        .bind(a.created_at)
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
    }};
}

/// The ending of every audited change: the audit entry, then the commit.
/// Evaluates to the commit's result.
macro_rules! commit_audited {
    ($tx:ident, $audit:expr) => {{
        insert_audit!($tx, $audit);
        $tx.commit().await.map_err(db_err)
    }};
}

/// Inserts an API key row inside the caller's transaction.
macro_rules! insert_key {
    ($tx:ident, $key:expr) => {{
        let key: &ApiKey = $key;
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, name, prefix, key_hash, created_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
        )
        .bind(key.id.as_str())
        .bind(key.project_id.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.key_hash)
        .bind(key.created_at)
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
    }};
}

/// Records an LLM call inside the caller's transaction.
macro_rules! insert_call {
    ($tx:ident, $call:expr) => {{
        let call: &LlmCall = $call;
        sqlx::query(
            "INSERT INTO llm_calls (id, project_id, source, provider, model, prompt_tokens, completion_tokens, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(call.id.as_str())
        .bind(call.project_id.as_str())
        .bind(call.source.as_str())
        .bind(call.model.provider.name())
        .bind(&call.model.model)
        .bind(i64::from(call.usage.prompt_tokens))
        .bind(i64::from(call.usage.completion_tokens))
        .bind(call.created_at)
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
    }};
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Time(t) => q.bind(*t),
            };
        }
        q
    }};
}

/// One page of a filtered list, newest first, and the count of every match:
/// `$from_where` is `table WHERE …` with `$1..$N` placeholders for `$binds`.
/// Evaluates to `(Vec<$row>, total)`; errors return from the caller.
macro_rules! count_and_page {
    ($store:expr, $row:ty, $columns:expr, $from_where:expr, $binds:expr, $page:expr) => {{
        let from_where: &str = &$from_where;
        let binds: &[Bind] = &$binds;
        let page: Page = $page;
        let count_sql = format!("SELECT COUNT(*) AS n FROM {from_where}");
        let list_sql = format!(
            "SELECT {} FROM {from_where} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            $columns,
            binds.len() + 1,
            binds.len() + 2
        );
        read!($store, |pool| {
            let total: i64 = bind_all!(sqlx::query(AssertSqlSafe(count_sql)), binds)
                .fetch_one(&mut *pool)
                .await
                .map_err(db_err)?
                .try_get("n")
                .map_err(db_err)?;
            let rows: Vec<$row> = bind_all!(sqlx::query_as(AssertSqlSafe(list_sql)), binds)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            (rows, total)
        })
    }};
}
