//! Which node works which account: the nodes' heartbeats and the accounts' leases.
//!
//! A node is alive while its heartbeat (`nodes`: its id → the time it is alive until) is in
//! the future; each renewal moves it forward. A lease (`leases`: an account's id, or a
//! role such as delivering webhooks → the node holding it) is valid exactly while its
//! holder is alive, so a node renews every lease it holds with one write, and the leases of
//! a node that stopped renewing are free once its heartbeat has passed.
//!
//! Each renewal also balances: a node holds at most its share of the accounts (all of them
//! over the live nodes, rounded up), takes free accounts up to that share, and hands back
//! those over it that it was asked to release (its idle ones: see `crate::cluster`). Every
//! renewal is one write transaction, and write transactions run one at a time across the
//! nodes, so two nodes never take the same account.

use super::Result;
use super::kv::{Json, Key, Reader, Table, Text, Writer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

const NODES: Table<Json<Node>> = Table::new("nodes");
const LEASES: Table<Text> = Table::new("leases");
const REQUESTS: Table<Json<SyncRequest>> = Table::new("sync_requests");

/// The role of delivering webhooks: one node at a time, so each endpoint's deliveries keep
/// their order.
pub const WEBHOOKS: &str = "webhooks";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Node {
    alive_until_ms: i64,
}

fn account_key(account_id: &str) -> Key {
    Key::new().str("account").str(account_id)
}

fn role_key(role: &str) -> Key {
    Key::new().str("role").str(role)
}

/// What a renewal asks.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub node: String,
    pub now_ms: i64,
    pub lease_ms: i64,
    /// Accounts this node hands back (held, over its share, idle).
    pub release: Vec<String>,
    /// Roles this node takes when they are free.
    pub roles: Vec<String>,
}

/// What a node holds after a renewal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub accounts: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    /// The most accounts this node should hold: the rest go to the other nodes.
    pub share: usize,
    /// Live nodes, this one included.
    pub nodes: usize,
}

/// Renews a node's heartbeat and balances the leases; returns what the node holds.
pub fn renew(txn: &mut dyn Writer, renewal: &Renewal) -> Result<Held> {
    let Renewal {
        node,
        now_ms,
        lease_ms,
        ..
    } = renewal;
    NODES.put(
        txn,
        &Key::new().str(node),
        &Node {
            alive_until_ms: now_ms + lease_ms,
        },
    )?;
    let mut live = BTreeSet::new();
    let mut dead = Vec::new();
    NODES.scan_prefix(txn, &Key::new(), false, |mut key, entry| {
        let id = key.str()?;
        if entry.alive_until_ms > *now_ms {
            live.insert(id);
        } else {
            dead.push(id);
        }
        Ok(true)
    })?;
    for id in &dead {
        NODES.remove(txn, &Key::new().str(id))?;
    }

    let accounts: BTreeSet<String> = super::directory::account_ids(txn)?.into_iter().collect();
    let mut holders: HashMap<String, String> = HashMap::new();
    let mut stale = Vec::new();
    LEASES.scan_prefix(txn, &Key::new().str("account"), false, |mut key, holder| {
        let account = key.str()?;
        if accounts.contains(&account) {
            holders.insert(account, holder);
        } else {
            stale.push(account);
        }
        Ok(true)
    })?;
    for account in &stale {
        LEASES.remove(txn, &account_key(account))?;
    }

    let share = accounts.len().div_ceil(live.len());
    let mut mine: BTreeSet<String> = holders
        .iter()
        .filter(|(_, holder)| *holder == node)
        .map(|(account, _)| account.clone())
        .collect();
    for account in &renewal.release {
        if mine.len() > share && mine.remove(account) {
            LEASES.remove(txn, &account_key(account))?;
        }
    }
    for account in &accounts {
        if mine.len() >= share {
            break;
        }
        let free = holders.get(account).is_none_or(|h| !live.contains(h));
        if free {
            LEASES.put(txn, &account_key(account), node)?;
            mine.insert(account.clone());
        }
    }

    let mut roles = BTreeSet::new();
    for role in &renewal.roles {
        let holder = LEASES.get(txn, &role_key(role))?;
        let free = holder.as_ref().is_none_or(|h| !live.contains(h));
        if free {
            LEASES.put(txn, &role_key(role), node)?;
        }
        if free || holder.as_ref() == Some(node) {
            roles.insert(role.clone());
        }
    }
    Ok(Held {
        accounts: mine,
        roles,
        share,
        nodes: live.len(),
    })
}

/// A sync asked for on a node that does not hold the account, left for the one that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// When it was asked (Unix milliseconds): the job that serves it starts at or after.
    pub at_ms: i64,
    /// The account was re-connected: its watch starts over.
    pub reconnected: bool,
}

