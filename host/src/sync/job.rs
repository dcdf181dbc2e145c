//! One sync job's host side: which folders to sync, and committing each page as it arrives.

use super::completeness::{self, Counted, Spacing, Verdict};
use super::outbox::Pusher;
use crate::account::{Account, AccountFolder};
use crate::connector::{ConnectorError, ErrorKind};
use crate::folder::{Folder, FolderId, FolderRole};
use crate::mail::parse::parse;
use crate::mail::work::{Work, WorkDone};
use crate::mail::{SyncPage, SyncStart};
use crate::runtime::{FolderTask, Step, SyncDriver};
use crate::store::mail::{FolderSync, Incoming, PageWrite};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a job did, for the scheduler to set the account's state from.
#[derive(Debug, Default)]
pub struct Report {
    /// Active folders this job was to sync.
    pub planned: usize,
    /// Folders this job brought up to date with the server.
    pub caught_up: usize,
    /// The job synced only some of the active folders (those a watch saw change).
    pub partial: bool,
    /// Whether every active folder has finished its first sync.
    pub all_backfilled: bool,
    /// The job ended on its time budget with more to do.
    pub stopped: bool,
    /// Outbox work waits for what this job synced: run another job right away.
    pub outbox_again: bool,
    /// Folders that failed on their own, and why.
    pub failed: Vec<(String, ConnectorError)>,
    pub messages: usize,
    /// The bytes of the messages fetched.
    pub bytes: u64,
    /// Folders whose server count the job compared with what Mailroom holds, as they ended.
    pub counted: Vec<Counted>,
    /// Folders fetched again because they differed from the server's count.
    pub refetched: u64,
}

/// What the jobs of one scheduler share.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// How long one job may sync before it makes way for others.
    pub budget: Duration,
    /// Set when the server stops.
    pub stopping: Arc<AtomicBool>,
    /// When each folder was last counted, and last synced again for a gap.
    pub counts: Spacing,
    pub refetches: Spacing,
}

pub struct Driver {
    shared: Shared,
    account: Account,
    started: Instant,
    syncs: HashMap<FolderId, FolderSync>,
    report: Arc<Mutex<Report>>,
    /// The commit of the previous page, still running.
    pending: Option<tokio::task::JoinHandle<Result<(), ConnectorError>>>,
    outbox: Pusher,
    /// How many times this job compared each folder's count.
    looks: HashMap<FolderId, u32>,
    /// Folders this job syncs again for a gap: they count as backfilled meanwhile, so the
    /// account does not look as if its first sync were running.
    refetching: std::collections::HashSet<FolderId>,
    scope: Scope,
}

/// What one job looks at.
#[derive(Debug, Default)]
pub struct Scope {
    /// The only folders (paths) to sync, when a watch's news is all the job is for.
    pub only: Option<BTreeSet<String>>,
    /// List the server's folders first (new, renamed and removed folders show).
    pub list: bool,
}

impl Driver {
    pub fn new(
        shared: Shared,
        account: Account,
        syncs: HashMap<FolderId, FolderSync>,
        report: Arc<Mutex<Report>>,
        outbox: Pusher,
        scope: Scope,
    ) -> Self {
        Self {
            shared,
            account,
            started: Instant::now(),
            syncs,
            report,
            pending: None,
            outbox,
            looks: HashMap::new(),
            refetching: Default::default(),
            scope,
        }
    }

    /// Takes the server's listing into the account's folders (stored when they changed).
    async fn reflect(&mut self, listing: Vec<Folder>) -> Result<(), ConnectorError> {
        if reflect_listing(&self.account.folders, &listing) == self.account.folders {
            return Ok(());
        }
        let stored = self
            .shared
            .store
            .modify_account(
                &self.account.id,
                Box::new(move |account| {
                    let folders = reflect_listing(&account.folders, &listing);
                    let changed = folders != account.folders;
                    account.folders = folders;
                    changed
                }),
            )
            .await
            .map_err(store_error)?
            .ok_or_else(|| ConnectorError::new(ErrorKind::NotFound, "the account is gone"))?;
        self.account = stored;
        Ok(())
    }

