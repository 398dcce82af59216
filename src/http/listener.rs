//! The accept loop that serves the router: HTTP/1.1 connections with a cap on how many are
//! served at once (more wait in the listen queue), a cap per client address (more are answered
//! `503` and closed), a header read timeout that also closes idle keep-alive connections, and a
//! graceful shutdown that waits for requests in flight at most a bounded time. Each request
//! carries the peer's [`ConnectInfo`], as `axum::serve` would give it.
//!
//! Dependency direction: `http::listener -> {http, service::throttle}`; called by `server`.
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// 0: no limit.
    pub per_address: usize,
    /// Addresses exempt from `per_address` (trusted proxies carry many clients).
    pub exempt: Vec<IpAddr>,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl ConnectionLimits {
    pub fn from_config(l: &LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: l.max_connections,
            per_address: l.max_connections_per_address,
            exempt: l.trusted_proxies.clone(),
            header_timeout: Duration::from_secs(l.header_timeout_seconds),
            shutdown_timeout: Duration::from_secs(l.shutdown_timeout_seconds),
        }
    }
}

/// Connection counters, cheap to read (for metrics).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionStats {
    /// Connections being served now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused so far because their address held too many.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
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
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        // A free slot first: at the cap, new connections wait in the kernel's listen queue.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
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
                    stats.refused.fetch_add(1, Ordering::Relaxed);
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
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(client = %peer, error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
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

/// Tells a refused connection why, without waiting for it, and closes it.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
    drop(stream);
}
