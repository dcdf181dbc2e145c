//! OAuth sign-ins under way, between the start (on any node) and the provider's callback
//! (on any node): by a digest of their `state`, with their sealed particulars and when they
//! expire.

use super::Result;
use super::kv::{Json, Key, Table, Writer};
use crate::vault::Sealed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SIGN_INS: Table<Json<PendingSignIn>> = Table::new("sign_ins");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub user_id: String,
    pub expires_ms: i64,
    /// What the user asked for and the PKCE verifier, sealed.
    pub sealed: Sealed,
}

/// How many sign-ins may be under way.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub per_user: usize,
    pub total: usize,
}

fn key(state: &str) -> Key {
    Key::new().bytes(&Sha256::digest(state.as_bytes()))
}

/// Keeps a new sign-in, after dropping expired ones; `false` when the user, or everyone,
/// has as many under way as `bounds` allow.
pub fn begin(
    txn: &mut dyn Writer,
    state: &str,
    pending: &PendingSignIn,
    now_ms: i64,
    bounds: Bounds,
) -> Result<bool> {
    let mut expired = Vec::new();
    let (mut total, mut of_user) = (0, 0);
    SIGN_INS.scan_prefix(txn, &Key::new(), false, |mut rest, entry| {
        if entry.expires_ms <= now_ms {
            expired.push(rest.bytes()?);
        } else {
            total += 1;
            of_user += usize::from(entry.user_id == pending.user_id);
        }
        Ok(true)
    })?;
    for digest in &expired {
        SIGN_INS.remove(txn, &Key::new().bytes(digest))?;
    }
    if of_user >= bounds.per_user || total >= bounds.total {
        return Ok(false);
    }
    SIGN_INS.put(txn, &key(state), pending)?;
    Ok(true)
}

/// Ends a sign-in: it is gone whatever follows; its sealed particulars unless it expired.
pub fn take(txn: &mut dyn Writer, state: &str, now_ms: i64) -> Result<Option<Sealed>> {
    Ok(SIGN_INS
        .take(txn, &key(state))?
        .filter(|pending| pending.expires_ms > now_ms)
        .map(|pending| pending.sealed))
}
