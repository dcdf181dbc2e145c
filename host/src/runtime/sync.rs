//! Running a sync job: one connector instance for one account. First the outbox's work,
//! then folder after folder, page after page, each page handed to a [`SyncDriver`] that
//! commits it before the next is asked for.

use super::Runtime;
use super::sandbox::{JobAccount, JobState, KeepSlot};
use super::wit::{Fetched, FolderRequest, Instance};
use crate::account::ConnectionSpec;
use crate::connector::ConnectorError;
use crate::folder::Folder;
use crate::mail::work::{Work, WorkDone};
use crate::mail::{HeldRange, PageLimits, SyncPage, SyncStart};
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::sync::Arc;
use wasmtime::Store;

/// Answers a connector's `held(folder)`: the runs of ids the host holds for a folder path.
pub type HeldLookup = Arc<dyn Fn(String) -> BoxFuture<'static, Vec<HeldRange>> + Send + Sync>;

/// Answers a connector's `known(probes)`: whether the host holds each (Message-ID, size).
pub type KnownLookup =
    Arc<dyn Fn(Vec<(String, u64)>) -> BoxFuture<'static, Vec<bool>> + Send + Sync>;

/// Answers a connector's `held-ids(ids)`: whether the host holds a message of the account
/// under each provider id, in any folder.
pub type HeldIdsLookup = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Vec<bool>> + Send + Sync>;

/// A folder to sync in this job.
#[derive(Debug, Clone)]
pub struct FolderTask {
    pub path: String,
    pub state: Option<Vec<u8>>,
    pub start: SyncStart,
    /// Ask the connector to count the folder when its sync ends.
    pub count: bool,
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
    /// Whether this job lists the server's folders before it plans.
    fn lists(&self) -> bool;
    /// Given the server's folders when the job listed them, the folders to sync in this
    /// job, in order.
    async fn plan(
        &mut self,
        listing: Option<Vec<Folder>>,
    ) -> Result<Vec<FolderTask>, ConnectorError>;
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

/// How a sync job's connector asks what the host holds.
pub struct Lookups {
    pub held: HeldLookup,
    pub known: KnownLookup,
    pub held_ids: HeldIdsLookup,
}

impl Runtime {
    /// Runs one sync job for the account `spec` describes. The driver commits each page as
    /// it arrives, so whatever ends the job (an error, a trap, the timeout) loses nothing
    /// that was committed.
    pub async fn sync(
        &self,
        account_id: &str,
        spec: &ConnectionSpec,
        lookups: Lookups,
        limits: PageLimits,
        driver: impl SyncDriver,
    ) -> Result<(), ConnectorError> {
        let connector = self.loaded(&spec.connector)?;
        let spec = spec.clone();
        let job = JobAccount {
            keep: Some(KeepSlot {
                kept: self.kept.clone(),
                account: account_id.to_owned(),
            }),
            held: Some(lookups.held),
            known: Some(lookups.known),
            held_ids: Some(lookups.held_ids),
            ..self.job_account(&connector, &spec)
        };
        self.run(
            &connector,
            super::Pool::Sync,
            Some(job),
            move |store, instance| {
                Box::pin(async move {
                    let mut driver = driver;
                    drive(store, instance, &spec, limits, &mut driver).await
                })
            },
        )
        .await
    }
}

async fn drive<D: SyncDriver>(
    store: &mut Store<JobState>,
    instance: Instance,
    spec: &ConnectionSpec,
    limits: PageLimits,
    driver: &mut D,
) -> wasmtime::Result<Result<(), ConnectorError>> {
    store.data_mut().sink_memory_share = limits.max_bytes;
    let session = match instance.session(store, spec).await? {
        Ok(session) => session,
        Err(error) => return Ok(Err(error)),
    };
    let result = async {
        let listing = if driver.lists() {
            match session.list_folders(store).await? {
                Ok(folders) => Some(folders),
                Err(error) => return Ok(Err(error)),
            }
        } else {
            None
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
                let request = FolderRequest {
                    path: task.path.clone(),
                    state: state.take(),
                    start: task.start,
                    limits,
                    count: task.count,
                };
                let page = match session.sync_folder(store, &request).await? {
                    Fetched::Page(page) => page,
                    // A page past what the host asked for ends the job.
                    Fetched::Refused(denied) => return Ok(Err(denied)),
                    Fetched::Failed(error) => {
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
