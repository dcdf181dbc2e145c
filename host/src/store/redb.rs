//! The embedded store: one redb file, `mailroom.redb`, in the data directory.
//!
//! Users, tokens and accounts live in the tables of the storage seam ([`super::kv`]), with
//! their rules in [`super::directory`]; mail, records and the outbox are still typed redb
//! tables, migrated to the seam one area at a time. The file's layout version lives in the
//! `meta` table and is migrated, step by step, when the file is opened.

use super::kv::redb::{RedbBackend, RedbWriter};
use super::kv::{Backend, Key};
use super::{AccountChange, Remembered, Result, Store, StoreError, directory};
use crate::account::Account;
use crate::user::{Token, TokenHash, User};
use crate::vault::Sealed;
use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

pub const FILE: &str = "mailroom.redb";

/// The layout this code writes. Bump it with a migration step in [`migrate`].
const SCHEMA_VERSION: u64 = 5;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub struct RedbStore {
    kv: RedbBackend,
}

pub(super) use super::kv::redb::backend;

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
        let kv = RedbBackend::open(&data.join(FILE), cache_bytes, migrate)?;
        Ok(Self { kv })
    }

    /// Runs `f` in one write transaction on the writer thread; commits when it succeeds.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.kv.write_txn(f).await
    }

    pub(super) fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        self.kv.read_txn(f)
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
    // Version 1 made users, tokens and accounts; version 5 moved them under the storage
    // seam. It runs first, as version 4's filing reads accounts where they now are.
    if (1..5).contains(&found) {
        let key_check = meta
            .remove("key_check")
            .map_err(backend)?
            .map(|v| v.value().to_vec());
        move_directory_to_seam(txn, key_check)?;
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

type Entries = Vec<(Key, Vec<u8>)>;

/// Empties a typed table of versions 1 to 4 into `(key, value)` pairs of the seam's layout
/// and deletes it, so that its name can hold a byte table.
fn drain<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    name: &str,
    mut entry: impl FnMut(redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>) -> Result<(Key, Vec<u8>)>,
) -> Result<Entries> {
    let definition = TableDefinition::<K, V>::new(name);
    let mut entries = Vec::new();
    {
        let table = txn.open_table(definition).map_err(backend)?;
        for item in table.iter().map_err(backend)? {
            let (key, value) = item.map_err(backend)?;
            entries.push(entry(key, value)?);
        }
    }
    txn.delete_table(definition).map_err(backend)?;
    Ok(entries)
}

