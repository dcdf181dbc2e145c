//! Host bindings of each released version of the connector world, one `bindgen!` per
//! version. Only this module and its siblings in `runtime` see these types.

pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "mail-connector",
        path: "../wit/0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "mailroom:connector/net.connection": crate::net::Connection,
        },
    });
}

/// The WIT version the host speaks, as `GET /v1/connectors` reports it.
pub const WIT_VERSION: &str = "0.1.0";
