//! HTTP helpers shared by the test levels: a blocking client, Basic credentials, JWT
//! decoding, the admin API's scope values, and an address where nothing listens.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// A blocking HTTP client with a timeout that follows no redirects, for talking to regauth
/// and the registries.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}

/// The `Authorization` value of HTTP Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A `{type, name, actions}` scope for the admin API.
pub fn scope(kind: &str, name: &str, actions: &[&str]) -> Value {
    json!({"type": kind, "name": name, "actions": actions})
}

/// Shorthand for a repository scope.
pub fn repo(name: &str, actions: &[&str]) -> Value {
    scope("repository", name, actions)
}

fn jwt_part(jwt: &str, index: usize, what: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {jwt}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[index].trim_end_matches('='))
        .unwrap_or_else(|e| panic!("JWT {what} is not base64url ({e}): {jwt}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT {what} is not JSON ({e})"))
}

/// The claims of a JWT, decoded without verifying the signature (the registry verifies it;
/// the tests look at what was granted).
pub fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1, "payload")
}

/// The header of a JWT (`alg`, `kid`, ...), decoded.
pub fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0, "header")
}

/// The `access` claim as sorted `(type, name, sorted actions)` triples, without entries
/// that grant nothing.
pub fn granted(claims: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = claims["access"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|e| {
            let mut actions: Vec<String> = e["actions"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            actions.sort();
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["name"].as_str().unwrap_or_default().to_owned(),
                actions,
            )
        })
        .filter(|(_, _, actions)| !actions.is_empty())
        .collect();
    out.sort();
    out
}

/// The actions a JWT's claims grant on `(type, name)`, in the JWT's order.
pub fn granted_on(claims: &Value, kind: &str, name: &str) -> Vec<String> {
    claims["access"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == kind && a["name"] == name)
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Builds a `(type, name, actions)` triple for comparisons with [`granted`].
pub fn access(kind: &str, name: &str, actions: &[&str]) -> (String, String, Vec<String>) {
    let mut a: Vec<String> = actions.iter().map(|s| s.to_string()).collect();
    a.sort();
    (kind.to_owned(), name.to_owned(), a)
}

/// A loopback port that is bound but not listening, for as long as this value lives:
/// connecting to it is refused, and no other socket can take it meanwhile (it is bound
/// without `SO_REUSEADDR`), unlike a port that was free a moment ago.
pub struct ClosedPort {
    _socket: socket2::Socket,
    addr: SocketAddr,
}

/// A TCP socket bound to a port of 127.0.0.1 the OS chose, not listening (connections to it
/// are refused until it listens), and its address.
pub fn bound_socket() -> (socket2::Socket, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("create a TCP socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind 127.0.0.1:0");
    let addr = socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an IP address");
    (socket, addr)
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let (socket, addr) = bound_socket();
        ClosedPort {
            _socket: socket,
            addr,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP connection to `server` from the local address `from` (e.g. `127.0.0.2`: every
/// 127.x.y.z is this host, so tests can play several clients), with read and write timeouts of
/// `timeout`.
pub fn connect_from(
    from: &str,
    server: std::net::SocketAddr,
    timeout: Duration,
) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("an IPv4 address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&local.into())
        .unwrap_or_else(|e| panic!("bind {local}: {e}"));
    socket
        .connect_timeout(&server.into(), timeout)
        .unwrap_or_else(|e| panic!("connect from {from} to {server}: {e}"));
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(timeout))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(timeout))
        .expect("write timeout");
    stream
}
