//! The embedded store: one redb file, `mailroom.redb`, in the data directory.
//!
//! Values are JSON in `&str`-keyed tables. redb has one writer at a time and `begin_write`
//! blocks, so every write runs on a dedicated writer thread and the async caller awaits its
//! result; reads open their own read transaction and never wait for the writer. The schema
//! version lives in the `meta` table and is migrated, step by step, when the file is opened.

use super::{AccountChange, Remembered, Result, Store, StoreError};
use crate::account::Account;
use crate::user::{Token, TokenHash, User};
use crate::vault::Sealed;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

pub const FILE: &str = "mailroom.redb";

/// The schema this code writes. Bump it with a migration step in [`migrate`].
const SCHEMA_VERSION: u64 = 4;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USERS_BY_EXTERNAL_ID: TableDefinition<&str, &str> =
    TableDefinition::new("users_by_external_id");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
const TOKEN_HASHES: TableDefinition<&str, &[u8]> = TableDefinition::new("token_hashes");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const PRIMARIES: TableDefinition<&str, &str> = TableDefinition::new("primaries");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

type Job = Box<dyn FnOnce(&Database) + Send>;

pub struct RedbStore {
    db: Arc<Database>,
    /// `None` only while dropping.
    writer: Option<mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbStore {
    /// Finishes the queued writes and closes the file before returning, so the same data
    /// directory can be opened again at once (redb allows one opener).
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(error: redb::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}

pub(super) fn backend(error: impl Into<redb::Error>) -> StoreError {
    error.into().into()
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Backend(format!("a stored value is damaged: {e}")))
}

impl RedbStore {
    /// Opens (or creates) the database in `data`, with `cache_bytes` of page cache.
    pub fn open(data: &Path, cache_bytes: usize) -> Result<Self> {
        let path = data.join(FILE);
        // The database holds everyone's mail: readable by this user alone, whatever the umask.
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let private = || -> std::io::Result<()> {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            };
            private()
                .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
                other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
            })?;
        let txn = db.begin_write().map_err(backend)?;
        migrate(&txn)?;
        txn.commit().map_err(backend)?;

        let db = Arc::new(db);
        let (writer, jobs) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in jobs {
                    job(&writer_db);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            db,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
        })
    }

    /// Runs `f` in one write transaction on the writer thread; commits when it succeeds.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |db: &Database| {
            let outcome = db
                .begin_write()
                .map_err(backend)
                .and_then(|txn| match f(&txn) {
                    Ok(value) => txn.commit().map_err(backend).map(|()| value),
                    Err(error) => {
                        let _ = txn.abort();
                        Err(error)
                    }
                });
            let _ = done.send(outcome);
        });
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is closing".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        result
            .await
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?
    }

    pub(super) fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(backend)?;
        f(&txn)
    }

    pub(super) fn get_json<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        self.read(|txn| {
            let table = txn.open_table(table).map_err(backend)?;
            match table.get(key).map_err(backend)? {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    fn all_json<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
        self.read(|txn| {
            let table = txn.open_table(table).map_err(backend)?;
            let mut items = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (_, value) = entry.map_err(backend)?;
                items.push(decode(value.value())?);
            }
            Ok(items)
        })
    }
}

/// Creates the tables of a new database, or brings an older one up to [`SCHEMA_VERSION`].
fn migrate(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let found = match meta.get("schema_version").map_err(backend)? {
        Some(value) => {
            let bytes: [u8; 8] = value
                .value()
                .try_into()
                .map_err(|_| StoreError::Backend("the schema version is damaged".into()))?;
            u64::from_be_bytes(bytes)
        }
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        // Version 1: every table exists from the start, so readers never meet a missing one.
        txn.open_table(USERS).map_err(backend)?;
        txn.open_table(USERS_BY_EXTERNAL_ID).map_err(backend)?;
        txn.open_table(TOKENS).map_err(backend)?;
        txn.open_table(TOKEN_HASHES).map_err(backend)?;
        txn.open_table(ACCOUNTS).map_err(backend)?;
        txn.open_table(SECRETS).map_err(backend)?;
        txn.open_table(PRIMARIES).map_err(backend)?;
        txn.open_table(IDEMPOTENCY).map_err(backend)?;
    }
    if found < 2 {
        // Version 2: synced mail and the event log.
        super::redb_mail::create_tables(txn)?;
    }
    if found < 3 {
        // Version 3: the outbox.
        super::redb_outbox::create_tables(txn)?;
    }
    if found < 4 {
        // Version 4: CRM records, and the mail already held filed under them.
        super::redb_records::create_tables(txn)?;
        super::redb_records::file_all(txn)?;
    }
    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())
        .map_err(backend)?;
    Ok(())
}

/// An account, read inside a write transaction.
pub(super) fn load_account(txn: &WriteTransaction, id: &str) -> Result<Option<Account>> {
    let accounts = txn.open_table(ACCOUNTS).map_err(backend)?;
    let value = accounts.get(id).map_err(backend)?;
    value.map(|v| decode(v.value())).transpose()
}

