//! The two backends behind one store, and how their errors become
//! `StoreError`s.

use sqlx::PgPool;

use crate::held::HeldPool;

use kiln_core::StoreError;

pub(crate) enum Db {
    Sqlite { read: HeldPool, write: HeldPool },
    Postgres(PgPool),
}

/// Which backend a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::UniqueViolation(d.message().to_owned())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::ForeignKeyViolation(d.message().to_owned())
        }
        _ => StoreError::Database(e.to_string()),
    }
}
