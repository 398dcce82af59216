//! The Tokens console: static files (HTML, ES modules, CSS) compiled into the binary and
//! served under `/console/`, with `/` redirecting there, each with the console's security
//! headers ([`super::headers`]).
//!
//! The console is a client of the admin API (`/api/v1`) like the CLI: this module only hands
//! out its files.
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// A file of the console: its name under `/console/`, media type and content.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

/// Every file of the console. A fixed list (not a directory walk), so nothing else under
/// `console/` is ever served and no crate is needed to embed a handful of files.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        body: include_str!("../../console/index.html"),
    },
    Asset {
        name: "style.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("../../console/style.css"),
    },
    Asset {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/api.js"),
    },
    Asset {
        name: "format.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/format.js"),
    },
    Asset {
        name: "dialogs.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/dialogs.js"),
    },
    Asset {
        name: "admins.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/admins.js"),
    },
    Asset {
        name: "admins.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("../../console/admins.css"),
    },
    Asset {
        name: "favicon.svg",
        media_type: "image/svg+xml",
        body: include_str!("../../console/favicon.svg"),
    },
];

/// The console's routes: `/`, `/console` and `/console/…`, each with the console's headers.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
        .layer(axum::middleware::map_response(
            super::headers::console_headers,
        ))
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.media_type),
                // Revalidate, so a new binary's console replaces the old one at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no file {name:?} in the console"),
        )
            .into_response(),
    }
}
