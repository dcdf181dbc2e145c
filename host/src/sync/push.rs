//! Push: news from the servers as it happens. Every account that syncs, and whose connector
//! can watch (IMAP IDLE or NOTIFY), has a watch running beside the scheduler's jobs: a
//! connector session that waits on the server, holds no job slot and reports the folders
//! that changed, each of which the scheduler then syncs at once. The scheduler's interval
//! stays the backstop, and accounts whose connector cannot watch are checked as often as
//! `[push] check_secs` says.
//!
//! Watches start at a bounded pace (after a restart, thousands of accounts do not log in
//! at once), start again after a failure with a growing wait, and stop when the account
//! stops syncing (disabled, deleted, waiting to be re-connected: such an account holds no
//! connection). A watch is started again when the folders to watch or the account's
//! servers change, and when the account is re-connected. Once a watch is on, its folders
//! are synced: what arrived while nobody watched is not left to the next interval, and a
//! job the same outage cut off does not wait out its backoff.

use super::{Inner, NotReady, may_sync, request, request_folders, watch_came_on};
use crate::account::Account;
use crate::config::PushConfig;
use crate::connector::{ConnectorError, ErrorKind, Remedy};
use crate::endpoint::ServerSpec;
use crate::folder::FolderId;
use crate::runtime::WatchNews;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the watches are compared with the accounts.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The first wait after a watch failed; it doubles with each failure in a row.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long an account whose server cannot tell news is polled before its server is asked
/// again (it may have gained IDLE).
const UNSUPPORTED_RETRY: Duration = Duration::from_secs(3600);

/// How an account hears of news, as its view shows it (docs/api.md, "Push").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushView {
    pub state: PushState,
    /// How the server is watched (`IMAP NOTIFY`, `IMAP IDLE`), while it is.
    pub method: Option<String>,
    /// The folders watched, while watching.
    pub folders: Vec<FolderId>,
    /// Seconds between checks of an account that is polled.
    pub check_secs: Option<u64>,
    /// Why the account is polled, or why its watch is starting again.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// A watch is connecting, or waits to connect again after it failed.
    Starting,
    /// The server tells Mailroom of news as it happens.
    Watching,
    /// The account is checked every `check_secs`.
    Polling,
    /// The account does not sync (its `state` says why).
    Off,
}

impl PushView {
    fn new(state: PushState, reason: Option<String>) -> Self {
        Self {
            state,
            method: None,
            folders: Vec::new(),
            check_secs: None,
            reason,
        }
    }
}

/// The running watches, by account.
pub(super) struct Watches {
    config: PushConfig,
    table: Mutex<HashMap<String, Watch>>,
    /// Accounts not watched because their owner is disabled.
    parked: Mutex<HashSet<String>>,
    /// When the next watch may start.
    next_start: Mutex<Instant>,
}

struct Watch {
    key: Key,
    status: Arc<Mutex<PushView>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    /// Ends the watch, closing its connection.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a watch depends on: when it changes, the watch starts over (as it does when the
/// account is re-connected, see [`Watches::forget`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    connector: String,
    /// The folders to watch (paths), the inbox first.
    folders: Vec<String>,
    servers: Vec<ServerSpec>,
    username: Option<String>,
}

impl Key {
    fn of(account: &Account) -> Self {
        let mut active: Vec<_> = account
            .folders
            .iter()
            .filter(|f| f.active && f.selectable)
            .collect();
        active.sort_by_key(|f| super::job::order(f));
        Self {
            connector: account.connector.clone(),
            folders: active.into_iter().map(|f| f.path.clone()).collect(),
            servers: account.servers.clone(),
            username: account.username.clone(),
        }
    }
}

