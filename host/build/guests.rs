//! Builds WebAssembly guest crates of this workspace (connectors, test components) for
//! `wasm32-wasip2`, from a build script.
//!
//! The inner cargo gets its own target directory (sharing the outer one would deadlock on
//! cargo's lock) and an environment cleaned of everything the outer build meant for the host
//! (`RUSTFLAGS`, `CARGO_*`, ...). The wasm target is installed with rustup when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// A guest crate: its cargo package name and its library name (the `.wasm` file's stem).
pub struct Guest {
    pub package: &'static str,
    pub lib: &'static str,
    /// The crate's folder, relative to the workspace root.
    pub dir: &'static str,
}

/// Builds `guests` in release mode and returns the path of each one's component.
pub fn build(workspace: &Path, guests: &[Guest]) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    // The library the HTTP connectors share.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("connectors/wasi-http").display()
    );
    for guest in guests {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(guest.dir).display()
        );
    }
    ensure_target();

    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-guests"),
        None => workspace.join("target").join("wasm-guests"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for guest in guests {
        command.args(["-p", guest.package]);
    }
    clean_environment(&mut command);
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the wasm guests: {e}"));
    assert!(status.success(), "building the wasm guests failed");

    guests
        .iter()
        .map(|guest| {
            let path = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{}.wasm", guest.lib));
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .collect()
}

/// Drops what the outer cargo set for the host build.
fn clean_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOC"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if outer {
            command.env_remove(key);
        }
    }
}

/// Installs the wasm target with rustup when the toolchain lacks it.
fn ensure_target() {
    let sysroot = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists());
    if !installed {
        let status = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed"
        );
    }
}
