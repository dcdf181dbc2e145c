//! Mailroom: the email back end of a CRM, and a WebAssembly plugin host for mail connectors.
//!
//! The folders follow the architecture: [`runtime`] runs connector components in a sandbox;
//! [`net`] and [`auth`] are what the sandbox lets them reach; [`api`] is the HTTP contract;
//! [`account`], [`folder`] and [`connector`] are the domain types the rest speak; [`store`]
//! keeps the state, and [`cluster`] shares its accounts among the nodes of one database.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod account;
pub mod api;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connector;
pub mod connectors;
pub mod endpoint;
pub mod folder;
pub mod id;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod record;
pub mod rotation;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod signature;
pub mod store;
pub mod sync;
pub mod user;
pub mod vault;
pub mod webhooks;

pub use config::Config;
pub use server::{Bootstrap, Server};
