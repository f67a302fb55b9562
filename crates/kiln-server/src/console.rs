//! The web console: a page and its scripts, compiled into the binary and
//! served at `/console` on the API's own port (`/` redirects there).
//!
//! The console is plain ES modules and CSS under `crates/kiln-server/console`,
//! written by hand: `cargo build` needs no JavaScript toolchain, and what is
//! in the repository is what is served. It has no private endpoints: the
//! browser calls `/api/sdk` with the API key the user signs in with, which
//! the page keeps in the tab's `sessionStorage` only.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles
//! and connections from this origin only, no inline code, no frames, so a
//! string the API returns (a document's name, a model's answer) can never run
//! as code even if the page forgot to escape it.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use kiln_api::codes;

use crate::error::ApiError;

/// Where the console lives.
pub const CONSOLE_PATH: &str = "/console";

/// The console's policy: nothing from another origin, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// One embedded file: its name under `/console/assets/`, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $type:literal),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../console/assets/", $name)),
        }),*]
    };
}

/// Every file of `console/assets` (a test checks none is missing).
const ASSETS: &[Asset] = assets! {
    "console.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "main.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "overview.js" => "text/javascript; charset=utf-8",
    "agents.js" => "text/javascript; charset=utf-8",
    "sessions.js" => "text/javascript; charset=utf-8",
    "trace.js" => "text/javascript; charset=utf-8",
    "indexes.js" => "text/javascript; charset=utf-8",
    "vaults.js" => "text/javascript; charset=utf-8",
    "templates.js" => "text/javascript; charset=utf-8",
    "audit.js" => "text/javascript; charset=utf-8",
};

const INDEX_HTML: &[u8] = include_bytes!("../console/index.html");

/// The console's routes. They are not API, so they stay out of the OpenAPI
/// document (plain `.route`, as for MCP's service).
#[allow(
    clippy::disallowed_methods,
    reason = "the console's pages are not API operations and stay out of /openapi.json"
)]
pub(crate) fn service() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(CONSOLE_PATH) }))
        .route(CONSOLE_PATH, get(page))
        .route("/console/", get(|| async { Redirect::to(CONSOLE_PATH) }))
        .route("/console/assets/{name}", get(asset))
}

async fn page() -> Response {
    served(INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => served(asset.bytes, asset.content_type),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such console file").into_response()
        }
    }
}

fn served(bytes: &'static [u8], content_type: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The binary is the version: a new one may serve new files.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// A file added to `console/assets` but not to [`ASSETS`] would be a 404
    /// in the browser; one listed but gone fails the build already.
    #[test]
    fn every_console_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/assets");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }
}
