//! Documents and search: upload (streamed from disk or from memory), reads,
//! lists with filters, deletes, and hybrid search in chunk or document mode.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use kiln_api::{Document, DocumentList, DocumentSearchResult, DocumentVersions, SearchRequest, SearchResult};

use crate::client::{Client, segment};
use crate::error::Error;

/// The optional fields of an upload.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Logical name: uploads with the same name in one index are versions.
    pub name: Option<String>,
    /// Provenance link to another document.
    pub parent_id: Option<String>,
    /// Refuse (409 `version_conflict`) unless the live latest version of
    /// `name` is this one (0: no live version).
    pub if_version: Option<i64>,
    /// Provenance metadata (`source`, `task`, …).
    pub metadata: Option<Map<String, Value>>,
}

/// Filters of the document list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct DocumentQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Case-insensitive substring of the filename.
    pub q: Option<String>,
    pub source: Option<String>,
    /// `metadata.<key>=<value>` pairs; all must match.
    pub metadata: Vec<(String, String)>,
    pub parent_id: Option<String>,
    pub derived_from: Option<String>,
    pub content_sha256: Option<String>,
    pub duplicate_of: Option<String>,
    pub include_deleted: bool,
}

impl DocumentQuery {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                pairs.push((k.to_owned(), v));
            }
        };
        push("limit", self.limit.map(|v| v.to_string()));
        push("offset", self.offset.map(|v| v.to_string()));
        push("q", self.q.clone());
        push("source", self.source.clone());
        push("parent_id", self.parent_id.clone());
        push("derived_from", self.derived_from.clone());
        push("content_sha256", self.content_sha256.clone());
        push("duplicate_of", self.duplicate_of.clone());
        push("include_deleted", self.include_deleted.then(|| "true".to_owned()));
        for (k, v) in &self.metadata {
            pairs.push((format!("metadata.{k}"), v.clone()));
        }
        pairs
    }
}

#[derive(Deserialize)]
struct Results<T> {
    results: Vec<T>,
}

fn form_with(options: &UploadOptions, index_id: &str, file: Part) -> Result<Form, Error> {
    let mut form = Form::new()
        .part("file", file)
        .text("index_id", index_id.to_owned());
    if let Some(name) = &options.name {
        form = form.text("name", name.clone());
    }
    if let Some(parent) = &options.parent_id {
        form = form.text("parent_id", parent.clone());
    }
    if let Some(v) = options.if_version {
        form = form.text("if_version", v.to_string());
    }
    if let Some(metadata) = &options.metadata {
        let json = serde_json::to_string(metadata).map_err(|e| Error::Invalid(e.to_string()))?;
        form = form.text("metadata", json);
    }
    Ok(form)
}

