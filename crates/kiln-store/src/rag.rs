//! `impl RagStore for SqlStore`: indexes, documents, their bytes and
//! chunks, the ingestion claims, and the search log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::audit::NewAudit;
use kiln_core::ids::{ApiKeyId, ChunkId, DocumentId, IndexId, ProjectId};
use kiln_core::page::Page;
use kiln_core::rag::ChunkEntry;
use kiln_core::rag::document::{
    ChunkRecord, DERIVED_FROM_EXTRACTION, Document, DocumentFilter, DocumentStatus, IndexEmbedder, Ingested,
    NewChunk,
};
use kiln_core::rag::index::Index;
use kiln_core::rag::store::{RagStore, SearchLogEntry, SearchOp, VersionedInsert};
use kiln_core::time::now;
use kiln_core::{StoreError, StoreResult};

use crate::connect::SqlStore;
use crate::db::{DatabaseKind, Db, db_err};
use crate::macros::Bind;
use crate::rows::IndexRow;

const INDEX_COLUMNS: &str = "id, project_id, name, description, metadata, created_at, updated_at";

const DOCUMENT_COLUMNS: [&str; 20] = [
    "id",
    "project_id",
    "index_id",
    "filename",
    "content_type",
    "file_size",
    "status",
    "error_message",
    "page_count",
    "chunk_count",
    "name",
    "version",
    "is_latest",
    "metadata",
    "parent_id",
    "created_by_api_key_id",
    "content_sha256",
    "deleted_at",
    "created_at",
    "updated_at",
];

