//! What the command-line tests share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The POP3 connector of `examples/`, built with its README's command.
pub fn pop3_example() -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pop3-connector");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .current_dir(&example)
        .env("CARGO_TARGET_DIR", example.join("target"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the POP3 example failed");
    example.join("target/wasm32-wasip2/release/pop3_connector.wasm")
}
