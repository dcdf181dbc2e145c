//! Secrets at rest: account passwords (and later OAuth tokens) are sealed with
//! ChaCha20-Poly1305 under the server's key before they reach the store.
//!
//! The key comes from `MAILROOM_SECRET_KEY` (base64 of 32 bytes; a comma-separated list puts
//! the current key first and older ones after it) or from `secret.key` in the data directory,
//! created with mode 0600 on first start. Every sealed value names the id of the key that
//! sealed it, so keys can be rotated (`mailroom secrets rotate`) and a wrong key is reported as
//! such at start instead of yielding garbage. The account id is bound in as associated data,
//! so a sealed password cannot be moved to another account.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const KEY_FILE: &str = "secret.key";

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    Key(String),
    #[error("no key with id {0} is configured")]
    UnknownKey(String),
    #[error("the secret could not be decrypted (wrong key or damaged data)")]
    Damaged,
}

struct VaultKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

pub struct Vault {
    /// The first key seals; all of them open.
    keys: Vec<VaultKey>,
    /// Where the keys came from, for messages.
    source: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Vault {
    /// The keys from `env` (the value of `MAILROOM_SECRET_KEY`) or else the data directory's
    /// key file, created on first start.
    pub fn load(data: &Path, env: Option<&str>) -> Result<Self, VaultError> {
        if let Some(list) = env.filter(|v| !v.trim().is_empty()) {
            return Self::from_list(list, "MAILROOM_SECRET_KEY");
        }
        let path = data.join(KEY_FILE);
        if !path.exists() {
            write_key_file(&path, &[new_key()])?;
        }
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            VaultError::Key(format!("cannot read the key file {}: {e}", path.display()))
        })?);
        Self::from_list(&text.replace('\n', ","), &path.display().to_string())
    }

    fn from_list(list: &str, source: &str) -> Result<Self, VaultError> {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|encoded| {
                let bytes = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| {
                    VaultError::Key(format!("{source}: a key is not valid base64"))
                })?);
                if bytes.len() != 32 {
                    return Err(VaultError::Key(format!(
                        "{source}: a key must be 32 bytes (base64 of 32 random bytes)"
                    )));
                }
                Ok(VaultKey {
                    id: key_id(&bytes),
                    cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(VaultError::Key(format!("{source} holds no key")));
        }
        Ok(Self {
            keys,
            source: source.to_owned(),
        })
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Seals `secret` under the current key, bound to `context` (e.g. the account id).
    pub fn seal(&self, context: &str, secret: &Secret) -> Sealed {
        let key = &self.keys[0];
        let nonce_bytes: [u8; 12] = rand::random();
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any length the store can hold");
        Sealed {
            key_id: key.id.clone(),
            nonce: STANDARD.encode(nonce_bytes),
            ciphertext: STANDARD.encode(ciphertext),
        }
    }

    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Secret, VaultError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .map_err(|_| VaultError::Damaged)?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| VaultError::Damaged)?;
        if nonce.len() != 12 {
            return Err(VaultError::Damaged);
        }
        let plain = Zeroizing::new(
            key.cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: context.as_bytes(),
                    },
                )
                .map_err(|_| VaultError::Damaged)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Damaged)?;
        Ok(Secret::new(text))
    }
}

/// The context of the value sealed to check, at start, that the key fits the database.
pub const KEY_CHECK_CONTEXT: &str = "mailroom key check";

/// Adds a fresh key in front of the key file's keys; returns the file's path.
pub fn add_key_to_file(data: &Path) -> Result<PathBuf, VaultError> {
    let path = data.join(KEY_FILE);
    let existing = Zeroizing::new(std::fs::read_to_string(&path).unwrap_or_default());
    let mut keys = vec![new_key()];
    keys.extend(
        existing
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Zeroizing::new(l.to_owned())),
    );
    write_key_file(&path, &keys)?;
    Ok(path)
}

/// Keeps only the key file's first (current) key.
pub fn drop_old_keys_from_file(data: &Path) -> Result<(), VaultError> {
    let path = data.join(KEY_FILE);
    let existing = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
        VaultError::Key(format!("cannot read the key file {}: {e}", path.display()))
    })?);
    let first = existing
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| Zeroizing::new(l.to_owned()))
        .ok_or_else(|| VaultError::Key(format!("{} holds no key", path.display())))?;
    write_key_file(&path, &[first])
}

fn new_key() -> Zeroizing<String> {
    let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
    Zeroizing::new(STANDARD.encode(bytes.as_slice()))
}

fn key_id(key: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"mailroom key id\0");
    hasher.update(key);
    hex::encode(&hasher.finalize()[..6])
}

/// Writes the key file with mode 0600, replacing it atomically.
fn write_key_file(path: &Path, keys: &[Zeroizing<String>]) -> Result<(), VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("key.new");
    let error = |e: std::io::Error| {
        VaultError::Key(format!("cannot write the key file {}: {e}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(error)?;
    for key in keys {
        writeln!(file, "{}", key.as_str()).map_err(error)?;
    }
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let dir = std::env::temp_dir().join(format!("vault-test-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let vault = Vault::load(&dir, None).unwrap();
        let sealed = vault.seal("acc_1", &Secret::new("hunter2"));
        assert!(!sealed.ciphertext.contains("hunter2"));
        assert_eq!(vault.open("acc_1", &sealed).unwrap().expose(), "hunter2");
        assert!(matches!(
            vault.open("acc_2", &sealed),
            Err(VaultError::Damaged)
        ));

        let other = Vault::from_list(&STANDARD.encode([7u8; 32]), "test").unwrap();
        assert!(matches!(
            other.open("acc_1", &sealed),
            Err(VaultError::UnknownKey(_))
        ));

        add_key_to_file(&dir).unwrap();
        let rotated = Vault::load(&dir, None).unwrap();
        assert_eq!(rotated.key_ids().len(), 2);
        assert_ne!(rotated.current_key_id(), vault.current_key_id());
        assert_eq!(rotated.open("acc_1", &sealed).unwrap().expose(), "hunter2");
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
