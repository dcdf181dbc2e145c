//! The scheduler: every active account syncs on an interval and on request, one job per
//! account at a time, under the runtime's global bound on concurrent jobs, with backoff
//! after transient failures. A login the server refuses stops the account (`auth_required`)
//! until someone re-connects it: no further login is tried.

mod completeness;
mod job;
mod outbox;
mod push;

pub use job::reflect_listing;
use outbox::Pusher;
pub use push::{PushState, PushView};

use crate::account::{Account, AccountState};
use crate::cluster::Cluster;
use crate::config::{PushConfig, SyncConfig};
use crate::connector::{AuthKind, ConnectorError, ErrorKind, Remedy};
use crate::folder::FolderId;
use crate::mail::PageLimits;
use crate::mail::held_ranges;
use crate::metrics::Metrics;
use crate::oauth::Oauth;
use crate::runtime::{HeldIdsLookup, HeldLookup, KnownLookup, Lookups, Runtime};
use crate::store::Store;
use crate::store::leases::SyncRequest;
use crate::vault::Vault;
use completeness::Spacing;
use job::{Driver, Report, Scope, Shared};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How often the scheduler looks for due accounts when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slot {
    running: bool,
    /// A sync was requested; runs as soon as no job of the account is running.
    requested: bool,
    /// The folders (paths) a watch saw change, when only watches asked for the requested
    /// job: it syncs just those. Any other reason for a job makes it sync every folder.
    only: Option<BTreeSet<String>>,
    /// The running job is part of the account's first sync.
    first_sync: bool,
    /// When a job last listed the account's folders.
    last_listed: Option<Instant>,
    /// Someone asked for a sync that lists the folders (through the API).
    list_asked: bool,
    last_start: Option<Instant>,
    not_before: Option<Instant>,
    /// Someone asked for a job since the last one started: the API, or a watch that just
    /// found the server answering (a server that restarted cut off the job and the watch
    /// alike). A failure before it is not waited out.
    skip_backoff: bool,
    failures: u32,
    /// The time given to the latest request and to the latest job's start, in Unix
    /// milliseconds: a job reports its start as `last_sync_at`, a request answers
    /// `requested_at`, and a job serves a request exactly when its start is at or after it.
    last_request_ms: i64,
    last_spawn_ms: i64,
    /// The owner of a personal account, whose running jobs are bounded together.
    owner: Option<String>,
    /// The connector of the running job, for the metrics.
    connector: String,
}

struct Inner {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    vault: Arc<Vault>,
    oauth: Arc<Oauth>,
    config: SyncConfig,
    metrics: Arc<Metrics>,
    /// Jobs of one owner's personal accounts running at once.
    max_jobs_per_owner: usize,
    /// Jobs of first syncs running at once: the rest of the runtime's slots stay free for
    /// the news of accounts already synced, however many first syncs wait.
    max_first_syncs: usize,
    /// How often accounts of these connectors are synced, when more often than every
    /// `config.interval_secs` (`[push] check_secs`).
    checks: BTreeMap<String, Duration>,
    /// The accounts' watches.
    watches: push::Watches,
    /// Which accounts this node works.
    cluster: Arc<Cluster>,
    on_events: Box<dyn Fn() + Send + Sync>,
    slots: Mutex<HashMap<String, Slot>>,
    wake: Notify,
    /// Set when the server stops: running jobs end after their current page.
    stopping: Arc<AtomicBool>,
    jobs: Mutex<JoinSet<()>>,
    /// What every job is given.
    shared: Shared,
}

