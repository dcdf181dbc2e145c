//! The HTTP client Mailroom's HTTP connectors share (Gmail API, Microsoft Graph): a blocking
//! client over `wasi:http/outgoing-handler` that runs several calls at once ([`client`]),
//! kept under the provider's rate and retried when it asks to slow down ([`pace`]), against
//! the API base the host names ([`url`]).
//!
//! It knows no WIT world of Mailroom's: it reports a [`Failure`], which each connector turns
//! into its world's error. What differs between providers (its name in messages, how many
//! calls it takes at once, its rate, which answers mean "slow down") is a [`Service`].

pub mod client;
pub mod pace;
pub mod url;

pub use client::{Call, Flow, Http, Method, Reply};
pub use pace::{Class, Rate};
pub use url::Base;

/// Why a call failed, in the terms of `mailroom:connector/types@0.1.0`'s error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dns,
    Connect,
    Timeout,
    Tls,
    Denied,
    Unsupported,
    Protocol,
    RateLimited,
}

/// A call that came to no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    /// For [`Kind::RateLimited`]: when to come back.
    pub retry_after_secs: Option<u32>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(Kind::Protocol, message)
    }
}

/// What the client needs to know of the provider behind the API.
#[derive(Debug, Clone)]
pub struct Service {
    /// The provider's API by name, for messages ("Gmail", "Microsoft Graph").
    pub name: &'static str,
    /// Calls in flight at once.
    pub in_flight: usize,
    /// The provider's per-mailbox rate in cost units ([`Call::cost`]); calls are started a
    /// little under it.
    pub rate: pace::Rate,
    /// Sorts an answer for retrying: its status and body.
    pub classify: fn(u16, &[u8]) -> Class,
    /// Headers every call carries.
    pub headers: Vec<(String, String)>,
}

/// The error constructors an HTTP connector needs, for the `error` record of its world:
/// `http_errors!(Error, ErrorKind)` in a crate whose WIT bindings define those two
/// types (from `mailroom:connector/types@0.1.0`) defines `error(kind, message)`,
/// `protocol(message)` and the conversion from a [`Failure`]. An HTTP connector reaches no
/// server role, so no error names a server.
#[macro_export]
macro_rules! http_errors {
    ($error:ident, $kind:ident) => {
        pub fn error(kind: $kind, message: impl Into<String>) -> $error {
            $error {
                kind,
                message: message.into(),
                server: None,
                retry_after_secs: None,
            }
        }

        pub fn protocol(message: impl Into<String>) -> $error {
            error($kind::Protocol, message)
        }

        impl From<$crate::Failure> for $error {
            fn from(failure: $crate::Failure) -> Self {
                use $crate::Kind;
                let kind = match failure.kind {
                    Kind::Dns => $kind::Dns,
                    Kind::Connect => $kind::Connect,
                    Kind::Timeout => $kind::Timeout,
                    Kind::Tls => $kind::Tls,
                    Kind::Denied => $kind::Denied,
                    Kind::Unsupported => $kind::Unsupported,
                    Kind::Protocol => $kind::Protocol,
                    Kind::RateLimited => $kind::RateLimited,
                };
                Self {
                    retry_after_secs: failure.retry_after_secs,
                    ..error(kind, failure.message)
                }
            }
        }
    };
}
