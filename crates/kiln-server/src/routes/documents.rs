//! CONTRACT §2.3 documents and §2.4 search, on both route families: the
//! project-level (`/documents`, `/search`) and the index-level
//! (`/indexes/:id/documents…`, `/indexes/:id/search`).
//!
//! Upload reads the multipart form part by part (part order is not fixed:
//! the TypeScript SDK sends `file` first), counting the file's bytes as they
//! arrive so an oversized file is refused with 413 before it is buffered.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use kiln_api::{
    Document, DocumentList, DocumentVersions, ErrorBody, SearchRequest, SearchResults, upload_fields,
};
use kiln_core::ids::{DocumentId, IndexId};
use kiln_core::page::Page;
use kiln_core::rag::document::DocumentFilter;
use kiln_core::rag::documents::{DOCUMENTS_DEFAULT_LIMIT, DOCUMENTS_MAX_LIMIT, Upload};
use kiln_core::rag::search::{ResultType, SearchMode, SearchQuery};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Authed, JsonBody};
use crate::{AppState, convert};

/// Multipart overhead allowed beyond the upload limit (boundaries, the
/// other fields).
const FORM_OVERHEAD: usize = 1024 * 1024;

pub(crate) fn routes(upload_limit: usize) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload_document, list_index_documents))
        .layer(DefaultBodyLimit::max(upload_limit.saturating_add(FORM_OVERHEAD)));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(list_documents))
        .routes(routes!(get_document, delete_document))
        .routes(routes!(get_index_document, delete_index_document))
        .routes(routes!(document_by_name))
        .routes(routes!(document_versions))
        .routes(routes!(search))
        .routes(routes!(search_index))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("the upload is larger than the server accepts")
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()), None)
    }
}

async fn text_field(field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let text = field.text().await.map_err(multipart_error)?;
    if text.contains('\0') {
        return Err(ApiError::bad_request(
            "NUL characters are not allowed",
            Some(name),
        ));
    }
    Ok(text)
}

/// Reads the form into an [`Upload`] for the index named by the path.
async fn read_upload(index_id: IndexId, mut form: Multipart, limit: u64) -> Result<Upload, ApiError> {
    let mut upload = Upload {
        index_id,
        filename: String::new(),
        part_content_type: None,
        bytes: Vec::new(),
        name: None,
        parent_id: None,
        if_version: None,
        metadata: Map::new(),
    };
    let mut saw_file = false;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            upload_fields::FILE => {
                saw_file = true;
                upload.filename = field.file_name().unwrap_or_default().to_owned();
                upload.part_content_type = field.content_type().map(str::to_owned);
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if (upload.bytes.len() + chunk.len()) as u64 > limit {
                        return Err(kiln_core::Error::PayloadTooLarge { limit_bytes: limit }.into());
                    }
                    upload.bytes.extend_from_slice(&chunk);
                }
            }
            upload_fields::INDEX_ID => {
                let sent = text_field(field, upload_fields::INDEX_ID).await?;
                if !sent.is_empty() && sent != upload.index_id.as_str() {
                    return Err(ApiError::bad_request(
                        "index_id in the form differs from the index in the path",
                        Some(upload_fields::INDEX_ID),
                    ));
                }
            }
            upload_fields::NAME => {
                let name = text_field(field, upload_fields::NAME).await?;
                upload.name = Some(name).filter(|n| !n.is_empty());
            }
            upload_fields::PARENT_ID => {
                let parent = text_field(field, upload_fields::PARENT_ID).await?;
                upload.parent_id = Some(parent)
                    .filter(|p| !p.is_empty())
                    .map(DocumentId::from_string);
            }
            upload_fields::IF_VERSION => {
                let raw = text_field(field, upload_fields::IF_VERSION).await?;
                let version = raw.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request("if_version must be an integer", Some(upload_fields::IF_VERSION))
                })?;
                upload.if_version = Some(version);
            }
            upload_fields::METADATA => {
                let raw = text_field(field, upload_fields::METADATA).await?;
                if raw.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&raw) {
                    Ok(Value::Object(map)) => upload.metadata = map,
                    _ => {
                        return Err(ApiError::bad_request(
                            "metadata must be a JSON object serialised as a string",
                            Some(upload_fields::METADATA),
                        ));
                    }
                }
            }
            // Unknown parts are ignored, as unknown JSON fields are.
            _ => {}
        }
    }
    if !saw_file {
        return Err(ApiError::bad_request(
            "the form has no `file` part",
            Some(upload_fields::FILE),
        ));
    }
    Ok(upload)
}

