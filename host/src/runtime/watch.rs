//! Running a watch: one connector instance whose session watches an account's folders and
//! waits for news again and again, for as long as its owner listens. It holds no job slot
//! (it mostly waits, in the host, at no CPU cost to the connector) and connections it opens
//! are not kept for sync jobs: a watch's connection is busy watching.

use super::Runtime;
use super::wit::Watching;
use crate::account::ConnectionSpec;
use crate::connector::{ConnectorError, ErrorKind};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a running watch tells its owner.
#[derive(Debug)]
pub enum WatchNews {
    /// The session watches these folders; sent once, before any change.
    Watching(Watching),
    /// These folders changed (paths as listed).
    Changed(Vec<String>),
}

/// How much longer than the wait it asked for, and than a reply may take, a connector may
/// take to answer.
const WAIT_GRACE: Duration = Duration::from_secs(30);

impl Runtime {
    /// Watches `folders` of the account `spec` describes, each wait lasting at most `renew`,
    /// and sends what it learns on `news`. Returns when the session fails (the error), or
    /// when nobody listens any more.
    pub async fn watch(
        &self,
        spec: &ConnectionSpec,
        folders: Vec<String>,
        renew: Duration,
        news: mpsc::UnboundedSender<WatchNews>,
    ) -> Result<(), ConnectorError> {
        let connector = self.loaded(&spec.connector)?;
        let spec = spec.clone();
        let job = self.job_account(&connector, &spec);
        let start_limit = self.job_timeout;
        // Ending an IDLE waits for the server's reply, which may take the I/O timeout.
        let wait_limit = renew + self.net.io_timeout + WAIT_GRACE;
        let late = |what: &str, limit: Duration| {
            ConnectorError::new(
                ErrorKind::Timeout,
                format!("the connector did not {what} within {limit:?}"),
            )
        };
        self.run(
            &connector,
            super::Pool::Watch,
            Some(job),
            move |store, instance| {
                Box::pin(async move {
                    // Connecting, logging in and starting the watch is a job like any other.
                    let started = tokio::time::timeout(start_limit, async {
                        let session = match instance.session(store, &spec).await? {
                            Ok(session) => session,
                            Err(error) => return Ok(Err(error)),
                        };
                        let watching = session.watch(store, &folders).await?;
                        Ok(watching.map(|watching| (session, watching)))
                    })
                    .await;
                    let (session, watching) = match started {
                        Ok(Ok(Ok(started))) => started,
                        Ok(Ok(Err(error))) => return Ok(Err(error)),
                        Ok(Err(trap)) => return Err(trap),
                        Err(_) => return Ok(Err(late("start watching", start_limit))),
                    };
                    if news.send(WatchNews::Watching(watching)).is_err() {
                        return Ok(Ok(()));
                    }
                    loop {
                        // Each wait gets the whole CPU budget: the budget bounds a step.
                        store.data_mut().cpu.reset();
                        let changed = match tokio::time::timeout(
                            wait_limit,
                            session.wait(store, renew),
                        )
                        .await
                        {
                            Ok(Ok(Ok(changed))) => changed,
                            Ok(Ok(Err(error))) => return Ok(Err(error)),
                            Ok(Err(trap)) => return Err(trap),
                            // The instance was cut off in the middle of a call: nothing more
                            // may be asked of it.
                            Err(_) => return Ok(Err(late("end its wait", wait_limit))),
                        };
                        let heard =
                            changed.is_empty() || news.send(WatchNews::Changed(changed)).is_ok();
                        if !heard || news.is_closed() {
                            session.close(store).await?;
                            return Ok(Ok(()));
                        }
                    }
                })
            },
        )
        .await
    }
}
