//! Documents and search (CONTRACT §2.3, §2.4). Upload is multipart (§1.11),
//! so it has no request type here; its fields are named in
//! [`upload_fields`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Document {
    pub id: String,
    pub project_id: String,
    pub app_id: String,
    pub index_id: String,
    /// The original upload filename.
    pub filename: String,
    /// From the filename's extension.
    pub content_type: String,
    pub file_size: i64,
    /// `pending` | `processing` | `ready` | `stored` | `error`.
    pub status: String,
    pub error_message: Option<String>,
    pub page_count: Option<i64>,
    pub chunk_count: i64,
    pub name: Option<String>,
    pub version: i64,
    pub is_latest: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    pub parent_id: Option<String>,
    pub created_by_api_key_id: Option<String>,
    /// Lowercase hex sha256 of the uploaded bytes.
    pub content_sha256: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The multipart form fields of `POST /indexes/:id/documents`.
pub mod upload_fields {
    pub const FILE: &str = "file";
    pub const INDEX_ID: &str = "index_id";
    pub const NAME: &str = "name";
    pub const PARENT_ID: &str = "parent_id";
    pub const IF_VERSION: &str = "if_version";
    /// A JSON object serialised as a string.
    pub const METADATA: &str = "metadata";
}

/// `GET /documents` and `GET /indexes/:id/documents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentList {
    pub data: Vec<Document>,
    pub total: i64,
    pub has_more: bool,
}

/// `GET /indexes/:id/documents/by-name/:name/versions`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentVersions {
    pub versions: Vec<Document>,
}

/// The body of `POST /search` and `POST /indexes/:id/search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchRequest {
    pub query: String,
    /// Default 10, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Drop hits scoring below this (scores are in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// `chunk` (default) or `document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Scope on `POST /search`; the path decides on the per-index route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_id: Option<String>,
    /// The TypeScript SDK's spelling of `index_id`.
    #[serde(default, rename = "indexId", skip_serializing_if = "Option::is_none")]
    pub index_id_camel: Option<String>,
    /// Kiln extension: `hybrid` (default), `bm25` or `vector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// One matching chunk (`result_type: "chunk"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResult {
    pub chunk_id: String,
    pub document_id: String,
    pub filename: String,
    pub document_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document_metadata: Map<String, Value>,
    pub content: String,
    /// In [0, 1], higher is better.
    pub score: f64,
    pub chunk_index: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BestChunk {
    pub chunk_id: String,
    pub chunk_index: i64,
    /// The best chunk's text, truncated to 300 characters.
    pub preview: String,
}

/// One matching document (`result_type: "document"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentSearchResult {
    pub document_id: String,
    pub index_id: String,
    pub filename: String,
    pub document_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document_metadata: Map<String, Value>,
    pub parent_id: Option<String>,
    pub content_sha256: Option<String>,
    /// The document's best chunk score.
    pub score: f64,
    pub best_chunk: BestChunk,
}

/// `{"results": [...]}`: chunk rows or document rows, by `result_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SearchResults {
    Chunks { results: Vec<SearchResult> },
    Documents { results: Vec<DocumentSearchResult> },
}