/// Leaves a request, merged with one already waiting.
pub fn request_sync(txn: &mut dyn Writer, account_id: &str, request: SyncRequest) -> Result<()> {
    let key = Key::new().str(account_id);
    let merged = match REQUESTS.get(txn, &key)? {
        Some(waiting) => SyncRequest {
            at_ms: waiting.at_ms.max(request.at_ms),
            reconnected: waiting.reconnected || request.reconnected,
        },
        None => request,
    };
    REQUESTS.put(txn, &key, &merged)
}

/// Every request waiting, by account.
pub fn sync_requests(txn: &dyn Reader) -> Result<Vec<(String, SyncRequest)>> {
    let mut waiting = Vec::new();
    REQUESTS.scan_prefix(txn, &Key::new(), false, |mut key, request| {
        waiting.push((key.str()?, request));
        Ok(true)
    })?;
    Ok(waiting)
}

/// Removes requests a node took, unless a newer one arrived since it read them.
pub fn take_sync_requests(txn: &mut dyn Writer, taken: &[(String, SyncRequest)]) -> Result<()> {
    for (account_id, request) in taken {
        let key = Key::new().str(account_id);
        if REQUESTS.get(txn, &key)?.as_ref() == Some(request) {
            REQUESTS.remove(txn, &key)?;
        }
    }
    Ok(())
}

/// A node that stops hands everything back at once, rather than when its heartbeat ends.
pub fn leave(txn: &mut dyn Writer, node: &str) -> Result<()> {
    NODES.remove(txn, &Key::new().str(node))?;
    let mut held = Vec::new();
    LEASES.scan_prefix(txn, &Key::new(), false, |mut key, holder| {
        if holder == node {
            held.push(Key::new().str(&key.str()?).str(&key.str()?));
        }
        Ok(true)
    })?;
    for key in &held {
        LEASES.remove(txn, key)?;
    }
    Ok(())
}

/// Forgets every node and lease: for a store only one process can open, whose leases left
/// behind by a process that was killed are nobody's.
pub fn clear(txn: &mut dyn Writer) -> Result<()> {
    NODES.delete_prefix(txn, &Key::new())?;
    LEASES.delete_prefix(txn, &Key::new())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Backend;
    use crate::store::kv::memory::MemoryBackend;

    async fn with_accounts(n: usize) -> MemoryBackend {
        let backend = MemoryBackend::new();
        backend
            .write(move |txn| {
                for i in 0..n {
                    let account = super::super::directory::tests::an_account(
                        &format!("acc{i:02}"),
                        &format!("box{i}@example.test"),
                    );
                    super::super::directory::put_account(txn, &account, None)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        backend
    }

    async fn renew_as(
        backend: &MemoryBackend,
        node: &str,
        now_ms: i64,
        release: Vec<String>,
    ) -> Held {
        let renewal = Renewal {
            node: node.into(),
            now_ms,
            lease_ms: 30_000,
            release,
            roles: vec![WEBHOOKS.into()],
        };
        backend
            .write(move |txn| renew(txn, &renewal))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn accounts_spread_over_the_live_nodes_and_follow_a_dead_one() {
        let backend = with_accounts(20).await;
        let a = renew_as(&backend, "a", 0, vec![]).await;
        assert_eq!((a.accounts.len(), a.share, a.nodes), (20, 20, 1));
        assert!(a.roles.contains(WEBHOOKS));

        // A second node finds nothing free until the first hands back its excess.
        let b = renew_as(&backend, "b", 1_000, vec![]).await;
        assert_eq!((b.accounts.len(), b.share), (0, 10));
        assert!(b.roles.is_empty(), "the role is held");
        let excess: Vec<String> = a.accounts.iter().take(12).cloned().collect();
        let a = renew_as(&backend, "a", 2_000, excess).await;
        assert_eq!(
            a.accounts.len(),
            10,
            "released down to its share, no further"
        );
        let b = renew_as(&backend, "b", 3_000, vec![]).await;
        assert_eq!(b.accounts.len(), 10);
        assert!(a.accounts.is_disjoint(&b.accounts));

        // `a` stops renewing: after its heartbeat, `b` takes everything, the role too.
        let b = renew_as(&backend, "b", 31_000, vec![]).await;
        assert_eq!(b.accounts.len(), 10, "a's heartbeat still runs");
        let b = renew_as(&backend, "b", 32_001, vec![]).await;
        assert_eq!((b.accounts.len(), b.nodes), (20, 1));
        assert!(b.roles.contains(WEBHOOKS));
    }

    #[tokio::test]
    async fn a_node_that_leaves_frees_its_leases_at_once() {
        let backend = with_accounts(3).await;
        renew_as(&backend, "a", 0, vec![]).await;
        backend.write(|txn| leave(txn, "a")).await.unwrap();
        let b = renew_as(&backend, "b", 1, vec![]).await;
        assert_eq!((b.accounts.len(), b.nodes), (3, 1));
        assert!(b.roles.contains(WEBHOOKS));
    }
}