impl Client {
    /// `POST /api/sdk/indexes/{id}/documents`, streaming the file from disk
    /// (it is never read into memory whole). The filename sent is the
    /// path's last component.
    pub async fn upload_document(
        &self,
        index_id: &str,
        path: impl AsRef<Path>,
        options: &UploadOptions,
    ) -> Result<Document, Error> {
        let path = path.as_ref();
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Invalid(format!("`{}` has no file name", path.display())))?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Invalid(format!("cannot open `{}`: {e}", path.display())))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| Error::Invalid(format!("cannot read `{}`: {e}", path.display())))?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = Part::stream_with_length(body, length).file_name(filename);
        let form = form_with(options, index_id, part)?;
        let path = format!("/api/sdk/indexes/{}/documents", segment(index_id));
        self.json(self.request(Method::POST, &path).multipart(form)).await
    }

    /// `POST /api/sdk/indexes/{id}/documents` with bytes in memory.
    pub async fn upload_document_bytes(
        &self,
        index_id: &str,
        filename: &str,
        bytes: Vec<u8>,
        options: &UploadOptions,
    ) -> Result<Document, Error> {
        let part = Part::bytes(bytes).file_name(filename.to_owned());
        let form = form_with(options, index_id, part)?;
        let path = format!("/api/sdk/indexes/{}/documents", segment(index_id));
        self.json(self.request(Method::POST, &path).multipart(form)).await
    }

    /// `GET /api/sdk/documents`: latest documents across the project.
    pub async fn list_documents(&self, query: &DocumentQuery) -> Result<DocumentList, Error> {
        self.json(
            self.request(Method::GET, "/api/sdk/documents")
                .query(&query.pairs()),
        )
        .await
    }

    /// `GET /api/sdk/indexes/{id}/documents`.
    pub async fn list_index_documents(
        &self,
        index_id: &str,
        query: &DocumentQuery,
    ) -> Result<DocumentList, Error> {
        let path = format!("/api/sdk/indexes/{}/documents", segment(index_id));
        self.json(self.request(Method::GET, &path).query(&query.pairs()))
            .await
    }

    /// `GET /api/sdk/documents/{id}` (404 once soft-deleted).
    pub async fn get_document(&self, id: &str) -> Result<Document, Error> {
        self.get(&format!("/api/sdk/documents/{}", segment(id))).await
    }

    /// `GET /api/sdk/documents/{id}?include_deleted=true`.
    pub async fn get_document_including_deleted(&self, id: &str) -> Result<Document, Error> {
        self.get(&format!(
            "/api/sdk/documents/{}?include_deleted=true",
            segment(id)
        ))
        .await
    }

    /// `GET /api/sdk/indexes/{id}/documents/{doc_id}`.
    pub async fn get_index_document(&self, index_id: &str, id: &str) -> Result<Document, Error> {
        self.get(&format!(
            "/api/sdk/indexes/{}/documents/{}",
            segment(index_id),
            segment(id)
        ))
        .await
    }

    /// `GET /api/sdk/indexes/{id}/documents/by-name/{name}[?version=N]`.
    pub async fn get_document_by_name(
        &self,
        index_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Document, Error> {
        let mut path = format!(
            "/api/sdk/indexes/{}/documents/by-name/{}",
            segment(index_id),
            segment(name)
        );
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        self.get(&path).await
    }

    /// `GET /api/sdk/indexes/{id}/documents/by-name/{name}/versions`,
    /// newest first.
    pub async fn list_document_versions(&self, index_id: &str, name: &str) -> Result<Vec<Document>, Error> {
        let path = format!(
            "/api/sdk/indexes/{}/documents/by-name/{}/versions",
            segment(index_id),
            segment(name)
        );
        Ok(self.get::<DocumentVersions>(&path).await?.versions)
    }

    /// `DELETE /api/sdk/documents/{id}[?hard=true]`; idempotent.
    pub async fn delete_document(&self, id: &str, hard: bool) -> Result<(), Error> {
        let suffix = if hard { "?hard=true" } else { "" };
        self.delete(&format!("/api/sdk/documents/{}{suffix}", segment(id)))
            .await
    }

    /// `DELETE /api/sdk/indexes/{id}/documents/{doc_id}[?hard=true]`.
    pub async fn delete_index_document(&self, index_id: &str, id: &str, hard: bool) -> Result<(), Error> {
        let suffix = if hard { "?hard=true" } else { "" };
        self.delete(&format!(
            "/api/sdk/indexes/{}/documents/{}{suffix}",
            segment(index_id),
            segment(id)
        ))
        .await
    }

    /// Polls `GET /documents/{id}` until it leaves `pending`/`processing`
    /// (every 100 ms at first, backing off to 1 s), or `timeout` passes.
    pub async fn wait_for_document(&self, id: &str, timeout: Duration) -> Result<Document, Error> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            let doc = self.get_document(id).await?;
            if doc.status != "pending" && doc.status != "processing" {
                return Ok(doc);
            }
            if Instant::now() >= deadline {
                return Err(Error::Invalid(format!(
                    "document {id} is still `{}` after {timeout:?}",
                    doc.status
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn search_as<T: DeserializeOwned>(
        &self,
        index_id: Option<&str>,
        request: &SearchRequest,
        result_type: &str,
    ) -> Result<Vec<T>, Error> {
        let mut body = request.clone();
        body.result_type = Some(result_type.to_owned());
        let path = match index_id {
            Some(id) => format!("/api/sdk/indexes/{}/search", segment(id)),
            None => "/api/sdk/search".to_owned(),
        };
        Ok(self
            .with_body::<_, Results<T>>(Method::POST, &path, &body)
            .await?
            .results)
    }

    /// `POST /api/sdk/search` in chunk mode (`index_id` in the request
    /// scopes it to one index).
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchResult>, Error> {
        self.search_as(None, request, "chunk").await
    }

    /// `POST /api/sdk/search` in document mode: one row per document.
    pub async fn search_documents(
        &self,
        request: &SearchRequest,
    ) -> Result<Vec<DocumentSearchResult>, Error> {
        self.search_as(None, request, "document").await
    }

    /// `POST /api/sdk/indexes/{id}/search` in chunk mode.
    pub async fn search_index(
        &self,
        index_id: &str,
        request: &SearchRequest,
    ) -> Result<Vec<SearchResult>, Error> {
        self.search_as(Some(index_id), request, "chunk").await
    }

    /// `POST /api/sdk/indexes/{id}/search` in document mode.
    pub async fn search_index_documents(
        &self,
        index_id: &str,
        request: &SearchRequest,
    ) -> Result<Vec<DocumentSearchResult>, Error> {
        self.search_as(Some(index_id), request, "document").await
    }
}
