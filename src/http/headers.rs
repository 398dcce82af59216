//! The security headers of every response: `nosniff` everywhere, and on the console and the
//! admin API a Content-Security-Policy, no framing, no referrer and no cross-origin opener;
//! `no-store` on the admin API, whose replies carry passwords.
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

/// The console's policy: scripts, styles and API calls from this origin only; no inline
/// script or style, no framing, no plugins, no form posts.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The admin API's policy: JSON is never a document, so nothing may load or frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_console_and_the_api_get_their_policies_and_everything_nosniff() {
        let api = api_headers(Response::default()).await;
        let h = api.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], API_CSP);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        let console = console_headers(Response::default()).await;
        let h = console.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        assert!(h.get(header::CACHE_CONTROL).is_none());
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");

        let other = nosniff(Response::default()).await;
        assert_eq!(other.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(other
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_none());
    }
}
