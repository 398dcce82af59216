//! Client commands (docker, skopeo, ctr, the regauth CLI, python) run to completion with a
//! timeout, and their output with assertions that print all of it when they fail.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::INSTALL_HINT;

/// The result of a client command, printable in full for failure messages.
pub struct CmdOutput {
    pub command: String,
    pub status: Option<ExitStatus>,
    /// The exit code; -1 when the command was killed (by a signal or the timeout).
    pub code: i32,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// stdout and stderr together, lowercased, for "mentions X" checks.
    pub fn text_lower(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }

    /// Panics (showing the whole output) unless the command exited 0.
    #[track_caller]
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(self.success(), "{what}: expected success, got:\n{self}");
        self
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> CmdOutput {
        assert!(self.success(), "`{}` failed:\n{self}", self.command);
        self
    }

    /// Panics unless the command failed (non-zero exit, not a timeout).
    #[track_caller]
    pub fn expect_failure(&self, what: &str) -> &Self {
        assert!(
            !self.timed_out,
            "{what}: expected a failure, but the command timed out:\n{self}"
        );
        assert!(
            !self.success(),
            "{what}: expected a failure, but the command succeeded:\n{self}"
        );
        self
    }

    /// Panics unless the command failed (non-zero exit, not a timeout) and its output
    /// mentions one of `needles` (case-insensitive).
    #[track_caller]
    pub fn expect_refused(&self, what: &str, needles: &[&str]) -> &Self {
        self.expect_failure(what);
        let text = self.text_lower();
        assert!(
            needles.iter().any(|n| text.contains(&n.to_lowercase())),
            "{what}: the command failed, but its output mentions none of {needles:?}:\n{self}"
        );
        self
    }

    /// Asserts the regauth CLI's failure contract: exit `code`, nothing on stdout, exactly one
    /// line on stderr (`regauth: ...`), which is returned without the prefix.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(self.code, code, "`{}`: exit status\n{self}", self.command);
        assert_eq!(self.stdout, "", "`{}`: stdout on failure", self.command);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: stderr is not one line: {:?}",
            self.command,
            self.stderr
        );
        lines[0]
            .strip_prefix("regauth: ")
            .unwrap_or_else(|| panic!("`{}`: no `regauth: ` prefix: {:?}", self.command, lines[0]))
            .to_string()
    }

    /// stdout as JSON (the whole of it).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: stdout is not JSON ({e}):\n{}",
                self.command, self.stdout
            )
        })
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.timed_out {
            "TIMED OUT (killed)".to_string()
        } else {
            match self.status {
                Some(s) => s.to_string(),
                None => "not run".to_string(),
            }
        };
        writeln!(f, "  $ {}", self.command)?;
        writeln!(f, "  status: {status}")?;
        writeln!(f, "  --- stdout ---\n{}", indent(&self.stdout))?;
        write!(f, "  --- stderr ---\n{}", indent(&self.stderr))
    }
}

impl fmt::Debug for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn indent(s: &str) -> String {
    let s = s.trim_end();
    if s.is_empty() {
        return "    (empty)".to_string();
    }
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a command line for messages (test secrets are throwaway, so passwords in
/// arguments are shown as they are).
pub fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with `stdin` as its input, killing it after `timeout`. Never
/// panics on the command's own failure.
pub fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> CmdOutput {
    let command = describe_command(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start `{command}`: {e} ({INSTALL_HINT})"),
    };
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || read_all(out));
    let err_reader = std::thread::spawn(move || read_all(err));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    };
    CmdOutput {
        command,
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        status,
        timed_out,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = Vec::new();
    let _ = r.read_to_end(&mut s);
    String::from_utf8_lossy(&s).into_owned()
}
