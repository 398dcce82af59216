//! Issue 11, finding 3, with the real clients: wrong `docker login`s get 429 from regauth, and
//! what docker, skopeo and containerd's `ctr` then print and do (none retries); a success
//! forgives the owner's typos; parallel correct logins of one token are never refused.
use std::time::{Duration, Instant};

use crate::common::{basic, connect_from, http, repo, DockerClient, Regauth, Registry, Skopeo};

/// `throttled` token decisions in the log so far.
fn throttled(regauth: &Regauth) -> usize {
    regauth
        .log()
        .lines()
        .filter(|l| l.contains("token decision") && l.contains("throttled"))
        .count()
}

#[test]
fn wrong_docker_logins_are_throttled_and_the_clients_say_so() {
    let regauth = Regauth::builder()
        .limit("auth_failures", 5)
        .limit("denial_log_lines", 1000)
        .start();
    let registry = Registry::start(&regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let host = registry.host();

    // Sixteen logins at once, right password, from one address (dockerd's): never refused.
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let (host, name, pass) = (
                host.clone(),
                token.name.clone(),
                token.password().to_owned(),
            );
            std::thread::spawn(move || DockerClient::new().login(&host, &name, &pass))
        })
        .collect();
    for l in logins {
        l.join().unwrap().expect_success("parallel docker login");
    }

    let docker = DockerClient::new();
    // Distinct wrong passwords: the same one retried counts once.
    let wrong = |i: usize| format!("{}x{i}", token.password());
    // Four typos, then the right password: forgiven, so four more typos are no lockout.
    for round in 0..2 {
        for i in 0..4 {
            docker
                .login(&host, &token.name, &wrong(round * 10 + i))
                .expect_refused("docker login with a wrong password", &["unauthorized"]);
        }
        docker
            .login(&host, &token.name, token.password())
            .expect_success(&format!("docker login after four typos (round {round})"));
    }
    // Five failures in a row lock the address out.
    for i in 0..5 {
        docker
            .login(&host, &token.name, &wrong(100 + i))
            .expect_refused("docker login with a wrong password", &["unauthorized"]);
    }
    let before = throttled(&regauth);
    let out = docker.login(&host, &token.name, token.password());
    eprintln!(
        "docker login when locked out:\n{}\n{}",
        out.stdout, out.stderr
    );
    // docker shows the registry error code and regauth's message, asks once, and gives up.
    out.expect_refused(
        "docker login while locked out",
        &["toomanyrequests: too many failed authentications from this address; retry after"],
    );
    assert_eq!(throttled(&regauth) - before, 1, "{}", regauth.log_tail());

    // Another client address is served: the lockout is this address's.
    let other = reqwest::blocking::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/auth?service=registry.local", regauth.url()))
        .basic_auth(&token.name, Some(token.password()))
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // skopeo with the right password, from the same address.
    let skopeo = Skopeo::new();
    let before = throttled(&regauth);
    let creds = format!("{}:{}", token.name, token.password());
    let out = skopeo.inspect(&format!("{host}/team/app:1"), &creds);
    eprintln!("skopeo inspect when locked out:\n{out}");
    out.expect_refused(
        "skopeo inspect while locked out",
        &["too many requests to registry"],
    );
    let skopeo_tries = throttled(&regauth) - before;

    // containerd's ctr, through the shared dockerd's containerd.
    let before = throttled(&regauth);
    let out = docker.dockerd().ctr(
        "regauth-throttle",
        &[
            "images",
            "pull",
            "--plain-http",
            "--user",
            &creds,
            &format!("{host}/team/app:1"),
        ],
    );
    eprintln!("ctr pull when locked out:\n{}\n{}", out.stdout, out.stderr);
    out.expect_refused(
        "ctr pull while locked out",
        &["unexpected status: 429 Too Many Requests"],
    );
    let ctr_tries = throttled(&regauth) - before;
    // Neither retries.
    assert_eq!(
        (skopeo_tries, ctr_tries),
        (1, 1),
        "token requests of skopeo and ctr"
    );
}

