//! Users, their roles and their API tokens.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub shared_inbox: bool,
    /// The CRM's id for the user; unique when set.
    pub external_id: Option<String>,
    /// Sanitized HTML.
    pub signature: Option<String>,
    pub created_at: String,
    /// A disabled user's requests are refused (their tokens were revoked) and their personal
    /// accounts do not sync, until an admin enables them again.
    #[serde(default)]
    pub disabled: bool,
}

impl Role {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admins and members with the shared-inbox permission work shared accounts.
    pub fn works_shared_accounts(&self) -> bool {
        self.is_admin() || self.shared_inbox
    }
}

/// Whose a token is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum TokenOwner {
    User(String),
    /// A back end registered by the operator (e.g. the CRM), which acts for users.
    Service(String),
}

/// A token as stored: never the token itself, which is kept only as its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub owner: TokenOwner,
    pub name: String,
    pub created_at: String,
    /// When the token last authenticated a request (to the minute).
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// A token's hash; tokens themselves are never kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A new token: 256 random bits behind a readable prefix.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "mr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A fresh opaque id with a readable prefix, e.g. `usr_…`, `acc_…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 10]>()))
}

/// Now, as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A Unix time in seconds as RFC 3339 UTC.
pub fn rfc3339_unix(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A time in milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds: for times
/// clients compare (`requested_at` and `last_sync_at`), where a second is too coarse.
pub fn rfc3339_millis(millis: i64) -> String {
    let text = rfc3339_unix(millis.div_euclid(1000));
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}.{:03}Z", millis.rem_euclid(1000)),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_times_keep_three_digits_so_they_compare_as_text() {
        assert_eq!(
            rfc3339_millis(1_800_000_000_007),
            "2027-01-15T08:00:00.007Z"
        );
        assert_eq!(
            rfc3339_millis(1_800_000_000_000),
            "2027-01-15T08:00:00.000Z"
        );
        assert!(rfc3339_millis(1_800_000_000_999) < rfc3339_millis(1_800_000_001_000));
    }
}