    /// Waits for the previous page's commit.
    async fn settle(&mut self) -> Result<(), ConnectorError> {
        match self.pending.take() {
            Some(pending) => pending.await.map_err(|e| {
                ConnectorError::new(ErrorKind::Internal, format!("a commit failed: {e}"))
            })?,
            None => Ok(()),
        }
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().expect("sync report poisoned")
    }

    /// Whether every active folder has finished its first sync.
    fn all_backfilled(&self) -> bool {
        self.account
            .folders
            .iter()
            .filter(|f| f.active && f.selectable)
            .all(|f| {
                self.refetching.contains(&f.id)
                    || self.syncs.get(&f.id).is_some_and(|s| s.backfilled)
            })
    }

    /// A folder's sync ended with the server's count: compares it with what the store holds
    /// now, and says what the folder needs next (see [`completeness`]).
    async fn compare(
        &mut self,
        task: &FolderTask,
        folder_id: &FolderId,
        server: u64,
        state: Vec<u8>,
    ) -> Result<Step, ConnectorError> {
        let account = self.account.id.clone();
        let held = self
            .shared
            .store
            .folder_total(&account, folder_id)
            .await
            .map_err(store_error)?;
        let counted = Counted {
            folder: folder_id.clone(),
            path: task.path.clone(),
            server,
            held,
        };
        let looks = self.looks.entry(folder_id.clone()).or_default();
        *looks += 1;
        let refetches = self.shared.refetches.clone();
        // A folder synced from "now" would start its window over: nothing comes again.
        let resyncable = task.start != SyncStart::Now;
        let verdict = completeness::judge(&counted, *looks, || {
            resyncable && refetches.take(&account, folder_id)
        });
        match verdict {
            Verdict::Recheck => return Ok(Step::Next(Some(state))),
            Verdict::Refetch => {
                tracing::warn!(
                    account = %account,
                    folder = %task.path,
                    server,
                    held,
                    "the folder differs from the server's count; fetching it again"
                );
                // The folder starts over; what it holds stays on view meanwhile, and what
                // comes again is filed where it already is.
                self.syncs.remove(folder_id);
                self.refetching.insert(folder_id.clone());
                self.report().refetched += 1;
                return Ok(Step::Next(None));
            }
            Verdict::Complete => self.shared.refetches.forget(&account, folder_id),
            Verdict::Gap => tracing::warn!(
                account = %account,
                folder = %task.path,
                server,
                held,
                "the folder still differs from the server's count"
            ),
        }
        self.report().counted.push(counted);
        Ok(Step::FolderDone)
    }
}

