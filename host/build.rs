//! Builds the built-in connectors (`connectors/*`) for wasm32-wasip2 and embeds them.

#[path = "build/guests.rs"]
mod guests;

use guests::Guest;
use std::path::Path;

const BUILTIN: &[Guest] = &[
    Guest {
        package: "mailroom-connector-imap",
        lib: "mailroom_connector_imap",
        dir: "connectors/imap",
    },
    Guest {
        package: "mailroom-connector-google",
        lib: "mailroom_connector_google",
        dir: "connectors/google",
    },
    Guest {
        package: "mailroom-connector-microsoft",
        lib: "mailroom_connector_microsoft",
        dir: "connectors/microsoft",
    },
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest)
        .parent()
        .expect("the host crate lives in the workspace");
    let built = guests::build(workspace, BUILTIN);
    let mut source = String::from("pub const CONNECTORS: &[(&str, &[u8])] = &[\n");
    for (guest, path) in BUILTIN.iter().zip(&built) {
        source.push_str(&format!(
            "    ({:?}, include_bytes!({:?})),\n",
            guest.package,
            path.display().to_string()
        ));
    }
    source.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("builtin_connectors.rs"), source)
        .expect("cannot write builtin_connectors.rs");
}