/// The document columns, each prefixed with `prefix` (`"d."` in joins).
fn document_columns(prefix: &str) -> String {
    DOCUMENT_COLUMNS
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition for a document whose chunks search may return.
const SEARCHABLE: &str = "d.status = 'ready' AND d.is_latest = TRUE AND d.deleted_at IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct DocumentRow {
    id: String,
    project_id: String,
    index_id: String,
    filename: String,
    content_type: String,
    file_size: i64,
    status: String,
    error_message: Option<String>,
    page_count: Option<i64>,
    chunk_count: i64,
    name: Option<String>,
    version: i64,
    is_latest: bool,
    metadata: Json<Map<String, Value>>,
    parent_id: Option<String>,
    created_by_api_key_id: Option<String>,
    content_sha256: Option<String>,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DocumentRow> for Document {
    type Error = StoreError;
    fn try_from(r: DocumentRow) -> Result<Self, StoreError> {
        Ok(Document {
            status: DocumentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("document status `{}`", r.status)))?,
            id: DocumentId::from_string(r.id),
            project_id: ProjectId::from_string(r.project_id),
            index_id: IndexId::from_string(r.index_id),
            filename: r.filename,
            content_type: r.content_type,
            file_size: r.file_size,
            error_message: r.error_message,
            page_count: r.page_count,
            chunk_count: r.chunk_count,
            name: r.name,
            version: r.version,
            is_latest: r.is_latest,
            metadata: r.metadata.0,
            parent_id: r.parent_id.map(DocumentId::from_string),
            created_by_api_key_id: r.created_by_api_key_id.map(ApiKeyId::from_string),
            content_sha256: r.content_sha256,
            deleted_at: r.deleted_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChunkRecordRow {
    chunk_id: String,
    chunk_index: i64,
    chunk_content: String,
    chunk_metadata: Json<Map<String, Value>>,
    #[sqlx(flatten)]
    document: DocumentRow,
}

#[derive(sqlx::FromRow)]
struct SearchLogRow {
    seq: i64,
    project_id: String,
    index_id: String,
    document_id: Option<String>,
    op: String,
}

#[derive(sqlx::FromRow)]
struct ChunkEntryRow {
    id: String,
    document_id: String,
    index_id: String,
    project_id: String,
    content: String,
    embedding: Vec<u8>,
}

impl From<ChunkEntryRow> for ChunkEntry {
    fn from(r: ChunkEntryRow) -> Self {
        ChunkEntry {
            chunk_id: ChunkId::from_string(r.id),
            document_id: DocumentId::from_string(r.document_id),
            index_id: IndexId::from_string(r.index_id),
            project_id: ProjectId::from_string(r.project_id),
            text: r.content,
            embedding: decode_vector(&r.embedding),
        }
    }
}

/// Vectors are stored as little-endian f32s.
fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Appends a search-log entry inside the caller's transaction; the clock
/// row's lock orders entries by commit.
macro_rules! log_search {
    ($tx:ident, $project:expr, $index:expr, $document:expr, $op:expr) => {{
        let seq: i64 = sqlx::query("UPDATE search_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq")
            .fetch_one(&mut *$tx)
            .await
            .map_err(db_err)?
            .try_get("seq")
            .map_err(db_err)?;
        let document: Option<&str> = $document;
        sqlx::query(
            "INSERT INTO search_log (seq, project_id, index_id, document_id, op) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(seq)
        .bind($project)
        .bind($index)
        .bind(document)
        .bind(SearchOp::as_str($op))
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
    }};
}

/// Inserts a document row and its bytes inside the caller's transaction.
macro_rules! insert_document_row {
    ($tx:ident, $doc:expr, $version:expr, $bytes:expr) => {{
        let d: &Document = $doc;
        sqlx::query(
            "INSERT INTO documents (id, project_id, index_id, filename, content_type, file_size, status, \
             error_message, page_count, chunk_count, name, version, is_latest, metadata, parent_id, \
             created_by_api_key_id, content_sha256, deleted_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(d.id.as_str())
        .bind(d.project_id.as_str())
        .bind(d.index_id.as_str())
        .bind(&d.filename)
        .bind(&d.content_type)
        .bind(d.file_size)
        .bind(d.status.as_str())
        .bind(d.error_message.as_deref())
        .bind(d.page_count)
        .bind(d.chunk_count)
        .bind(d.name.as_deref())
        .bind($version)
        .bind(d.is_latest)
        .bind(Json(&d.metadata))
        .bind(d.parent_id.as_ref().map(|p| p.as_str()))
        .bind(d.created_by_api_key_id.as_ref().map(|k| k.as_str()))
        .bind(d.content_sha256.as_deref())
        .bind(d.deleted_at)
        .bind(d.created_at)
        .bind(d.updated_at)
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
        let bytes: &[u8] = $bytes;
        sqlx::query("INSERT INTO document_blobs (document_id, bytes) VALUES ($1, $2)")
            .bind(d.id.as_str())
            .bind(bytes)
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
    }};
}

/// Versions a named document inside the caller's transaction: returns
/// `Err(current)` on an `if_version` mismatch, else the new version after
/// retiring the live latest row (and logging its removal from search).
macro_rules! next_version {
    ($tx:ident, $project:expr, $index:expr, $name:expr, $if_version:expr, $at:expr) => {{
        let (project, index, name): (&str, &str, &str) = ($project, $index, $name);
        let current: Option<i64> = sqlx::query(
            "SELECT version FROM documents WHERE project_id = $1 AND index_id = $2 AND name = $3 \
             AND is_latest = TRUE AND deleted_at IS NULL",
        )
        .bind(project)
        .bind(index)
        .bind(name)
        .fetch_optional(&mut *$tx)
        .await
        .map_err(db_err)?
        .map(|r| r.try_get("version"))
        .transpose()
        .map_err(db_err)?;
        let if_version: Option<i64> = $if_version;
        match if_version {
            Some(expected) if expected != current.unwrap_or(0) => Err(current.unwrap_or(0)),
            _ => {
                let max: Option<i64> = sqlx::query(
                    "SELECT MAX(version) AS v FROM documents WHERE project_id = $1 AND index_id = $2 AND name = $3",
                )
                .bind(project)
                .bind(index)
                .bind(name)
                .fetch_one(&mut *$tx)
                .await
                .map_err(db_err)?
                .try_get("v")
                .map_err(db_err)?;
                let retired: Vec<String> = sqlx::query(
                    "UPDATE documents SET is_latest = FALSE, updated_at = $4 WHERE project_id = $1 \
                     AND index_id = $2 AND name = $3 AND is_latest = TRUE AND deleted_at IS NULL RETURNING id",
                )
                .bind(project)
                .bind(index)
                .bind(name)
                .bind($at)
                .fetch_all(&mut *$tx)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
                for id in &retired {
                    log_search!($tx, project, index, Some(id.as_str()), SearchOp::Remove);
                }
                Ok(max.unwrap_or(0) + 1)
            }
        }
    }};
}

/// Writes chunks for a document inside the caller's transaction.
macro_rules! insert_chunks {
    ($tx:ident, $doc:expr, $chunks:expr) => {{
        let d: &Document = $doc;
        let chunks: &[NewChunk] = $chunks;
        for c in chunks {
            sqlx::query(
                "INSERT INTO chunks (id, project_id, index_id, document_id, chunk_index, content, metadata, embedding) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(c.id.as_str())
            .bind(d.project_id.as_str())
            .bind(d.index_id.as_str())
            .bind(d.id.as_str())
            .bind(c.chunk_index)
            .bind(&c.content)
            .bind(Json(&c.metadata))
            .bind(encode_vector(&c.embedding))
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        }
    }};
}

/// The `WHERE` clause of the document list.
fn list_where(kind: DatabaseKind, project_id: &ProjectId, f: &DocumentFilter) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Text(project_id.to_string())];
    let mut sql = String::from(" WHERE project_id = $1");
    sql.push_str(if f.include_deleted {
        " AND (is_latest = TRUE OR deleted_at IS NOT NULL)"
    } else {
        " AND is_latest = TRUE AND deleted_at IS NULL"
    });
    let push = |binds: &mut Vec<Bind>, bind: Bind| {
        binds.push(bind);
        binds.len()
    };
    if let Some(v) = &f.index_id {
        let n = push(&mut binds, Bind::Text(v.to_string()));
        sql.push_str(&format!(" AND index_id = ${n}"));
    }
    if let Some(q) = &f.q {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let n = push(&mut binds, Bind::Text(format!("%{escaped}%")));
        let like = if kind == DatabaseKind::Postgres {
            "ILIKE"
        } else {
            "LIKE"
        };
        sql.push_str(&format!(" AND filename {like} ${n} ESCAPE '\\'"));
    }
    for (key, value) in &f.metadata {
        let k = push(&mut binds, Bind::Text(key.clone()));
        let v = push(&mut binds, Bind::Text(value.clone()));
        sql.push_str(&match kind {
            DatabaseKind::Postgres => format!(" AND metadata->>${k} = ${v}"),
            DatabaseKind::Sqlite => format!(
                " AND EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m \
                 WHERE m.key = ${k} AND CAST(m.value AS TEXT) = ${v})"
            ),
        });
    }
    if let Some(v) = &f.parent_id {
        let n = push(&mut binds, Bind::Text(v.to_string()));
        sql.push_str(&format!(" AND parent_id = ${n}"));
    }
    if let Some(v) = &f.content_sha256 {
        let n = push(&mut binds, Bind::Text(v.to_ascii_lowercase()));
        sql.push_str(&format!(" AND content_sha256 = ${n}"));
    }
    if let Some(v) = &f.exclude_id {
        let n = push(&mut binds, Bind::Text(v.to_string()));
        sql.push_str(&format!(" AND id <> ${n}"));
    }
    (sql, binds)
}

fn is_extraction_sibling(metadata: &Map<String, Value>) -> bool {
    metadata.get("derived_from").and_then(Value::as_str) == Some(DERIVED_FROM_EXTRACTION)
}

/// Records `$embedder` as the index's on its first vectors; evaluates to
/// the failure message when the index holds another embedder's vectors.
macro_rules! record_embedder {
    ($tx:ident, $doc:expr, $embedder:expr) => {{
        let (doc, e): (&Document, &IndexEmbedder) = ($doc, $embedder);
        sqlx::query(
            "UPDATE indexes SET embedder = $1, embedding_dims = $2 WHERE id = $3 AND embedder IS NULL",
        )
        .bind(&e.name)
        .bind(e.dimensions)
        .bind(doc.index_id.as_str())
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query("SELECT embedder, embedding_dims FROM indexes WHERE id = $1")
            .bind(doc.index_id.as_str())
            .fetch_optional(&mut *$tx)
            .await
            .map_err(db_err)?;
        let recorded = match row {
            Some(r) => Some((
                r.try_get::<Option<String>, _>("embedder").map_err(db_err)?,
                r.try_get::<Option<i64>, _>("embedding_dims").map_err(db_err)?,
            )),
            None => None,
        };
        (recorded != Some((Some(e.name.clone()), Some(e.dimensions)))).then(|| {
            format!(
                "the index holds vectors from another embedder than `{}` ({} dimensions); \
                 re-create the index to switch embedders",
                e.name, e.dimensions
            )
        })
    }};
}

/// A chunked document becomes `ready` with its chunks, and searchable
/// (a search-log entry) when `$searchable`.
macro_rules! finish_chunked {
    ($tx:ident, $doc:expr, $chunks:expr, $page_count:expr, $at:expr, $searchable:expr) => {{
        let (doc, chunks): (&Document, &[NewChunk]) = ($doc, $chunks);
        insert_chunks!($tx, doc, chunks);
        sqlx::query(
            "UPDATE documents SET status = 'ready', chunk_count = $1, page_count = $2, error_message = NULL, \
             claim_token = NULL, claimed_until_ms = NULL, updated_at = $3 WHERE id = $4",
        )
        .bind(chunks.len() as i64)
        .bind($page_count)
        .bind($at)
        .bind(doc.id.as_str())
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
        if $searchable {
            log_search!(
                $tx,
                doc.project_id.as_str(),
                doc.index_id.as_str(),
                Some(doc.id.as_str()),
                SearchOp::Add
            );
        }
    }};
}

/// An original with a Markdown sibling: the sibling is written (versioned
/// on its name, deleted with a deleted original) with the chunks, the
/// original becomes `stored`.
macro_rules! finish_with_sibling {
    ($tx:ident, $doc:expr, $sibling:expr, $markdown:expr, $chunks:expr, $page_count:expr, $at:expr, $deleted_at:expr) => {{
        let (doc, sibling, markdown, chunks, deleted_at): (
            &Document,
            &Document,
            &String,
            &[NewChunk],
            Option<DateTime<Utc>>,
        ) = ($doc, $sibling, $markdown, $chunks, $deleted_at);
        let mut sibling: Document = sibling.clone();
        sibling.deleted_at = deleted_at.map(|_| $at);
        sibling.is_latest = deleted_at.is_none();
        let version = match (&sibling.name, deleted_at) {
            (Some(name), None) => {
                let next: Result<i64, i64> = next_version!(
                    $tx,
                    doc.project_id.as_str(),
                    doc.index_id.as_str(),
                    name.as_str(),
                    None,
                    $at
                );
                next.unwrap_or(1)
            }
            _ => 1,
        };
        insert_document_row!($tx, &sibling, version, markdown.as_bytes());
        insert_chunks!($tx, &sibling, chunks);
        sqlx::query(
            "UPDATE documents SET status = 'stored', chunk_count = 0, page_count = $1, error_message = NULL, \
             claim_token = NULL, claimed_until_ms = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind($page_count)
        .bind($at)
        .bind(doc.id.as_str())
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
        if deleted_at.is_none() {
            log_search!(
                $tx,
                doc.project_id.as_str(),
                doc.index_id.as_str(),
                Some(sibling.id.as_str()),
                SearchOp::Add
            );
        }
    }};
}

#[async_trait]
impl RagStore for SqlStore {
    async fn create_index(&self, index: &Index, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO indexes (id, project_id, name, description, metadata, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(index.id.as_str())
            .bind(index.project_id.as_str())
            .bind(&index.name)
            .bind(&index.description)
            .bind(Json(&index.metadata))
            .bind(index.created_at)
            .bind(index.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn list_indexes(&self, project_id: &ProjectId) -> StoreResult<Vec<Index>> {
        let sql = format!("SELECT {INDEX_COLUMNS} FROM indexes WHERE project_id = $1 ORDER BY name, id");
        let rows: Vec<IndexRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(Index::from).collect())
    }

    async fn get_index(&self, project_id: &ProjectId, id: &IndexId) -> StoreResult<Option<Index>> {
        let sql = format!("SELECT {INDEX_COLUMNS} FROM indexes WHERE project_id = $1 AND id = $2");
        let row: Option<IndexRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(Index::from))
    }

    async fn update_index(&self, index: &Index, audit: &NewAudit) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE indexes SET name = $1, description = $2, metadata = $3, updated_at = $4 \
                 WHERE project_id = $5 AND id = $6",
            )
            .bind(&index.name)
            .bind(&index.description)
            .bind(Json(&index.metadata))
            .bind(index.updated_at)
            .bind(index.project_id.as_str())
            .bind(index.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn delete_index(
        &self,
        project_id: &ProjectId,
        id: &IndexId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query("DELETE FROM indexes WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            // Its documents, their bytes and chunks went with it (ON DELETE
            // CASCADE); the search structures drop it on replay.
            log_search!(tx, project_id.as_str(), id.as_str(), None, SearchOp::DropIndex);
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn insert_document(
        &self,
        doc: &Document,
        bytes: &[u8],
        if_version: Option<i64>,
        audit: &NewAudit,
    ) -> StoreResult<VersionedInsert> {
        write_tx!(self, |tx| {
            let version = match &doc.name {
                Some(name) => {
                    let next: Result<i64, i64> = next_version!(
                        tx,
                        doc.project_id.as_str(),
                        doc.index_id.as_str(),
                        name.as_str(),
                        if_version,
                        doc.created_at
                    );
                    match next {
                        Ok(v) => v,
                        Err(current_version) => return Ok(VersionedInsert::Conflict { current_version }),
                    }
                }
                None => 1,
            };
            insert_document_row!(tx, doc, version, bytes);
            commit_audited!(tx, audit)?;
            Ok(VersionedInsert::Inserted { version })
        })
    }

    async fn get_document(&self, project_id: &ProjectId, id: &DocumentId) -> StoreResult<Option<Document>> {
        let sql = format!(
            "SELECT {} FROM documents WHERE project_id = $1 AND id = $2",
            document_columns("")
        );
        let row: Option<DocumentRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        row.map(Document::try_from).transpose()
    }

    async fn document_by_name(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
        name: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<Document>> {
        let which = if version.is_some() {
            "version = $4"
        } else {
            "is_latest = TRUE AND deleted_at IS NULL"
        };
        let sql = format!(
            "SELECT {} FROM documents WHERE project_id = $1 AND index_id = $2 AND name = $3 AND {which}",
            document_columns("")
        );
        let row: Option<DocumentRow> = read!(self, |pool| {
            let mut q = sqlx::query_as(AssertSqlSafe(sql))
                .bind(project_id.as_str())
                .bind(index_id.as_str())
                .bind(name);
            if let Some(v) = version {
                q = q.bind(v);
            }
            q.fetch_optional(pool).await.map_err(db_err)?
        });
        row.map(Document::try_from).transpose()
    }

    async fn document_versions(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
        name: &str,
    ) -> StoreResult<Vec<Document>> {
        let sql = format!(
            "SELECT {} FROM documents WHERE project_id = $1 AND index_id = $2 AND name = $3 ORDER BY version DESC",
            document_columns("")
        );
        let rows: Vec<DocumentRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(index_id.as_str())
            .bind(name)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        rows.into_iter().map(Document::try_from).collect()
    }

    async fn list_documents(
        &self,
        project_id: &ProjectId,
        filter: &DocumentFilter,
        page: Page,
    ) -> StoreResult<(Vec<Document>, i64)> {
        let (where_sql, binds) = list_where(self.kind(), project_id, filter);
        let (rows, total) = count_and_page!(
            self,
            DocumentRow,
            document_columns(""),
            format!("documents{where_sql}"),
            binds,
            page
        );
        let docs = rows
            .into_iter()
            .map(Document::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((docs, total))
    }

    async fn delete_document(
        &self,
        project_id: &ProjectId,
        id: &DocumentId,
        hard: bool,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        let at = now();
        write_tx!(self, |tx| {
            // The document and its extraction siblings.
            let rows = sqlx::query(
                "SELECT id, index_id, metadata, deleted_at FROM documents \
                 WHERE project_id = $1 AND (id = $2 OR parent_id = $2)",
            )
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let mut targets: Vec<(String, String)> = Vec::new();
            for row in rows {
                let row_id: String = row.try_get("id").map_err(db_err)?;
                let metadata: Json<Map<String, Value>> = row.try_get("metadata").map_err(db_err)?;
                let deleted_at: Option<DateTime<Utc>> = row.try_get("deleted_at").map_err(db_err)?;
                let is_target = row_id == id.as_str() || is_extraction_sibling(&metadata.0);
                if is_target && (hard || deleted_at.is_none()) {
                    targets.push((row_id, row.try_get("index_id").map_err(db_err)?));
                }
            }
            if targets.is_empty() {
                return Ok(false);
            }
            for (doc_id, index_id) in &targets {
                let sql = if hard {
                    "DELETE FROM documents WHERE project_id = $1 AND id = $2"
                } else {
                    "UPDATE documents SET deleted_at = $3, is_latest = FALSE, updated_at = $3 \
                     WHERE project_id = $1 AND id = $2"
                };
                sqlx::query(sql)
                    .bind(project_id.as_str())
                    .bind(doc_id.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                log_search!(
                    tx,
                    project_id.as_str(),
                    index_id.as_str(),
                    Some(doc_id.as_str()),
                    SearchOp::Remove
                );
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn claim_document(
        &self,
        now_ms: i64,
        lease_ms: i64,
        token: &str,
        max_attempts: i64,
    ) -> StoreResult<Option<Document>> {
        let lock = match self.kind() {
            DatabaseKind::Postgres => " FOR UPDATE SKIP LOCKED",
            DatabaseKind::Sqlite => "",
        };
        let pick = format!(
            "SELECT id, claim_attempts FROM documents WHERE deleted_at IS NULL AND (status = 'pending' \
             OR (status = 'processing' AND claimed_until_ms < $1)) ORDER BY created_at, id LIMIT 1{lock}"
        );
        let select = format!("SELECT {} FROM documents WHERE id = $1", document_columns(""));
        write_tx!(self, |tx| {
            loop {
                let Some(row) = sqlx::query(AssertSqlSafe(pick.clone()))
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?
                else {
                    tx.commit().await.map_err(db_err)?;
                    return Ok(None);
                };
                let id: String = row.try_get("id").map_err(db_err)?;
                let attempts: i64 = row.try_get("claim_attempts").map_err(db_err)?;
                if attempts >= max_attempts {
                    // Every earlier claim died with its worker or server.
                    sqlx::query(
                        "UPDATE documents SET status = 'error', error_message = $1, chunk_count = 0, \
                         claim_token = NULL, claimed_until_ms = NULL, updated_at = $2 WHERE id = $3",
                    )
                    .bind(format!(
                        "reading this file was started {attempts} times and never finished (the server \
                         stopped each time); it is likely malformed or crafted to exhaust the server"
                    ))
                    .bind(now())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    continue;
                }
                sqlx::query(
                    "UPDATE documents SET status = 'processing', claim_token = $1, claimed_until_ms = $2, \
                     claim_attempts = claim_attempts + 1, claimed_by = $4 WHERE id = $3",
                )
                .bind(token)
                .bind(now_ms + lease_ms)
                .bind(&id)
                .bind(self.server_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let doc: DocumentRow = sqlx::query_as(AssertSqlSafe(select.clone()))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                return Document::try_from(doc).map(Some);
            }
        })
    }

    async fn release_claims(&self, mine_only: bool) -> StoreResult<u64> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE documents SET status = 'pending', claim_token = NULL, claimed_until_ms = NULL \
                 WHERE status = 'processing' AND (NOT $1 OR claimed_by = $2)",
            )
            .bind(mine_only)
            .bind(self.server_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected())
        })
    }

    async fn renew_document_claim(&self, id: &DocumentId, token: &str, until_ms: i64) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE documents SET claimed_until_ms = $1 \
                 WHERE id = $2 AND claim_token = $3 AND status = 'processing'",
            )
            .bind(until_ms)
            .bind(id.as_str())
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn document_bytes(&self, project_id: &ProjectId, id: &DocumentId) -> StoreResult<Option<Vec<u8>>> {
        read!(self, |pool| {
            let row = sqlx::query(
                "SELECT b.bytes FROM document_blobs b JOIN documents d ON d.id = b.document_id \
                 WHERE d.project_id = $1 AND d.id = $2",
            )
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?;
            row.map(|r| r.try_get::<Vec<u8>, _>("bytes"))
                .transpose()
                .map_err(db_err)
        })
    }

    async fn index_embedder(
        &self,
        project_id: &ProjectId,
        index_id: &IndexId,
    ) -> StoreResult<Option<IndexEmbedder>> {
        read!(self, |pool| {
            let row =
                sqlx::query("SELECT embedder, embedding_dims FROM indexes WHERE project_id = $1 AND id = $2")
                    .bind(project_id.as_str())
                    .bind(index_id.as_str())
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            let name: Option<String> = row.try_get("embedder").map_err(db_err)?;
            let dims: Option<i64> = row.try_get("embedding_dims").map_err(db_err)?;
            Ok(name
                .zip(dims)
                .map(|(name, dimensions)| IndexEmbedder { name, dimensions }))
        })
    }

    async fn finish_document(
        &self,
        doc: &Document,
        token: &str,
        outcome: &Ingested,
        embedder: Option<&IndexEmbedder>,
    ) -> StoreResult<bool> {
        let at = now();
        write_tx!(self, |tx| {
            let Some(row) = sqlx::query(
                "SELECT is_latest, deleted_at FROM documents WHERE id = $1 AND claim_token = $2 AND status = 'processing'",
            )
            .bind(doc.id.as_str())
            .bind(token)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            else {
                return Ok(false);
            };
            let is_latest: bool = row.try_get("is_latest").map_err(db_err)?;
            let deleted_at: Option<DateTime<Utc>> = row.try_get("deleted_at").map_err(db_err)?;
            let failure: Option<String> = match embedder {
                Some(e) => record_embedder!(tx, doc, e),
                None => None,
            };
            let outcome = match (&failure, outcome) {
                (Some(message), _) => &Ingested::Failed(message.clone()),
                (None, o) => o,
            };
            sqlx::query("DELETE FROM chunks WHERE document_id = $1")
                .bind(doc.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            match outcome {
                Ingested::Chunked { chunks, page_count } => {
                    finish_chunked!(
                        tx,
                        doc,
                        chunks,
                        *page_count,
                        at,
                        is_latest && deleted_at.is_none()
                    );
                }
                Ingested::Sibling {
                    sibling,
                    markdown,
                    chunks,
                    page_count,
                } => {
                    finish_with_sibling!(tx, doc, sibling, markdown, chunks, *page_count, at, deleted_at);
                }
                Ingested::Failed(message) => {
                    sqlx::query(
                        "UPDATE documents SET status = 'error', error_message = $1, chunk_count = 0, \
                         claim_token = NULL, claimed_until_ms = NULL, updated_at = $2 WHERE id = $3",
                    )
                    .bind(message)
                    .bind(at)
                    .bind(doc.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
            }
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn search_seq(&self) -> StoreResult<i64> {
        read!(self, |pool| sqlx::query(
            "SELECT seq FROM search_clock WHERE id = 1"
        )
        .fetch_one(pool)
        .await
        .map_err(db_err)?
        .try_get("seq")
        .map_err(db_err))
    }

    async fn search_log_after(&self, seq: i64, limit: i64) -> StoreResult<Vec<SearchLogEntry>> {
        let rows: Vec<SearchLogRow> = read!(self, |pool| {
            sqlx::query_as(
            "SELECT seq, project_id, index_id, document_id, op FROM search_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err)?
        });
        rows.into_iter()
            .map(|r| {
                Ok(SearchLogEntry {
                    seq: r.seq,
                    project_id: ProjectId::from_string(r.project_id),
                    index_id: IndexId::from_string(r.index_id),
                    document_id: r.document_id.map(DocumentId::from_string),
                    op: SearchOp::parse(&r.op)
                        .ok_or_else(|| StoreError::Corrupt(format!("search-log op `{}`", r.op)))?,
                })
            })
            .collect()
    }

    async fn searchable_chunks(&self, document_id: &DocumentId) -> StoreResult<Vec<ChunkEntry>> {
        let sql = format!(
            "SELECT c.id, c.document_id, c.index_id, c.project_id, c.content, c.embedding FROM chunks c \
             JOIN documents d ON d.id = c.document_id WHERE c.document_id = $1 AND {SEARCHABLE} ORDER BY c.chunk_index"
        );
        let rows: Vec<ChunkEntryRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(document_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(ChunkEntry::from).collect())
    }

    async fn searchable_chunks_after(
        &self,
        after: Option<&DocumentId>,
        documents: i64,
    ) -> StoreResult<Vec<ChunkEntry>> {
        let sql = format!(
            "SELECT c.id, c.document_id, c.index_id, c.project_id, c.content, c.embedding FROM chunks c \
             WHERE c.document_id IN (SELECT d.id FROM documents d WHERE {SEARCHABLE} AND d.id > $1 \
             ORDER BY d.id LIMIT $2) ORDER BY c.document_id, c.chunk_index"
        );
        let rows: Vec<ChunkEntryRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(after.map(|a| a.as_str()).unwrap_or(""))
            .bind(documents)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(ChunkEntry::from).collect())
    }

    async fn chunk_records(
        &self,
        project_id: &ProjectId,
        chunk_ids: &[ChunkId],
    ) -> StoreResult<Vec<ChunkRecord>> {
        if chunk_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..chunk_ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT c.id AS chunk_id, c.chunk_index, c.content AS chunk_content, c.metadata AS chunk_metadata, {} \
             FROM chunks c JOIN documents d ON d.id = c.document_id \
             WHERE c.id IN ({}) AND c.project_id = $1 AND {SEARCHABLE}",
            document_columns("d."),
            placeholders.join(", ")
        );
        // Led by the chunk ids (primary key): a condition on the document's
        // project would let SQLite's planner walk every chunk of the project
        // instead. A chunk's project is its document's.
        let rows: Vec<ChunkRecordRow> = read!(self, |pool| {
            let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(project_id.as_str());
            for id in chunk_ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(pool).await.map_err(db_err)?
        });
        rows.into_iter()
            .map(|r| {
                Ok(ChunkRecord {
                    chunk_id: ChunkId::from_string(r.chunk_id),
                    chunk_index: r.chunk_index,
                    content: r.chunk_content,
                    metadata: r.chunk_metadata.0,
                    document: Document::try_from(r.document)?,
                })
            })
            .collect()
    }
}