/// The addresses of every connected account and every user, as stored.
pub(super) fn own_addresses(txn: &WriteTransaction) -> Result<Vec<String>> {
    let mut addresses = Vec::new();
    for entry in txn
        .open_table(ACCOUNTS)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let account: Account = decode(entry.map_err(backend)?.1.value())?;
        addresses.push(account.email);
    }
    for entry in txn
        .open_table(USERS)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let user: User = decode(entry.map_err(backend)?.1.value())?;
        addresses.push(user.email);
    }
    Ok(addresses)
}

fn write_account(txn: &WriteTransaction, account: &Account, secret: Option<&Sealed>) -> Result<()> {
    let mut accounts = txn.open_table(ACCOUNTS).map_err(backend)?;
    accounts
        .insert(account.id.as_str(), encode(account)?.as_slice())
        .map_err(backend)?;
    if let Some(secret) = secret {
        let mut secrets = txn.open_table(SECRETS).map_err(backend)?;
        secrets
            .insert(account.id.as_str(), encode(secret)?.as_slice())
            .map_err(backend)?;
    }
    Ok(())
}

fn write_key_check(txn: &WriteTransaction, sealed: &Sealed) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    meta.insert("key_check", encode(sealed)?.as_slice())
        .map_err(backend)?;
    Ok(())
}

