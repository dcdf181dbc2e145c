//! Who and what Mailroom serves: users, their API tokens, connected accounts with their
//! sealed passwords, each user's primary account, remembered idempotent answers, and the
//! value that recognises the secret key. Written once, over the storage seam.

use super::kv::{Bytes, Json, Key, Reader, Table, Text, Writer};
use super::{Remembered, Result, StoreError};
use crate::account::Account;
use crate::user::{Token, TokenHash, TokenOwner, User};
use crate::vault::Sealed;

/// Users by id.
const USERS: Table<Json<User>> = Table::new("users");
/// User ids by the CRM's external id, which is unique.
const USERS_BY_EXTERNAL_ID: Table<Json<String>> = Table::new("users_by_external_id");
/// Tokens by the hash of their secret: what a request is checked against.
const TOKENS: Table<Json<Token>> = Table::new("tokens");
/// Token hashes by token id, to revoke by id.
const TOKEN_HASHES: Table<Bytes> = Table::new("token_hashes");
/// Accounts by id.
const ACCOUNTS: Table<Json<Account>> = Table::new("accounts");
/// Sealed passwords by account id.
const SECRETS: Table<Json<Sealed>> = Table::new("secrets");
/// Each user's primary account id.
const PRIMARIES: Table<Json<String>> = Table::new("primaries");
/// Answers by `Idempotency-Key`, for 24 hours.
const IDEMPOTENCY: Table<Json<Remembered>> = Table::new("idempotency");
/// Single values: `key_check`.
const SETTINGS: Table<Json<Sealed>> = Table::new("settings");
/// Uploaded connector components, by connector id.
const CONNECTORS: Table<Bytes> = Table::new("connectors");
/// Hosts an admin granted a connector's HTTP requests, by connector id.
const GRANTS: Table<Json<Vec<String>>> = Table::new("connector_grants");
/// Each uploaded component's digest, so that every node can tell cheaply whether it runs
/// the one stored.
const DIGESTS: Table<Text> = Table::new("connector_digests");

fn id(id: &str) -> Key {
    Key::new().str(id)
}

fn hash_key(hash: &TokenHash) -> Key {
    Key::new().bytes(hash.as_bytes())
}

pub fn user_count(txn: &dyn Reader) -> Result<u64> {
    let mut count = 0;
    USERS.scan_prefix(txn, &Key::new(), false, |_, _| {
        count += 1;
        Ok(true)
    })?;
    Ok(count)
}

pub fn user(txn: &dyn Reader, user_id: &str) -> Result<Option<User>> {
    USERS.get(txn, &id(user_id))
}

pub fn users(txn: &dyn Reader) -> Result<Vec<User>> {
    USERS.values(txn)
}

/// Writes a user, new or changed; `Conflict` when its external id belongs to another.
pub fn put_user(txn: &mut dyn Writer, user: &User) -> Result<()> {
    let previous = USERS.get(txn, &id(&user.id))?;
    if let Some(external_id) = &user.external_id
        && let Some(owner) = USERS_BY_EXTERNAL_ID.get(txn, &id(external_id))?
        && owner != user.id
    {
        return Err(StoreError::Conflict(format!(
            "external_id `{external_id}` belongs to another user"
        )));
    }
    if let Some(old) = previous.as_ref().and_then(|p| p.external_id.as_deref()) {
        USERS_BY_EXTERNAL_ID.remove(txn, &id(old))?;
    }
    if let Some(external_id) = &user.external_id {
        USERS_BY_EXTERNAL_ID.put(txn, &id(external_id), &user.id)?;
    }
    USERS.put(txn, &id(&user.id), user)
}

pub fn insert_token(txn: &mut dyn Writer, hash: &TokenHash, token: &Token) -> Result<()> {
    TOKENS.put(txn, &hash_key(hash), token)?;
    TOKEN_HASHES.put(txn, &id(&token.id), &hash.as_bytes().to_vec())
}

pub fn token(txn: &dyn Reader, hash: &TokenHash) -> Result<Option<Token>> {
    TOKENS.get(txn, &hash_key(hash))
}

