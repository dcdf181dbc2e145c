//! Host bindings of each released version of the connector world, one `bindgen!` per
//! version. Only this module and its siblings in `runtime` see these types.
//!
//! A later version reuses the interfaces it takes unchanged from an earlier one (`with`), so
//! the host implements each of them once.

pub mod v0_1_0 {
    pub use self::exports::mailroom::connector::connector::AuthKind as ConnectorAuthKind;

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

pub mod v0_2_0 {
    pub use self::exports::mailroom::connector0_2_0::connector::AuthKind as ConnectorAuthKind;

    wasmtime::component::bindgen!({
        world: "mailroom:connector/mail-connector@0.2.0",
        path: ["../wit/0.1.0", "../wit/0.2.0"],
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
            "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
            "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
            "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
            "mailroom:connector/mail.body-sink": crate::runtime::sink::BodySink,
        },
    });
}

pub mod v0_3_0 {
    pub use self::exports::mailroom::connector0_3_0::connector::AuthKind as ConnectorAuthKind;

    wasmtime::component::bindgen!({
        world: "mailroom:connector/mail-connector@0.3.0",
        path: ["../wit/0.1.0", "../wit/0.2.0", "../wit/0.3.0"],
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
            "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
            "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
            "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
            "mailroom:connector/mail@0.2.0": super::v0_2_0::mailroom::connector0_2_0::mail,
        },
    });
}

/// The newest WIT version the host speaks.
pub const WIT_VERSION: &str = "0.3.0";
