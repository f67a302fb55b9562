//! Opening a database by URL and applying its dialect's migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use kiln_core::StoreError;

use crate::db::{DatabaseKind, Db, db_err};
use crate::event_log::AppendQueue;
use crate::held::HeldPool;

/// Every storage port of `kiln-core` over a real database connection pool.
pub struct SqlStore {
    pub(crate) db: Db,
    /// SQLite: the task that commits agent-event appends in groups, started
    /// on first use.
    pub(crate) appends: std::sync::OnceLock<AppendQueue>,
    /// This server's identity, written on the claims it takes (documents
    /// being ingested, sessions running a turn).
    pub(crate) server_id: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("kind", &self.kind()).finish()
    }
}

impl SqlStore {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...`
    /// and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_as(url, &uuid::Uuid::new_v4().to_string()).await
    }

    /// [`SqlStore::connect`] as the server `server_id`: the same id across
    /// restarts lets a server release its own claims at start
    /// ([`kiln_core::rag::store::RagStore::release_claims`],
    /// `expired_turns`).
    pub async fn connect_as(url: &str, server_id: &str) -> Result<Self, StoreError> {
        let mut store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url).await?
        } else {
            return Err(StoreError::Database(format!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://...",
                redact_url(url)
            )));
        };
        store.server_id = server_id.to_owned();
        store.migrate().await?;
        Ok(store)
    }

    /// The id this server writes on its claims.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    async fn connect_sqlite(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // A local file needs no liveness ping before each use; skipping it
        // saves a round trip to the connection's thread per transaction.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(SqlStore {
            db: Db::Sqlite {
                read: HeldPool::new(read),
                write: HeldPool::new(write),
            },
            appends: Default::default(),
            server_id: String::new(),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_err)?;
        // No ping before each use: sqlx would spend a round trip to the
        // server on every query and transaction for it (a connection the
        // server dropped fails one query, and is closed when it goes back).
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(SqlStore {
            db: Db::Postgres(pool),
            appends: Default::default(),
            server_id: String::new(),
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write.pool()).await,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        result.map_err(|e| StoreError::Database(format!("migration failed: {e}")))
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.db {
            Db::Sqlite { .. } => DatabaseKind::Sqlite,
            Db::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Closes every connection (the SQLite WAL is checkpointed on close).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
