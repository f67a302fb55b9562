//! Kiln's captured files (an extension under `/api/sdk`): what a session's
//! code saved with `files.write`, as a tree and one file at a time
//! (`kiln_core::runtime::files`).

use axum::Json;
use axum::extract::State;
use kiln_api::ErrorBody;
use kiln_api::agent::{FileContent, FileEntry, FileTree};
use kiln_core::ids::SessionId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, Authed};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_files))
        .routes(routes!(read_file))
}

/// Kiln: the session's files, by path, with sizes.
#[utoipa::path(get, path = "/api/sdk/agents/{id}/files", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = FileTree), (status = 404, body = ErrorBody)))]
async fn list_files(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FileTree>, ApiError> {
    let files = state
        .runtime
        .list_files(&ctx, &SessionId::from_string(id))
        .await?;
    Ok(Json(FileTree {
        tree: files
            .into_iter()
            .map(|f| FileEntry {
                path: f.path,
                size: f.size,
                updated_at: f.updated_at,
            })
            .collect(),
    }))
}

/// Kiln: one file: `encoding: "raw"` with its text, or `"base64"` when it
/// is not UTF-8. A path outside the session (absolute, `..`) is 400, a
/// missing file 404.
#[utoipa::path(get, path = "/api/sdk/agents/{id}/files/{*path}", tag = "agents",
    params(("id" = String, Path), ("path" = String, Path, description = "the file's path, `/` between parts")),
    responses((status = 200, body = FileContent), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn read_file(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiPath((id, path)): ApiPath<(String, String)>,
) -> Result<Json<FileContent>, ApiError> {
    let file = state
        .runtime
        .read_file(&ctx, &SessionId::from_string(id), &path)
        .await?;
    let (encoding, content) = file.encoded();
    Ok(Json(FileContent {
        size: file.content.len() as i64,
        path: file.path,
        encoding: encoding.to_owned(),
        content,
    }))
}
