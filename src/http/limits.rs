//! The client's address as the throttle and the log see it: the TCP peer, or, when the peer is
//! a trusted reverse proxy (`[limits] trusted_proxies`), the address that proxy put in
//! `X-Forwarded-For`.
//!
//! Also the cross-site guard of `/auth` and the admin API ([`cross_site`]): a browser's request
//! from another site's page is refused before its credentials are looked at, so a web page
//! cannot make its visitors' failures count against them.
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName};

use super::state::AppState;

/// The client of `req` ([`client_addr`] of its connection's peer); `None` when the router runs
/// without connection info (tests that drive it directly).
pub fn request_client(state: &AppState, req: &Request) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(client_addr(
        peer,
        req.headers(),
        &state.config.limits.trusted_proxies,
    ))
}

/// The TCP peer of `req` (the proxy, for a request through a trusted proxy); `None` without
/// connection info.
pub fn request_peer(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client behind `peer`: `peer` itself unless it is one of `trusted`; then the right-most
/// address of `X-Forwarded-For` that is not itself trusted (proxies append, so what is
/// right of it was written by proxies we trust). A missing or malformed header leaves `peer`.
/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of an IPv4 client) are IPv4.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    while let Some(hop) = hops.pop() {
        match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// Header names the token endpoint looks up, ready made: a `&str` name is parsed at every
/// lookup.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Why a request is a browser's request from another site, if it is: `Sec-Fetch-Site` other
/// than `same-origin` or `none` (typed in, bookmarked), or an `Origin` that is neither the
/// origin of `public_url` nor that of the request's own `Host`. docker, containerd and skopeo
/// send neither header, so they are never refused.
pub fn cross_site(headers: &HeaderMap, public_url: &str) -> Option<String> {
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        let site = site.to_str().unwrap_or("?");
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Some(format!(
                "cross-site request refused (Sec-Fetch-Site: {}): regauth takes credentials \
                 only from its own pages and from registry clients",
                printable(site)
            ));
        }
    }
    let origin = headers.get(axum::http::header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("?").trim_end_matches('/');
    let own = origin_of(public_url);
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let same_host = host.is_some_and(|h| {
        origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(h))
    });
    if origin.eq_ignore_ascii_case(own) || same_host {
        return None;
    }
    Some(format!(
        "cross-site request refused (Origin: {} is not {own}): regauth takes credentials only \
         from its own pages and from registry clients",
        printable(origin)
    ))
}

/// `scheme://host[:port]` of a URL (its path dropped).
fn origin_of(url: &str) -> &str {
    let rest_at = url.find("://").map_or(0, |i| i + 3);
    match url[rest_at..].find('/') {
        Some(i) => &url[..rest_at + i],
        None => url,
    }
}

/// A header value for a message: at most 100 printable ASCII characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let trusted = [ip("127.0.0.1")];
        let h = xff(&["::ffff:198.51.100.7"]);
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("::ffff:192.0.2.1"), &h, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(client_addr(ip("::1"), &h, &trusted), ip("::1"));
    }

    #[test]
    fn only_a_trusted_peer_may_name_the_client() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.5")];
        let h = xff(&["203.0.113.7"]);
        assert_eq!(
            client_addr(ip("127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_addr(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        // The client's own claim (left) is not believed; the last untrusted hop is.
        let h = xff(&["1.2.3.4, 203.0.113.7", "10.0.0.5"]);
        assert_eq!(
            client_addr(ip("127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
        // Nothing usable: the peer.
        assert_eq!(
            client_addr(ip("127.0.0.1"), &xff(&["bogus"]), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), &xff(&["10.0.0.5"]), &trusted),
            ip("127.0.0.1")
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cross_site_browser_requests_are_told_apart_from_clients_and_the_console() {
        let url = "https://auth.example.com/base";
        // docker, containerd, skopeo: neither header.
        assert_eq!(cross_site(&headers(&[]), url), None);
        // The console, and a URL typed in.
        for site in ["same-origin", "none"] {
            assert_eq!(cross_site(&headers(&[("sec-fetch-site", site)]), url), None);
        }
        assert_eq!(
            cross_site(&headers(&[("origin", "https://auth.example.com")]), url),
            None
        );
        // Without public_url, the request's own host.
        assert_eq!(
            cross_site(
                &headers(&[
                    ("origin", "http://127.0.0.1:5001"),
                    ("host", "127.0.0.1:5001")
                ]),
                "http://127.0.0.1:5001"
            ),
            None
        );
        assert_eq!(
            cross_site(
                &headers(&[
                    ("origin", "http://localhost:8080"),
                    ("host", "localhost:8080")
                ]),
                url
            ),
            None
        );
        for site in ["cross-site", "same-site"] {
            let why = cross_site(&headers(&[("sec-fetch-site", site)]), url).unwrap();
            assert!(why.contains(&format!("Sec-Fetch-Site: {site}")), "{why}");
        }
        for origin in [
            "https://evil.example",
            "null",
            "https://auth.example.com.evil.example",
        ] {
            let why = cross_site(
                &headers(&[("origin", origin), ("host", "auth.example.com")]),
                url,
            )
            .unwrap();
            assert!(
                why.contains(origin) && why.contains("https://auth.example.com"),
                "{why}"
            );
        }
    }
}
