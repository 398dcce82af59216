//! A compose project of the repository's compose files (`docker-compose.yml`,
//! `docker-compose.ha.yml`), started with Debian's docker-compose on a dockerd of its own, and
//! taken down (containers, networks, volumes) when dropped.
//!
//! - The dockerd keeps its data root under cargo's target tmp dir (`compose-dockerd/`), so the
//!   base-image stand-ins ([`super::images`]) survive between test runs; a clean clone builds
//!   them once. The regauth image is built from the current sources by every process (its
//!   build stage is reused by the process's later stacks) and removed afterwards.
//! - The compose files publish fixed host ports (5000, 5001), as users run them. So one stack
//!   runs at a time on the machine: a process-wide mutex plus a lock directory in /tmp
//!   (holding the owner's pid; a dead owner's lock is taken over) serialise the stacks of all
//!   test processes, and the dockerd's data root is used by one daemon at a time.
//! - The only test-only differences from the shipped files are in the override files under
//!   tests/compose/ (the image build runs with `--network host`, because this dockerd has no
//!   bridge for build containers, and cargo fetches crates from crates.io through the host).
//!
//! Depends on `dockerd`, `images` and the docker-compose program.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::dockerd::{DockerClient, Dockerd};
use super::process::pid_alive;
use super::{images, repo_root, require_bin, run, unique, CmdOutput};

pub const COMPOSE_BIN: &str = "/usr/bin/docker-compose";

/// How long `up --build` may take: a cold build compiles regauth in release mode.
const UP_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// How long a test waits for another process's stack to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const LOCK_DIR: &str = "/tmp/regauth-compose.lock";
/// The image both compose files build from the Dockerfile.
const BUILT_IMAGE: &str = "regauth:local";

pub struct ComposeStack {
    project: String,
    files: Vec<PathBuf>,
    client: DockerClient,
    // Dropped after the client: the daemon stops once the project is down.
    dockerd: Arc<Dockerd>,
    _lock: StackLock,
}

impl ComposeStack {
    /// Starts `files` (repository-relative; later files override earlier ones) as a new
    /// project with `up -d --build`, after building the stand-ins for `standins`.
    #[track_caller]
    pub fn up(files: &[&str], standins: &[&str]) -> ComposeStack {
        require_bin(COMPOSE_BIN);
        let lock = StackLock::acquire();
        let data_root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-dockerd");
        std::fs::create_dir_all(&data_root).expect("create the compose dockerd's data root");
        let dockerd = Arc::new(Dockerd::start_with_data(&data_root));
        let client = DockerClient::on(dockerd.clone());
        // What earlier runs left behind (the lock makes this process the only user of the
        // data root): stopped containers, networks, volumes; and, before this process's first
        // stack only, dangling images (an earlier run's build stage, superseded stand-ins).
        // Later stacks of this process reuse the first one's build stage (same sources).
        static FIRST: std::sync::Once = std::sync::Once::new();
        prune(&client, false);
        FIRST.call_once(|| prune(&client, true));
        let started = Instant::now();
        images::ensure(&client, standins);
        eprintln!("stand-in images ready after {:?}", started.elapsed());
        let stack = ComposeStack {
            project: unique("rgcompose"),
            files: files.iter().map(|f| repo_root().join(f)).collect(),
            client,
            dockerd,
            _lock: lock,
        };
        let started = Instant::now();
        let out = stack.compose_timeout(&["up", "-d", "--build"], UP_TIMEOUT);
        assert!(
            out.success(),
            "docker-compose up failed:\n{out}\n{}",
            stack.logs()
        );
        eprintln!("compose up (build included) took {:?}", started.elapsed());
        stack
    }

    /// The docker client of the stack's dockerd (own DOCKER_CONFIG).
    pub fn client(&self) -> &DockerClient {
        &self.client
    }

    pub fn dockerd(&self) -> &Dockerd {
        &self.dockerd
    }

    /// `docker-compose -p PROJECT -f FILE… ARGS`.
    pub fn compose(&self, args: &[&str]) -> CmdOutput {
        self.compose_timeout(args, super::dockerd::CLIENT_TIMEOUT)
    }

