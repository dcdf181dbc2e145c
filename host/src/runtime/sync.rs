//! Running a sync job: one connector instance for one account. First the outbox's work,
//! then folder after folder, page after page, each page handed to a [`SyncDriver`] that
//! commits it before the next is asked for.

use super::bindings::v0_2_0::mailroom::connector0_2_0::mail as wit;
use super::sandbox::{JobAccount, JobState};
use super::session::{Session, Work, WorkDone};
use super::{Instance, Runtime, account_record, job_account};
use crate::account::ConnectionSpec;
use crate::connector::{ConnectorError, ErrorKind};
use crate::folder::Folder;
use crate::mail::{Fetched, Flags, HeldRange, SyncPage, SyncStart};
use async_trait::async_trait;
use std::sync::Arc;
use wasmtime::Store;

/// Answers a connector's `held(folder)`: the runs of ids the host holds for a folder path.
pub type HeldLookup = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Vec<HeldRange>> + Send>> + Send + Sync,
>;

/// Answers a connector's `known(probes)`: whether the host holds each (Message-ID, size).
pub type KnownLookup = Arc<
    dyn Fn(Vec<(String, u64)>) -> std::pin::Pin<Box<dyn Future<Output = Vec<bool>> + Send>>
        + Send
        + Sync,
>;

/// How much one page may carry.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub max_messages: u32,
    pub max_bytes: u64,
}

/// A folder to sync in this job.
#[derive(Debug, Clone)]
pub struct FolderTask {
    pub path: String,
    pub state: Option<Vec<u8>>,
    pub start: SyncStart,
}

/// What the driver wants after a page.
pub enum Step {
    /// Ask for the folder's next page with this state (none: start the folder over).
    Next(Option<Vec<u8>>),
    /// The folder is caught up; go on with the next one.
    FolderDone,
    /// End the job here (its time is up); everything so far is committed.
    Stop,
}

/// The host side of a sync job: decides what to sync and commits what arrives.
#[async_trait]
pub trait SyncDriver: Send + 'static {
    /// Given the server's folders, the folders to sync in this job, in order.
    async fn plan(&mut self, listing: Vec<Folder>) -> Result<Vec<FolderTask>, ConnectorError>;
    /// Commits one page of `task`'s folder.
    async fn page(&mut self, task: &FolderTask, page: SyncPage) -> Result<Step, ConnectorError>;
    /// A folder failed. Returns whether the job goes on with the other folders; the error
    /// ends the job otherwise.
    async fn folder_failed(&mut self, task: &FolderTask, error: &ConnectorError) -> bool;
    /// The next piece of outbox work to do before syncing; none when there is no more for
    /// this job. An error ends the job.
    async fn next_work(&mut self) -> Result<Option<Work>, ConnectorError>;
    /// What came of the work [`SyncDriver::next_work`] gave last. An error ends the job.
    async fn work_done(
        &mut self,
        done: Result<WorkDone, ConnectorError>,
    ) -> Result<(), ConnectorError>;
}

impl Runtime {
    /// Runs one sync job for the account `spec` describes. The driver commits each page as
    /// it arrives, so whatever ends the job (an error, a trap, the timeout) loses nothing
    /// that was committed.
    pub async fn sync(
        &self,
        spec: &ConnectionSpec,
        held: HeldLookup,
        known: KnownLookup,
        limits: PageLimits,
        driver: impl SyncDriver,
    ) -> Result<(), ConnectorError> {
        let connector = self.loaded(&spec.connector)?;
        let account = account_record(spec);
        let job = JobAccount {
            held: Some(held),
            known: Some(known),
            ..job_account(spec)
        };
        self.run(
            &connector,
            super::Pool::Sync,
            Some(job),
            move |store, instance| {
                Box::pin(async move {
                    let mut driver = driver;
                    drive(store, instance, &account, limits, &mut driver).await
                })
            },
        )
        .await?
    }
}

