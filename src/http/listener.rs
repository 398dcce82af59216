//! The accept loop that serves the router: HTTP/1.1 connections with a cap on how many are
//! served at once (more wait in the listen queue; by default the cap is derived from the
//! open-files limit), a little room beyond the cap where only `/health` and `/ready` are
//! served (so a probe gets through a full server), a cap per client address (more are answered
//! `503` and closed), a header read timeout that also closes idle keep-alive connections, and a
//! graceful shutdown that waits for requests in flight at most a bounded time. Each request
//! carries the peer's [`ConnectInfo`], as `axum::serve` would give it.
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::LimitsConfig;
use crate::service::throttle::DenialLog;

/// The connection limits of [`serve`], from `[limits]`.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// Connections beyond `max_connections` that may only ask for `/health` or `/ready`.
    pub reserve: usize,
    /// 0: no limit.
    pub per_address: usize,
    /// Addresses exempt from `per_address` (trusted proxies carry many clients).
    pub exempt: Vec<IpAddr>,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Connections accepted beyond `max_connections` for `/health` and `/ready` only.
pub const HEALTH_RESERVE: usize = 8;

/// Connections the metrics listener serves at once (more wait in its listen queue): a scraper
/// needs one, so a few are plenty, and a flood of idle connections to it cannot take the file
/// descriptors the main listener needs.
pub const METRICS_CONNECTIONS: usize = 8;

/// The largest default of `max_connections`.
pub const MAX_DERIVED_CONNECTIONS: usize = 65_536;

/// The default of `[limits] max_connections` for an open-files limit of `open_files`: what is
/// left after `reserved` files, the metrics listener and the health reserve, at most
/// [`MAX_DERIVED_CONNECTIONS`], at least 1.
pub fn derived_max_connections(open_files: u64, reserved: u64) -> usize {
    let spare = (METRICS_CONNECTIONS + HEALTH_RESERVE) as u64 + reserved;
    let n = open_files.saturating_sub(spare);
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_DERIVED_CONNECTIONS)
}

impl ConnectionLimits {
    /// The limits of `[limits]`; `max_connections` 0 is derived from the open-files limit now
    /// in force (raised by `serve` first), with `reserved_files` kept for everything else.
    pub fn from_config(l: &LimitsConfig, reserved_files: u64) -> ConnectionLimits {
        let max_connections = match l.max_connections {
            0 => {
                // `None` is no limit.
                let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                    .current
                    .unwrap_or(u64::MAX);
                derived_max_connections(open_files, reserved_files)
            }
            n => n,
        };
        ConnectionLimits {
            max_connections,
            reserve: HEALTH_RESERVE,
            per_address: l.max_connections_per_address,
            exempt: l.trusted_proxies.clone(),
            header_timeout: Duration::from_secs(l.header_timeout_seconds),
            shutdown_timeout: Duration::from_secs(l.shutdown_timeout_seconds),
        }
    }

