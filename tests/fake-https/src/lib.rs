//! What Mailroom's fake providers (`mailroom-fake-google`,
//! `mailroom-fake-microsoft`) share:
//!
//! * [`HttpsServer`]: the HTTPS listener on 127.0.0.1, with a fresh
//!   self-signed certificate, serving HTTP/1.1 on tokio (`server`);
//! * `oauth`: the OAuth 2.0 pieces both authorization servers follow
//!   alike — PKCE S256 (RFC 7636), client credentials in the form or an
//!   `Authorization: Basic` header (RFC 6749 section 2.3.1), bearer tokens
//!   (RFC 6750), random token strings and redirect URIs with a query;
//! * `request`: query and form parameters, percent-decoded path segments;
//! * `state`: everything a fake knows behind one lock, and the failures a
//!   test injects with `fail_next`;
//! * `testing`: what the fakes' own tests share — a TLS client that trusts
//!   only a fake's certificate, the token request that redeems a code, and
//!   the check that a dropped fake stops listening;
//! * [`now_ms`]: the wall clock, in milliseconds, as both fakes stamp mail.

mod server;

pub mod oauth;
pub mod request;
pub mod state;
pub mod testing;

use std::time::{SystemTime, UNIX_EPOCH};

pub use server::HttpsServer;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
