//! Where Mailroom keeps its state.
//!
//! Three layers, each knowing only the one below:
//! * the traits the API and the sync call ([`Store`], [`MailStore`], [`OutboxStore`],
//!   [`RecordStore`], [`WebhookStore`]), implemented once by [`KvStore`];
//! * the rules, written once as transaction functions: `directory` (users, tokens,
//!   accounts), `ingest` (a sync page taken in), `mailbox` (messages and their places),
//!   `filing` (records and the mail filed under them), `contacts` (contacts created for
//!   unknown parties), `queue` (the outbox), `events` (the event log) and `deliveries`
//!   (webhooks and what they are owed);
//! * the storage seam, [`kv`]: ordered byte tables in transactions, with a backend for one
//!   redb file ([`RedbStore`], the embedded default) and one in memory (for the rules' tests).
//!
//! A second backend (PostgreSQL, for more than one machine) implements [`kv::Backend`] and
//! nothing else.

mod contacts;
mod deliveries;
mod directory;
mod events;
mod filing;
mod ingest;
pub mod kv;
mod kv_store;
pub mod mail;
mod mailbox;
pub mod outbox;
mod queue;
pub mod records;
mod redb;
#[cfg(test)]
pub(crate) mod testing;
pub mod webhooks;

pub use self::kv_store::KvStore;
pub use self::mail::MailStore;
pub use self::outbox::OutboxStore;
pub use self::records::RecordStore;
pub use self::redb::RedbStore;
pub use self::webhooks::WebhookStore;

use crate::account::Account;
use crate::user::{Token, TokenHash, TokenOwner, User};
use crate::vault::Sealed;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (an external id, ...) is taken.
    #[error("{0}")]
    Conflict(String),
    /// The object to change is gone.
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(
        "the database is in use by another process (is a Mailroom server running on this data directory?)"
    )]
    Locked,
    #[error(
        "the database was written by a newer Mailroom (schema {found}, this one knows up to {known})"
    )]
    TooNew { found: u64, known: u64 },
    #[error("storage error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A change to an account made inside the store's transaction; returns whether it changed
/// anything.
pub type AccountChange = Box<dyn FnOnce(&mut Account) -> bool + Send + 'static>;

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remembered {
    pub at_unix: i64,
    pub status: u16,
    pub body: serde_json::Value,
}

#[async_trait]
pub trait Store:
    MailStore + OutboxStore + RecordStore + WebhookStore + Send + Sync + 'static
{
    async fn user_count(&self) -> Result<u64>;
    /// Fails with `Conflict` when the external id is taken.
    async fn insert_user(&self, user: User) -> Result<()>;
    async fn update_user(&self, user: User) -> Result<()>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    /// All users, by id.
    async fn users(&self) -> Result<Vec<User>>;

    async fn insert_token(&self, hash: TokenHash, token: Token) -> Result<()>;
    async fn token(&self, hash: &TokenHash) -> Result<Option<Token>>;
    /// Sets a token's `last_used_at`, if the token still exists (a revoked one stays gone).
    async fn token_used(&self, hash: &TokenHash, at: String) -> Result<()>;
    /// The tokens of a user or a service, by id.
    async fn tokens_of(&self, owner: &TokenOwner) -> Result<Vec<Token>>;
    /// Removes a token by its id; returns it when it existed.
    async fn delete_token(&self, id: &str) -> Result<Option<Token>>;

    /// Stores a new account with its sealed password.
    async fn insert_account(&self, account: Account, secret: Option<Sealed>) -> Result<()>;
    /// Replaces an account (its sealed password too when `secret` is given) if the stored one
    /// is still the revision `account` was read at: `Conflict` otherwise, `NotFound` when it
    /// was deleted meanwhile.
    async fn update_account(&self, account: Account, secret: Option<Sealed>) -> Result<()>;
    /// Changes an account in one transaction, whatever revision it is at: for the sync's own
    /// fields (state, last sync, the server's folder list). `change` returns whether it
    /// changed anything; the account as stored afterwards is returned.
    async fn modify_account(&self, id: &str, change: AccountChange) -> Result<Option<Account>>;
    async fn account(&self, id: &str) -> Result<Option<Account>>;
    /// All accounts, by id.
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// Removes an account, its secret, its mail and every primary choice that named it.
    async fn delete_account(&self, id: &str) -> Result<bool>;
    async fn account_secret(&self, id: &str) -> Result<Option<Sealed>>;
    /// Replaces an account's sealed secret alone if it is still `expected`; `false` when it
    /// is not, or the account is gone.
    async fn replace_account_secret(&self, id: &str, expected: Sealed, new: Sealed)
    -> Result<bool>;
    /// Every sealed secret, by account id.
    async fn secrets(&self) -> Result<Vec<(String, Sealed)>>;
    /// Replaces sealed secrets in one transaction (key rotation).
    async fn replace_secrets(
        &self,
        secrets: Vec<(String, Sealed)>,
        key_check: Sealed,
    ) -> Result<()>;

    async fn primary(&self, user_id: &str) -> Result<Option<String>>;
    async fn set_primary(&self, user_id: &str, account_id: Option<&str>) -> Result<()>;

    async fn remembered(&self, key: &str) -> Result<Option<Remembered>>;
    async fn remember(&self, key: &str, response: Remembered) -> Result<()>;

    /// The value sealed with the current key to recognise the right key at start.
    async fn key_check(&self) -> Result<Option<Sealed>>;
    async fn set_key_check(&self, sealed: Sealed) -> Result<()>;

    /// The ids of the connectors admins uploaded (docs/api.md, "Connectors").
    async fn connector_ids(&self) -> Result<Vec<String>>;
    /// An uploaded connector's component, as it was uploaded.
    async fn connector_component(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Keeps an uploaded component under its connector's id, replacing one kept before.
    async fn put_connector(&self, id: &str, component: Vec<u8>) -> Result<()>;
    async fn delete_connector(&self, id: &str) -> Result<bool>;
    /// The hosts an admin granted a connector.
    async fn connector_grants(&self, id: &str) -> Result<Vec<String>>;
    async fn set_connector_grants(&self, id: &str, hosts: Vec<String>) -> Result<()>;
}
