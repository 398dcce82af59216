//! A long-running child process whose output goes to a log file, stopped (SIGTERM, then
//! SIGKILL) when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::command::describe_command;
use super::{tail, wait_for, INSTALL_HINT};

/// How long a dropped daemon gets between SIGTERM and SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(10);

pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    /// The read end of a stderr pipe that nobody reads ([`Daemon::spawn_with_unread_stderr`]).
    _unread: Option<std::process::ChildStderr>,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
        let err = file.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let command = describe_command(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} (`{command}`): {e}; {INSTALL_HINT}"));
        Daemon {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            _unread: None,
        }
    }

    /// Starts `cmd` with stdout appended to `log` and stderr into a pipe that is held open and
    /// never read: a log reader that has stalled. Once the pipe's buffer (64 KiB) is full,
    /// every write to stderr blocks.
    pub fn spawn_with_unread_stderr(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
        cmd.stdin(Stdio::null()).stdout(file).stderr(Stdio::piped());
        let command = describe_command(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} (`{command}`): {e}; {INSTALL_HINT}"));
        let unread = child.stderr.take();
        Daemon {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            _unread: unread,
        }
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit by itself: how long it
    /// took, or `None` (it is then killed).
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<Duration> {
        let mut c = self.child.take()?;
        let start = Instant::now();
        signal(c.id(), "TERM");
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 60)
    }

    /// `Some(description)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut() {
            None => Some("not running".to_owned()),
            Some(c) => match c.try_wait() {
                Ok(Some(status)) => Some(format!("{} exited: {status}", self.name)),
                Ok(None) => None,
                Err(e) => Some(format!("{}: try_wait failed: {e}", self.name)),
            },
        }
    }

    /// Panics with the log when the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(why) = self.exited() {
            panic!("{why}\n{}", self.log_tail());
        }
    }

    /// Polls `ready` until it returns `Some`, panicking with the log if the process exits or
    /// `timeout` passes first.
    #[track_caller]
    pub fn wait_until<T>(&mut self, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
        let log = self.log.clone();
        let name = self.name.clone();
        wait_for(
            timeout,
            || {
                self.assert_running();
                ready()
            },
            || format!("{name} not ready\n{}", tail(&log, 60)),
        )
    }

    /// Waits until `find` recognises something in the whole log (e.g. the address a program
    /// that listens on port 0 says it bound) and returns it.
    #[track_caller]
    pub fn wait_for_log<T>(&mut self, timeout: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        let log = self.log.clone();
        self.wait_until(timeout, || find(&std::fs::read_to_string(&log).ok()?))
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; SIGKILL if the process is still there after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(None) = c.try_wait() {
            signal(c.id(), "TERM");
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(DROP_GRACE);
    }
}

/// Sends a signal by pid with kill(1) (the tests use no unsafe code).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the parenthesised command name
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}