impl Watches {
    pub(super) fn new(config: PushConfig) -> Self {
        Self {
            config,
            table: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashSet::new()),
            next_start: Mutex::new(Instant::now()),
        }
    }

    /// The accounts being watched.
    pub(super) fn accounts(&self) -> Vec<String> {
        let table = self.table.lock().expect("watches poisoned");
        table.keys().cloned().collect()
    }

    /// Ends the account's watch; the supervisor starts another at its next look.
    pub(super) fn forget(&self, account_id: &str) {
        let watch = self
            .table
            .lock()
            .expect("watches poisoned")
            .remove(account_id);
        drop(watch);
    }

    /// Ends every watch.
    pub(super) fn clear(&self) {
        let watches = std::mem::take(&mut *self.table.lock().expect("watches poisoned"));
        drop(watches);
    }

    /// Ends every watch and waits until they are gone (with them, what they hold of the
    /// store and the runtime).
    pub(super) async fn stop(&self) {
        let watches = std::mem::take(&mut *self.table.lock().expect("watches poisoned"));
        for mut watch in watches.into_values() {
            watch.task.abort();
            let _ = (&mut watch.task).await;
        }
    }

    /// Waits for this watch's turn to start.
    async fn pace(&self) {
        let gap = Duration::from_secs(1) / self.config.starts_per_sec.max(1);
        let at = {
            let mut next = self.next_start.lock().expect("watches poisoned");
            let at = (*next).max(Instant::now());
            *next = at + gap;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// An account checked every so often, and why.
fn polled(inner: &Inner, connector: &str, reason: String) -> PushView {
    PushView {
        check_secs: Some(super::check_every(inner, connector).as_secs()),
        ..PushView::new(PushState::Polling, Some(reason))
    }
}

/// How the account hears of news.
pub(super) fn view(inner: &Inner, account: &Account) -> PushView {
    let polled = |reason: String| polled(inner, &account.connector, reason);
    let parked = || {
        inner
            .watches
            .parked
            .lock()
            .expect("watches poisoned")
            .contains(&account.id)
    };
    if !may_sync(account) || parked() {
        return PushView::new(PushState::Off, None);
    }
    if !inner.watches.config.enabled {
        return polled("Push is turned off in the server's configuration".to_owned());
    }
    if !inner.runtime.watches(&account.connector) {
        return polled(format!(
            "The connector `{}` cannot watch folders; the account is checked for news",
            account.connector
        ));
    }
    if !inner.cluster.holds(&account.id) {
        return PushView::new(
            PushState::Starting,
            Some("Another node works this account: its watch is known there".to_owned()),
        );
    }
    match inner
        .watches
        .table
        .lock()
        .expect("watches poisoned")
        .get(&account.id)
    {
        Some(watch) => watch.status.lock().expect("push status poisoned").clone(),
        None if !account.folders.iter().any(|f| f.active && f.selectable) => {
            polled("No folder is active".to_owned())
        }
        None => PushView::new(PushState::Starting, None),
    }
}

/// Keeps a watch running for every account in `accounts` that should have one, and none
/// for the others. Called by the scheduler with the accounts it just read, at most every
/// [`LOOK_EVERY`].
pub(super) async fn reconcile(inner: &Arc<Inner>, accounts: &[Account]) {
    if !inner.watches.config.enabled {
        return;
    }
    let disabled: HashSet<String> = match inner.store.users().await {
        Ok(users) => users
            .into_iter()
            .filter(|u| u.disabled)
            .map(|u| u.id)
            .collect(),
        Err(error) => {
            tracing::error!("cannot read users to watch their accounts: {error}");
            return;
        }
    };
    let mut wanted = HashMap::new();
    let mut parked = HashSet::new();
    for account in accounts {
        if !may_sync(account)
            || !inner.cluster.holds(&account.id)
            || !inner.runtime.watches(&account.connector)
        {
            continue;
        }
        if super::personal_owner(account).is_some_and(|owner| disabled.contains(owner)) {
            parked.insert(account.id.clone());
            continue;
        }
        let key = Key::of(account);
        if !key.folders.is_empty() {
            wanted.insert(account.id.clone(), key);
        }
    }
    *inner.watches.parked.lock().expect("watches poisoned") = parked;
    let mut table = inner.watches.table.lock().expect("watches poisoned");
    table.retain(|id, watch| wanted.get(id) == Some(&watch.key));
    for (id, key) in wanted {
        if table.contains_key(&id) {
            continue;
        }
        let status = Arc::new(Mutex::new(PushView::new(PushState::Starting, None)));
        let task = tokio::spawn(watch_account(
            inner.clone(),
            id.clone(),
            key.clone(),
            status.clone(),
        ));
        table.insert(id, Watch { key, status, task });
    }
}

/// Watches one account until the watch is ended from outside; starts again after failures.
async fn watch_account(
    inner: Arc<Inner>,
    account_id: String,
    key: Key,
    status: Arc<Mutex<PushView>>,
) {
    let set = |view: PushView| *status.lock().expect("push status poisoned") = view;
    // Failures since the watch was last on.
    let mut failures = 0u32;
    loop {
        inner.watches.pace().await;
        let error =
            match watch_once(&inner, &account_id, &key.folders, &status, &mut failures).await {
                Ok(()) => return,
                Err(error) => error,
            };
        let wait = if error.kind == ErrorKind::Unsupported {
            set(polled(&inner, &key.connector, error.message.clone()));
            UNSUPPORTED_RETRY
        } else {
            failures += 1;
            let wait = if error.kind.remedy() == Remedy::Reconnect {
                // The next job meets the refused login too, and stops the account; until
                // then, no further login.
                request(&inner, &account_id);
                Duration::from_secs(inner.watches.config.max_retry_secs.max(1))
            } else {
                crate::clock::backoff(
                    FIRST_RETRY.as_secs_f64(),
                    inner.watches.config.max_retry_secs.max(1) as f64,
                    failures,
                )
            };
            set(PushView::new(
                PushState::Starting,
                Some(format!(
                    "The watch ended ({}); it starts again within {} s",
                    error.message,
                    wait.as_secs().max(1)
                )),
            ));
            wait
        };
        tracing::info!(account = %account_id, failures, "the watch ended: {error}");
        tokio::time::sleep(wait).await;
    }
}

/// One watch, from connecting to its end. What changed while nobody watched is synced as
/// soon as the watch is on, and `failures` start over.
async fn watch_once(
    inner: &Inner,
    account_id: &str,
    folders: &[String],
    status: &Mutex<PushView>,
    failures: &mut u32,
) -> Result<(), ConnectorError> {
    let account = match inner.store.account(account_id).await {
        Ok(Some(account)) if may_sync(&account) => account,
        // The supervisor forgets this watch at its next look.
        Ok(_) => return Ok(()),
        Err(error) => return Err(ConnectorError::new(ErrorKind::Internal, error.to_string())),
    };
    let spec = match super::connection_spec(inner, &account).await {
        Ok((spec, _)) => spec,
        Err(NotReady::Store) => {
            return Err(ConnectorError::new(
                ErrorKind::Internal,
                "the account's secret cannot be read",
            ));
        }
        // The account's next job says so and stops it.
        Err(NotReady::Broken(reason)) => {
            request(inner, account_id);
            return Err(ConnectorError::new(ErrorKind::Internal, reason));
        }
    };
    let (news, mut heard) = mpsc::unbounded_channel();
    let renew = inner.watches.config.renew();
    let watch = inner.runtime.watch(&spec, folders.to_vec(), renew, news);
    tokio::pin!(watch);
    loop {
        tokio::select! {
            ended = &mut watch => return ended,
            Some(news) = heard.recv() => match news {
                WatchNews::Watching(watching) => {
                    *failures = 0;
                    *status.lock().expect("push status poisoned") = PushView {
                        method: Some(watching.method),
                        folders: watching.folders.iter().map(|p| FolderId::for_path(p)).collect(),
                        ..PushView::new(PushState::Watching, None)
                    };
                    watch_came_on(inner, account_id, watching.folders);
                }
                WatchNews::Changed(changed) => {
                    tracing::debug!(account = account_id, ?changed, "news from the server");
                    request_folders(inner, account_id, changed);
                }
            },
        }
    }
}