/// Sets a token's `last_used_at`, if the token still exists (a revoked one stays gone).
pub fn token_used(txn: &mut dyn Writer, hash: &TokenHash, at: String) -> Result<()> {
    if let Some(mut token) = TOKENS.get(txn, &hash_key(hash))? {
        token.last_used_at = Some(at);
        TOKENS.put(txn, &hash_key(hash), &token)?;
    }
    Ok(())
}

/// The tokens of a user or a service, by id.
pub fn tokens_of(txn: &dyn Reader, owner: &TokenOwner) -> Result<Vec<Token>> {
    let mut tokens: Vec<Token> = TOKENS
        .values(txn)?
        .into_iter()
        .filter(|token| &token.owner == owner)
        .collect();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tokens)
}

/// Removes a token by its id; returns it when it existed.
pub fn delete_token(txn: &mut dyn Writer, token_id: &str) -> Result<Option<Token>> {
    let Some(hash) = TOKEN_HASHES.take(txn, &id(token_id))? else {
        return Ok(None);
    };
    TOKENS.take(txn, &Key::new().bytes(&hash))
}

pub fn account(txn: &dyn Reader, account_id: &str) -> Result<Option<Account>> {
    ACCOUNTS.get(txn, &id(account_id))
}

pub fn accounts(txn: &dyn Reader) -> Result<Vec<Account>> {
    ACCOUNTS.values(txn)
}

/// Every account's id, in order, without reading the accounts.
pub fn account_ids(txn: &dyn Reader) -> Result<Vec<String>> {
    ACCOUNTS.keys(txn, &Key::new(), |key| key.str())
}

/// Writes an account, and its sealed password when given.
pub fn put_account(txn: &mut dyn Writer, account: &Account, secret: Option<&Sealed>) -> Result<()> {
    ACCOUNTS.put(txn, &id(&account.id), account)?;
    if let Some(secret) = secret {
        SECRETS.put(txn, &id(&account.id), secret)?;
    }
    Ok(())
}

/// Replaces an account if the stored one is still at the revision `account` was read at,
/// and moves it to the next revision: `Conflict` otherwise, `NotFound` when it is gone.
pub fn update_account(
    txn: &mut dyn Writer,
    mut account: Account,
    secret: Option<&Sealed>,
) -> Result<()> {
    let stored = ACCOUNTS
        .get(txn, &id(&account.id))?
        .ok_or(StoreError::NotFound("account"))?;
    if stored.revision != account.revision {
        return Err(StoreError::Conflict(
            "the account was changed by another request meanwhile; read it again".into(),
        ));
    }
    account.revision += 1;
    put_account(txn, &account, secret)
}

/// Changes an account whatever its revision; a change moves it to the next revision.
/// Returns the account as stored afterwards.
pub fn modify_account(
    txn: &mut dyn Writer,
    account_id: &str,
    change: impl FnOnce(&mut Account) -> bool,
) -> Result<Option<Account>> {
    let Some(mut account) = ACCOUNTS.get(txn, &id(account_id))? else {
        return Ok(None);
    };
    if change(&mut account) {
        account.revision += 1;
        put_account(txn, &account, None)?;
    }
    Ok(Some(account))
}

/// Removes an account, its secret and every primary choice that named it; returns whether
/// it existed. Its mail is the mail store's to remove.
pub fn delete_account(txn: &mut dyn Writer, account_id: &str) -> Result<bool> {
    let existed = ACCOUNTS.delete(txn, &id(account_id))?;
    delete_secret(txn, account_id)?;
    let mut choosers = Vec::new();
    PRIMARIES.scan_prefix(txn, &Key::new(), false, |mut user, chosen| {
        if chosen == account_id {
            choosers.push(user.str()?);
        }
        Ok(true)
    })?;
    for user in choosers {
        PRIMARIES.remove(txn, &id(&user))?;
    }
    Ok(existed)
}

/// The sealed secret kept under `owner`: an account's password or grant, a webhook's
/// signing secret.
pub fn secret(txn: &dyn Reader, owner: &str) -> Result<Option<Sealed>> {
    SECRETS.get(txn, &id(owner))
}

