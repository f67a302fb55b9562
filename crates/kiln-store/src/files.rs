//! Captured files' SQL (`AgentStore`'s file methods delegate here): a write
//! checks the session's quotas and replaces the file in one transaction.

use chrono::{DateTime, Utc};

use kiln_core::StoreResult;
use kiln_core::ids::{ProjectId, SessionId};
use kiln_core::runtime::files::{
    FileEntry, MAX_SESSION_FILE_BYTES, MAX_SESSION_FILES, SessionFile, WriteFile,
};
use kiln_core::time::Timestamp;

use crate::connect::SqlStore;
use crate::db::{Db, db_err};

impl SqlStore {
    pub(crate) async fn write_session_file_sql(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
        content: &[u8],
        at: Timestamp,
    ) -> StoreResult<WriteFile> {
        let size = content.len() as i64;
        write_tx!(self, |tx| {
            // The session row first: on PostgreSQL its lock orders this
            // against another write of the same session's files.
            let found: Option<(String,)> = sqlx::query_as(
                "UPDATE agent_sessions SET updated_at = updated_at WHERE project_id = $1 AND id = $2 RETURNING id",
            )
            .bind(project_id.as_str())
            .bind(session_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if found.is_none() {
                return Ok(WriteFile::SessionGone);
            }
            let (files, bytes): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM session_files \
                 WHERE session_id = $1 AND path <> $2",
            )
            .bind(session_id.as_str())
            .bind(path)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if files >= MAX_SESSION_FILES {
                return Ok(WriteFile::Refused(format!(
                    "a session holds at most {MAX_SESSION_FILES} files"
                )));
            }
            if bytes + size > MAX_SESSION_FILE_BYTES {
                return Ok(WriteFile::Refused(format!(
                    "a session's files take at most {MAX_SESSION_FILE_BYTES} bytes together; {bytes} are used"
                )));
            }
            sqlx::query(
                "INSERT INTO session_files (project_id, session_id, path, content, size, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (session_id, path) DO UPDATE SET content = excluded.content, size = excluded.size, \
                 updated_at = excluded.updated_at",
            )
            .bind(project_id.as_str())
            .bind(session_id.as_str())
            .bind(path)
            .bind(content)
            .bind(size)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(WriteFile::Written)
        })
    }

    pub(crate) async fn read_session_file_sql(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
        path: &str,
    ) -> StoreResult<Option<SessionFile>> {
        let row: Option<(String, Vec<u8>, DateTime<Utc>)> = read!(self, |pool| {
            sqlx::query_as(
            "SELECT path, content, updated_at FROM session_files WHERE project_id = $1 AND session_id = $2 AND path = $3"
        )
        .bind(project_id.as_str())
        .bind(session_id.as_str())
        .bind(path)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?
        });
        Ok(row.map(|(path, content, updated_at)| SessionFile {
            path,
            content,
            updated_at,
        }))
    }

    pub(crate) async fn list_session_files_sql(
        &self,
        project_id: &ProjectId,
        session_id: &SessionId,
    ) -> StoreResult<Vec<FileEntry>> {
        let rows: Vec<(String, i64, DateTime<Utc>)> = read!(self, |pool| {
            sqlx::query_as(
            "SELECT path, size, updated_at FROM session_files WHERE project_id = $1 AND session_id = $2 ORDER BY path"
        )
        .bind(project_id.as_str())
        .bind(session_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?
        });
        Ok(rows
            .into_iter()
            .map(|(path, size, updated_at)| FileEntry {
                path,
                size,
                updated_at,
            })
            .collect())
    }
}