pub struct Scheduler {
    inner: Arc<Inner>,
    /// The loop that starts jobs and watches; taken when stopping.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the scheduler is told besides its services.
pub struct Settings {
    pub sync: SyncConfig,
    pub push: PushConfig,
    /// The runtime's bound on jobs running at once (`[sandbox] max_concurrent_jobs`).
    pub max_jobs: usize,
    /// The bound on one owner's personal accounts' jobs (`[sandbox] max_jobs_per_owner`).
    pub max_jobs_per_owner: usize,
    /// Called when a job ended that may have recorded events (the webhook deliverer's
    /// wake-up, so news goes out at once).
    pub on_events: Box<dyn Fn() + Send + Sync>,
    /// This node among those sharing the store: jobs and watches run for the accounts it
    /// holds.
    pub cluster: Arc<Cluster>,
}

/// How long stopping waits for running jobs to reach the end of a page.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Scheduler {
    pub fn start(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        vault: Arc<Vault>,
        oauth: Arc<Oauth>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let Settings {
            sync: config,
            push,
            max_jobs,
            max_jobs_per_owner,
            on_events,
            cluster,
        } = settings;
        let max_jobs = max_jobs.max(1);
        let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            store: store.clone(),
            budget: Duration::from_secs(config.job_budget_secs.max(1)),
            stopping: stopping.clone(),
            counts: Spacing::new(minutes(config.count_every_mins)),
            refetches: Spacing::new(minutes(config.gap_refetch_mins)),
        };
        let inner = Arc::new(Inner {
            store,
            runtime,
            vault,
            oauth,
            config,
            metrics,
            max_jobs_per_owner: max_jobs_per_owner.max(1),
            // A quarter of the slots is kept for accounts already synced (none of fewer
            // than four: the first sync of a new account must not wait behind a few).
            max_first_syncs: max_jobs - max_jobs / 4,
            checks: push
                .check_secs
                .iter()
                .map(|(connector, secs)| (connector.clone(), Duration::from_secs((*secs).max(1))))
                .collect(),
            watches: push::Watches::new(push),
            cluster: cluster.clone(),
            on_events,
            slots: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stopping,
            jobs: Mutex::new(JoinSet::new()),
            shared,
        });
        // The leases of accounts with a job or a watch under way are kept until they end.
        let busy = Arc::downgrade(&inner);
        cluster.set_busy(Box::new(move || {
            let Some(inner) = busy.upgrade() else {
                return HashSet::new();
            };
            let mut busy: HashSet<String> = inner
                .slots
                .lock()
                .expect("scheduler poisoned")
                .iter()
                .filter(|(_, slot)| slot.running)
                .map(|(id, _)| id.clone())
                .collect();
            busy.extend(inner.watches.accounts());
            busy
        }));
        let task = tokio::spawn(run(inner.clone()));
        Self {
            inner,
            task: Mutex::new(Some(task)),
        }
    }

    /// Asks for a sync of the account: at once when none runs, else right after the running
    /// one (however many requests arrive meanwhile, one more job). Returns the request's
    /// time (RFC 3339, milliseconds): the job that serves it reports a `last_sync_at` at or
    /// after it, and a job that started before the request reports an earlier one, even
    /// within the same millisecond.
    ///
    /// An account another node holds is asked for through the store: its node syncs it at
    /// its next look (within a second).
    pub fn request(&self, account_id: &str) -> String {
        if self.inner.cluster.holds(account_id) {
            return request(&self.inner, account_id);
        }
        let at = crate::clock::now_millis();
        self.ask_holder(
            account_id,
            SyncRequest {
                at_ms: at,
                reconnected: false,
            },
        );
        crate::clock::rfc3339_millis(at)
    }

    /// A new account: its first sync starts now, on the node that takes it at the lease
    /// renewal this asks for (a new account is nobody's until a node renews).
    pub fn added(&self, account_id: &str) {
        self.inner.cluster.renew_soon();
        self.request(account_id);
    }

    /// Leaves a request in the store for the node that holds the account.
    fn ask_holder(&self, account_id: &str, request: SyncRequest) {
        let (store, id) = (self.inner.store.clone(), account_id.to_owned());
        tokio::spawn(async move {
            if let Err(error) = store.request_sync(&id, request).await {
                tracing::error!(account = %id, "cannot pass a sync request on: {error}");
            }
        });
    }

    /// How the account hears of news (the account's view, `push`).
    pub fn push(&self, account: &Account) -> PushView {
        push::view(&self.inner, account)
    }

    /// The account was re-connected: its watch starts over with the new credentials.
    pub fn reconnected(&self, account_id: &str) {
        if self.inner.cluster.holds(account_id) {
            self.inner.watches.forget(account_id);
        } else {
            let at_ms = crate::clock::now_millis();
            self.ask_holder(
                account_id,
                SyncRequest {
                    at_ms,
                    reconnected: true,
                },
            );
        }
    }

    /// Stops starting jobs and lets running ones end after their current page (each page
    /// is committed whole); a job still busy after a grace period is cut off, which loses
    /// nothing committed.
    pub async fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        let task = self.task.lock().expect("scheduler poisoned").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.inner.watches.stop().await;
        let mut jobs = std::mem::take(&mut *self.inner.jobs.lock().expect("scheduler poisoned"));
        let drained = tokio::time::timeout(STOP_GRACE, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            jobs.shutdown().await;
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("scheduler poisoned").take() {
            task.abort();
        }
        self.inner.watches.clear();
    }
}