/// Uploads a file (multipart: `file`, `name`, `parent_id`, `if_version`,
/// `metadata`). Answers at once with `pending` (or `stored` for types that
/// are not indexable); ingestion continues in the background.
#[utoipa::path(post, path = "/api/sdk/indexes/{id}/documents", tag = "documents", params(("id" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "file, index_id, name, parent_id, if_version, metadata"),
    responses((status = 201, body = Document), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn upload_document(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Document>), ApiError> {
    let form = form
        .map_err(|e| ApiError::bad_request(format!("expected a multipart form: {}", e.body_text()), None))?;
    let index_id = IndexId::from_string(id);
    // An unknown index is 404 before the body is read.
    state.rag.get_index(&ctx, &index_id).await?;
    state
        .control
        .rate_limit(&ctx, kiln_core::control::rate::RateKind::Upload)?;
    let upload = read_upload(index_id, form, state.rag.max_upload_bytes()).await?;
    let doc = state.rag.upload_document(&ctx, upload).await?;
    Ok((StatusCode::CREATED, Json(convert::document(doc))))
}

/// The list filters, read from the raw query so `metadata.<key>` works.
fn list_filter(
    params: Vec<(String, String)>,
) -> Result<(DocumentFilter, Option<DocumentId>, Page), ApiError> {
    let mut filter = DocumentFilter::default();
    let (mut limit, mut offset, mut duplicate_of) = (None, None, None);
    let int = |key: &str, v: &str| {
        v.parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("{key} must be an integer"), Some(key)))
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => limit = Some(int("limit", &value)?),
            "offset" => offset = Some(int("offset", &value)?),
            "q" if !value.is_empty() => filter.q = Some(value),
            "source" => filter.metadata.push(("source".into(), value)),
            "derived_from" => filter.metadata.push(("derived_from".into(), value)),
            "parent_id" => filter.parent_id = Some(DocumentId::from_string(value)),
            "content_sha256" => filter.content_sha256 = Some(value),
            "duplicate_of" => duplicate_of = Some(DocumentId::from_string(value)),
            "include_deleted" => filter.include_deleted = value == "true",
            k => {
                if let Some(meta_key) = k.strip_prefix("metadata.").filter(|m| !m.is_empty()) {
                    filter.metadata.retain(|(existing, _)| existing != meta_key);
                    filter.metadata.push((meta_key.to_owned(), value));
                }
            }
        }
    }
    let page = Page::new(limit, offset, DOCUMENTS_DEFAULT_LIMIT, DOCUMENTS_MAX_LIMIT);
    Ok((filter, duplicate_of, page))
}

async fn list(
    state: &AppState,
    ctx: &kiln_core::auth::AuthContext,
    index_id: Option<IndexId>,
    params: Vec<(String, String)>,
) -> Result<Json<DocumentList>, ApiError> {
    let (mut filter, duplicate_of, page) = list_filter(params)?;
    filter.index_id = index_id;
    let (docs, total) = state
        .rag
        .list_documents(ctx, filter, duplicate_of.as_ref(), page)
        .await?;
    let has_more = page.offset + (docs.len() as i64) < total;
    Ok(Json(DocumentList {
        data: docs.into_iter().map(convert::document).collect(),
        total,
        has_more,
    }))
}

/// Latest documents of one index, newest first. Filters: `q` (filename
/// substring), `source`, `metadata.<key>`, `parent_id`, `derived_from`,
/// `content_sha256`, `duplicate_of`, `include_deleted=true`, `limit`, `offset`.
#[utoipa::path(get, path = "/api/sdk/indexes/{id}/documents", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, body = DocumentList), (status = 404, body = ErrorBody)))]
async fn list_index_documents(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<DocumentList>, ApiError> {
    list(&state, &ctx, Some(IndexId::from_string(id)), params).await
}

/// Latest documents across the project, with the same filters.
#[utoipa::path(get, path = "/api/sdk/documents", tag = "documents",
    responses((status = 200, body = DocumentList), (status = 404, body = ErrorBody)))]
async fn list_documents(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<DocumentList>, ApiError> {
    list(&state, &ctx, None, params).await
}

#[derive(Debug, Default, serde::Deserialize)]
struct GetQuery {
    #[serde(default)]
    include_deleted: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    hard: Option<String>,
}

/// A document; 404 when soft-deleted unless `include_deleted=true`.
#[utoipa::path(get, path = "/api/sdk/documents/{id}", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody)))]
async fn get_document(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<Document>, ApiError> {
    let include_deleted = q.include_deleted.as_deref() == Some("true");
    let doc = state
        .rag
        .get_document(&ctx, &DocumentId::from_string(id), None, include_deleted)
        .await?;
    Ok(Json(convert::document(doc)))
}

/// As `GET /documents/:id`, and 404 when the document is in another index.
#[utoipa::path(get, path = "/api/sdk/indexes/{id}/documents/{doc_id}", tag = "documents",
    params(("id" = String, Path), ("doc_id" = String, Path)),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody)))]