pub fn put_secret(txn: &mut dyn Writer, owner: &str, sealed: &Sealed) -> Result<()> {
    SECRETS.put(txn, &id(owner), sealed)
}

pub fn delete_secret(txn: &mut dyn Writer, owner: &str) -> Result<()> {
    SECRETS.remove(txn, &id(owner))
}

/// Every sealed secret, by the id of what it belongs to (accounts and webhooks).
pub fn secrets(txn: &dyn Reader) -> Result<Vec<(String, Sealed)>> {
    let mut secrets = Vec::new();
    SECRETS.scan_prefix(txn, &Key::new(), false, |mut account, sealed| {
        secrets.push((account.str()?, sealed));
        Ok(true)
    })?;
    Ok(secrets)
}

/// Replaces sealed secrets and the key check together (key rotation).
pub fn replace_secrets(
    txn: &mut dyn Writer,
    secrets: &[(String, Sealed)],
    key_check: &Sealed,
) -> Result<()> {
    for (account_id, sealed) in secrets {
        SECRETS.put(txn, &id(account_id), sealed)?;
    }
    set_key_check(txn, key_check)
}

pub fn primary(txn: &dyn Reader, user_id: &str) -> Result<Option<String>> {
    PRIMARIES.get(txn, &id(user_id))
}

pub fn set_primary(txn: &mut dyn Writer, user_id: &str, account_id: Option<&str>) -> Result<()> {
    match account_id {
        Some(account) => PRIMARIES.put(txn, &id(user_id), &account.to_owned()),
        None => PRIMARIES.remove(txn, &id(user_id)),
    }
}

pub fn remembered(txn: &dyn Reader, key: &str) -> Result<Option<Remembered>> {
    IDEMPOTENCY.get(txn, &id(key))
}

/// Remembers an answer, and forgets those past their 24 hours (and any that no longer
/// reads as an answer).
pub fn remember(txn: &mut dyn Writer, key: &str, response: &Remembered) -> Result<()> {
    const STORED: Table<Bytes> = Table::new(IDEMPOTENCY.name);
    let horizon = response.at_unix - 24 * 3600;
    let mut expired = Vec::new();
    STORED.scan_prefix(txn, &Key::new(), false, |mut stored_key, bytes| {
        let current = serde_json::from_slice::<Remembered>(&bytes)
            .is_ok_and(|stored| stored.at_unix >= horizon);
        if !current {
            expired.push(stored_key.str()?);
        }
        Ok(true)
    })?;
    for stale in expired {
        IDEMPOTENCY.remove(txn, &id(&stale))?;
    }
    IDEMPOTENCY.put(txn, &id(key), response)
}

pub fn key_check(txn: &dyn Reader) -> Result<Option<Sealed>> {
    SETTINGS.get(txn, &id("key_check"))
}

pub fn set_key_check(txn: &mut dyn Writer, sealed: &Sealed) -> Result<()> {
    SETTINGS.put(txn, &id("key_check"), sealed)
}

pub fn connector_ids(txn: &dyn Reader) -> Result<Vec<String>> {
    CONNECTORS.keys(txn, &Key::new(), |key| key.str())
}

pub fn connector(txn: &dyn Reader, connector_id: &str) -> Result<Option<Vec<u8>>> {
    CONNECTORS.get(txn, &id(connector_id))
}

/// Keeps `component` (whose digest is `digest`) as the connector's.
pub fn put_connector(
    txn: &mut dyn Writer,
    connector_id: &str,
    component: &[u8],
    digest: &str,
) -> Result<()> {
    DIGESTS.put(txn, &id(connector_id), &digest.to_owned())?;
    CONNECTORS.put_slice(txn, &id(connector_id), component)
}

pub fn delete_connector(txn: &mut dyn Writer, connector_id: &str) -> Result<bool> {
    GRANTS.remove(txn, &id(connector_id))?;
    DIGESTS.remove(txn, &id(connector_id))?;
    CONNECTORS.delete(txn, &id(connector_id))
}

/// Every uploaded connector's id and digest, without reading the components.
pub fn connector_digests(txn: &dyn Reader) -> Result<Vec<(String, String)>> {
    let mut digests = Vec::new();
    DIGESTS.scan_prefix(txn, &Key::new(), false, |mut key, digest| {
        digests.push((key.str()?, digest));
        Ok(true)
    })?;
    Ok(digests)
}

