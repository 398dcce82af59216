//! The client's address as the throttle and the log see it: the TCP peer, or, when the peer is
//! a trusted reverse proxy (`[limits] trusted_proxies`), the address that proxy put in
//! `X-Forwarded-For`.
//!
//! Dependency direction: `http::limits -> std, http types`; used by `http::auth`,
//! `http::admin` and `http::listener`.
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;

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
        .get_all("x-forwarded-for")
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
}
