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

/// A field of a user that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: &'static str,
}

impl Invalid {
    fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}

/// The longest name a user may have, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest CRM id a user may carry, in characters (ASCII only).
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

/// Checks the CRM's id for a user.
pub fn check_external_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() || id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(Invalid::new("external_id", "must have 1 to 128 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
    {
        return Err(Invalid::new(
            "external_id",
            "may hold only A-Z a-z 0-9 . _ : -",
        ));
    }
    Ok(())
}

impl User {
    /// A new user, checked the same way whoever asks (the API, the command line).
    pub fn new(
        name: String,
        email: String,
        role: Role,
        shared_inbox: bool,
        external_id: Option<String>,
    ) -> Result<Self, Invalid> {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(Invalid::new("name", "must have 1 to 200 characters"));
        }
        crate::account::validate_email(&email).map_err(|m| Invalid::new("email", m))?;
        if let Some(id) = &external_id {
            check_external_id(id)?;
        }
        Ok(Self {
            id: crate::id::new_id("usr"),
            name,
            email,
            role,
            shared_inbox,
            external_id,
            signature: None,
            created_at: crate::clock::now_rfc3339(),
            disabled: false,
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, email: &str, external_id: Option<&str>) -> Result<User, Invalid> {
        User::new(
            name.into(),
            email.into(),
            Role::Member,
            false,
            external_id.map(str::to_owned),
        )
    }

    #[test]
    fn a_new_user_is_checked_field_by_field() {
        let user = new("Ann Müller", "ann@crm.test", Some("crm:42")).unwrap();
        assert!(user.id.starts_with("usr_") && !user.disabled);
        let field = |r: Result<User, Invalid>| r.unwrap_err().field;
        assert_eq!(field(new(" ", "ann@crm.test", None)), "name");
        assert_eq!(field(new(&"é".repeat(201), "ann@crm.test", None)), "name");
        assert!(new(&"é".repeat(200), "ann@crm.test", None).is_ok());
        assert_eq!(field(new("Ann", "not an address", None)), "email");
        assert_eq!(
            field(new("Ann", "ann@crm.test", Some("a b"))),
            "external_id"
        );
        assert_eq!(field(new("Ann", "ann@crm.test", Some(""))), "external_id");
    }
}