/// Keeps `users_by_external_id` in step with a user being written.
fn index_external_id(txn: &WriteTransaction, user: &User, previous: Option<&User>) -> Result<()> {
    let mut index = txn.open_table(USERS_BY_EXTERNAL_ID).map_err(backend)?;
    if let Some(external_id) = &user.external_id
        && let Some(owner) = index.get(external_id.as_str()).map_err(backend)?
        && owner.value() != user.id
    {
        return Err(StoreError::Conflict(format!(
            "external_id `{external_id}` belongs to another user"
        )));
    }
    if let Some(old) = previous.and_then(|p| p.external_id.as_deref()) {
        index.remove(old).map_err(backend)?;
    }
    if let Some(external_id) = &user.external_id {
        index
            .insert(external_id.as_str(), user.id.as_str())
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn user_count(&self) -> Result<u64> {
        self.read(|txn| {
            let table = txn.open_table(USERS).map_err(backend)?;
            redb::ReadableTableMetadata::len(&table).map_err(backend)
        })
    }

    async fn insert_user(&self, user: User) -> Result<()> {
        self.write(move |txn| {
            index_external_id(txn, &user, None)?;
            let mut users = txn.open_table(USERS).map_err(backend)?;
            users
                .insert(user.id.as_str(), encode(&user)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        self.write(move |txn| {
            let previous: Option<User> = {
                let users = txn.open_table(USERS).map_err(backend)?;
                let previous = users.get(user.id.as_str()).map_err(backend)?;
                previous.map(|p| decode(p.value())).transpose()?
            };
            index_external_id(txn, &user, previous.as_ref())?;
            let mut users = txn.open_table(USERS).map_err(backend)?;
            users
                .insert(user.id.as_str(), encode(&user)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        self.get_json(USERS, id)
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.all_json(USERS)
    }

    async fn insert_token(&self, hash: TokenHash, token: Token) -> Result<()> {
        self.write(move |txn| {
            let mut tokens = txn.open_table(TOKENS).map_err(backend)?;
            tokens
                .insert(hash.as_bytes().as_slice(), encode(&token)?.as_slice())
                .map_err(backend)?;
            let mut hashes = txn.open_table(TOKEN_HASHES).map_err(backend)?;
            hashes
                .insert(token.id.as_str(), hash.as_bytes().as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<Token>> {
        self.read(|txn| {
            let tokens = txn.open_table(TOKENS).map_err(backend)?;
            match tokens.get(hash.as_bytes().as_slice()).map_err(backend)? {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn token_used(&self, hash: &TokenHash, at: String) -> Result<()> {
        let hash = *hash;
        self.write(move |txn| {
            let mut tokens = txn.open_table(TOKENS).map_err(backend)?;
            let stored = tokens
                .get(hash.as_bytes().as_slice())
                .map_err(backend)?
                .map(|v| decode::<Token>(v.value()))
                .transpose()?;
            if let Some(mut token) = stored {
                token.last_used_at = Some(at);
                tokens
                    .insert(hash.as_bytes().as_slice(), encode(&token)?.as_slice())
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn tokens_of(&self, owner: &crate::user::TokenOwner) -> Result<Vec<Token>> {
        self.read(|txn| {
            let table = txn.open_table(TOKENS).map_err(backend)?;
            let mut tokens = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (_, value) = entry.map_err(backend)?;
                let token: Token = decode(value.value())?;
                if &token.owner == owner {
                    tokens.push(token);
                }
            }
            tokens.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(tokens)
        })
    }

    async fn delete_token(&self, id: &str) -> Result<Option<Token>> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut hashes = txn.open_table(TOKEN_HASHES).map_err(backend)?;
            let Some(hash) = hashes.remove(id.as_str()).map_err(backend)? else {
                return Ok(None);
            };
            let hash = hash.value().to_vec();
            let mut tokens = txn.open_table(TOKENS).map_err(backend)?;
            let removed = tokens.remove(hash.as_slice()).map_err(backend)?;
            removed.map(|t| decode(t.value())).transpose()
        })
        .await
    }

    async fn insert_account(&self, account: Account, secret: Option<Sealed>) -> Result<()> {
        self.write(move |txn| write_account(txn, &account, secret.as_ref()))
            .await
    }

    async fn update_account(&self, mut account: Account, secret: Option<Sealed>) -> Result<()> {
        self.write(move |txn| {
            let stored: Account = {
                let accounts = txn.open_table(ACCOUNTS).map_err(backend)?;
                let stored = accounts.get(account.id.as_str()).map_err(backend)?;
                let stored = stored.ok_or(StoreError::NotFound("account"))?;
                decode(stored.value())?
            };
            if stored.revision != account.revision {
                return Err(StoreError::Conflict(
                    "the account was changed by another request meanwhile; read it again".into(),
                ));
            }
            account.revision += 1;
            write_account(txn, &account, secret.as_ref())
        })
        .await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        self.get_json(ACCOUNTS, id)
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.all_json(ACCOUNTS)
    }

    async fn delete_account(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(backend)?;
            let existed = accounts.remove(id.as_str()).map_err(backend)?.is_some();
            let mut secrets = txn.open_table(SECRETS).map_err(backend)?;
            secrets.remove(id.as_str()).map_err(backend)?;
            let mut primaries = txn.open_table(PRIMARIES).map_err(backend)?;
            primaries
                .retain(|_, account| account != id.as_str())
                .map_err(backend)?;
            super::redb_mail::delete_account_mail(txn, &id)?;
            super::redb_outbox::delete_account_outbox(txn, &id)?;
            Ok(existed)
        })
        .await
    }

    async fn modify_account(&self, id: &str, change: AccountChange) -> Result<Option<Account>> {
        let id = id.to_owned();
        self.write(move |txn| {
            let account: Option<Account> = {
                let accounts = txn.open_table(ACCOUNTS).map_err(backend)?;
                let value = accounts.get(id.as_str()).map_err(backend)?;
                value.map(|v| decode(v.value())).transpose()?
            };
            let Some(mut account) = account else {
                return Ok(None);
            };
            if change(&mut account) {
                account.revision += 1;
                write_account(txn, &account, None)?;
            }
            Ok(Some(account))
        })
        .await
    }

    async fn account_secret(&self, id: &str) -> Result<Option<Sealed>> {
        self.get_json(SECRETS, id)
    }

    async fn secrets(&self) -> Result<Vec<(String, Sealed)>> {
        self.read(|txn| {
            let table = txn.open_table(SECRETS).map_err(backend)?;
            let mut items = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (key, value) = entry.map_err(backend)?;
                items.push((key.value().to_owned(), decode(value.value())?));
            }
            Ok(items)
        })
    }

    async fn replace_secrets(
        &self,
        secrets: Vec<(String, Sealed)>,
        key_check: Sealed,
    ) -> Result<()> {
        self.write(move |txn| {
            let mut table = txn.open_table(SECRETS).map_err(backend)?;
            for (id, sealed) in &secrets {
                table
                    .insert(id.as_str(), encode(sealed)?.as_slice())
                    .map_err(backend)?;
            }
            write_key_check(txn, &key_check)
        })
        .await
    }

    async fn primary(&self, user_id: &str) -> Result<Option<String>> {
        self.read(|txn| {
            let table = txn.open_table(PRIMARIES).map_err(backend)?;
            Ok(table
                .get(user_id)
                .map_err(backend)?
                .map(|v| v.value().to_owned()))
        })
    }

    async fn set_primary(&self, user_id: &str, account_id: Option<&str>) -> Result<()> {
        let (user_id, account_id) = (user_id.to_owned(), account_id.map(str::to_owned));
        self.write(move |txn| {
            let mut table = txn.open_table(PRIMARIES).map_err(backend)?;
            match account_id {
                Some(account) => table.insert(user_id.as_str(), account.as_str()).map(|_| ()),
                None => table.remove(user_id.as_str()).map(|_| ()),
            }
            .map_err(backend)
        })
        .await
    }

    async fn remembered(&self, key: &str) -> Result<Option<Remembered>> {
        self.get_json(IDEMPOTENCY, key)
    }

    async fn remember(&self, key: &str, response: Remembered) -> Result<()> {
        let key = key.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(backend)?;
            // Forget what is past its 24 hours while we are here.
            let horizon = response.at_unix - 24 * 3600;
            table
                .retain(|_, value| {
                    serde_json::from_slice::<Remembered>(value).is_ok_and(|r| r.at_unix >= horizon)
                })
                .map_err(backend)?;
            table
                .insert(key.as_str(), encode(&response)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn key_check(&self) -> Result<Option<Sealed>> {
        self.get_json(META, "key_check")
    }

    async fn set_key_check(&self, sealed: Sealed) -> Result<()> {
        self.write(move |txn| write_key_check(txn, &sealed)).await
    }
}