async fn drive<D: SyncDriver>(
    store: &mut Store<JobState>,
    instance: Instance,
    account: &super::v1::mailroom::connector::types::Account,
    limits: PageLimits,
    driver: &mut D,
) -> wasmtime::Result<Result<(), ConnectorError>> {
    store.data_mut().sink_memory_share = limits.max_bytes;
    let session = match Session::open(store, &instance, account).await? {
        Ok(session) => session,
        Err(error) => return Ok(Err(error)),
    };
    let result = async {
        let listing = match session.list_folders(store).await? {
            Ok(folders) => folders,
            Err(error) => return Ok(Err(error)),
        };
        let tasks = match driver.plan(listing).await {
            Ok(tasks) => tasks,
            Err(error) => return Ok(Err(error)),
        };
        // What the user did goes to the server before the server's news comes back.
        loop {
            let work = match driver.next_work().await {
                Ok(Some(work)) => work,
                Ok(None) => break,
                Err(error) => return Ok(Err(error)),
            };
            store.data_mut().cpu.reset();
            let done = session.work(store, work).await?;
            if let Err(error) = driver.work_done(done).await {
                return Ok(Err(error));
            }
        }
        for task in &tasks {
            let mut state = task.state.clone();
            loop {
                // Each page gets the whole CPU budget: the budget bounds a step, not a mailbox.
                store.data_mut().cpu.reset();
                let request = wit::SyncRequest {
                    folder: task.path.clone(),
                    state: state.take(),
                    start: match task.start {
                        SyncStart::Now => wit::Start::Now,
                        SyncStart::Since(at) => wit::Start::Since(at),
                    },
                    limits: wit::Limits {
                        max_messages: limits.max_messages,
                        max_bytes: limits.max_bytes,
                    },
                };
                let page = match session.sync_folder(store, &request).await? {
                    Ok(page) => match page_from_wit(store, page, limits)? {
                        Ok(page) => page,
                        // A page past what the host asked for ends the job.
                        Err(denied) => return Ok(Err(denied)),
                    },
                    Err(error) => {
                        let error = ConnectorError::from(error);
                        if driver.folder_failed(task, &error).await {
                            break;
                        }
                        return Ok(Err(error));
                    }
                };
                match driver.page(task, page).await {
                    Ok(Step::Next(next)) => state = next,
                    Ok(Step::FolderDone) => break,
                    Ok(Step::Stop) => return Ok(Ok(())),
                    Err(error) => return Ok(Err(error)),
                }
            }
        }
        Ok(Ok(()))
    }
    .await;
    match result {
        // A trapped instance cannot be closed; the trap's reason is the job's.
        Err(trap) => Err(trap),
        Ok(outcome) => {
            session.close(store).await?;
            Ok(outcome)
        }
    }
}

/// The host's own page, from the connector's, if the page keeps within the limits the host
/// asked for and the caps on what it stores ([`super::sandbox::OutputCaps`]): at most
/// `max_messages` messages, and at most `max_bytes` bytes besides its largest message (which
/// may be larger than a page and travel in a sink).
fn page_from_wit(
    store: &mut Store<JobState>,
    page: wit::Page,
    limits: PageLimits,
) -> wasmtime::Result<Result<SyncPage, ConnectorError>> {
    let caps = store.data().caps;
    let denied = |message: String| Ok(Err(ConnectorError::new(ErrorKind::Denied, message)));
    if page.messages.len() > limits.max_messages as usize {
        return denied(format!(
            "the connector returned a page of {} messages when at most {} were asked for",
            page.messages.len(),
            limits.max_messages
        ));
    }
    let mut sizes = Vec::with_capacity(page.messages.len());
    for message in &page.messages {
        sizes.push(match &message.body {
            wit::Body::Bytes(bytes) => bytes.len() as u64,
            wit::Body::Sink(sink) => store.data().table.get(sink)?.written(),
            wit::Body::Known(_) => 0,
        });
    }
    let total: u64 = sizes.iter().sum();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    if total - largest > limits.max_bytes {
        return denied(format!(
            "the connector returned a page of {total} bytes when {} (and one larger message) were asked for",
            limits.max_bytes
        ));
    }
    if page.state.len() > caps.max_state_bytes {
        return denied(format!(
            "the connector returned a folder state of {} bytes; at most {} are kept",
            page.state.len(),
            caps.max_state_bytes
        ));
    }
    if page.changed.len() + page.removed.len() > caps.max_page_ids {
        return denied(format!(
            "the connector returned {} changed and removed ids in one page; at most {} are taken",
            page.changed.len() + page.removed.len(),
            caps.max_page_ids
        ));
    }
    let ids = page
        .messages
        .iter()
        .map(|m| &m.id)
        .chain(page.changed.iter().map(|c| &c.id))
        .chain(page.removed.iter());
    if let Some(id) = ids.into_iter().find(|id| id.len() > caps.max_id_bytes) {
        return denied(format!(
            "the connector returned a message id of {} bytes; at most {} are kept",
            id.len(),
            caps.max_id_bytes
        ));
    }
    let mut messages = Vec::with_capacity(page.messages.len());
    for message in page.messages {
        let (raw, known) = match message.body {
            wit::Body::Bytes(bytes) => (bytes, None),
            wit::Body::Sink(sink) => {
                let sink = store.data_mut().table.delete(sink)?;
                match sink.into_bytes() {
                    Ok(bytes) => (bytes, None),
                    Err(reason) => {
                        return Ok(Err(ConnectorError::new(ErrorKind::Connector, reason)));
                    }
                }
            }
            wit::Body::Known(probe) => (Vec::new(), Some((probe.message_id, probe.size))),
        };
        messages.push(Fetched {
            provider_id: message.id,
            flags: flags_from_wit(message.flags),
            received_at: message.received_at,
            raw,
            known,
        });
    }
    Ok(Ok(SyncPage {
        reset: page.reset,
        messages,
        changed: page
            .changed
            .into_iter()
            .map(|c| (c.id, flags_from_wit(c.flags)))
            .collect(),
        removed: page.removed,
        state: page.state,
        backfilled: page.backfilled,
        more: page.more,
    }))
}

pub(super) fn flags_from_wit(flags: wit::MessageFlags) -> Flags {
    Flags {
        seen: flags.seen,
        flagged: flags.flagged,
        answered: flags.answered,
        draft: flags.draft,
    }
}

pub(super) fn flags_to_wit(flags: Flags) -> wit::MessageFlags {
    wit::MessageFlags {
        seen: flags.seen,
        flagged: flags.flagged,
        answered: flags.answered,
        draft: flags.draft,
    }
}
