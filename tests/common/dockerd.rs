//! A private dockerd (Debian's docker.io, with the containerd it starts under its exec root),
//! shared by the tests that run at the same time because it takes seconds to start, and a
//! docker CLI with a private DOCKER_CONFIG. dockerd and its containerd listen on unix sockets
//! in their temp dir only (no TCP port, no bridge network), so nothing races for a port; one
//! dockerd pushes to and pulls from any number of registries.
//!
//! Storage: overlay2 where dockerd can use it (layers shared, not copied), else vfs (every
//! layer and every container's root copied in full); `REGAUTH_TEST_DOCKER_STORAGE` forces one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;

use super::process::{pid_alive, signal, Daemon};
use super::{require_bin, run, tail, temp_dir, unique, wait_for, CmdOutput};

pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
/// Debian's client; /usr/local/bin/docker on this machine is another one.
pub const DOCKER_BIN: &str = "/usr/bin/docker";
pub const CTR_BIN: &str = "/usr/bin/ctr";

/// Names the private dockerds' storage driver (`vfs`, `overlay2`) instead of the default:
/// overlay2, falling back to vfs when dockerd cannot use it (its log says why).
pub const STORAGE_ENV: &str = "REGAUTH_TEST_DOCKER_STORAGE";
const OVERLAY2: &str = "overlay2";

/// How long one docker/ctr command may take before it counts as hung.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Dockerd {
    daemon: Mutex<Option<Daemon>>,
    /// `--data-root` (images, containers, volumes): in `dir` unless [`Dockerd::start_with_data`]
    /// was given one that outlives the daemon.
    data_root: PathBuf,
    /// `--storage-driver`: see [`Dockerd::storage_driver`].
    driver: String,
    // Last: removed after the daemon is gone.
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// The dockerd of the tests running now; started when none runs. It is
    /// stopped when the last test using it drops its handle.
    pub fn shared() -> Arc<Dockerd> {
        static SHARED: Mutex<Weak<Dockerd>> = Mutex::new(Weak::new());
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = guard.upgrade() {
            return d;
        }
        let d = Arc::new(Dockerd::start());
        *guard = Arc::downgrade(&d);
        d
    }

    fn start() -> Dockerd {
        let dir = temp_dir("rge-");
        let data_root = dir.path().join("data");
        Dockerd::start_in(dir, data_root)
    }

    /// A dockerd of its own whose images, containers and volumes live in `data_root`, which
    /// outlives it (a cache kept between test runs). Sockets and the exec root stay in a temp
    /// dir (unix socket paths must stay short). The caller makes sure no other dockerd uses
    /// `data_root` at the same time.
    pub fn start_with_data(data_root: &Path) -> Dockerd {
        Dockerd::start_in(temp_dir("rge-"), data_root.to_path_buf())
    }

    fn start_in(dir: tempfile::TempDir, data_root: PathBuf) -> Dockerd {
        require_bin(DOCKERD_BIN);
        require_bin(DOCKER_BIN);
        require_bin("/usr/bin/containerd");
        let root = dir.path();
        let log = root.join("dockerd.log");
        let forced = std::env::var(STORAGE_ENV).ok().filter(|s| !s.is_empty());
        let mut driver = forced.clone().unwrap_or_else(|| OVERLAY2.to_owned());
        let mut daemon = spawn_dockerd(root, &data_root, &driver, &log);
        if let Err(why) = answers(&mut daemon, &root.join("docker.sock"), &log) {
            // overlay2 needs a kernel and a backing file system that allow overlay mounts
            // (not an overlayfs itself, d_type support); where dockerd refuses it, vfs works
            // anywhere, only slower.
            assert!(
                forced.is_none() && driver == OVERLAY2,
                "dockerd with --storage-driver {driver} did not start: {why}\n{}",
                tail(&log, 60)
            );
            eprintln!(
                "dockerd: --storage-driver overlay2 did not start ({why}); using vfs, which \
                 copies every layer\n{}",
                tail(&log, 20)
            );
            drop(daemon);
            stop_containerd(root);
            // dockerd bind-mounts its data root onto itself before it picks the driver, and
            // leaves that mount behind when it gives up.
            unmount_all(&data_root);
            driver = "vfs".to_owned();
            daemon = spawn_dockerd(root, &data_root, &driver, &log);
            if let Err(why) = answers(&mut daemon, &root.join("docker.sock"), &log) {
                panic!(
                    "dockerd with --storage-driver vfs did not start: {why}\n{}",
                    tail(&log, 60)
                );
            }
        }
        let d = Dockerd {
            daemon: Mutex::new(Some(daemon)),
            data_root,
            driver,
            dir,
        };
        wait_for(
            Duration::from_secs(30),
            || d.containerd_socket().exists().then_some(()),
            || {
                format!(
                    "dockerd's containerd socket {} never appeared\n{}",
                    d.containerd_socket().display(),
                    d.log_tail()
                )
            },
        );
        d
    }

    /// The storage driver dockerd runs with: `overlay2`, or `vfs` where overlay2 did not start
    /// (or [`STORAGE_ENV`] names it).
    pub fn storage_driver(&self) -> &str {
        &self.driver
    }

    /// Panics with dockerd's log when it has exited.
    #[track_caller]
    pub fn assert_running(&self) {
        let mut g = self.daemon.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some(d) => d.assert_running(),
            None => panic!("dockerd was stopped"),
        }
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The gRPC socket of the containerd that dockerd started (for `ctr`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.path().join("exec/containerd/containerd.sock")
    }

    pub fn log_tail(&self) -> String {
        super::tail(&self.dir.path().join("dockerd.log"), 60)
    }

    /// Runs `ctr --address <containerd> -n <namespace> ARGS`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> CmdOutput {
        require_bin(CTR_BIN);
        let mut c = Command::new(CTR_BIN);
        c.arg("--address")
            .arg(self.containerd_socket())
            .arg("--namespace")
            .arg(namespace)
            .args(args);
        run(c, None, CLIENT_TIMEOUT)
    }
}

