//! Issue 11, findings 2 and 4, over real sockets against the real binary: slow and idle
//! connections are closed, a huge `Content-Length` is refused at once, SIGTERM waits a bounded
//! time, a stalled log reader does not freeze the server, and 1 100 connections from several
//! addresses leave `/health` answering. Short timeouts come from `[limits]`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::common::{connect_from, http, Regauth};

/// Reads until the server closes the connection (or `limit` passes): what it sent, and when
/// it closed (`None`: still open at `limit`).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into(), Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into(), Some(start.elapsed())),
        }
    }
    (String::from_utf8_lossy(&got).into(), None)
}

fn short_timeouts() -> crate::common::regauth::RegauthBuilder {
    Regauth::builder()
        .limit("header_timeout_seconds", 1)
        .limit("body_timeout_seconds", 1)
}

#[test]
fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let regauth = short_timeouts().start();
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    // One header byte at a time, never the blank line.
    let start = Instant::now();
    let mut closed_at = None;
    while start.elapsed() < Duration::from_secs(8) {
        if s.write_all(b"X").is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
        let (_, closed) = read_until_closed(&mut s, Duration::from_millis(300));
        if closed.is_some() {
            closed_at = Some(start.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("a trickling request head is cut off");
    assert!(
        closed_at < Duration::from_secs(4),
        "closed after {closed_at:?}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let regauth = short_timeouts().start();
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    // Requests 0.5 s apart keep it open past the 1 s timeout ...
    for _ in 0..4 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // ... then idle, it is closed.
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    let closed = closed.expect("an idle connection is closed");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[test]
fn a_huge_content_length_is_refused_at_once_and_a_slow_body_times_out() {
    let regauth = short_timeouts().limit("body_timeout_seconds", 2).start();
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    let start = Instant::now();
    s.write_all(
        b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000000\r\n\r\ngrant_type=",
    )
    .unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("larger than 65536 bytes"), "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // The admin API alike.
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    let req = format!(
        "POST /api/v1/registries/default/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{{",
        regauth.admin_token()
    );
    s.write_all(req.as_bytes()).unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // A body that stops halfway gets 408 after body_timeout_seconds.
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    let start = Instant::now();
    s.write_all(
        b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=pass",
    )
    .unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(8));
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.contains("TIMEOUT") || reply.contains("not received within 2 s"),
        "{reply}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn sigterm_waits_for_a_half_sent_request_at_most_the_shutdown_timeout() {
    let mut regauth = Regauth::builder()
        .limit("shutdown_timeout_seconds", 1)
        .limit("body_timeout_seconds", 600)
        .start();
    let mut s = connect_from("127.0.0.2", regauth.addr(), Duration::from_secs(5));
    // A request in flight whose body never comes.
    s.write_all(
        b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let took = regauth
        .terminate_within(Duration::from_secs(15))
        .expect("regauth exits by itself after SIGTERM");
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
    let log = regauth.log();
    assert!(log.contains("shutdown timeout reached"), "{log}");
    assert!(log.contains("regauth stopped"), "{log}");
}

#[test]
fn a_stalled_log_reader_does_not_freeze_the_server() {
    let regauth = Regauth::builder().unread_log().start();
    let token = regauth.create_token("default", "chatty", &[]);
    // Every successful request logs its client_id: 60 KB a line, so 150 requests log 9 MB,
    // more than the pipe (64 KiB) and the writer's buffer (4 MB) together.
    let client_id = "c".repeat(60_000);
    let client = http();
    let url = format!("{}/auth", regauth.url());
    let start = Instant::now();
    for i in 0..150 {
        let r = client
            .post(&url)
            .timeout(Duration::from_secs(10))
            .form(&[
                ("grant_type", "password"),
                ("service", "registry.local"),
                ("username", "chatty"),
                ("password", token.password()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .unwrap_or_else(|e| panic!("request {i} not answered: {e}"));
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    let r = client
        .get(format!("{}/health", regauth.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .expect("/health answers");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_server_refuses_to_start_when_the_file_limit_is_below_max_connections() {
    let out = Regauth::builder()
        .limit("max_connections", 100_000_000)
        .start_expecting_failure();
    let text = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        text.contains("open-files limit")
            && text.contains("max_connections = 100000000")
            && text.contains("LimitNOFILE"),
        "{text}"
    );
}

/// 1 100 idle connections from eleven loopback addresses: each address holds at most
/// `max_connections_per_address`, the rest are refused with 503, and `/health` still answers.
#[test]
fn eleven_hundred_idle_connections_leave_health_answering() {
    // This test process needs 1 100 descriptors too.
    regauth::server::increase_nofile_limit(4096).expect("raise the test's open-files limit");
    let regauth = Regauth::builder()
        .limit("max_connections_per_address", 64)
        .limit("header_timeout_seconds", 60)
        .start();
    let mut held = Vec::new();
    let mut refused = 0;
    for a in 2..=12 {
        let from = format!("127.0.0.{a}");
        for _ in 0..100 {
            let mut s = connect_from(&from, regauth.addr(), Duration::from_secs(10));
            s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut buf = [0u8; 64];
            // A refused connection is told so at once; an accepted one stays silent.
            match s.read(&mut buf) {
                Ok(n) if n > 0 => {
                    assert!(buf.starts_with(b"HTTP/1.1 503"), "{:?}", &buf[..n]);
                    refused += 1;
                }
                _ => held.push(s),
            }
        }
    }
    let start = Instant::now();
    let r = http()
        .get(format!("{}/health", regauth.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .expect("/health answers with 1 100 connections open");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Some refusals may arrive after the 1 ms look; none of the held ones is served beyond 64.
    let mut served = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => refused += 1,
            Ok(_) => refused += 1, // closed after the 503 was read elsewhere
            Err(_) => served += 1,
        }
    }
    assert_eq!(served + refused, 1100);
    assert_eq!(served, 11 * 64, "{served} served, {refused} refused");
    let log = regauth.log();
    assert!(
        log.contains("connection refused: this address holds max_connections_per_address"),
        "{}",
        regauth.log_tail()
    );
}

/// The metrics listener's address, from the log.
fn metrics_addr(regauth: &Regauth) -> std::net::SocketAddr {
    let log = regauth.log();
    log.lines()
        .find_map(|l| {
            let start = l.find("metrics at http://")? + "metrics at http://".len();
            l[start..].split('/').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
}

/// Issue 21, finding 5: up to 600 idle connections to the metrics listener of a server limited
/// to 512 open files do not take the descriptors `/health` and `/auth` need: the metrics listener
/// serves 8 at once, the rest wait in its listen queue.
#[test]
fn idle_connections_to_the_metrics_listener_leave_the_main_listener_serving() {
    regauth::server::increase_nofile_limit(4096).expect("raise the test's open-files limit");
    let regauth = Regauth::builder()
        .open_files(512)
        .env("REGAUTH_METRICS_LISTEN", "127.0.0.1:0")
        .limit("header_timeout_seconds", 60)
        .start();
    let metrics = metrics_addr(&regauth);
    // Until the listen queue is full too (the kernel then drops the handshake): without the
    // cap, the server would accept them all and run out of descriptors first.
    let mut held = Vec::new();
    for _ in 0..600 {
        match TcpStream::connect_timeout(&metrics, Duration::from_secs(1)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    eprintln!("{} idle connections to the metrics listener", held.len());
    let r = http()
        .get(format!("{}/health", regauth.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .expect("/health answers with 600 idle metrics connections");
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = regauth.grant("nobody", "rga_x", &[]);
    assert_eq!(status, 401, "/auth answers");
    drop(held);
}

/// Issue 21, finding 6: 1 200 idle connections from ten addresses, each under
/// `max_connections_per_address`, do not make `/health` wait: the default cap follows the
/// open-files limit, and `/health` has room of its own beyond the cap.
#[test]
fn twelve_hundred_idle_connections_under_the_per_address_cap_leave_health_answering() {
    regauth::server::increase_nofile_limit(4096).expect("raise the test's open-files limit");
    let regauth = Regauth::builder()
        .limit("header_timeout_seconds", 60)
        .start();
    let log = regauth.log();
    let cap: usize = log
        .lines()
        .find_map(|l| {
            l.split("max_connections=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no max_connections in the log:\n{log}"));
    eprintln!("derived max_connections = {cap}");
    let mut held = Vec::new();
    for a in 2..=11 {
        let from = format!("127.0.6.{a}");
        for _ in 0..120 {
            held.push(connect_from(&from, regauth.addr(), Duration::from_secs(10)));
        }
    }
    let start = Instant::now();
    let r = http()
        .get(format!("{}/health", regauth.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .expect("/health answers with 1 200 idle connections open");
    assert_eq!(r.status(), StatusCode::OK);
    eprintln!("/health took {:?}", start.elapsed());
    drop(held);
}

/// Issue 21: the "N more denials" summary of the current interval is written at a graceful
/// shutdown, not lost.
#[test]
fn the_denial_summary_is_flushed_at_shutdown() {
    let mut regauth = Regauth::builder()
        .limit("denial_log_lines", 1)
        .limit("denial_log_interval_seconds", 3600)
        .start();
    for i in 0..20 {
        let mut s = connect_from("127.0.7.1", regauth.addr(), Duration::from_secs(5));
        let req = format!(
            "GET /auth?service=registry.local HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            crate::common::basic("nobody", &format!("rga_{i}"))
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    }
    assert!(regauth.terminate_within(Duration::from_secs(20)).is_some());
    let log = regauth.log();
    assert!(
        log.contains("19 more denials from 127.0.7.1 in the last 3600 s"),
        "{log}"
    );
}
