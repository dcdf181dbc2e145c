//! Processes the benchmarks and tests measure or kill: the release server binary, a server
//! in a child process, and the memory figures `/proc` gives for a process.

use crate::mailroom::Api;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The release `mailroom` binary (`cargo build --release -p mailroom`; `scripts/bench.sh`
/// builds it).
pub fn release_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("release/mailroom");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p mailroom` first",
        path.display()
    );
    path
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS`, or `VmHWM` for the peak), in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("a /proc status entry");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A Mailroom server in a child process, so a test can kill it with SIGKILL: the test
/// binary started again to run only `test`, an ignored test that serves until it is killed
/// and prints `listening on <address>` first. Killed when dropped, so that a failing test
/// leaves no server behind holding the test run's output open.
pub struct ChildServer(Child);

impl ChildServer {
    /// Starts the server with `env` (and what it needs to reach the tests' PostgreSQL);
    /// returns it and its API.
    pub fn start<'a>(
        test: &str,
        env: impl IntoIterator<Item = (&'a str, &'a OsStr)>,
    ) -> (Self, Api) {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(env)
            .envs(crate::postgres::child_env())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server process starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let server = Self(child);
        for line in stdout.lines() {
            let line = line.expect("the server's output");
            // The harness may print the test's name on the same line first.
            if let Some((_, addr)) = line.split_once("listening on ") {
                return (server, Api::new(&format!("http://{addr}")));
            }
        }
        panic!("the server process ended before listening");
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("the killed server is reaped");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
