//! The connectors that ship inside the binary, built from `connectors/*` by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/builtin_connectors.rs"));
