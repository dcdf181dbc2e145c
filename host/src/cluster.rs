//! This node among the others that share its store: which accounts it works (their jobs,
//! sends and watches) and whether it delivers the webhooks.
//!
//! Every node renews its heartbeat every sixth of `[store.postgres] lease_secs`; the
//! renewal balances the leases (`store::leases`). A node holds an account from the renewal
//! that gave it until its heartbeat would pass without another, less a margin: a node that
//! cannot reach the database stops starting work well before another node may take it.
//! An account over the node's share is first set aside (no job or watch starts for it),
//! and handed back at the next renewal that finds no job of it running. A node that stops
//! hands everything back at once. On the embedded store there is one node, which holds
//! every account.

use crate::store::Store;
use crate::store::leases::{Held, Renewal, WEBHOOKS};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the scheduler tells of the accounts whose jobs are running.
pub type Busy = Box<dyn Fn() -> HashSet<String> + Send + Sync>;

pub struct Cluster {
    node: String,
    store: Arc<dyn Store>,
    lease: Duration,
    state: Mutex<State>,
    /// The accounts with a running job, from the scheduler once it runs.
    busy: OnceLock<Busy>,
    /// Renews at once (an account this node does not hold yet was asked for).
    wake: Notify,
    stop: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    held: Held,
    /// Held accounts over this node's share: handed back once idle.
    set_aside: BTreeSet<String>,
    /// Until when what is held may be worked without another renewal.
    valid_until: Option<Instant>,
}

impl State {
    /// Whether the latest renewal still lets this node work what it holds.
    fn working(&self) -> bool {
        self.valid_until.is_some_and(|until| Instant::now() < until)
    }
}

impl Cluster {
    /// Joins the nodes of `store` (the first renewal happens before this returns) and keeps
    /// renewing until [`Cluster::leave`].
    pub async fn join(store: Arc<dyn Store>, lease_secs: u64) -> crate::store::Result<Arc<Self>> {
        let cluster = Arc::new(Self {
            node: crate::id::new_id("node"),
            store,
            lease: Duration::from_secs(lease_secs.max(3)),
            state: Mutex::new(State::default()),
            busy: OnceLock::new(),
            wake: Notify::new(),
            stop: Notify::new(),
            task: Mutex::new(None),
        });
        cluster.renew().await?;
        let task = tokio::spawn(renewing(Arc::downgrade(&cluster)));
        *cluster.task.lock().expect("cluster poisoned") = Some(task);
        Ok(cluster)
    }

    /// This node's id (in the logs).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells the cluster which accounts have a running job (their leases are kept).
    pub fn set_busy(&self, busy: Busy) {
        let _ = self.busy.set(busy);
    }

    /// Whether this node works the account now.
    pub fn holds(&self, account_id: &str) -> bool {
        let state = self.state.lock().expect("cluster poisoned");
        state.working()
            && state.held.accounts.contains(account_id)
            && !state.set_aside.contains(account_id)
    }

    /// Renews now rather than at the next turn: a new account is taken by a node at once
    /// (by this one, when it is under its share).
    pub fn renew_soon(&self) {
        self.wake.notify_one();
    }

    /// Whether this node delivers the webhooks now.
    pub fn delivers_webhooks(&self) -> bool {
        let state = self.state.lock().expect("cluster poisoned");
        state.working() && state.held.roles.contains(WEBHOOKS)
    }

    /// Stops renewing and hands everything back.
    pub async fn leave(&self) {
        let task = self.task.lock().expect("cluster poisoned").take();
        if let Some(task) = task {
            self.stop.notify_one();
            let _ = task.await;
        }
        self.state.lock().expect("cluster poisoned").valid_until = None;
        if let Err(error) = self.store.leave(&self.node).await {
            tracing::warn!(node = %self.node, "could not hand back the leases: {error}");
        }
    }

    /// How often the heartbeat is renewed.
    fn every(&self) -> Duration {
        self.lease / 6
    }

    async fn renew(&self) -> crate::store::Result<()> {
        let started = Instant::now();
        // Asked before taking the state's lock: the scheduler asks whether this node holds
        // an account while holding its own.
        let busy = self.busy.get().map(|busy| busy()).unwrap_or_default();
        let release: Vec<String> = {
            let state = self.state.lock().expect("cluster poisoned");
            state
                .set_aside
                .iter()
                .filter(|id| !busy.contains(*id))
                .cloned()
                .collect()
        };
        // The heartbeat ends a sixth before the lease time, so that another node, looking
        // a sixth later at most, takes the accounts within the lease time.
        let alive = self.lease - self.every();
        let held = self
            .store
            .renew_leases(Renewal {
                node: self.node.clone(),
                now_ms: crate::clock::now_millis(),
                lease_ms: alive.as_millis() as i64,
                release,
                roles: vec![WEBHOOKS.to_owned()],
            })
            .await?;
        let mut state = self.state.lock().expect("cluster poisoned");
        let before = (state.held.accounts.len(), state.held.nodes);
        // The accounts over the share, the last by id, are handed back once idle.
        let over = held.accounts.len().saturating_sub(held.share);
        let set_aside = held.accounts.iter().rev().take(over).cloned().collect();
        if before != (held.accounts.len(), held.nodes) {
            tracing::info!(
                node = %self.node,
                nodes = held.nodes,
                accounts = held.accounts.len(),
                share = held.share,
                "leases changed"
            );
        }
        state.set_aside = set_aside;
        state.held = held;
        // Working stops a sixth before the heartbeat passes: a margin for a clock that runs
        // slow or a renewal that took long.
        state.valid_until = Some(started + alive - self.every());
        Ok(())
    }
}

/// Renews every [`Cluster::every`] until the node leaves, or nothing else holds the
/// cluster any more.
async fn renewing(cluster: Weak<Cluster>) {
    while let Some(cluster) = cluster.upgrade() {
        tokio::select! {
            _ = tokio::time::sleep(cluster.every()) => {}
            _ = cluster.wake.notified() => {}
            _ = cluster.stop.notified() => return,
        }
        if let Err(error) = cluster.renew().await {
            tracing::error!(node = %cluster.node, "cannot renew the leases: {error}");
        }
    }
}