/// dockerd with its sockets, exec root and pid file in `root`, logging to `log`.
fn spawn_dockerd(root: &Path, data_root: &Path, driver: &str, log: &Path) -> Daemon {
    let mut cmd = Command::new(DOCKERD_BIN);
    cmd.args([
        "--storage-driver",
        driver,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ])
    .arg("-H")
    .arg(format!("unix://{}", root.join("docker.sock").display()))
    .arg("--data-root")
    .arg(data_root)
    .arg("--exec-root")
    .arg(root.join("exec"))
    .arg("--pidfile")
    .arg(root.join("docker.pid"))
    // containerd and runc are found through PATH
    .env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    Daemon::spawn("dockerd", cmd, log)
}

/// Waits until dockerd answers `docker info` on `sock`: `Err` saying why when it exits first
/// (a storage driver it cannot use makes it exit at once); panics when it hangs.
fn answers(daemon: &mut Daemon, sock: &Path, log: &Path) -> Result<(), String> {
    wait_for(
        Duration::from_secs(60),
        || {
            if let Some(why) = daemon.exited() {
                return Some(Err(why));
            }
            let mut c = Command::new(DOCKER_BIN);
            c.arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .arg("info");
            run(c, None, Duration::from_secs(10))
                .success()
                .then_some(Ok(()))
        },
        || format!("dockerd did not answer `docker info`\n{}", tail(log, 60)),
    )
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let daemon = self
            .daemon
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut d) = daemon {
            // dockerd stops its containerd on SIGTERM
            d.stop(Duration::from_secs(20));
        }
        // ... and if it did not (or dockerd was killed), stop containerd here.
        stop_containerd(self.dir.path());
    }
}

/// Unmounts every mount stacked on `path` (none when nothing is mounted there).
pub fn unmount_all(path: &Path) {
    let mounted = || {
        std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(&*path.to_string_lossy()))
        })
    };
    for _ in 0..8 {
        if !mounted() {
            return;
        }
        let mut c = Command::new("umount");
        c.arg(path);
        let _ = run(c, None, Duration::from_secs(10));
    }
}

/// Stops the containerd that a dockerd with its exec root under `root` started, if it is
/// still there.
fn stop_containerd(root: &Path) {
    let pidfile = root.join("exec/containerd/containerd.pid");
    if let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        if pid_alive(pid) {
            signal(pid, "TERM");
            for _ in 0..50 {
                if !pid_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if pid_alive(pid) {
                signal(pid, "KILL");
            }
        }
    }
}

/// The docker CLI talking to the shared dockerd with its own DOCKER_CONFIG
/// (so logins of different tests never mix).
pub struct DockerClient {
    dockerd: Arc<Dockerd>,
    config: tempfile::TempDir,
}

impl Default for DockerClient {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerClient {
    pub fn new() -> DockerClient {
        DockerClient::on(Dockerd::shared())
    }

    /// A client of the given dockerd (rather than the shared one).
    pub fn on(dockerd: Arc<Dockerd>) -> DockerClient {
        DockerClient {
            dockerd,
            config: temp_dir("rgc-"),
        }
    }

    pub fn dockerd(&self) -> &Dockerd {
        &self.dockerd
    }

    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    fn command(&self) -> Command {
        self.command_of(Path::new(DOCKER_BIN))
    }