/// Takes the requests other nodes left for the accounts this node holds.
async fn take_requests(inner: &Inner) {
    let waiting = match inner.store.sync_requests().await {
        Ok(waiting) => waiting,
        Err(error) => {
            tracing::error!("cannot read the sync requests of other nodes: {error}");
            return;
        }
    };
    let mine: Vec<(String, SyncRequest)> = waiting
        .into_iter()
        .filter(|(id, _)| inner.cluster.holds(id))
        .collect();
    if mine.is_empty() {
        return;
    }
    if let Err(error) = inner.store.take_sync_requests(mine.clone()).await {
        tracing::error!("cannot take the sync requests of other nodes: {error}");
        return;
    }
    for (id, asked) in mine {
        if asked.reconnected {
            inner.watches.forget(&id);
        }
        // A job that started since the request was made serves it.
        let served = inner
            .slots
            .lock()
            .expect("scheduler poisoned")
            .get(&id)
            .is_some_and(|slot| slot.last_spawn_ms >= asked.at_ms);
        if !served {
            request_at(inner, &id, asked.at_ms);
        }
    }
}

/// See [`Scheduler::request`].
fn request(inner: &Inner, account_id: &str) -> String {
    request_at(inner, account_id, 0)
}

/// A request made at `at_ms` (or now, when later): the job that serves it reports a
/// `last_sync_at` at or after it.
fn request_at(inner: &Inner, account_id: &str, at_ms: i64) -> String {
    let mut slots = inner.slots.lock().expect("scheduler poisoned");
    let slot = slots.entry(account_id.to_owned()).or_default();
    let at = crate::clock::now_millis()
        .max(slot.last_spawn_ms + 1)
        .max(at_ms);
    slot.last_request_ms = slot.last_request_ms.max(at);
    slot.requested = true;
    slot.only = None;
    slot.list_asked = true;
    slot.skip_backoff = true;
    drop(slots);
    inner.wake.notify_one();
    crate::clock::rfc3339_millis(at)
}

/// Asks for a sync of these folders (paths) of the account, which a watch saw change: at
/// once, or right after the running job. Unless something else asks for a sync of the whole
/// account meanwhile, the job syncs only the folders watches named.
fn request_folders(inner: &Inner, account_id: &str, folders: Vec<String>) {
    let mut slots = inner.slots.lock().expect("scheduler poisoned");
    let slot = slots.entry(account_id.to_owned()).or_default();
    if !slot.requested {
        slot.requested = true;
        slot.only = Some(BTreeSet::new());
    }
    if let Some(only) = &mut slot.only {
        only.extend(folders);
    }
    drop(slots);
    inner.wake.notify_one();
}

/// A watch of the account came on: syncs the folders it watches at once (what arrived while
/// nobody watched), without waiting out the backoff of a job that failed before.
fn watch_came_on(inner: &Inner, account_id: &str, folders: Vec<String>) {
    let mut slots = inner.slots.lock().expect("scheduler poisoned");
    slots.entry(account_id.to_owned()).or_default().skip_backoff = true;
    drop(slots);
    request_folders(inner, account_id, folders);
}

/// How often an account of `connector` is synced when nothing asks: the interval, or the
/// connector's shorter check (`[push] check_secs`).
fn check_every(inner: &Inner, connector: &str) -> Duration {
    let interval = Duration::from_secs(inner.config.interval_secs.max(1));
    inner
        .checks
        .get(connector)
        .map_or(interval, |check| interval.min(*check))
}