/// Parses a page's messages (off the async threads) and commits the page.
async fn commit(
    store: Arc<dyn Store>,
    mut page: PageWrite,
    messages: Vec<crate::mail::Fetched>,
) -> Result<(), ConnectorError> {
    if !messages.is_empty() {
        page.incoming = tokio::task::spawn_blocking(move || {
            messages
                .into_iter()
                .map(|fetched| Incoming {
                    parsed: fetched.known.is_none().then(|| parse(&fetched.raw)),
                    fetched,
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ConnectorError::new(ErrorKind::Internal, format!("parsing failed: {e}")))?;
    }
    store.commit_page(page).await.map_err(store_error)?;
    Ok(())
}

fn store_error(error: StoreError) -> ConnectorError {
    ConnectorError::new(ErrorKind::Internal, format!("cannot store mail: {error}"))
}

/// The account's folders after a listing: known folders keep their choice, new ones are
/// active when a new account's would be, vanished ones go.
pub fn reflect_listing(known: &[AccountFolder], listing: &[Folder]) -> Vec<AccountFolder> {
    listing
        .iter()
        .map(|folder| {
            let known = known.iter().find(|k| k.id == folder.id);
            let active = known
                .map(|k| k.active && folder.selectable)
                .unwrap_or(folder.default_active);
            AccountFolder {
                server_total: known.and_then(|k| k.server_total).filter(|_| active),
                ..AccountFolder::from_listing(folder.clone(), active)
            }
        })
        .collect()
}

/// Inbox first, then sent, then the rest by name: what a user looks at first arrives first.
pub(super) fn order(folder: &AccountFolder) -> (u8, String) {
    let rank = match folder.role {
        Some(FolderRole::Inbox) => 0,
        Some(FolderRole::Sent) => 1,
        None | Some(FolderRole::Archive) | Some(FolderRole::Drafts) => 2,
        _ => 3,
    };
    (rank, folder.name.clone())
}

#[async_trait]
impl SyncDriver for Driver {
    async fn next_work(&mut self) -> Result<Option<Work>, ConnectorError> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.outbox
            .next_work(&self.account)
            .await
            .map_err(store_error)
    }

    async fn work_done(
        &mut self,
        done: Result<WorkDone, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let result = self.outbox.work_done(&self.account, done).await;
        if self.outbox.again {
            self.report().outbox_again = true;
        }
        result
    }

    fn lists(&self) -> bool {
        self.scope.list
    }

    async fn plan(
        &mut self,
        listing: Option<Vec<Folder>>,
    ) -> Result<Vec<FolderTask>, ConnectorError> {
        if let Some(listing) = listing {
            self.reflect(listing).await?;
        }
        // A folder no longer active (or no longer on the server) leaves the mailbox.
        let stale: Vec<FolderId> = self
            .syncs
            .keys()
            .filter(|id| {
                !self
                    .account
                    .folders
                    .iter()
                    .any(|f| &f.id == *id && f.active)
            })
            .cloned()
            .collect();
        for id in stale {
            self.shared
                .store
                .forget_folder(&self.account.id, &id)
                .await
                .map_err(store_error)?;
            self.syncs.remove(&id);
        }
        let since = time::OffsetDateTime::parse(
            &self.account.sync_from_date,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|at| at.unix_timestamp())
        .ok();
        let mut active: Vec<&AccountFolder> = self
            .account
            .folders
            .iter()
            .filter(|f| f.active && f.selectable)
            .filter(|f| {
                self.scope
                    .only
                    .as_ref()
                    .is_none_or(|only| only.contains(&f.path))
            })
            .collect();
        active.sort_by_key(|f| order(f));
        let tasks: Vec<FolderTask> = active
            .into_iter()
            .map(|folder| {
                let first_sync_from_now =
                    matches!(folder.role, Some(FolderRole::Trash | FolderRole::Spam))
                        || since.is_none()
                        || self.account.sync_from == crate::account::SyncFrom::Now;
                FolderTask {
                    path: folder.path.clone(),
                    // A folder with a gap is counted at every job until it heals.
                    count: folder.server_total.is_some()
                        || self.shared.counts.due(&self.account.id, &folder.id),
                    state: self.syncs.get(&folder.id).and_then(|s| s.state.clone()),
                    start: match since {
                        Some(at) if !first_sync_from_now => SyncStart::Since(at),
                        _ => SyncStart::Now,
                    },
                }
            })
            .collect();
        let all_backfilled = self.all_backfilled();
        let mut report = self.report();
        report.planned = tasks.len();
        report.partial = self.scope.only.is_some();
        report.all_backfilled = all_backfilled;
        Ok(tasks)
    }

    async fn page(&mut self, task: &FolderTask, page: SyncPage) -> Result<Step, ConnectorError> {
        // The previous page is in the store before this one is looked at.
        self.settle().await?;
        let folder_id = FolderId::for_path(&task.path);
        if page.reset {
            self.shared
                .store
                .forget_folder(&self.account.id, &folder_id)
                .await
                .map_err(store_error)?;
            self.syncs.remove(&folder_id);
            return Ok(Step::Next(None));
        }
        // The server stops, or the account was deleted or disabled meanwhile: this page is
        // not written, and the job ends.
        if self.shared.stopping.load(Ordering::Relaxed) {
            self.report().stopped = true;
            return Ok(Step::Stop);
        }
        match self.shared.store.account(&self.account.id).await {
            Ok(Some(account)) if account.enabled => {}
            Ok(_) => {
                self.report().stopped = true;
                return Ok(Step::Stop);
            }
            Err(error) => return Err(store_error(error)),
        }
        // A folder synced again for a gap stays backfilled (in this job and in the next ones
        // until the connector is done), and what it finds is no first sync's.
        let backfilled = self.refetching.contains(&folder_id)
            || self.syncs.get(&folder_id).is_some_and(|s| s.backfilled);
        let initial = !backfilled;
        let count = page.messages.len();
        let bytes: u64 = page.messages.iter().map(|m| m.raw.len() as u64).sum();
        let sync = FolderSync {
            state: Some(page.state.clone()),
            backfilled: page.backfilled || backfilled,
        };
        let unchanged = page.messages.is_empty()
            && page.changed.is_empty()
            && page.removed.is_empty()
            && self.syncs.get(&folder_id) == Some(&sync);
        let commit = (!unchanged).then(|| {
            commit(
                self.shared.store.clone(),
                PageWrite {
                    account_id: self.account.id.clone(),
                    folder_id: folder_id.clone(),
                    initial,
                    incoming: Vec::new(),
                    changed: page.changed,
                    removed: page.removed,
                    sync: Some(sync.clone()),
                },
                page.messages,
            )
        });
        self.syncs.insert(folder_id.clone(), sync);
        let all_backfilled = self.all_backfilled();
        let step = {
            let mut report = self.report();
            report.messages += count;
            report.bytes += bytes;
            report.all_backfilled = all_backfilled;
            if !page.more {
                Step::FolderDone
            } else if self.started.elapsed() >= self.shared.budget {
                report.stopped = true;
                Step::Stop
            } else {
                Step::Next(Some(page.state.clone()))
            }
        };
        if let Some(commit) = commit {
            if matches!(step, Step::Next(_)) {
                // Parsed and committed while the connector fetches the next page.
                self.pending = Some(tokio::spawn(commit));
            } else {
                commit.await?;
            }
        }
        // A count is taken where the contract puts it (the page that ends a first sync or a
        // later one), and only when asked for: counting is spaced by the host.
        let server_count = page.server_count.filter(|_| task.count && page.backfilled);
        let step = match (step, server_count) {
            (Step::FolderDone, Some(server)) => {
                self.compare(task, &folder_id, server, page.state).await?
            }
            (step, _) => step,
        };
        if matches!(step, Step::FolderDone) {
            self.report().caught_up += 1;
            if task.count {
                // Counted or not (a connector or server that cannot), asked is asked.
                self.shared.counts.done(&self.account.id, &folder_id);
            }
        }
        Ok(step)
    }

    async fn folder_failed(&mut self, task: &FolderTask, error: &ConnectorError) -> bool {
        if let Err(commit_error) = self.settle().await {
            tracing::error!(account = %self.account.id, "{commit_error}");
            return false;
        }
        let folder_only = matches!(error.kind, ErrorKind::NotFound | ErrorKind::Protocol);
        if folder_only {
            tracing::warn!(account = %self.account.id, folder = %task.path, "folder sync failed: {error}");
            self.report()
                .failed
                .push((task.path.clone(), error.clone()));
        }
        folder_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_keeps_choices_adds_new_folders_and_drops_vanished_ones() {
        let inbox = Folder::new(
            "INBOX".into(),
            "INBOX".into(),
            Some(FolderRole::Inbox),
            true,
        );
        let old = Folder::new("Old".into(), "Old".into(), None, true);
        let new = Folder::new("New".into(), "New".into(), None, true);
        let trash = Folder::new(
            "Trash".into(),
            "Trash".into(),
            Some(FolderRole::Trash),
            true,
        );
        let known = vec![
            AccountFolder::from_listing(inbox.clone(), false),
            AccountFolder::from_listing(old, true),
        ];
        let folders = reflect_listing(&known, &[inbox, new, trash]);
        let active: Vec<(&str, bool)> = folders
            .iter()
            .map(|f| (f.path.as_str(), f.active))
            .collect();
        assert_eq!(
            active,
            vec![("INBOX", false), ("New", true), ("Trash", false)]
        );
    }
}
