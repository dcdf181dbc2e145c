//! Who is calling: the bearer token, checked by its SHA-256 hash.
//!
//! Until users are stored, the one identity is the operator's admin token
//! (`MAILROOM_ADMIN_TOKEN`, or one generated and printed at start).

use super::error::ApiError;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A token's hash; tokens themselves are never kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Identifies the caller for per-caller limits.
    pub token: TokenHash,
}

/// A new token: 256 random bits behind a readable prefix.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "mr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub struct Authenticator {
    admin: TokenHash,
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Self {
            admin: TokenHash::of(admin_token),
        }
    }

    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = TokenHash::of(token);
        if hash == self.admin {
            Ok(Caller { token: hash })
        } else {
            Err(ApiError::unauthorized())
        }
    }
}