fn may_sync(account: &Account) -> bool {
    account.enabled
        && !matches!(
            account.state,
            AccountState::AuthRequired | AccountState::Disabled
        )
}

/// The user whose personal account this is: their accounts' jobs are bounded together, and
/// do not run while the user is disabled.
fn personal_owner(account: &Account) -> Option<&str> {
    (account.kind == crate::account::AccountKind::Personal).then_some(account.owner_id.as_str())
}

async fn run(inner: Arc<Inner>) {
    let list_every = Duration::from_secs(inner.config.list_every_secs);
    let mut watches_looked: Option<Instant> = None;
    let mut requests_looked: Option<Instant> = None;
    loop {
        // Other nodes' requests are looked for once a tick, however often the loop wakes.
        if requests_looked.is_none_or(|at| at.elapsed() >= TICK) {
            requests_looked = Some(Instant::now());
            take_requests(&inner).await;
        }
        match inner.store.accounts().await {
            Ok(accounts) => {
                // The watches follow the accounts, on the same reading of them.
                if watches_looked.is_none_or(|at| at.elapsed() >= push::LOOK_EVERY) {
                    watches_looked = Some(Instant::now());
                    push::reconcile(&inner, &accounts).await;
                }
                let now = Instant::now();
                let mut slots = inner.slots.lock().expect("scheduler poisoned");
                slots.retain(|id, slot| slot.running || accounts.iter().any(|a| &a.id == id));
                let mut running: HashMap<String, usize> = HashMap::new();
                for owner in slots
                    .values()
                    .filter(|s| s.running)
                    .filter_map(|s| s.owner.clone())
                {
                    *running.entry(owner).or_default() += 1;
                }
                let mut first_syncs = slots.values().filter(|s| s.running && s.first_sync).count();
                let held = accounts
                    .into_iter()
                    .filter(|a| may_sync(a) && inner.cluster.holds(&a.id));
                for account in held {
                    let owner = personal_owner(&account).map(str::to_owned);
                    let every = check_every(&inner, &account.connector);
                    let slot = slots.entry(account.id.clone()).or_default();
                    // A failed job is tried again when its backoff ends, before the
                    // interval if that is sooner.
                    let waiting = !slot.skip_backoff && slot.not_before.is_some_and(|at| now < at);
                    let scheduled =
                        slot.failures > 0 || slot.last_start.is_none_or(|at| now >= at + every);
                    if slot.running || !(slot.requested || scheduled) || waiting {
                        continue;
                    }
                    let first_sync = matches!(
                        account.state,
                        AccountState::Connecting | AccountState::Syncing
                    );
                    if first_sync && first_syncs >= inner.max_first_syncs {
                        continue;
                    }
                    if let Some(owner) = &owner {
                        let count = running.entry(owner.clone()).or_default();
                        if *count >= inner.max_jobs_per_owner {
                            continue;
                        }
                        *count += 1;
                    }
                    first_syncs += usize::from(first_sync);
                    slot.first_sync = first_sync;
                    slot.owner = owner;
                    slot.connector = account.connector.clone();
                    let mut started_ms = crate::clock::now_millis();
                    if slot.requested {
                        started_ms = started_ms.max(slot.last_request_ms);
                    }
                    // A sync asked for through the API lists the folders, as does a job
                    // when the last listing is old; one that watches alone asked for
                    // syncs just their folders.
                    let only = slot.only.take().filter(|_| !scheduled);
                    let list = only.is_none()
                        && (slot.list_asked
                            || slot.last_listed.is_none_or(|at| now >= at + list_every));
                    slot.list_asked = false;
                    if list {
                        slot.last_listed = Some(now);
                    }
                    slot.running = true;
                    slot.requested = false;
                    slot.not_before = None;
                    slot.skip_backoff = false;
                    // A job for watches' news does not put off the next sync of everything.
                    if only.is_none() {
                        slot.last_start = Some(now);
                    }
                    slot.last_spawn_ms = started_ms;
                    let started_at = crate::clock::rfc3339_millis(started_ms);
                    let mut jobs = inner.jobs.lock().expect("scheduler poisoned");
                    while jobs.try_join_next().is_some() {}
                    // Everything logged in the job, the connector's lines included,
                    // names the account.
                    let span = tracing::info_span!(
                        "job",
                        account = %account.id,
                        connector = %account.connector,
                        kind = "sync"
                    );
                    let scope = Scope { only, list };
                    jobs.spawn(job(inner.clone(), account.id, started_at, scope).instrument(span));
                }
            }
            Err(error) => tracing::error!("the scheduler cannot read accounts: {error}"),
        }
        // Sleeps until the next tick, or the end of a backoff due before it.
        let now = Instant::now();
        let until = inner
            .slots
            .lock()
            .expect("scheduler poisoned")
            .values()
            .filter(|s| !s.running)
            .filter_map(|s| s.not_before)
            .filter(|at| *at > now)
            .map(|at| at - now)
            .fold(TICK, Duration::min);
        let _ = tokio::time::timeout(until, inner.wake.notified()).await;
    }
}

