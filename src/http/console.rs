//! The Tokens console: static files (HTML, ES modules, CSS) compiled into the binary and
//! served under `/console/`, with `/` redirecting there; and the security headers that every
//! console and admin API response carries.
//!
//! The console is a client of the admin API (`/api/v1`) like the CLI: this module only hands
//! out its files. Dependency direction: `http::console -> axum`; nothing depends on it but
//! the router.
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
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

/// The console's policy: scripts, styles and API calls from this origin only; no inline
/// script or style, no framing, no plugins, no form posts.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The admin API's policy: JSON is never a document, so nothing may load or frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

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
        .layer(axum::middleware::map_response(console_headers))
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

/// Headers common to the console and the admin API.
fn common(resp: &mut Response, csp: &'static str) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// `X-Content-Type-Options: nosniff` on a response (every response of every listener: the
/// token endpoint, `/health`, unknown paths, the metrics).
pub async fn nosniff(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Response headers of every console file and redirect.
pub async fn console_headers(mut resp: Response) -> Response {
    common(&mut resp, CONSOLE_CSP);
    resp
}

/// Response headers of every admin API response. `no-store` on all of them, since creating
/// or rotating a token returns its password, and a list is no business of any cache either.
pub async fn api_headers(mut resp: Response) -> Response {
    common(&mut resp, API_CSP);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
