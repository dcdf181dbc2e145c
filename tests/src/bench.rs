//! What the provider benchmarks share: the corpus they sync and the results file.

use serde_json::Value;
use std::io::Write;

/// The `i`-th benchmark message to `to`: about 1.3 KB, one a minute back from now.
pub fn message(i: usize, to: &str) -> Vec<u8> {
    format!(
        "Message-ID: <bench{i}@example.test>\r\nFrom: Carol <carol@example.test>\r\nTo: {to}\r\nSubject: message {i}\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n{}\r\n",
        "A line of a message body that is about as long as a line gets. ".repeat(20)
    )
    .into_bytes()
}

/// When the `i`-th benchmark message was received, in milliseconds since the epoch.
pub fn received_ms(i: usize) -> i64 {
    crate::mailbox::ms_days_ago(0) - (i as i64) * 60_000
}

/// Prints each line and appends it to `bench/results/{file}`.
pub fn record(file: &str, lines: &[Value]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&dir).expect("the results directory");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file))
        .expect("the results file");
    for line in lines {
        println!("{line}");
        writeln!(out, "{line}").expect("a result is written");
    }
}

/// Three decimals.
pub fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
