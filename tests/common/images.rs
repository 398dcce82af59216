//! Local stand-ins for the images that `Dockerfile`, `docker-compose.yml` and
//! `docker-compose.ha.yml` name but that cannot be pulled where the tests run (no Docker Hub),
//! built on a given dockerd under the very names the files use:
//!
//! | name | built from |
//! |---|---|
//! | `debian:bookworm-slim` | `debootstrap --variant=minbase bookworm` (Debian's debootstrap), imported |
//! | `rust:1-slim-bookworm` | tests/images/rust/install.sh: Debian's gcc and libc6-dev plus the host's Rust toolchain and CA bundle, one layer |
//! | `registry:2` | tests/images/registry: Debian's docker-registry (distribution 2.8) |
//! | `postgres:15-bookworm` | tests/images/postgres: Debian's postgresql-15, initdb'd at first start |
//! | `haproxy:2.6` | tests/images/haproxy: Debian's haproxy 2.6 |
//!
//! Every stand-in carries a label with a key over what it was built from (the Dockerfile
//! directory's files, the Debian mirror, the Rust toolchain's version, the parent's key), so an
//! image kept in a dockerd's data root from an earlier run is reused exactly when nothing it
//! was built from changed. The builds run with `--network host`: the tests' dockerd has no
//! bridge, and apt-get fetches packages from the host's Debian mirror.
//!
//! Depends on `dockerd` (the client that runs the builds) and on nothing of regauth.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::dockerd::DockerClient;
use super::{repo_root, require_bin, run, CmdOutput};

pub const DEBIAN: &str = "debian:bookworm-slim";
pub const RUST: &str = "rust:1-slim-bookworm";
pub const REGISTRY: &str = "registry:2";
pub const POSTGRES: &str = "postgres:15-bookworm";
pub const HAPROXY: &str = "haproxy:2.6";

pub const DEBOOTSTRAP_BIN: &str = "/usr/sbin/debootstrap";

/// The host's CA bundle, which the Rust stand-in trusts: cargo in the image build must reach
/// crates.io where the host does (through a TLS-intercepting proxy with its own CA, say).
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The label holding a stand-in's key.
const LABEL: &str = "org.regauth.test.standin";

/// How long one stand-in may take to build (debootstrap, or apt-get of postgresql on a busy
/// machine, take minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Makes sure every image in `names` (and the images they are built from) exists on the
/// client's dockerd, building those that are missing or out of date.
#[track_caller]
pub fn ensure(client: &DockerClient, names: &[&str]) {
    for name in names {
        ensure_one(client, name);
    }
}

/// Returns the key of `name` after building it if needed.
#[track_caller]
fn ensure_one(client: &DockerClient, name: &str) -> String {
    let key = match name {
        DEBIAN => digest(&[
            b"debootstrap --variant=minbase bookworm",
            debian_mirror().as_bytes(),
        ]),
        RUST => {
            let parent = ensure_one(client, DEBIAN);
            let version = rustc_version(&host_toolchain());
            let ca = std::fs::read(HOST_CA_BUNDLE).unwrap_or_default();
            digest(&[
                parent.as_bytes(),
                &dir_bytes("rust"),
                version.as_bytes(),
                &ca,
            ])
        }
        REGISTRY | POSTGRES | HAPROXY => {
            let parent = ensure_one(client, DEBIAN);
            digest(&[parent.as_bytes(), &dir_bytes(standin_dir(name))])
        }
        other => panic!("no stand-in is defined for image {other}"),
    };
    let have = client.docker(&[
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"),
        name,
    ]);
    if have.success() && have.stdout.trim() == key {
        return key;
    }
    eprintln!("building the stand-in for {name} (key {key})");
    match name {
        DEBIAN => debootstrap(client, &debian_mirror(), &key),
        RUST => build_rust(client, &host_toolchain(), &key),
        _ => build(
            client,
            name,
            &repo_root().join("tests/images").join(standin_dir(name)),
            &key,
        ),
    }
    key
}

fn standin_dir(name: &str) -> &'static str {
    match name {
        REGISTRY => "registry",
        POSTGRES => "postgres",
        HAPROXY => "haproxy",
        _ => unreachable!("standin_dir({name})"),
    }
}

