//! Errors as the WIT world defines them. The connector reaches no server role (it speaks
//! HTTP to the provider's API), so no error names a server.

use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};

/// Gmail answered 401 although the host had just renewed the token.
pub fn auth_failed() -> Error {
    error(
        ErrorKind::AuthFailed,
        "Google refused the account's credentials",
    )
}

/// Gmail keeps asking to slow down; the host should come back after `secs`.
pub fn rate_limited(secs: u32) -> Error {
    Error {
        retry_after_secs: Some(secs.max(1)),
        ..error(
            ErrorKind::RateLimited,
            format!("Gmail asks to slow down; try again in {} s", secs.max(1)),
        )
    }
}

/// The host has no Gmail API for this connector.
pub fn no_api() -> Error {
    error(ErrorKind::Unsupported, "no Gmail API configured")
}

mailroom_wasi_http::http_errors!(Error, ErrorKind);