/// Runs one job and records its outcome on the account.
async fn job(inner: Arc<Inner>, account_id: String, started_at: String, scope: Scope) {
    let started = Instant::now();
    let outcome = sync_account(&inner, &account_id, started_at, scope).await;
    let mut slots = inner.slots.lock().expect("scheduler poisoned");
    if let Some(slot) = slots.get_mut(&account_id) {
        slot.running = false;
        let result = match outcome {
            Outcome::Done { .. } => "ok",
            Outcome::Retry { .. } => "failed",
            Outcome::Stopped => "stopped",
        };
        inner
            .metrics
            .sync_job(&slot.connector, result, started.elapsed());
        match outcome {
            Outcome::Done { more } => {
                slot.failures = 0;
                // What is left to do is the whole account's, whatever a watch asked for
                // meanwhile.
                if more {
                    slot.requested = true;
                    slot.only = None;
                }
                (inner.on_events)();
            }
            Outcome::Retry { after } => {
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + after);
            }
            Outcome::Stopped => {}
        }
    }
    drop(slots);
    inner.wake.notify_one();
}

/// The wait after the `failures`-th failure in a row (`sync.first_retry_secs` doubling up
/// to `max_retry_secs`).
fn backoff(config: &SyncConfig, failures: u32) -> Duration {
    crate::clock::backoff(
        config.first_retry_secs.max(1) as f64,
        config.max_retry_secs.max(1) as f64,
        failures,
    )
}

enum Outcome {
    /// The job ran; `more` when it ended on its time budget with more to do, or left
    /// outbox work for right after it.
    Done { more: bool },
    /// A failure: try again after this wait.
    Retry { after: Duration },
    /// The account cannot sync until someone acts (or it is gone).
    Stopped,
}

