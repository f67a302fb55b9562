//! Kiln's short-lived tokens (an extension under `/api/sdk`): an API key
//! exchanged for a token a browser may hold (`kiln_core::control::tokens`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_api::ErrorBody;
use kiln_api::token::{CreateToken, TokenCreated};
use kiln_core::ids::SessionId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authed, JsonBody};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_token))
}

/// Kiln: a token that acts as the calling key, for its project, until it
/// expires (`ttl_seconds`, 1 to 86400, default 900); with `session_id`,
/// for that session only (its `/agents/{id}` routes; everything else
/// answers 404). Usable as `X-API-Key` or `Authorization: Bearer`.
/// Expired: 401.
/// Revoking the key ends its tokens. Only an API key creates tokens (401
/// for a token).
#[utoipa::path(post, path = "/api/sdk/tokens", tag = "project",
    request_body = CreateToken,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let session = match body.session_id {
        Some(id) => {
            let id = SessionId::from_string(id);
            state.runtime.get_session(&ctx, &id).await?;
            Some(id)
        }
        None => None,
    };
    let issued = state
        .control
        .issue_token(&ctx, body.ttl_seconds, session.as_ref())?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}