/// Version 5: the tables of [`directory`] as byte tables. Their values were already the
/// JSON the seam's tables hold, except plain-text ids, which become JSON strings.
fn move_directory_to_seam(txn: &WriteTransaction, key_check: Option<Vec<u8>>) -> Result<()> {
    let json_text = |text: &str| encode(&text);
    let mut moved: Vec<(&'static str, Entries)> = Vec::new();
    for name in ["users", "accounts", "secrets", "idempotency"] {
        let entries = drain::<&str, &[u8]>(txn, name, |k, v| {
            Ok((Key::new().str(k.value()), v.value().to_vec()))
        })?;
        moved.push((name, entries));
    }
    for name in ["users_by_external_id", "primaries"] {
        let entries = drain::<&str, &str>(txn, name, |k, v| {
            Ok((Key::new().str(k.value()), json_text(v.value())?))
        })?;
        moved.push((name, entries));
    }
    let token_hashes = drain::<&str, &[u8]>(txn, "token_hashes", |k, v| {
        Ok((Key::new().str(k.value()), v.value().to_vec()))
    })?;
    moved.push(("token_hashes", token_hashes));
    let tokens = drain::<&[u8], &[u8]>(txn, "tokens", |k, v| {
        Ok((Key::new().bytes(k.value()), v.value().to_vec()))
    })?;
    moved.push(("tokens", tokens));
    if let Some(sealed) = key_check {
        moved.push(("settings", vec![(Key::new().str("key_check"), sealed)]));
    }
    let mut seam = RedbWriter::new(txn);
    for (table, entries) in moved {
        for (key, value) in entries {
            super::kv::Writer::put(&mut seam, table, key.as_bytes(), &value)?;
        }
    }
    Ok(())
}

/// An account, read inside a write transaction of the typed tables.
pub(super) fn load_account(txn: &WriteTransaction, id: &str) -> Result<Option<Account>> {
    directory::account(&RedbWriter::new(txn), id)
}

/// The addresses of every connected account and every user, as stored.
pub(super) fn own_addresses(txn: &WriteTransaction) -> Result<Vec<String>> {
    directory::own_addresses(&RedbWriter::new(txn))
}

#[async_trait]
impl Store for RedbStore {
    async fn user_count(&self) -> Result<u64> {
        self.kv.read(directory::user_count)
    }

    async fn insert_user(&self, user: User) -> Result<()> {
        self.kv
            .write(move |txn| directory::put_user(txn, &user))
            .await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        self.kv
            .write(move |txn| directory::put_user(txn, &user))
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        self.kv.read(|txn| directory::user(txn, id))
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.kv.read(directory::users)
    }

    async fn insert_token(&self, hash: TokenHash, token: Token) -> Result<()> {
        self.kv
            .write(move |txn| directory::insert_token(txn, &hash, &token))
            .await
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<Token>> {
        self.kv.read(|txn| directory::token(txn, hash))
    }

    async fn token_used(&self, hash: &TokenHash, at: String) -> Result<()> {
        let hash = *hash;
        self.kv
            .write(move |txn| directory::token_used(txn, &hash, at))
            .await
    }

    async fn tokens_of(&self, owner: &crate::user::TokenOwner) -> Result<Vec<Token>> {
        self.kv.read(|txn| directory::tokens_of(txn, owner))
    }

    async fn delete_token(&self, id: &str) -> Result<Option<Token>> {
        let id = id.to_owned();
        self.kv
            .write(move |txn| directory::delete_token(txn, &id))
            .await
    }

    async fn insert_account(&self, account: Account, secret: Option<Sealed>) -> Result<()> {
        self.kv
            .write(move |txn| directory::put_account(txn, &account, secret.as_ref()))
            .await
    }

    async fn update_account(&self, account: Account, secret: Option<Sealed>) -> Result<()> {
        self.kv
            .write(move |txn| directory::update_account(txn, account, secret.as_ref()))
            .await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        self.kv.read(|txn| directory::account(txn, id))
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.kv.read(directory::accounts)
    }

    async fn delete_account(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            let existed = directory::delete_account(&mut RedbWriter::new(txn), &id)?;
            super::redb_mail::delete_account_mail(txn, &id)?;
            super::redb_outbox::delete_account_outbox(txn, &id)?;
            Ok(existed)
        })
        .await
    }

    async fn modify_account(&self, id: &str, change: AccountChange) -> Result<Option<Account>> {
        let id = id.to_owned();
        self.kv
            .write(move |txn| directory::modify_account(txn, &id, change))
            .await
    }

    async fn account_secret(&self, id: &str) -> Result<Option<Sealed>> {
        self.kv.read(|txn| directory::account_secret(txn, id))
    }

    async fn secrets(&self) -> Result<Vec<(String, Sealed)>> {
        self.kv.read(directory::secrets)
    }

    async fn replace_secrets(
        &self,
        secrets: Vec<(String, Sealed)>,
        key_check: Sealed,
    ) -> Result<()> {
        self.kv
            .write(move |txn| directory::replace_secrets(txn, &secrets, &key_check))
            .await
    }

    async fn primary(&self, user_id: &str) -> Result<Option<String>> {
        self.kv.read(|txn| directory::primary(txn, user_id))
    }

    async fn set_primary(&self, user_id: &str, account_id: Option<&str>) -> Result<()> {
        let (user_id, account_id) = (user_id.to_owned(), account_id.map(str::to_owned));
        self.kv
            .write(move |txn| directory::set_primary(txn, &user_id, account_id.as_deref()))
            .await
    }

    async fn remembered(&self, key: &str) -> Result<Option<Remembered>> {
        self.kv.read(|txn| directory::remembered(txn, key))
    }

    async fn remember(&self, key: &str, response: Remembered) -> Result<()> {
        let key = key.to_owned();
        self.kv
            .write(move |txn| directory::remember(txn, &key, &response))
            .await
    }

    async fn key_check(&self) -> Result<Option<Sealed>> {
        self.kv.read(directory::key_check)
    }

    async fn set_key_check(&self, sealed: Sealed) -> Result<()> {
        self.kv
            .write(move |txn| directory::set_key_check(txn, &sealed))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::directory::tests::{a_token, a_user, an_account, sealed};
    use crate::user::TokenOwner;

    /// A file as version 4 wrote it: users, tokens and accounts in typed tables.
    fn version_4_file(path: &Path) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let hash = TokenHash::of("secret");
            let put = |name: &str, key: &str, value: Vec<u8>| {
                let mut table = txn
                    .open_table(TableDefinition::<&str, &[u8]>::new(name))
                    .unwrap();
                table.insert(key, value.as_slice()).unwrap();
            };
            put("meta", "schema_version", 4u64.to_be_bytes().to_vec());
            put("meta", "key_check", encode(&sealed("check")).unwrap());
            put(
                "users",
                "usr_a",
                encode(&a_user("usr_a", Some("crm-1"))).unwrap(),
            );
            put(
                "accounts",
                "acc_1",
                encode(&an_account("acc_1", "a@x.test")).unwrap(),
            );
            put("secrets", "acc_1", encode(&sealed("pw")).unwrap());
            put("token_hashes", "tok_1", hash.as_bytes().to_vec());
            let remembered = Remembered {
                at_unix: 5,
                status: 201,
                body: serde_json::json!({}),
            };
            put("idempotency", "k1", encode(&remembered).unwrap());
            let text = |name: &str, key: &str, value: &str| {
                let mut table = txn
                    .open_table(TableDefinition::<&str, &str>::new(name))
                    .unwrap();
                table.insert(key, value).unwrap();
            };
            text("users_by_external_id", "crm-1", "usr_a");
            text("primaries", "usr_a", "acc_1");
            let mut tokens = txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new("tokens"))
                .unwrap();
            let stored = a_token("tok_1", TokenOwner::User("usr_a".into()));
            tokens
                .insert(
                    hash.as_bytes().as_slice(),
                    encode(&stored).unwrap().as_slice(),
                )
                .unwrap();
        }
        super::super::redb_mail::create_tables(&txn).unwrap();
        super::super::redb_outbox::create_tables(&txn).unwrap();
        super::super::redb_records::create_tables(&txn).unwrap();
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_version_4_file_keeps_its_users_tokens_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        version_4_file(&dir.path().join(FILE));
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            store.user("usr_a").await.unwrap(),
            Some(a_user("usr_a", Some("crm-1")))
        );
        let found = store.token(&TokenHash::of("secret")).await.unwrap();
        assert_eq!(found.map(|t| t.id).as_deref(), Some("tok_1"));
        assert_eq!(
            store.account("acc_1").await.unwrap(),
            Some(an_account("acc_1", "a@x.test"))
        );
        assert_eq!(
            store.account_secret("acc_1").await.unwrap(),
            Some(sealed("pw"))
        );
        assert_eq!(
            store.primary("usr_a").await.unwrap().as_deref(),
            Some("acc_1")
        );
        assert_eq!(store.key_check().await.unwrap(), Some(sealed("check")));
        assert_eq!(store.remembered("k1").await.unwrap().unwrap().status, 201);
        // The external-id index came along: it still refuses a second owner.
        let taken = store.insert_user(a_user("usr_b", Some("crm-1"))).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        // Revoking by id still finds the token's hash.
        assert!(store.delete_token("tok_1").await.unwrap().is_some());
        drop(store);
        // Opening again changes nothing.
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.users().await.unwrap().len(), 1);
        assert!(
            store
                .token(&TokenHash::of("secret"))
                .await
                .unwrap()
                .is_none()
        );
    }
}