/// One job; `started_at` is what it reports as `last_sync_at` when it catches up. A job
/// for some folders only (`scope.only`) reports no `last_sync_at`.
async fn sync_account(
    inner: &Inner,
    account_id: &str,
    started_at: String,
    scope: Scope,
) -> Outcome {
    let started = Instant::now();
    let account = match inner.store.account(account_id).await {
        Ok(Some(account)) if may_sync(&account) => account,
        Ok(_) => return Outcome::Stopped,
        Err(error) => {
            tracing::error!(account = account_id, "cannot read the account: {error}");
            return Outcome::Retry {
                after: backoff(&inner.config, 1),
            };
        }
    };
    if let Some(owner) = personal_owner(&account) {
        match inner.store.user(owner).await {
            Ok(Some(user)) if !user.disabled => {}
            // A disabled (or deleted) owner's personal account waits for them.
            Ok(_) => return Outcome::Stopped,
            Err(error) => {
                tracing::error!(account = account_id, "cannot read the owner: {error}");
                return Outcome::Retry {
                    after: backoff(&inner.config, 1),
                };
            }
        }
    }
    let files_sent = inner
        .runtime
        .connector(&account.connector)
        .is_some_and(|c| c.info.files_sent);
    let (spec, oauth) = match connection_spec(inner, &account).await {
        Ok(ready) => ready,
        Err(NotReady::Store) => {
            return Outcome::Retry {
                after: backoff(&inner.config, 1),
            };
        }
        Err(NotReady::Broken(reason)) => {
            set_state(inner, account_id, AccountState::Error, Some(reason), None).await;
            return Outcome::Stopped;
        }
    };
    if account.state == AccountState::Connecting {
        set_state(inner, account_id, AccountState::Syncing, None, None).await;
    }
    let syncs = match inner.store.folder_syncs(account_id).await {
        Ok(syncs) => syncs,
        Err(error) => {
            tracing::error!(account = account_id, "cannot read folder states: {error}");
            return Outcome::Retry {
                after: backoff(&inner.config, 1),
            };
        }
    };
    let report = Arc::new(Mutex::new(Report::default()));
    let driver = Driver::new(
        inner.shared.clone(),
        account.clone(),
        syncs,
        report.clone(),
        Pusher::new(inner.store.clone(), files_sent, inner.metrics.clone()),
        scope,
    );
    let lookups = Lookups {
        held: held_lookup(inner.store.clone(), account_id.to_owned()),
        known: known_lookup(inner.store.clone(), account_id.to_owned()),
        held_ids: held_ids_lookup(inner.store.clone(), account_id.to_owned()),
    };
    let limits = PageLimits {
        max_messages: inner.config.page_messages.max(1),
        max_bytes: (inner.config.page_kib.max(1)) * 1024,
    };
    let result = inner
        .runtime
        .sync(account_id, &spec, lookups, limits, driver)
        .await;
    let report = std::mem::take(&mut *report.lock().expect("sync report poisoned"));
    inner
        .metrics
        .ingested(&account.connector, report.messages as u64, report.bytes);
    inner
        .metrics
        .gap_refetched(&account.connector, report.refetched);
    match result {
        Ok(()) => {
            let complete = !report.partial
                && !report.stopped
                && report.failed.is_empty()
                && report.caught_up == report.planned;
            // Messages a reset or a vanished folder left in no folder are deleted only once
            // every folder caught up: one that failed may still hold them.
            if complete && let Err(error) = inner.store.finish_job(account_id).await {
                tracing::error!(account = account_id, "cannot finish the job: {error}");
            }
            let state = if report.all_backfilled {
                AccountState::Active
            } else {
                AccountState::Syncing
            };
            let failed = report
                .failed
                .first()
                .map(|(folder, error)| format!("folder {folder}: {}", error.message));
            let counted = report.counted;
            let partial = report.partial;
            update(inner, account_id, true, move |account| {
                let mut changed = false;
                if complete {
                    account.last_sync_at = Some(started_at.clone());
                    account.last_sync_duration_ms = Some(started.elapsed().as_millis() as u64);
                    changed = true;
                }
                // Only a count opens or heals a gap; a folder not counted keeps what it had.
                for count in &counted {
                    let total = (!count.complete()).then_some(count.server);
                    if let Some(folder) = account.folders.iter_mut().find(|f| f.id == count.folder)
                        && folder.server_total != total
                    {
                        folder.server_total = total;
                        changed = true;
                    }
                }
                let gaps: Vec<&str> = account
                    .folders
                    .iter()
                    .filter(|f| f.server_total.is_some())
                    .map(|f| f.path.as_str())
                    .collect();
                // A job for a watch's news speaks for its folders only: the reason of a
                // healthy account stays what the last whole job found.
                let kept = partial && failed.is_none() && account.state != AccountState::Error;
                let reason = if kept {
                    account.state_reason.clone()
                } else {
                    failed.clone().or_else(|| completeness::reason(&gaps))
                };
                let before = (account.state, account.state_reason.clone());
                account.set_state(state, reason);
                changed |= account.next_retry_at.take().is_some();
                changed || before != (account.state, account.state_reason.clone())
            })
            .await;
            tracing::debug!(
                account = account_id,
                messages = report.messages,
                "sync job done"
            );
            Outcome::Done {
                more: report.stopped || report.outbox_again,
            }
        }
        Err(error) => failed(inner, &account, error, oauth).await,
    }
}

/// Why an account's connection cannot be made ready.
enum NotReady {
    /// The store could not be read: try again later.
    Store,
    /// Someone must act: the account shows `error` with this reason.
    Broken(String),
}