    /// `program` with this client's docker environment.
    pub fn command_of(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dockerd.socket().display()),
        )
        .env("DOCKER_CONFIG", self.config.path())
        .env("HOME", self.config.path())
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
        c
    }

    /// `docker ARGS`, never panicking on the command's own failure.
    pub fn docker(&self, args: &[&str]) -> CmdOutput {
        self.docker_timeout(args, CLIENT_TIMEOUT)
    }

    /// `docker ARGS` that may take up to `timeout` (an image build).
    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let mut c = self.command();
        c.args(args);
        run(c, None, timeout)
    }

    /// `docker login -u USER --password-stdin HOST`.
    pub fn login(&self, host: &str, user: &str, password: &str) -> CmdOutput {
        let mut c = self.command();
        c.args(["login", "-u", user, "--password-stdin", host]);
        run(c, Some(password), CLIENT_TIMEOUT)
    }

    #[track_caller]
    pub fn login_ok(&self, host: &str, user: &str, password: &str) {
        self.login(host, user, password)
            .expect_success(&format!("docker login {host} as {user}"));
    }

    pub fn logout(&self, host: &str) -> CmdOutput {
        self.docker(&["logout", host])
    }

    /// The client's config.json (where docker login stores credentials).
    pub fn config_json(&self) -> Value {
        let path = self.config.path().join("config.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Imports a new one-layer image with unique content (so a later pull
    /// must download it) and returns its local reference.
    #[track_caller]
    pub fn import_image(&self) -> String {
        let name = unique("img");
        let work = self.config.path().join(&name);
        std::fs::create_dir_all(work.join("rootfs/etc")).expect("mkdir rootfs");
        std::fs::write(
            work.join("rootfs/etc/e2e-image"),
            format!("regauth e2e image {name}\n"),
        )
        .expect("write image file");
        let tar = work.join("rootfs.tar");
        let mut c = Command::new("tar");
        c.arg("-C")
            .arg(work.join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".");
        run(c, None, CLIENT_TIMEOUT).expect_success("tar the image root");
        let reference = format!("e2e/{name}:1");
        self.docker(&["import", &tar.to_string_lossy(), &reference])
            .expect_success("docker import");
        reference
    }

    /// `docker tag SRC DST`, expected to succeed.
    #[track_caller]
    pub fn tag(&self, src: &str, dst: &str) {
        self.docker(&["tag", src, dst]).expect_success("docker tag");
    }

    /// `docker rmi REF...` of local references, expected to succeed.
    #[track_caller]
    pub fn rmi(&self, refs: &[&str]) {
        let mut args = vec!["rmi"];
        args.extend_from_slice(refs);
        self.docker(&args).expect_success("docker rmi");
    }

    /// Runs a shell command line in which `docker` is this client (Debian's docker, the
    /// shared dockerd, this client's config): for running a command exactly as printed.
    pub fn sh(&self, line: &str) -> CmdOutput {
        self.sh_timeout(line, CLIENT_TIMEOUT)
    }

    /// [`DockerClient::sh`] that may take up to `timeout`.
    pub fn sh_timeout(&self, line: &str, timeout: Duration) -> CmdOutput {
        let bin = self.config.path().join("bin");
        if !bin.exists() {
            std::fs::create_dir_all(&bin).expect("mkdir bin");
            std::os::unix::fs::symlink(DOCKER_BIN, bin.join("docker")).expect("link docker");
        }
        let mut sh = self.command_of(Path::new("/bin/sh"));
        sh.arg("-c")
            .arg(line)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
        run(sh, None, timeout)
    }

    /// `docker save -o FILE REF` (for `ctr images import`).
    #[track_caller]
    pub fn save(&self, reference: &str) -> PathBuf {
        let file = self.config.path().join(format!("{}.tar", unique("save")));
        self.docker(&["save", "-o", &file.to_string_lossy(), reference])
            .expect_success("docker save");
        file
    }

    /// A new image (as [`Self::import_image`]) handed to the daemon's containerd in a new
    /// namespace (docker 20.10 keeps images in a store of its own), for `ctr`: returns the
    /// docker reference, the namespace and containerd's reference.
    #[track_caller]
    pub fn image_in_containerd(&self) -> (String, String, String) {
        let image = self.import_image();
        let saved = self.save(&image);
        let ns = unique("e2e");
        self.dockerd()
            .ctr(&ns, &["images", "import", &saved.to_string_lossy()])
            .expect_success("ctr images import");
        let local = format!("docker.io/{image}");
        (image, ns, local)
    }
}