/// A short hex SHA-256 over `parts` (each length-prefixed).
fn digest(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names and contents of the files in tests/images/DIR, in name order.
fn dir_bytes(dir: &str) -> Vec<u8> {
    let path = repo_root().join("tests/images").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend_from_slice(f.file_name().unwrap_or_default().as_encoded_bytes());
        out.push(0);
        out.extend(std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        out.push(0);
    }
    out
}

/// The Debian mirror this machine's apt uses for bookworm (one-line `deb URI bookworm …` or
/// deb822 `URIs:` / `Suites: bookworm`), else deb.debian.org.
pub fn debian_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        // deb822: stanzas separated by blank lines
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                })
            };
            if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                if suites.iter().any(|s| s == "bookworm") {
                    if let Some(u) = uris.first() {
                        return u.clone();
                    }
                }
            }
        }
        for line in text.lines() {
            // deb [options] URI SUITE COMPONENTS…
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            let mut rest: Vec<&str> = words.collect();
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                let close = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                rest.drain(..=close);
            }
            if rest.len() >= 2 && rest[1] == "bookworm" {
                return rest[0].to_string();
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// `debian:bookworm-slim` from debootstrap: a minbase rootfs (under cargo's target tmp dir,
/// removed afterwards), without the downloaded .debs, imported as one layer.
#[track_caller]
fn debootstrap(client: &DockerClient, mirror: &str, key: &str) {
    require_bin(DEBOOTSTRAP_BIN);
    let work = tempfile::Builder::new()
        .prefix("debootstrap-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir for debootstrap");
    let rootfs = work.path().join("rootfs");
    let mut c = Command::new(DEBOOTSTRAP_BIN);
    c.args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg(mirror);
    run(c, None, BUILD_TIMEOUT).expect_success("debootstrap --variant=minbase bookworm");
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = std::fs::read_dir(rootfs.join(dir)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let line = format!(
        "tar -C '{}' -c . | docker import --change 'LABEL {LABEL}={key}' --change 'CMD [\"bash\"]' - {DEBIAN}",
        rootfs.display()
    );
    let out = client.sh_timeout(&line, BUILD_TIMEOUT);
    out.expect_success("docker import of the debootstrap rootfs");
}

/// The host's Rust toolchain: the sysroot of the `rustc` on PATH (rustup's default for this
/// repository).
fn host_toolchain() -> PathBuf {
    let out = run(
        {
            let mut c = Command::new("rustc");
            c.args(["--print", "sysroot"]);
            c
        },
        None,
        Duration::from_secs(60),
    );
    out.expect_success("rustc --print sysroot");
    PathBuf::from(out.stdout.trim())
}

fn rustc_version(toolchain: &Path) -> String {
    let mut c = Command::new(toolchain.join("bin/rustc"));
    c.arg("--version");
    let out = run(c, None, Duration::from_secs(60));
    out.expect_success("rustc --version");
    out.stdout.trim().to_string()
}

/// `rust:1-slim-bookworm`: tests/images/rust/install.sh run in a debian:bookworm-slim
/// container with the host toolchain's rustc, cargo, shared libraries and x86_64 standard
/// library mounted, the container then flattened into one imported layer.
#[track_caller]
fn build_rust(client: &DockerClient, toolchain: &Path, key: &str) {
    let context = tempfile::Builder::new()
        .prefix("rust-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir for the rust toolchain");
    let target = "lib/rustlib/x86_64-unknown-linux-gnu";
    let tc = context.path().join("toolchain");
    for dir in ["bin", target] {
        std::fs::create_dir_all(tc.join(dir)).expect("mkdir toolchain");
    }
    let mut copies: Vec<(PathBuf, PathBuf)> = vec![
        (toolchain.join("bin/rustc"), tc.join("bin")),
        (toolchain.join("bin/cargo"), tc.join("bin")),
        (toolchain.join(target).join("lib"), tc.join(target)),
        (toolchain.join(target).join("bin"), tc.join(target)),
    ];
    for e in std::fs::read_dir(toolchain.join("lib")).expect("read toolchain lib") {
        let p = e.expect("dir entry").path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".so"))
        {
            copies.push((p, tc.join("lib")));
        }
    }
    for (from, to) in copies {
        // Hard links when the toolchain is on the same file system, else a copy.
        let mut c = Command::new("cp");
        c.arg("-al").arg(&from).arg(&to);
        if !run(c, None, BUILD_TIMEOUT).success() {
            let mut c = Command::new("cp");
            c.arg("-a").arg(&from).arg(&to);
            run(c, None, BUILD_TIMEOUT)
                .expect_success(&format!("copy {} for the rust stand-in", from.display()));
        }
    }
    let container = super::unique("rust-standin");
    let script = repo_root().join("tests/images/rust/install.sh");
    let out = client.docker_timeout(
        &[
            "run",
            "--name",
            &container,
            "--network",
            "host",
            "-v",
            &format!("{}:/toolchain:ro", tc.display()),
            "-v",
            &format!("{}:/install.sh:ro", script.display()),
            "-v",
            &format!("{HOST_CA_BUNDLE}:/host-ca-certificates.crt:ro"),
            DEBIAN,
            "/install.sh",
        ],
        BUILD_TIMEOUT,
    );
    let line = format!(
        "docker export {container} | docker import \
         --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
         --change 'ENV CARGO_HOME=/usr/local/cargo' \
         --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
         --change 'LABEL {LABEL}={key}' --change 'CMD [\"bash\"]' - {RUST}"
    );
    let imported = out
        .success()
        .then(|| client.sh_timeout(&line, BUILD_TIMEOUT));
    let _ = client.docker(&["rm", "-f", &container]);
    out.expect_success("tests/images/rust/install.sh in a debian:bookworm-slim container");
    if let Some(imported) = imported {
        imported.expect_success("docker export | docker import of the rust stand-in");
    }
}

/// `docker build --network host --label KEY -t NAME CONTEXT`.
#[track_caller]
fn build(client: &DockerClient, name: &str, context: &Path, key: &str) {
    let out: CmdOutput = client.docker_timeout(
        &[
            "build",
            "--network",
            "host",
            "--label",
            &format!("{LABEL}={key}"),
            "-t",
            name,
            &context.to_string_lossy(),
        ],
        BUILD_TIMEOUT,
    );
    out.expect_success(&format!("docker build of the stand-in for {name}"));
}
