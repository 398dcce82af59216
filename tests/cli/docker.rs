//! End to end with docker: a token created with the CLI logs in with the exact command the
//! CLI printed and pushes; a token created without push logs in but cannot push (and can
//! pull). Real peers: regauth, Debian's docker-registry, a private dockerd (as root).
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    free_port, http, require_bin, start_registry, temp_dir, Daemon, Out, Server, DOCKERD_BIN,
    DOCKER_BIN,
};

/// A private dockerd: own socket, data and exec roots, no networking of its own.
fn start_dockerd(dir: &Path) -> Daemon {
    require_bin(DOCKERD_BIN);
    require_bin(DOCKER_BIN);
    require_bin("/usr/bin/containerd");
    let mut cmd = Command::new(DOCKERD_BIN);
    cmd.args([
        "--storage-driver",
        "vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ])
    .arg("-H")
    .arg(format!("unix://{}", dir.join("d.sock").display()))
    .arg("--data-root")
    .arg(dir.join("data"))
    .arg("--exec-root")
    .arg(dir.join("exec"))
    .arg("--pidfile")
    .arg(dir.join("d.pid"))
    // dockerd finds containerd and runc through PATH.
    .env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    let mut d = Daemon::spawn("dockerd", cmd, dir.join("dockerd.log"));
    d.graceful = true;
    let sock = dir.join("d.sock");
    d.wait_until(Duration::from_secs(60), || {
        sock.exists()
            && Command::new(DOCKER_BIN)
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    d
}

/// Runs a shell command line with `docker` meaning Debian's client, talking to the private
/// dockerd with a private DOCKER_CONFIG.
fn sh(dir: &Path, line: &str) -> Out {
    let bin = dir.join("bin");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(DOCKER_BIN, bin.join("docker")).unwrap();
    }
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.join("d.sock").display()),
        )
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    (line.to_string(), out).into()
}

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
    let registry_port = free_port();
    let host = format!("127.0.0.1:{registry_port}");
    let s = Server::start_with(|c| {
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

    let dir = temp_dir();
    let d = dir.path();
    let config = d.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            r#"version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: {host}
auth:
  token:
    realm: {url}/auth
    service: registry.local
    issuer: regauth
    rootcertbundle: {cert}
"#,
            root = d.join("registry-storage").display(),
            url = s.url,
            cert = s.cert_path().display(),
        ),
    )
    .unwrap();
    let _registry = start_registry(d, &config, registry_port, &[]);
    let ready = http().get(format!("http://{host}/v2/")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 401, "the registry wants tokens");
    let _dockerd = start_dockerd(d);

    // A one-file image.
    std::fs::create_dir_all(d.join("rootfs")).unwrap();
    std::fs::write(
        d.join("rootfs/hello.txt"),
        "hello from regauth's CLI tests\n",
    )
    .unwrap();
    sh(
        d,
        &format!("tar -C {0}/rootfs -cf {0}/rootfs.tar .", d.display()),
    )
    .ok();
    let image = format!("{host}/cli/hello:1");
    sh(
        d,
        &format!("docker import {}/rootfs.tar {image}", d.display()),
    )
    .ok();

    // The token with push: log in exactly as printed, push.
    let out = sh(d, &login_line(&pusher.stdout)).ok();
    assert!(out.stdout.contains("Login Succeeded"), "{out:?}");
    sh(d, &format!("docker push {image}")).ok();
    sh(d, &format!("docker logout {host}")).ok();

    // The token without push: logs in, cannot push, can pull.
    sh(d, &login_line(&puller.stdout)).ok();
    let other = format!("{host}/cli/other:1");
    sh(d, &format!("docker tag {image} {other}")).ok();
    let out = sh(d, &format!("docker push {other}"));
    assert_ne!(out.code, 0, "a pull-only token pushed: {out:?}");
    let said = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        said.contains("denied") || said.contains("unauthorized") || said.contains("insufficient"),
        "{out:?}"
    );
    sh(d, &format!("docker rmi {image} {other}")).ok();
    sh(d, &format!("docker pull {image}")).ok();

    // Disabling the pusher with the CLI locks it out of docker too.
    sh(d, &format!("docker logout {host}")).ok();
    s.cli(&["token", "update", "pusher", "--disable"]).ok();
    let out = sh(d, &login_line(&pusher.stdout));
    assert_ne!(out.code, 0, "a disabled token logged in: {out:?}");
}