/// Keeps the digest of every connector uploaded before digests were kept (a migration).
pub(super) fn digest_connectors(txn: &mut dyn Writer) -> Result<()> {
    for connector_id in connector_ids(txn)? {
        if DIGESTS.contains(txn, &id(&connector_id))? {
            continue;
        }
        let component = CONNECTORS.get(txn, &id(&connector_id))?.unwrap_or_default();
        let digest = crate::connector::component_digest(&component);
        DIGESTS.put(txn, &id(&connector_id), &digest)?;
    }
    Ok(())
}

pub fn connector_grants(txn: &dyn Reader, connector_id: &str) -> Result<Vec<String>> {
    Ok(GRANTS.get(txn, &id(connector_id))?.unwrap_or_default())
}

pub fn set_connector_grants(
    txn: &mut dyn Writer,
    connector_id: &str,
    hosts: &[String],
) -> Result<()> {
    GRANTS.put(txn, &id(connector_id), &hosts.to_vec())
}

/// Replaces an account's sealed secret if it is still `expected` (a refreshed OAuth grant
/// must not undo a re-connect that stored a new one meanwhile); `false` when it is not, or
/// the account is gone.
pub fn replace_account_secret(
    txn: &mut dyn Writer,
    account_id: &str,
    expected: &Sealed,
    new: &Sealed,
) -> Result<bool> {
    if ACCOUNTS.get(txn, &id(account_id))?.is_none()
        || SECRETS.get(txn, &id(account_id))?.as_ref() != Some(expected)
    {
        return Ok(false);
    }
    SECRETS.put(txn, &id(account_id), new)?;
    Ok(true)
}