/// Under a flood the log keeps its first lines per address and interval, then one summary.
#[test]
fn a_flood_of_denials_is_summed_up_in_the_log() {
    let regauth = Regauth::builder()
        .limit("auth_failures", 0)
        .limit("name_failures", 0)
        .limit("admin_failures", 0)
        .limit("network_failures", 0)
        .limit("global_failures", 0)
        .limit("denial_log_lines", 3)
        .limit("denial_log_interval_seconds", 1)
        .start();
    let client = reqwest::blocking::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    for _ in 0..200 {
        let r = client
            .get(format!("{}/auth?service=registry.local", regauth.url()))
            .basic_auth("nobody", Some("guess"))
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
        let r = client
            .get(format!("{}/api/v1/registries", regauth.url()))
            .bearer_auth("not-the-admin-token")
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    crate::common::wait_for(
        std::time::Duration::from_secs(10),
        || {
            let log = regauth.log();
            let summed: u64 = log
                .lines()
                .filter(|l| {
                    l.contains("more denials from 127.0.0.3 in the last 1 s")
                        || l.contains(
                            "more failed admin authentications from 127.0.0.3 in the last 1 s",
                        )
                })
                .filter_map(|l| {
                    l.split("suppressed=")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            let single = log
                .lines()
                .filter(|l| {
                    l.contains("client=127.0.0.3")
                        && (l.contains("token decision")
                            || l.contains("admin authentication failed"))
                })
                .count() as u64;
            (single + summed == 400).then_some(())
        },
        || format!("400 denials, logged or summed up\n{}", regauth.log_tail()),
    );
    let single = regauth
        .log()
        .lines()
        .filter(|l| l.contains("client=127.0.0.3") && l.contains("outcome=\"denied\""))
        .count();
    // Three per address and one-second interval, whatever the rate (token denials; the admin
    // API's failures have their own ration).
    let intervals = start.elapsed().as_secs() + 2;
    assert!(
        single as u64 <= 3 * intervals,
        "{single} denials logged one by one in {intervals} intervals"
    );
}

/// `GET /auth` as `user`/`pass` over a new connection from `from`: the status code.
fn auth_from(regauth: &Regauth, from: &str, user: &str, pass: &str, extra: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = connect_from(from, regauth.addr(), Duration::from_secs(10));
    let req = format!(
        "GET /auth?service=registry.local HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n{extra}Connection: close\r\n\r\n",
        regauth.addr(),
        basic(user, pass)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let head = String::from_utf8_lossy(&out[..out.len().min(12)]).to_string();
    head.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// Issue 21, findings 1 and 4, over real sockets: 6 000 wrong passwords rotated through 5 000
/// loopback addresses (20 /24 networks) get at most the global budget in guesses; a locked
/// address stays locked; the token's owner, from another network, logs in; a stale password
/// retried does not lock its CI host out.
#[test]
fn rotating_through_thousands_of_loopback_addresses_gets_the_designed_rate() {
    let regauth = Regauth::builder().limit("denial_log_lines", 1).start();
    let token = regauth.create_token("default", "target-bot", &[repo("team/*", &["pull"])]);
    // A CI host with a stale password, retrying: never locked out.
    for _ in 0..40 {
        assert_eq!(
            auth_from(&regauth, "127.1.0.9", "target-bot", "rga_stale", ""),
            401
        );
    }
    assert_eq!(
        auth_from(&regauth, "127.1.0.9", "target-bot", token.password(), ""),
        200
    );
    // A locked address.
    for i in 0..30 {
        auth_from(&regauth, "127.2.0.1", "target-bot", &format!("rga_{i}"), "");
    }
    assert_eq!(auth_from(&regauth, "127.2.0.1", "x", "y", ""), 429);
    let started = Instant::now();
    let (mut guesses, mut refused) = (0u32, 0u32);
    for n in 0..6000u32 {
        let i = n % 5000;
        let from = format!("127.0.{}.{}", i / 250, i % 250 + 1);
        match auth_from(&regauth, &from, "target-bot", &format!("rga_guess{n}"), "") {
            401 => guesses += 1,
            429 => refused += 1,
            s => panic!("{s} from {from}"),
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{guesses} guesses, {refused} refused, of 6 000 tries from 5 000 addresses in {took:?} \
         ({:.0} tries/s)",
        6000.0 / took.as_secs_f64()
    );
    assert!(guesses <= 1000 + 20, "{guesses} guesses");
    // The operator is told once.
    let log = regauth.log();
    assert_eq!(
        log.matches("over the global failure budget").count(),
        1,
        "{}",
        regauth.log_tail()
    );
    assert_eq!(
        auth_from(&regauth, "127.2.0.1", "x", "y", ""),
        429,
        "still locked"
    );
    assert_eq!(
        auth_from(&regauth, "127.3.0.1", "target-bot", token.password(), ""),
        200,
        "the owner from another network"
    );
}

/// Issue 21, finding 2: 5 000 IPv6 /64s of one /48, forwarded by a trusted proxy, get at most
/// one network's 100 guesses.
#[test]
fn ipv6_64s_of_one_48_through_a_trusted_proxy_get_one_networks_guesses() {
    let regauth = Regauth::builder().limit("denial_log_lines", 1).start();
    let client = http();
    let mut guesses = 0;
    for i in 0..5000u32 {
        let r = client
            .get(format!("{}/auth?service=registry.local", regauth.url()))
            .basic_auth("v6-target", Some(format!("rga_{i}")))
            .header("X-Forwarded-For", format!("2001:db8:7:{i:x}::1"))
            .send()
            .unwrap();
        match r.status().as_u16() {
            401 => guesses += 1,
            429 => {}
            s => panic!("{s}"),
        }
    }
    eprintln!("{guesses} guesses from 5 000 /64s of one /48");
    assert!(guesses <= 100, "{guesses} guesses");
}

/// Issue 21, finding 3: a web page's cross-site form POSTs and `no-cors` fetches are refused
/// (403) without counting, so they cannot lock the visitor out.
#[test]
fn cross_site_requests_cannot_lock_a_visitor_out() {
    let regauth = Regauth::builder()
        .limit("auth_failures", 3)
        .limit("admin_failures", 3)
        .start();
    let token = regauth.create_token("default", "legit", &[repo("team/*", &["pull"])]);
    let client = reqwest::blocking::Client::builder()
        .local_address("127.0.0.4".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    for _ in 0..10 {
        let r = client
            .post(format!("{}/auth", regauth.url()))
            .header("Sec-Fetch-Site", "cross-site")
            .header("Origin", "https://evil.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=password&service=registry.local&username=legit&password=x")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let text = r.text().unwrap();
        assert!(text.contains("cross-site request refused"), "{text}");
        let r = client
            .get(format!("{}/api/v1/registries", regauth.url()))
            .header("Origin", "https://evil.example")
            .bearer_auth("wrong-admin-token-000000")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    let r = client
        .get(format!("{}/auth?service=registry.local", regauth.url()))
        .basic_auth("legit", Some(token.password()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the visitor is not locked out");
    let r = client
        .get(format!("{}/api/v1/registries", regauth.url()))
        .bearer_auth(regauth.admin_token())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
