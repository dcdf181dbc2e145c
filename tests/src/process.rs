//! Processes the benchmarks and tests measure: the release server binary, and the memory
//! figures `/proc` gives for a process.

use std::path::PathBuf;

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