/// The addresses of every connected account and every user, as stored: mail between them
/// is not a stranger's.
pub fn own_addresses(txn: &dyn Reader) -> Result<Vec<String>> {
    let mut addresses: Vec<String> = accounts(txn)?.into_iter().map(|a| a.email).collect();
    addresses.extend(users(txn)?.into_iter().map(|u| u.email));
    Ok(addresses)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::account::{AccountKind, AccountState, SyncFrom};
    use crate::store::kv::Backend;
    use crate::store::kv::memory::MemoryBackend;
    use crate::user::Role;

    pub(in crate::store) fn a_user(id: &str, external_id: Option<&str>) -> User {
        User {
            id: id.into(),
            name: id.into(),
            email: format!("{id}@crm.test"),
            role: Role::Member,
            shared_inbox: false,
            external_id: external_id.map(str::to_owned),
            signature: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            disabled: false,
        }
    }

    pub(in crate::store) fn an_account(id: &str, email: &str) -> Account {
        Account {
            id: id.into(),
            kind: AccountKind::Personal,
            owner_id: "usr_a".into(),
            connector: "imap".into(),
            email: email.into(),
            display_name: None,
            username: None,
            sync_from: SyncFrom::OneMonth,
            sync_from_date: "2026-11-01T00:00:00Z".into(),
            create_contact: false,
            enabled: true,
            state: AccountState::Active,
            state_reason: None,
            state_since: "2026-12-01T00:00:00Z".into(),
            next_retry_at: None,
            last_sync_at: None,
            last_sync_duration_ms: None,
            servers: Vec::new(),
            allow_insecure_certificate: false,
            settings: Vec::new(),
            folders: Vec::new(),
            created_at: "2026-12-01T00:00:00Z".into(),
            revision: 0,
        }
    }

    pub(in crate::store) fn sealed(text: &str) -> Sealed {
        Sealed {
            key_id: "k1".into(),
            nonce: "n".into(),
            ciphertext: text.into(),
        }
    }

    pub(in crate::store) fn a_token(id: &str, owner: TokenOwner) -> Token {
        Token {
            id: id.into(),
            owner,
            name: id.into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn an_external_id_belongs_to_one_user_and_moves_with_them() {
        let kv = MemoryBackend::new();
        kv.write(|txn| {
            put_user(txn, &a_user("usr_a", Some("crm-1")))?;
            put_user(txn, &a_user("usr_b", None))
        })
        .await
        .unwrap();
        let taken = kv
            .write(|txn| put_user(txn, &a_user("usr_b", Some("crm-1"))))
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        // Changing it frees the old one; writing the same user again is no conflict.
        kv.write(|txn| {
            put_user(txn, &a_user("usr_a", Some("crm-2")))?;
            put_user(txn, &a_user("usr_a", Some("crm-2")))?;
            put_user(txn, &a_user("usr_b", Some("crm-1")))
        })
        .await
        .unwrap();
        assert_eq!(kv.read(user_count).await.unwrap(), 2);
        let ids: Vec<String> = kv
            .read(users)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(ids, ["usr_a", "usr_b"]);
    }

    #[tokio::test]
    async fn a_token_is_found_by_its_hash_listed_by_owner_and_revoked_by_id() {
        let kv = MemoryBackend::new();
        let ann = TokenOwner::User("usr_a".into());
        let (one, two, crm) = (
            TokenHash::of("one"),
            TokenHash::of("two"),
            TokenHash::of("crm"),
        );
        kv.write(move |txn| {
            insert_token(
                txn,
                &two,
                &a_token("tok_2", TokenOwner::User("usr_a".into())),
            )?;
            insert_token(
                txn,
                &one,
                &a_token("tok_1", TokenOwner::User("usr_a".into())),
            )?;
            insert_token(
                txn,
                &crm,
                &a_token("tok_3", TokenOwner::Service("crm".into())),
            )
        })
        .await
        .unwrap();
        let listed: Vec<String> = kv
            .read(move |txn| tokens_of(txn, &ann))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(listed, ["tok_1", "tok_2"]);
        kv.write(move |txn| token_used(txn, &one, "2026-12-06T10:00:00Z".into()))
            .await
            .unwrap();
        let used = kv
            .read(move |txn| token(txn, &TokenHash::of("one")))
            .await
            .unwrap();
        assert_eq!(
            used.unwrap().last_used_at.as_deref(),
            Some("2026-12-06T10:00:00Z")
        );

        let revoked = kv.write(|txn| delete_token(txn, "tok_1")).await.unwrap();
        assert_eq!(revoked.map(|t| t.id).as_deref(), Some("tok_1"));
        assert!(
            kv.read(move |txn| token(txn, &TokenHash::of("one")))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            kv.write(|txn| delete_token(txn, "tok_1"))
                .await
                .unwrap()
                .is_none()
        );
        // A revoked token stays gone when its use is recorded late.
        kv.write(move |txn| token_used(txn, &TokenHash::of("one"), "later".into()))
            .await
            .unwrap();
        assert!(
            kv.read(move |txn| token(txn, &TokenHash::of("one")))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_account_written_from_an_old_revision_is_refused() {
        let kv = MemoryBackend::new();
        kv.write(|txn| put_account(txn, &an_account("acc_1", "a@x.test"), Some(&sealed("pw"))))
            .await
            .unwrap();
        let read = kv
            .read(move |txn| account(txn, "acc_1"))
            .await
            .unwrap()
            .unwrap();
        let mut first = read.clone();
        first.display_name = Some("First".into());
        kv.write(move |txn| update_account(txn, first, None))
            .await
            .unwrap();
        let mut stale = read;
        stale.display_name = Some("Stale".into());
        let refused = kv.write(move |txn| update_account(txn, stale, None)).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        let stored = kv
            .read(move |txn| account(txn, "acc_1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.display_name.as_deref(), Some("First"));
        assert_eq!(stored.revision, 1);
        // The password was kept, not cleared, by an update without one.
        let secret = kv.read(move |txn| secret(txn, "acc_1")).await.unwrap();
        assert_eq!(secret, Some(sealed("pw")));

        let gone = kv
            .write(|txn| update_account(txn, an_account("acc_9", "z@x.test"), None))
            .await;
        assert!(
            matches!(gone, Err(StoreError::NotFound("account"))),
            "{gone:?}"
        );

        // A sync's own change applies whatever the revision, and only when it changes.
        let unchanged = kv
            .write(|txn| modify_account(txn, "acc_1", |_| false))
            .await
            .unwrap();
        assert_eq!(unchanged.unwrap().revision, 1);
        let changed = kv
            .write(|txn| {
                modify_account(txn, "acc_1", |a| {
                    a.state = AccountState::Error;
                    true
                })
            })
            .await
            .unwrap();
        assert_eq!(changed.unwrap().revision, 2);
    }

    #[tokio::test]
    async fn deleting_an_account_forgets_its_secret_and_every_primary_choice_of_it() {
        let kv = MemoryBackend::new();
        kv.write(|txn| {
            put_account(txn, &an_account("acc_1", "a@x.test"), Some(&sealed("pw")))?;
            put_account(txn, &an_account("acc_2", "b@x.test"), None)?;
            set_primary(txn, "usr_a", Some("acc_1"))?;
            set_primary(txn, "usr_b", Some("acc_1"))?;
            set_primary(txn, "usr_c", Some("acc_2"))
        })
        .await
        .unwrap();
        assert!(kv.write(|txn| delete_account(txn, "acc_1")).await.unwrap());
        assert!(!kv.write(|txn| delete_account(txn, "acc_1")).await.unwrap());
        kv.read(move |txn| {
            assert_eq!(account(txn, "acc_1")?, None);
            assert_eq!(secret(txn, "acc_1")?, None);
            assert_eq!(primary(txn, "usr_a")?, None);
            assert_eq!(primary(txn, "usr_b")?, None);
            assert_eq!(primary(txn, "usr_c")?.as_deref(), Some("acc_2"));
            assert_eq!(own_addresses(txn)?, ["b@x.test"]);
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn rotation_replaces_secrets_and_the_key_check_together() {
        let kv = MemoryBackend::new();
        kv.write(|txn| {
            put_account(txn, &an_account("acc_1", "a@x.test"), Some(&sealed("old")))?;
            set_key_check(txn, &sealed("check-old"))
        })
        .await
        .unwrap();
        let secrets_now = kv.read(secrets).await.unwrap();
        assert_eq!(secrets_now, [("acc_1".to_owned(), sealed("old"))]);
        kv.write(|txn| {
            replace_secrets(
                txn,
                &[("acc_1".into(), sealed("new"))],
                &sealed("check-new"),
            )
        })
        .await
        .unwrap();
        assert_eq!(kv.read(key_check).await.unwrap(), Some(sealed("check-new")));
        assert_eq!(
            kv.read(move |txn| secret(txn, "acc_1")).await.unwrap(),
            Some(sealed("new"))
        );
    }

    #[tokio::test]
    async fn an_idempotent_answer_is_remembered_for_a_day() {
        let kv = MemoryBackend::new();
        let answer = |at_unix| Remembered {
            at_unix,
            status: 202,
            body: serde_json::json!({"id": at_unix}),
        };
        kv.write(move |txn| remember(txn, "k1", &answer(1_000)))
            .await
            .unwrap();
        kv.write(move |txn| remember(txn, "k2", &answer(1_000 + 24 * 3600)))
            .await
            .unwrap();
        assert!(
            kv.read(move |txn| remembered(txn, "k1"))
                .await
                .unwrap()
                .is_some()
        );
        kv.write(move |txn| remember(txn, "k3", &answer(1_001 + 24 * 3600)))
            .await
            .unwrap();
        assert!(
            kv.read(move |txn| remembered(txn, "k1"))
                .await
                .unwrap()
                .is_none()
        );
        let kept = kv
            .read(move |txn| remembered(txn, "k2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.status, 202);

        // A damaged answer is forgotten rather than blocking every later one.
        const RAW: Table<Bytes> = Table::new(IDEMPOTENCY.name);
        kv.write(|txn| RAW.put(txn, &id("broken"), &b"{not json".to_vec()))
            .await
            .unwrap();
        kv.write(move |txn| remember(txn, "k4", &answer(1_002 + 24 * 3600)))
            .await
            .unwrap();
        assert!(
            kv.read(move |txn| RAW.get(txn, &id("broken")))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            kv.read(move |txn| remembered(txn, "k4"))
                .await
                .unwrap()
                .is_some()
        );
    }
}
