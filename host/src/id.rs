//! Ids Mailroom gives what it keeps.

/// A fresh opaque id with a readable prefix, e.g. `usr_…`, `acc_…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 10]>()))
}
