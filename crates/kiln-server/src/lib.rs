//! Kiln's HTTP edge: it translates, it does not decide.
//!
//! [`router`] builds the whole HTTP surface from route modules grouped by
//! contract section. Every handler extracts and parses its input (auth shows
//! in the [`extract::Authed`] extractor), calls one method of one
//! `kiln-core` service and converts the result into a `kiln_api` wire type. Every failure goes
//! through [`error::ApiError`], the one mapping from domain errors to status
//! codes and the contract's error body.
//!
//! Routes are registered only through `utoipa_axum`'s `routes!`, which reads
//! method and path from the handler's `#[utoipa::path]` attribute, so the
//! OpenAPI document and the router come from the same source (clippy's
//! `disallowed-methods` forbids plain `.route`).

pub mod console;
mod convert;
pub mod error;
pub mod extract;
pub mod mcp;
mod routes;

pub use routes::legacy::REMOVED_ROUTES;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use tower_http::cors::{Any, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use kiln_core::agents::AgentConfigs;
use kiln_core::control::ControlPlane;
use kiln_core::evals::Evals;
use kiln_core::gateway::LlmGateway;
use kiln_core::rag::Rag;
use kiln_core::runtime::AgentRuntime;
use kiln_core::schedules::Schedules;
use kiln_core::studio::Studio;
use kiln_core::webhooks::Webhooks;

/// Default request body limit for JSON bodies: 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What handlers share: the services, every one built (so no handler
/// asks whether an engine exists).
#[derive(Clone)]
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub gateway: Arc<LlmGateway>,
    pub rag: Arc<Rag>,
    pub agents: Arc<AgentConfigs>,
    pub runtime: Arc<AgentRuntime>,
    pub evals: Arc<Evals>,
    pub schedules: Arc<Schedules>,
    pub studio: Arc<Studio>,
    pub webhooks: Arc<Webhooks>,
    /// The OpenAPI document, rendered once the router is built.
    openapi_json: Arc<OnceLock<String>>,
}

/// The services a server is built from.
#[derive(Clone)]
pub struct Services {
    pub control: Arc<ControlPlane>,
    pub gateway: Arc<LlmGateway>,
    pub rag: Arc<Rag>,
    pub agents: Arc<AgentConfigs>,
    pub runtime: Arc<AgentRuntime>,
    pub evals: Arc<Evals>,
    pub schedules: Arc<Schedules>,
    pub studio: Arc<Studio>,
    pub webhooks: Arc<Webhooks>,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState {
            control: services.control,
            gateway: services.gateway,
            rag: services.rag,
            agents: services.agents,
            runtime: services.runtime,
            evals: services.evals,
            schedules: services.schedules,
            studio: services.studio,
            webhooks: services.webhooks,
            openapi_json: Arc::new(OnceLock::new()),
        }
    }
}

/// Server settings that shape the router.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Largest accepted document upload, in bytes (the multipart form may
    /// be 1 MiB larger); larger ones get 413.
    pub upload_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            upload_limit: kiln_core::rag::documents::DEFAULT_MAX_UPLOAD_BYTES as usize,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kiln API",
        description = "Self-hosted agent platform speaking the Tavora SDK wire contract. \
                       Every /api/sdk route takes an `X-API-Key` header."
    ),
    modifiers(&ApiKeySecurity),
    security(("api_key" = []))
)]
struct ApiDoc;

struct ApiKeySecurity;

impl utoipa::Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

fn api_routes(config: &ServerConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::system::routes())
        .merge(routes::project::routes())
        .merge(routes::vaults::routes())
        .merge(routes::templates::routes())
        .merge(routes::audit::routes())
        .merge(routes::indexes::routes())
        .merge(routes::documents::routes(config.upload_limit))
        .merge(routes::chat::routes())
        .merge(routes::agents::routes())
        .merge(routes::queue::routes())
        .merge(routes::source::routes())
        .merge(routes::evals::routes())
        .merge(routes::schedules::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::tokens::routes())
        .merge(routes::realtime::routes())
        .merge(routes::files::routes())
        .merge(routes::studio::routes())
        .merge(routes::openai::routes())
        .merge(routes::legacy::routes())
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_paths(api_routes(&ServerConfig::default()).into_openapi())
}

/// Axum's catch-all segments (`{*path}`) written as OpenAPI path
/// templates (`{path}`, the parameter's documented name), which client
/// generators and fuzzers can read.
fn openapi_paths(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    doc
}

/// The whole HTTP surface, ready to serve.
pub fn router(state: AppState, config: &ServerConfig) -> Router {
    let (router, doc) = api_routes(config).split_for_parts();
    let json = openapi_paths(doc)
        .to_json()
        .expect("the OpenAPI document serialises");
    let _ = state.openapi_json.set(json);
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            HeaderName::from_static("x-api-key"),
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
        ]);
    router
        .fallback(routes::system::not_found)
        .with_state(state.clone())
        .merge(mcp::service(state))
        .merge(console::service())
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(error::ensure_error_body))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(cors)
        // Spans name the path, never the query: `?token=` holds a credential.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([
            HeaderName::from_static("x-api-key"),
            header::AUTHORIZATION,
        ]))
}