    /// The metrics listener's: [`METRICS_CONNECTIONS`] at once, the main listener's timeouts.
    pub fn metrics(l: &LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: METRICS_CONNECTIONS,
            reserve: 0,
            per_address: 0,
            exempt: Vec::new(),
            header_timeout: Duration::from_secs(l.header_timeout_seconds),
            shutdown_timeout: Duration::from_secs(l.shutdown_timeout_seconds),
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection of an address; gives its place back when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    addr: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, addr: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut map = table.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(addr).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            addr,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// What a refused connection reads before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves `app` on `listener` until `shutdown` completes, then waits at most
/// `limits.shutdown_timeout` for connections in flight, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.reserve));
    let per_address = Arc::new(PerAddress::default());
    let refusals = DenialLog::new(3, Duration::from_secs(60));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut last_accept_warning: Option<Instant> = None;
    let mut summary = tokio::time::interval(refusals.interval());
    summary.tick().await;
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the kernel's listen queue,
        // except for the few the health reserve takes (they may only ask for the probes).
        let (slot, health_only) = match slots.clone().try_acquire_owned() {
            Ok(s) => (s, false),
            Err(_) => tokio::select! {
                s = slots.clone().acquire_owned() => match s {
                    Ok(s) => (s, false),
                    Err(_) => break, // never closed
                },
                s = reserve.clone().acquire_owned() => match s {
                    Ok(s) => (s, true),
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            },
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little rather than spin, and say so at most every 10 s.
                    if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!(error = %e, "cannot accept a connection");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = summary.tick() => {
                refusals.summarise_as("refused connections");
                continue;
            }
            () = &mut shutdown => break,
        };
        let ip = peer.ip();
        let address_slot = if limits.per_address == 0 || limits.exempt.contains(&ip) {
            None
        } else {
            match PerAddress::take(&per_address, ip, limits.per_address) {
                Some(s) => Some(s),
                None => {
                    if refusals.admit(Some(ip)) {
                        warn!(client = %ip, limit = limits.per_address,
                            "connection refused: this address holds max_connections_per_address connections");
                    }
                    refuse(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                if health_only && !matches!(req.uri().path(), "/health" | "/ready") {
                    return Ok(at_capacity());
                }
                router.oneshot(req).await
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(client = %peer, error = %e, "connection ended with an error");
            }
            drop(address_slot);
            drop(slot);
        });
    }
    drop(listener);
    refusals.summarise_as("refused connections");
    let open = graceful.count();
    if open > 0 {
        info!(
            connections = open,
            timeout_seconds = limits.shutdown_timeout.as_secs(),
            "waiting for requests in flight"
        );
    }
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            timeout_seconds = limits.shutdown_timeout.as_secs(),
            "shutdown timeout reached; closing the connections still open"
        );
    }
}

/// The answer to anything but a probe on a connection of the health reserve.
fn at_capacity() -> axum::response::Response {
    let mut resp = axum::response::Response::new(axum::body::Body::from(
        "regauth is serving max_connections connections; try again shortly\n",
    ));
    *resp.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    h.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

/// Tells a refused connection why, without waiting for it, and closes it.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_default_cap_follows_the_open_files_limit() {
        assert_eq!(
            derived_max_connections(1_048_576, 64),
            MAX_DERIVED_CONNECTIONS
        );
        assert_eq!(
            derived_max_connections(1024, 64),
            1024 - 64 - METRICS_CONNECTIONS - HEALTH_RESERVE
        );
        assert_eq!(derived_max_connections(10, 64), 1);
        let l = LimitsConfig::default();
        assert_eq!(l.max_connections, 0, "derived by default");
        let limits = ConnectionLimits::from_config(&l, 64);
        assert!(limits.max_connections >= 1);
        assert_eq!(limits.reserve, HEALTH_RESERVE);
    }

    async fn get_path(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Issue 21, finding 6: with every slot held by idle connections, `/health` and `/ready`
    /// still answer at once (from the reserve), and anything else there gets 503.
    #[tokio::test]
    async fn probes_get_through_a_full_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/ready", get(|| async { "ready" }))
            .route("/auth", get(|| async { "auth" }));
        let limits = ConnectionLimits {
            max_connections: 4,
            reserve: 2,
            per_address: 0,
            exempt: Vec::new(),
            header_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(1),
        };
        let server = tokio::spawn(serve(listener, app, limits, std::future::pending()));
        // Four kept-alive connections, each answered once: all four slots are taken (and
        // idle) before the probes come.
        let mut idle = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"auth") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the answer");
                got.extend_from_slice(&buf[..n]);
            }
            idle.push(s);
        }
        let within = Duration::from_secs(20);
        let health = tokio::time::timeout(within, get_path(addr, "/health"))
            .await
            .expect("/health waited for a slot");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("ok"), "{health}");
        let ready = tokio::time::timeout(within, get_path(addr, "/ready"))
            .await
            .expect("/ready waited for a slot");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let other = tokio::time::timeout(within, get_path(addr, "/auth"))
            .await
            .expect("/auth on the reserve");
        assert!(other.starts_with("HTTP/1.1 503"), "{other}");
        drop(idle);
        server.abort();
    }
}
