//! The example connectors in `examples/`, built from source with their own commands, as their
//! READMEs say, so that the tests load exactly what an outside author would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// One build at a time: the copies share the example's target directory.
static BUILDS: Mutex<()> = Mutex::new(());

/// The POP3 connector's component, built with `cargo build --release --target
/// wasm32-wasip2`; with `version`, from a copy of the crate whose version is changed to it
/// (a new release of the same connector).
pub fn pop3_component(version: Option<&str>) -> Vec<u8> {
    pop3_component_changed(version, &[])
}

/// [`pop3_component`] from a copy whose `src/lib.rs` has each `(from, to)` of `changes`
/// replaced, to build a connector that breaks a rule.
pub fn pop3_component_changed(version: Option<&str>, changes: &[(&str, &str)]) -> Vec<u8> {
    let version = version.or((!changes.is_empty()).then_some("1.0.0"));
    let _one_at_a_time = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let source = examples().join("pop3-connector");
    let target = source.join("target");
    let crate_dir = match version {
        None => source.clone(),
        Some(version) => {
            let copy = tempfile::tempdir().expect("a temporary directory").keep();
            copy_tree(&source, &copy);
            let manifest = copy.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).expect("the example's Cargo.toml");
            let changed = text.replacen(
                "version = \"1.0.0\"",
                &format!("version = \"{version}\""),
                1,
            );
            std::fs::write(&manifest, changed).expect("write Cargo.toml");
            // The copy's paths to `wit/` are relative: keep them pointing at the repository's.
            let lib = copy.join("src/lib.rs");
            let code = std::fs::read_to_string(&lib).expect("src/lib.rs");
            let wit = examples().join("../wit");
            let wit = wit.to_str().expect("a UTF-8 path");
            let mut code = code.replace("../../wit", wit);
            for (from, to) in changes {
                assert!(code.contains(from), "src/lib.rs holds `{from}`");
                code = code.replace(from, to);
            }
            std::fs::write(&lib, code).expect("write src/lib.rs");
            copy
        }
    };
    // Copies build apart: the crate of the same name and version in the example's own
    // directory would not be linked again, and its component would stay the copy's.
    let target = if crate_dir == source {
        target
    } else {
        target.join("copies")
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the POP3 example failed");
    if crate_dir != source {
        std::fs::remove_dir_all(&crate_dir).ok();
    }
    std::fs::read(target.join("wasm32-wasip2/release/pop3_connector.wasm"))
        .expect("the built component")
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read the example") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (source, destination) = (entry.path(), to.join(&name));
        if entry.file_type().expect("a file type").is_dir() {
            std::fs::create_dir_all(&destination).expect("create a directory");
            copy_tree(&source, &destination);
        } else {
            std::fs::copy(&source, &destination).expect("copy a file");
        }
    }
}

/// The Python POP3 connector's component, built by its `build.sh` with componentize-py (in a
/// virtual environment under the target directory, installed the first time).
pub fn pop3_python_component() -> Vec<u8> {
    let _one_at_a_time = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let source = examples().join("pop3-python");
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/componentize-py-venv");
    let status = Command::new(source.join("build.sh"))
        .env("COMPONENTIZE_PY_VENV", venv)
        .status()
        .expect("build.sh runs");
    assert!(status.success(), "building the Python example failed");
    std::fs::read(source.join("pop3_python.wasm")).expect("the built component")
}
