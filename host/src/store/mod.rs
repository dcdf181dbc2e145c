//! Where Mailroom keeps its state.
//!
//! Three layers, each knowing only the one below:
//! * the traits the API and the sync call ([`Store`], [`MailStore`], [`OutboxStore`],
//!   [`RecordStore`], [`WebhookStore`]), implemented once by [`KvStore`];
//! * the rules, written once as transaction functions: `directory` (users, tokens,
//!   accounts), `ingest` (a sync page taken in), `mailbox` (messages and their places),
//!   `filing` (records and the mail filed under them), `contacts` (contacts created for
//!   unknown parties), `queue` (the outbox), `events` (the event log), `deliveries`
//!   (webhooks and what they are owed), and `leases` (which node works which account);
//! * the storage seam, [`kv`]: ordered byte tables in transactions, with a backend for one
//!   redb file ([`RedbStore`], the embedded default), one for a PostgreSQL database shared
//!   by several nodes ([`PostgresStore`]) and one in memory (for the rules' tests).
//!
//! A further backend implements [`kv::Backend`] and nothing else, and proves it with
//! [`kv::conformance`]; [`copy`] moves a deployment from one backend to another.

mod contacts;
pub mod copy;
mod deliveries;
mod directory;
mod events;
mod filing;
mod ingest;
pub mod kv;
mod kv_store;
pub mod leases;
mod limits;
pub mod mail;
mod mailbox;
pub mod outbox;
mod postgres;
mod queue;
pub mod records;
mod redb;
pub mod sign_ins;
#[cfg(test)]
pub(crate) mod testing;
pub mod webhooks;

pub use self::kv_store::KvStore;
pub use self::mail::MailStore;
pub use self::outbox::OutboxStore;
pub use self::postgres::PostgresStore;
pub use self::records::RecordStore;
pub use self::redb::RedbStore;
pub use self::webhooks::WebhookStore;

use crate::account::Account;
use crate::config::{StoreBackend, StoreConfig};
use crate::user::{Token, TokenHash, TokenOwner, User};
use crate::vault::Sealed;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The table in which each backend keeps the layout version of what it holds (never
/// copied between backends).
pub const META_TABLE: &str = "meta";

/// Opens the store the configuration names: the redb file in `data`, or the PostgreSQL
/// database.
pub async fn open(config: &StoreConfig, data: &Path) -> Result<Arc<dyn Store>> {
    Ok(match config.backend {
        StoreBackend::Redb => Arc::new(RedbStore::open(data, config.cache_mib << 20)?),
        StoreBackend::Postgres => {
            let url = config.postgres.url.as_deref().ok_or_else(|| {
                StoreError::Backend(
                    "[store] backend = \"postgres\" needs [store.postgres] url (or --database-url, \
                     MAILROOM_DATABASE_URL)"
                        .into(),
                )
            })?;
            Arc::new(PostgresStore::connect(url, config.postgres.pool_size).await?)
        }
    })
}

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
    /// Keeps an uploaded component (with its digest) under its connector's id, replacing
    /// one kept before.
    async fn put_connector(&self, id: &str, component: Vec<u8>, digest: &str) -> Result<()>;
    async fn delete_connector(&self, id: &str) -> Result<bool>;
    /// Every uploaded connector's id and the digest of its component.
    async fn connector_digests(&self) -> Result<Vec<(String, String)>>;
    /// The hosts an admin granted a connector.
    async fn connector_grants(&self, id: &str) -> Result<Vec<String>>;
    async fn set_connector_grants(&self, id: &str, hosts: Vec<String>) -> Result<()>;

    /// Renews a node's heartbeat and balances the accounts' leases (`leases`).
    async fn renew_leases(&self, renewal: leases::Renewal) -> Result<leases::Held>;
    /// Hands back everything a stopping node holds.
    async fn leave(&self, node: &str) -> Result<()>;
    /// Counts a request of `key` in a sliding window (`limits`): `Err` with the milliseconds
    /// until the next is allowed when `per_window` were made in the last `window_ms`.
    async fn count_request(
        &self,
        key: &str,
        per_window: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<std::result::Result<(), i64>>;
    /// Keeps an OAuth sign-in under way (`sign_ins`); `false` when too many are.
    async fn begin_sign_in(
        &self,
        state: &str,
        pending: sign_ins::PendingSignIn,
        now_ms: i64,
        bounds: sign_ins::Bounds,
    ) -> Result<bool>;
    /// Ends an OAuth sign-in; its sealed particulars unless it is unknown or expired.
    async fn take_sign_in(&self, state: &str, now_ms: i64) -> Result<Option<Sealed>>;
    /// Leaves a sync request for the node holding the account.
    async fn request_sync(&self, account_id: &str, request: leases::SyncRequest) -> Result<()>;
    async fn sync_requests(&self) -> Result<Vec<(String, leases::SyncRequest)>>;
    async fn take_sync_requests(&self, taken: Vec<(String, leases::SyncRequest)>) -> Result<()>;
}
