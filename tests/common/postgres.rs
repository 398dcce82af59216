//! A private PostgreSQL cluster (Debian's `postgresql` package, installed by
//! scripts/test/install-deps.sh): `initdb` as the `postgres` user (PostgreSQL refuses to run as
//! root) in a temp dir owned by it, started with `pg_ctl` on a free port of 127.0.0.1 and a
//! unix socket directory of its own, stopped (`-m immediate`) and removed on drop.
//!
//! Self-contained (std and tempfile only), so the library's unit tests include this file too
//! (`src/store/postgres/tests.rs`) and every test binary launches clusters the same way.
//!
//! PostgreSQL cannot listen on port 0: [`PgCluster::start`] asks the OS for a free port, lets it
//! go and starts on it, and tries another port if the start fails (another process took it).
//! A cluster kept in a `static` is never dropped: [`PgCluster::start`] also leaves a watchdog
//! (a shell loop) that stops and removes the cluster once the test process is gone.
//!
//! `fsync` is off: the tests kill processes, never the machine, so nothing committed is lost
//! when PostgreSQL or regauth dies; the load benchmark (scripts/bench/load.sh) runs its own
//! cluster with `fsync` on.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running private cluster; stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    /// Server options beyond the port and socket (TLS).
    extra: String,
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not installed (/usr/lib/postgresql: {e}): run \
                 `bash scripts/test/install-deps.sh` (as root) first"
            )
        })
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb: install Debian's postgresql")
}

/// Runs `program` (from `bin`) as the `postgres` user; panics with its output on failure.
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("runuser {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PgCluster {
    /// The cluster of this test process, started on first use and shared by the tests that
    /// only make databases in it (never stop it); the watchdog removes it after the process.
    pub fn shared() -> &'static PgCluster {
        static SHARED: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    /// A new cluster, running. Panics (naming the log) when it cannot start.
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// A new cluster that also accepts TLS (`ssl = on`) with this certificate chain and key
    /// (PEM); plain connections still work.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgCluster {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("regauth-pg-")
            .tempdir()
            .expect("temp dir");
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown postgres {}", dir.path().display());
        let data = dir.path().join("data");
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        std::fs::create_dir(dir.path().join("socket")).expect("socket dir");
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path().join("socket"))
            .status()
            .expect("chown");
        let mut extra = String::new();
        if let Some((cert, key)) = tls {
            let (cert_path, key_path) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert_path, cert).expect("write server.crt");
            std::fs::write(&key_path, key).expect("write server.key");
            for (path, mode) in [(&cert_path, "644"), (&key_path, "600")] {
                let ok = Command::new("chmod")
                    .arg(mode)
                    .arg(path)
                    .status()
                    .expect("chmod");
                let owned = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(path)
                    .status()
                    .expect("chown");
                assert!(ok.success() && owned.success(), "{}", path.display());
            }
            extra = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_path.display(),
                key_path.display()
            );
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            running: false,
            extra,
        };
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => {
                    cluster.watchdog();
                    return cluster;
                }
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn try_start(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 \
             -c shared_buffers=32MB{}",
            self.port,
            self.dir.path().join("socket").display(),
            self.extra
        );
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            ))
        }
    }

    /// Stops and removes the cluster when this process is gone (for a cluster in a `static`).
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             runuser -u postgres -- {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.path().display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` over TCP to `host` (which must resolve to 127.0.0.1), as user
    /// `postgres`; TLS as the client's settings say.
    pub fn url_via(&self, host: &str, database: &str) -> String {
        format!("postgres://postgres@{host}:{}/{database}", self.port)
    }

    /// A URL for `database` over TCP (no TLS), as user `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` in `database` with psql; returns its unaligned, tuples-only output.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        as_postgres(
            &self.bin,
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.dir.path().join("socket").display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
        )
        .trim()
        .to_string()
    }

    /// A new empty database with a unique name; returns its URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Stops the server at once (`-m immediate`: like a crash; committed data survives).
    pub fn stop(&mut self) {
        if self.running {
            as_postgres(
                &self.bin,
                "pg_ctl",
                &[
                    "-D",
                    &self.data().display().to_string(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
            self.running = false;
        }
    }

    /// Starts it again on the same port, after [`PgCluster::stop`].
    pub fn restart(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("PostgreSQL did not restart: {e}");
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
