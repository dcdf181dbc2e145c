//! The network as connectors see it: connections the host opens on their behalf, only to the
//! servers of the account a job serves, with TLS done by the host.
//!
//! Never opens a connection the policy has not allowed, and never downgrades: a connection
//! asked for with TLS is TLS or an error.

pub mod connection;
pub mod http;
pub mod kept;
pub mod policy;
pub mod preauth;
pub mod tls;

pub use connection::Connection;
pub use http::PlainHttp;
pub use kept::Kept;
pub use policy::NetPolicy;
pub use tls::TlsPolicy;
