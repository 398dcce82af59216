//! End to end with docker: a token created with the CLI logs in with the exact command the
//! CLI printed and pushes; a token created without push logs in but cannot push (and can
//! pull). Real peers: regauth, Debian's docker-registry, a private dockerd (as root).
use crate::common::{http, DockerClient, Regauth, Registry};

/// The `echo '...' | docker login ...` line that `token create` printed.
fn login_line(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("echo '") && l.contains("| docker login "))
        .unwrap_or_else(|| panic!("no login command in\n{stdout}"))
        .to_string()
}

#[test]
fn docker_push_needs_a_push_scope() {
    // The registry's realm names regauth, and regauth's config names the registry's host (for
    // the login command it prints): regauth starts, then the registry, then regauth again on
    // its address with the registry's host in its config.
    let mut s = Regauth::start();
    let registry = Registry::start(&s, "default");
    let host = registry.host();
    s.restart_with(|c| {
        let mut r = toml::Table::new();
        r.insert("id".into(), "default".into());
        r.insert("service".into(), "registry.local".into());
        r.insert("hostname".into(), host.clone().into());
        c.insert(
            "registries".into(),
            toml::Value::Array(vec![toml::Value::Table(r)]),
        );
    });
    let pusher = s
        .cli(&[
            "token",
            "create",
            "pusher",
            "--scope",
            "repository:cli/*:pull,push",
        ])
        .ok();
    let puller = s
        .cli(&[
            "token",
            "create",
            "puller",
            "--scope",
            "repository:cli/*:pull",
        ])
        .ok();

    let ready = http().get(format!("http://{host}/v2/")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 401, "the registry wants tokens");
    let docker = DockerClient::new();

    // A one-file image.
    let image = format!("{host}/cli/hello:1");
    docker.tag(&docker.import_image(), &image);

    // The token with push: log in exactly as printed, push.
    let out = docker.sh(&login_line(&pusher.stdout)).ok();
    assert!(out.stdout.contains("Login Succeeded"), "{out:?}");
    docker.sh(&format!("docker push {image}")).ok();
    docker.sh(&format!("docker logout {host}")).ok();

    // The token without push: logs in, cannot push, can pull.
    docker.sh(&login_line(&puller.stdout)).ok();
    let other = format!("{host}/cli/other:1");
    docker.sh(&format!("docker tag {image} {other}")).ok();
    let out = docker.sh(&format!("docker push {other}"));
    assert_ne!(out.code, 0, "a pull-only token pushed: {out:?}");
    let said = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        said.contains("denied") || said.contains("unauthorized") || said.contains("insufficient"),
        "{out:?}"
    );
    docker.sh(&format!("docker rmi {image} {other}")).ok();
    docker.sh(&format!("docker pull {image}")).ok();

    // Disabling the pusher with the CLI locks it out of docker too.
    docker.sh(&format!("docker logout {host}")).ok();
    s.cli(&["token", "update", "pusher", "--disable"]).ok();
    let out = docker.sh(&login_line(&pusher.stdout));
    assert_ne!(out.code, 0, "a disabled token logged in: {out:?}");
}
