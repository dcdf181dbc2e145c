//! Key rotation: every stored secret sealed again under a new key, in one transaction.
//!
//! With the data directory's key file, a new key is put in front of the file, everything is
//! sealed under it, and the old keys leave the file afterwards. With `MAILROOM_SECRET_KEY`,
//! the operator puts the new key first (`new,old`) and drops the old one once this has run.

use crate::secret::Secret;
use crate::store::Store;
use crate::vault::{self, KEY_CHECK_CONTEXT, Vault};
use std::path::Path;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// Secrets sealed again.
    pub count: usize,
    /// The key they are now sealed under.
    pub key_id: String,
}

/// Seals every secret of `store` under a new current key. The store must have been opened
/// with the keys in use (which checks them), so a wrong key fails before anything changes;
/// a secret that does not open stops the rotation with nothing changed but the key file's
/// new, unused first key.
pub async fn rotate(
    store: &dyn Store,
    data: &Path,
    from_env: Option<&str>,
) -> anyhow::Result<Rotated> {
    if from_env.is_none() {
        vault::add_key_to_file(data)?;
    }
    let vault = Vault::load(data, from_env)?;
    let mut resealed = Vec::new();
    for (id, sealed) in store.secrets().await? {
        let secret = vault
            .open(&id, &sealed)
            .map_err(|e| anyhow::anyhow!("account {id}: {e}"))?;
        resealed.push((id.clone(), vault.seal(&id, &secret)));
    }
    let count = resealed.len();
    let check = vault.seal(KEY_CHECK_CONTEXT, &Secret::new("mailroom"));
    store.replace_secrets(resealed, check).await?;
    if from_env.is_none() {
        vault::drop_old_keys_from_file(data)?;
    }
    Ok(Rotated {
        count,
        key_id: vault.current_key_id().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    #[tokio::test]
    async fn every_secret_opens_under_the_new_key_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let old = Vault::load(dir.path(), None).unwrap();
        let account: crate::account::Account = serde_json::from_value(serde_json::json!({
            "id": "acc_1", "kind": "personal", "owner_id": "usr_a", "connector": "imap",
            "email": "a@x.test", "display_name": null, "username": null,
            "sync_from": "now", "sync_from_date": "2026-12-01T00:00:00Z",
            "create_contact": false, "enabled": true, "state": "active", "state_reason": null,
            "state_since": "2026-12-01T00:00:00Z", "last_sync_at": null, "servers": [],
            "allow_insecure_certificate": false, "settings": [], "folders": [],
            "created_at": "2026-12-01T00:00:00Z",
        }))
        .unwrap();
        let password = Secret::new("hunter2");
        store
            .insert_account(account, Some(old.seal("acc_1", &password)))
            .await
            .unwrap();

        let rotated = rotate(&store, dir.path(), None).await.unwrap();
        assert_eq!(rotated.count, 1);
        assert_ne!(rotated.key_id, old.current_key_id());

        let new = Vault::load(dir.path(), None).unwrap();
        assert_eq!(new.key_ids().len(), 1, "the old key left the file");
        assert_eq!(new.current_key_id(), rotated.key_id);
        let sealed = store.account_secret("acc_1").await.unwrap().unwrap();
        assert_eq!(sealed.key_id, rotated.key_id);
        assert_eq!(new.open("acc_1", &sealed).unwrap().expose(), "hunter2");
        assert!(old.open("acc_1", &sealed).is_err());
        let check = store.key_check().await.unwrap().unwrap();
        assert!(new.open(KEY_CHECK_CONTEXT, &check).is_ok());
    }
}
