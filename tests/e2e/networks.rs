//! Issue 21: a token with `allowedNetworks` works for docker from inside them and is refused
//! from elsewhere. Every 127.x.y.z is this host, so a client bound to 127.0.0.2 is "another
//! network" for a token limited to 127.0.0.1/32.
use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;

use crate::common::{basic, connect_from, repo, DockerClient, NewToken, Regauth, Registry};

/// `GET /auth` over a connection from `from`, with an optional `X-Forwarded-For`; the status.
fn auth_status_from(
    regauth: &Regauth,
    from: &str,
    user: &str,
    password: &str,
    forwarded: Option<&str>,
) -> u16 {
    let mut s = connect_from(from, regauth.addr(), Duration::from_secs(10));
    let xff = forwarded
        .map(|f| format!("X-Forwarded-For: {f}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /auth?service=registry.local&scope=repository:team/app:pull HTTP/1.1\r\n\
         Host: {}\r\nAuthorization: {}\r\n{xff}Connection: close\r\n\r\n",
        regauth.addr(),
        basic(user, password)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no status line: {reply:?}"));
    status.parse().unwrap()
}

#[test]
fn a_token_limited_to_networks_works_from_inside_and_is_refused_from_elsewhere() {
    let regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let remote = format!("{host}/team/app:1");
    let token = regauth.create_token_with(
        "default",
        &NewToken::named("loopback-only")
            .scopes(json!([repo("team/*", &["pull", "push"])]))
            .with("allowedNetworks", json!(["127.0.0.1/32"])),
    );

    // dockerd reaches regauth from 127.0.0.1: login, push and pull work.
    let c = DockerClient::new();
    c.login_ok(&host, &token.name, token.password());
    let image = c.import_image();
    c.tag(&image, &remote);
    c.docker(&["push", &remote])
        .expect_success("docker push from inside the token's network");
    c.rmi(&[&remote]);
    c.docker(&["pull", &remote])
        .expect_success("docker pull from inside the token's network");

    // The same credentials from 127.0.0.2: refused; a forged X-Forwarded-For from that
    // (untrusted) peer changes nothing. From 127.0.0.1 the same request works.
    assert_eq!(
        auth_status_from(&regauth, "127.0.0.1", &token.name, token.password(), None),
        200
    );
    assert_eq!(
        auth_status_from(&regauth, "127.0.0.2", &token.name, token.password(), None),
        401
    );
    assert_eq!(
        auth_status_from(
            &regauth,
            "127.0.0.2",
            &token.name,
            token.password(),
            Some("127.0.0.1")
        ),
        401
    );
    let log = regauth.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client address not allowed"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("127.0.0.2") && !l.contains(token.password())),
        "{refused:#?}"
    );
}