    pub fn compose_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let mut c = self.client.command_of(Path::new(COMPOSE_BIN));
        c.current_dir(repo_root())
            .arg("--project-name")
            .arg(&self.project)
            .arg("--ansi")
            .arg("never");
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(args)
            // Builds go through Debian's docker CLI (not another docker on PATH), with the
            // classic builder: this dockerd's BuildKit is not needed.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .env("DOCKER_BUILDKIT", "0")
            // docker-compose gives up on a daemon call after 60 s by default; creating a
            // container from a large image under vfs (which copies every layer) can take longer.
            .env("COMPOSE_HTTP_TIMEOUT", "600");
        run(c, None, timeout)
    }

    /// `docker-compose exec -T SERVICE ARGS`, expected to succeed.
    #[track_caller]
    pub fn exec(&self, service: &str, args: &[&str]) -> CmdOutput {
        let mut all = vec!["exec", "-T", service];
        all.extend_from_slice(args);
        let out = self.compose(&all);
        assert!(
            out.success(),
            "docker-compose exec {service} failed:\n{out}\n{}",
            self.logs()
        );
        out
    }

    /// Waits until `service`'s container reports the health status `want`.
    #[track_caller]
    pub fn wait_health(&self, service: &str, want: &str, timeout: Duration) {
        super::wait_for(
            timeout,
            || {
                let id = self
                    .compose(&["ps", "-q", service])
                    .stdout
                    .trim()
                    .to_string();
                if id.is_empty() {
                    return None;
                }
                let out =
                    self.client
                        .docker(&["inspect", "--format", "{{.State.Health.Status}}", &id]);
                (out.stdout.trim() == want).then_some(())
            },
            || format!("{service} never became {want}\n{}", self.logs()),
        );
    }

    /// The last lines of every service's log, for failure messages.
    pub fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "40"]);
        format!("--- docker-compose logs ---\n{}{}", out.stdout, out.stderr)
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        let out = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
        if !out.success() {
            eprintln!("docker-compose down failed:\n{out}");
        }
        // The image goes; its build stage stays for the next stack of this process and is
        // pruned by the next process's first stack.
        let _ = self.client.docker(&["image", "rm", BUILT_IMAGE]);
        prune(&self.client, false);
    }
}

/// Removes stopped containers, unused networks and volumes and, with `images`, dangling images
/// (build stages, a failed build's layers, superseded stand-ins): the data root keeps them
/// (under vfs, a full copy of every layer).
fn prune(client: &DockerClient, images: bool) {
    for what in ["container", "network", "volume"] {
        let _ = client.docker(&[what, "prune", "--force"]);
    }
    if images {
        let _ = client.docker(&["image", "prune", "--force"]);
    }
}

/// The machine-wide "one compose stack at a time" lock: a mutex for this process's tests,
/// and a directory in /tmp holding the owner's pid for other processes.
struct StackLock {
    _guard: MutexGuard<'static, ()>,
}

impl StackLock {
    fn acquire() -> StackLock {
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Path::new(LOCK_DIR);
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut said = false;
        loop {
            match std::fs::create_dir(dir) {
                Ok(()) => {
                    std::fs::write(dir.join("pid"), std::process::id().to_string())
                        .expect("write the compose lock's pid");
                    return StackLock { _guard: guard };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(dir.join("pid"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if !pid_alive(pid) => {
                            eprintln!("taking over {LOCK_DIR} from pid {pid}, which has exited");
                            let _ = std::fs::remove_dir_all(dir);
                            continue;
                        }
                        // No pid yet: the owner is between mkdir and write.
                        _ => {}
                    }
                    if !said {
                        eprintln!("waiting for {LOCK_DIR} (owner pid {owner:?}): one compose stack at a time");
                        said = true;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{LOCK_DIR} still held by pid {owner:?} after {LOCK_TIMEOUT:?}"
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => panic!("create {LOCK_DIR}: {e}"),
            }
        }
    }
}

impl Drop for StackLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(LOCK_DIR);
    }
}
