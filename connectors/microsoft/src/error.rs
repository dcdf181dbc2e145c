//! Errors as the WIT world defines them, and Graph's error answers read into them.
//!
//! Graph answers an error with `{"error": {"code": "…", "message": "…"}}` ("Microsoft Graph
//! error responses and resource types"). The connector reaches no server role (it speaks
//! HTTP to Graph), so no error names a server.

use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use serde::Deserialize;

mailroom_wasi_http::http_errors!(Error, ErrorKind);

/// The host has no Graph for this connector.
pub fn no_api() -> Error {
    error(ErrorKind::Unsupported, "no Microsoft Graph API configured")
}

#[derive(Deserialize)]
struct Envelope {
    error: ApiError,
}

/// Graph's error object.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error)
    }
}

/// An answer that is not a success, as an error of the world. The host renews the token and
/// repeats a call Graph answers 401 before the connector sees it: a 401 here means the grant
/// no longer works.
pub fn from_status(status: u16, body: &[u8]) -> Error {
    let api = ApiError::parse(body).unwrap_or_default();
    let detail = if api.code.is_empty() {
        format!("Microsoft Graph answered {status}")
    } else {
        let message: String = api.message.chars().take(300).collect();
        format!("Microsoft Graph answered {status} {}: {message}", api.code)
    };
    let kind = match status {
        401 => ErrorKind::AuthFailed,
        403 => ErrorKind::Denied,
        404 => ErrorKind::NotFound,
        429 | 503 => ErrorKind::RateLimited,
        _ => ErrorKind::Protocol,
    };
    let mut error = error(kind, detail);
    if kind == ErrorKind::RateLimited {
        error.retry_after_secs = Some(60);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_errors_name_their_code() {
        let body = br#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store.","innerError":{"date":"2026-12-07T06:00:00"}}}"#;
        let e = from_status(404, body);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("ErrorItemNotFound"), "{}", e.message);
        assert_eq!(from_status(401, b"").kind, ErrorKind::AuthFailed);
        assert_eq!(from_status(500, b"<html>").kind, ErrorKind::Protocol);
        assert_eq!(from_status(429, b"").retry_after_secs, Some(60));
    }
}