async fn get_index_document(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, doc_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<Document>, ApiError> {
    let include_deleted = q.include_deleted.as_deref() == Some("true");
    let index_id = IndexId::from_string(id);
    let doc = state
        .rag
        .get_document(
            &ctx,
            &DocumentId::from_string(doc_id),
            Some(&index_id),
            include_deleted,
        )
        .await?;
    Ok(Json(convert::document(doc)))
}

/// Soft delete (or `?hard=true`: row, bytes and chunks gone), cascading to
/// the extraction sibling. Idempotent: 204 for unknown ids too.
#[utoipa::path(delete, path = "/api/sdk/documents/{id}", tag = "documents", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_document(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let hard = q.hard.as_deref() == Some("true");
    state
        .rag
        .delete_document(&ctx, &DocumentId::from_string(id), None, hard)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// As `DELETE /documents/:id`; a document of another index is left alone.
#[utoipa::path(delete, path = "/api/sdk/indexes/{id}/documents/{doc_id}", tag = "documents",
    params(("id" = String, Path), ("doc_id" = String, Path)), responses((status = 204)))]
async fn delete_index_document(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, doc_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let hard = q.hard.as_deref() == Some("true");
    let index_id = IndexId::from_string(id);
    state
        .rag
        .delete_document(&ctx, &DocumentId::from_string(doc_id), Some(&index_id), hard)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize)]
struct VersionQuery {
    #[serde(default)]
    version: Option<String>,
}

/// The live latest version of a logical name, or `?version=N` exactly
/// (N ≤ 0 means latest).
#[utoipa::path(get, path = "/api/sdk/indexes/{id}/documents/by-name/{name}", tag = "documents",
    params(("id" = String, Path), ("name" = String, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, body = Document), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn document_by_name(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<Document>, ApiError> {
    let version = match q.version.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request("version must be an integer", Some("version")))?,
        ),
        None => None,
    };
    let doc = state
        .rag
        .document_by_name(&ctx, &IndexId::from_string(id), &name, version)
        .await?;
    Ok(Json(convert::document(doc)))
}

/// Every version of a name, newest first, soft-deleted ones included.
#[utoipa::path(get, path = "/api/sdk/indexes/{id}/documents/by-name/{name}/versions", tag = "documents",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = DocumentVersions), (status = 404, body = ErrorBody)))]
async fn document_versions(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Json<DocumentVersions>, ApiError> {
    let versions = state
        .rag
        .document_versions(&ctx, &IndexId::from_string(id), &name)
        .await?;
    Ok(Json(DocumentVersions {
        versions: versions.into_iter().map(convert::document).collect(),
    }))
}

fn search_query(body: SearchRequest, index_id: Option<IndexId>) -> Result<SearchQuery, ApiError> {
    let result_type = match body.result_type.as_deref() {
        None | Some("") | Some("chunk") => ResultType::Chunk,
        Some("document") => ResultType::Document,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("result_type must be `chunk` or `document`, not `{other}`"),
                Some("result_type"),
            ));
        }
    };
    let mode = match body.mode.as_deref() {
        None | Some("") | Some("hybrid") => SearchMode::Hybrid,
        Some("bm25") => SearchMode::Lexical,
        Some("vector") => SearchMode::Vector,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("mode must be `hybrid`, `bm25` or `vector`, not `{other}`"),
                Some("mode"),
            ));
        }
    };
    let scope = index_id.or_else(|| {
        body.index_id
            .or(body.index_id_camel)
            .filter(|i| !i.is_empty())
            .map(IndexId::from_string)
    });
    Ok(SearchQuery {
        query: body.query,
        top_k: body.top_k,
        min_score: body.min_score,
        result_type,
        index_id: scope,
        mode,
    })
}

async fn run_search(
    state: &AppState,
    ctx: &kiln_core::auth::AuthContext,
    query: SearchQuery,
) -> Result<Json<SearchResults>, ApiError> {
    let result_type = query.result_type;
    let hits = state.rag.search(ctx, query).await?;
    Ok(Json(match result_type {
        ResultType::Chunk => SearchResults::Chunks {
            results: hits.into_iter().map(convert::search_result).collect(),
        },
        ResultType::Document => SearchResults::Documents {
            results: hits.into_iter().map(convert::document_search_result).collect(),
        },
    }))
}

/// Hybrid search over the project (or the index named by `index_id` /
/// `indexId`). Scores are in [0, 1], highest first.
#[utoipa::path(post, path = "/api/sdk/search", tag = "search", request_body = SearchRequest,
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    let query = search_query(body, None)?;
    run_search(&state, &ctx, query).await
}

/// Hybrid search over one index.
#[utoipa::path(post, path = "/api/sdk/indexes/{id}/search", tag = "search", params(("id" = String, Path)),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn search_index(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    let query = search_query(body, Some(IndexId::from_string(id)))?;
    run_search(&state, &ctx, query).await
}
