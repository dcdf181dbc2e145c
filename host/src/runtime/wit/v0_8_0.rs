//! `mailroom:connector@0.8.0`: push. A session watches folders (`watch`, then `wait` again
//! and again) while the connector waits in the host's `wait.readable`. Its exported
//! `connector` is 0.7.0's with those two calls.

use self::mailroom::connector0_8_0::wait;
use super::super::sandbox::JobState;
use super::v0_1_0::Wit;
use super::v0_6_0::{page_from_wit, request_to_wit};
use crate::connector::ConnectorError;
use crate::net::Connection;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.8.0",
    path: [
        "../wit/0.1.0",
        "../wit/0.2.0",
        "../wit/0.3.0",
        "../wit/0.4.0",
        "../wit/0.5.0",
        "../wit/0.6.0",
        "../wit/0.7.0",
        "../wit/0.8.0",
    ],
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
        "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
        "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
        "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
        "mailroom:connector/mail@0.2.0": super::v0_2_0::mailroom::connector0_2_0::mail,
        "mailroom:connector/changes@0.3.0": super::v0_3_0::mailroom::connector0_3_0::changes,
        "mailroom:connector/login@0.4.0": super::v0_4_0::mailroom::connector0_4_0::login,
        "mailroom:connector/sinks@0.4.0": super::v0_4_0::mailroom::connector0_4_0::sinks,
        "mailroom:connector/provider@0.5.0": super::v0_5_0::mailroom::connector0_5_0::provider,
        "mailroom:connector/sync@0.5.0": super::v0_5_0::mailroom::connector0_5_0::sync,
        "mailroom:connector/sync@0.6.0": super::v0_6_0::mailroom::connector0_6_0::sync,
        "mailroom:connector/keep@0.7.0": super::v0_7_0::mailroom::connector0_7_0::keep,
    },
});

use self::exports::mailroom::connector0_8_0::connector as exported;

pub const VERSION: &str = "0.8.0";

pub type Pre = MailConnectorPre<JobState>;

/// 0.8.0 takes the earlier interfaces as they are and adds `wait`.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    wait::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(@describe_all mailroom_connector0_8_0_connector);
super::common_calls!(@test mailroom_connector0_8_0_connector);
super::session_calls!(mailroom_connector0_8_0_connector, request_to_wit);
super::work_calls!();

impl Session<'_> {
    /// Starts watching `folders`: the folders watched and how.
    pub async fn watch(
        &self,
        store: &mut wasmtime::Store<JobState>,
        folders: &[String],
    ) -> wasmtime::Result<Result<super::Watching, ConnectorError>> {
        let watching = self
            .sessions
            .call_watch(&mut *store, self.session, folders)
            .await?;
        Ok(watching
            .map(|w| super::Watching {
                folders: w.folders,
                method: w.method,
            })
            .map_err(ConnectorError::from))
    }

    /// Waits at most `timeout` for news; the folders that changed.
    pub async fn wait(
        &self,
        store: &mut wasmtime::Store<JobState>,
        timeout: Duration,
    ) -> wasmtime::Result<Result<Vec<String>, ConnectorError>> {
        let secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        let changed = self
            .sessions
            .call_wait(&mut *store, self.session, secs)
            .await?;
        Ok(changed.map_err(ConnectorError::from))
    }
}

impl wait::Host for JobState {
    async fn readable(&mut self, connection: Resource<Connection>, timeout_ms: u32) -> Wit<bool> {
        // The watch's own time limit bounds the wait from outside.
        let limit = Duration::from_millis(timeout_ms.into());
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        Ok(connection
            .readable(limit)
            .await
            .map_err(|e| e.on_server(role).into()))
    }
}