/// How to reach and log in to the account: its servers with its password, or for an OAuth
/// account (whose secret is its grant, which the host alone uses, see `oauth`) a bearer;
/// and whether it is an OAuth account.
async fn connection_spec(
    inner: &Inner,
    account: &Account,
) -> Result<(crate::account::ConnectionSpec, bool), NotReady> {
    let account_id = account.id.as_str();
    let oauth = inner
        .runtime
        .connector(&account.connector)
        .is_some_and(|c| c.info.auth == AuthKind::Oauth2);
    let password = match inner.store.account_secret(account_id).await {
        Ok(_) if oauth => None,
        Ok(Some(sealed)) => match inner.vault.open(account_id, &sealed) {
            Ok(secret) => Some(secret),
            Err(error) => {
                return Err(NotReady::Broken(format!(
                    "The stored password cannot be read ({error}); re-connect the account"
                )));
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::error!(account = account_id, "cannot read the secret: {error}");
            return Err(NotReady::Store);
        }
    };
    let mut spec = account.connection(password);
    if oauth {
        let Some(bearer) = inner.oauth.bearer(account_id, &account.connector) else {
            return Err(NotReady::Broken(format!(
                "No OAuth client is configured for `{}`: the server's configuration needs [oauth.{}]",
                account.connector, account.connector
            )));
        };
        spec.bearer = Some(bearer);
        spec.api_url = inner.oauth.provider(&account.connector).map(|p| p.api_url);
    }
    Ok((spec, oauth))
}

async fn failed(inner: &Inner, account: &Account, error: ConnectorError, oauth: bool) -> Outcome {
    let account_id = account.id.as_str();
    let host = error
        .server
        .as_deref()
        .and_then(|role| account.servers.iter().find(|s| s.role == role))
        .map(|s| s.host.as_str());
    let failures = {
        let slots = inner.slots.lock().expect("scheduler poisoned");
        slots.get(account_id).map_or(0, |s| s.failures) + 1
    };
    match error.kind.remedy() {
        Remedy::Reconnect => {
            // An account waiting to be re-connected holds no connection.
            inner.runtime.kept().forget(account_id);
            let server = match (error.server.as_deref(), host) {
                (Some(role), Some(host)) => format!("{role} server {host}"),
                (Some(role), None) => format!("{role} server"),
                (None, _) => "mail server".to_owned(),
            };
            let reason = if oauth {
                format!(
                    "The provider refused the account's credentials ({}); sign in again to re-connect the account",
                    error.message
                )
            } else {
                format!(
                    "The {server} refused the login ({}); re-connect the account with the current password",
                    error.message
                )
            };
            set_state(
                inner,
                account_id,
                AccountState::AuthRequired,
                Some(reason),
                None,
            )
            .await;
            Outcome::Stopped
        }
        Remedy::GiveUp => {
            let after = Duration::from_secs(inner.config.max_retry_secs.max(1));
            let (next, at) = next_try(after);
            let reason = format!("{}; next try at {at}", error.explain(host));
            set_state(
                inner,
                account_id,
                AccountState::Error,
                Some(reason),
                Some(next),
            )
            .await;
            Outcome::Retry { after }
        }
        Remedy::Later | Remedy::Retry => {
            tracing::warn!(account = account_id, failures, "sync failed: {error}");
            let after = error
                .retry_after_secs
                .map(|s| Duration::from_secs(s.into()))
                .unwrap_or_else(|| backoff(&inner.config, failures));
            let (next, at) = next_try(after);
            // A connector that trapped (its CPU or memory cap, a bug) says so at once; the
            // job is still tried again, in case the cause was the mail of the moment.
            if failures >= inner.config.error_after_failures.max(1)
                || error.kind == ErrorKind::Connector
            {
                let attempts = if failures == 1 {
                    "1 attempt".to_owned()
                } else {
                    format!("{failures} attempts in a row")
                };
                let reason = format!("{} after {attempts}; next try at {at}", error.explain(host));
                set_state(
                    inner,
                    account_id,
                    AccountState::Error,
                    Some(reason),
                    Some(next),
                )
                .await;
            } else {
                update(inner, account_id, false, move |account| {
                    account.next_retry_at = Some(next);
                    true
                })
                .await;
            }
            Outcome::Retry { after }
        }
    }
}

/// When a job `after` from now runs: RFC 3339 for the account, and the time of day (UTC)
/// for a person reading the reason.
fn next_try(after: Duration) -> (String, String) {
    let at = time::OffsetDateTime::now_utc() + after;
    let clock = format!("{:02}:{:02}:{:02} UTC", at.hour(), at.minute(), at.second());
    (crate::clock::rfc3339(at), clock)
}

/// Changes the account's state (and when the next job runs) unless a user disabled it
/// meanwhile; emits `account.state_changed` when the state moved.
async fn set_state(
    inner: &Inner,
    account_id: &str,
    state: AccountState,
    reason: Option<String>,
    next_retry_at: Option<String>,
) {
    update(inner, account_id, false, move |account| {
        let before = (
            account.state,
            account.state_reason.clone(),
            account.next_retry_at.clone(),
        );
        account.set_state(state, reason);
        account.next_retry_at = next_retry_at;
        before
            != (
                account.state,
                account.state_reason.clone(),
                account.next_retry_at.clone(),
            )
    })
    .await;
}

/// Changes the account with `change` (which says whether it changed anything) unless a user
/// disabled it meanwhile; emits `account.state_changed` when its state moved, or when its
/// reason did and `reason_counts`.
async fn update(
    inner: &Inner,
    account_id: &str,
    reason_counts: bool,
    change: impl FnOnce(&mut Account) -> bool + Send + 'static,
) {
    let before = Arc::new(Mutex::new(None));
    let seen = before.clone();
    let result = inner
        .store
        .modify_account(
            account_id,
            Box::new(move |account| {
                *seen.lock().expect("poisoned") =
                    Some((account.state, account.state_reason.clone()));
                // A user's choice (disabled) wins over what a job found.
                if !account.enabled || account.state == AccountState::Disabled {
                    return false;
                }
                change(account)
            }),
        )
        .await;
    match result {
        Ok(Some(account)) => {
            let previous = before.lock().expect("poisoned").take();
            let moved = previous.is_none_or(|(state, reason)| {
                state != account.state || (reason_counts && reason != account.state_reason)
            });
            if moved {
                let (kind, data) = account.state_changed_event();
                if let Err(error) = inner.store.push_event(kind, data).await {
                    tracing::error!("cannot record an event: {error}");
                }
            }
        }
        Ok(None) => {}
        Err(error) => tracing::error!(account = account_id, "cannot update the account: {error}"),
    }
}

fn held_lookup(store: Arc<dyn Store>, account_id: String) -> HeldLookup {
    Arc::new(move |path: String| {
        let store = store.clone();
        let account_id = account_id.clone();
        Box::pin(async move {
            match store.held(&account_id, &FolderId::for_path(&path)).await {
                Ok(held) => held_ranges(held),
                Err(error) => {
                    tracing::error!(account = %account_id, "cannot read held messages: {error}");
                    Vec::new()
                }
            }
        })
    })
}

fn known_lookup(store: Arc<dyn Store>, account_id: String) -> KnownLookup {
    Arc::new(move |probes: Vec<(String, u64)>| {
        let store = store.clone();
        let account_id = account_id.clone();
        Box::pin(async move {
            let count = probes.len();
            held_or_not(&account_id, count, store.known(&account_id, probes).await)
        })
    })
}

fn held_ids_lookup(store: Arc<dyn Store>, account_id: String) -> HeldIdsLookup {
    Arc::new(move |ids: Vec<String>| {
        let store = store.clone();
        let account_id = account_id.clone();
        Box::pin(async move {
            let count = ids.len();
            held_or_not(&account_id, count, store.held_ids(&account_id, ids).await)
        })
    })
}

/// The store's answer to "does the host hold these?", or "no" to all when it cannot say:
/// answering "not held" only costs a download.
fn held_or_not(
    account_id: &str,
    count: usize,
    answer: Result<Vec<bool>, crate::store::StoreError>,
) -> Vec<bool> {
    answer.unwrap_or_else(|error| {
        tracing::error!(account = %account_id, "cannot look up held messages: {error}");
        vec![false; count]
    })
}
