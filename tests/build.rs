//! Builds the test components (`tests/components/*`) for wasm32-wasip2, the same way the
//! host builds its connectors, and tells the tests where they are.

#[path = "../host/build/guests.rs"]
mod guests;

use guests::Guest;
use std::path::Path;

const COMPONENTS: &[Guest] = &[
    Guest {
        package: "mailroom-test-hostile",
        lib: "mailroom_test_hostile",
        dir: "tests/components/hostile",
    },
    Guest {
        package: "mailroom-test-hostile-sync",
        lib: "mailroom_test_hostile_sync",
        dir: "tests/components/hostile-sync",
    },
    Guest {
        package: "mailroom-test-http-probe",
        lib: "mailroom_test_http_probe",
        dir: "tests/components/http-probe",
    },
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest)
        .parent()
        .expect("the tests crate lives in the workspace");
    let built = guests::build(workspace, COMPONENTS);
    println!("cargo:rustc-env=HOSTILE_CONNECTOR={}", built[0].display());
    println!(
        "cargo:rustc-env=HOSTILE_SYNC_CONNECTOR={}",
        built[1].display()
    );
    println!(
        "cargo:rustc-env=HTTP_PROBE_CONNECTOR={}",
        built[2].display()
    );
}
