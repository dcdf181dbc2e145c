//! `mailroom:connector@0.7.0`: connections kept between an account's jobs (the host's
//! `keep`, served by [`crate::net::kept`]). Its exported `connector` is 0.6.0's under this
//! version's name.

use self::mailroom::connector0_7_0::keep;
use super::super::sandbox::JobState;
use super::v0_1_0::mailroom::connector::types;
use super::v0_6_0::{page_from_wit, request_to_wit};
use crate::net::Connection;
use crate::net::kept::Wanted;
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.7.0",
    path: [
        "../wit/0.1.0",
        "../wit/0.2.0",
        "../wit/0.3.0",
        "../wit/0.4.0",
        "../wit/0.5.0",
        "../wit/0.6.0",
        "../wit/0.7.0",
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
    },
});

use self::exports::mailroom::connector0_7_0::connector as exported;

pub const VERSION: &str = "0.7.0";

pub type Pre = MailConnectorPre<JobState>;

/// 0.7.0 takes the earlier interfaces as they are and adds `keep`.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    keep::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(@describe_all mailroom_connector0_7_0_connector);
super::common_calls!(@test mailroom_connector0_7_0_connector);
super::session_calls!(mailroom_connector0_7_0_connector, request_to_wit);
super::work_calls!();

impl keep::Host for JobState {
    async fn keep(
        &mut self,
        connection: Resource<Connection>,
        note: Vec<u8>,
    ) -> wasmtime::Result<bool> {
        let connection = self.take_back(connection)?;
        Ok(match self.account.as_ref().and_then(|a| a.keep.as_ref()) {
            Some(slot) => slot.kept.keep(&slot.account, connection, note),
            // A connection test's connections are not kept: it serves no account yet.
            None => false,
        })
    }

    async fn reuse(
        &mut self,
        host: String,
        port: u16,
        encryption: types::Encryption,
    ) -> wasmtime::Result<Option<(Resource<Connection>, Vec<u8>)>> {
        let Some(account) = self.account.as_ref() else {
            return Ok(None);
        };
        let (Some(slot), Some(credentials)) = (&account.keep, &account.credentials) else {
            return Ok(None);
        };
        let (kept, owner, digest) = (
            slot.kept.clone(),
            slot.account.clone(),
            credentials.digest(),
        );
        let Ok(server) = self.connectable(&host, port) else {
            return Ok(None);
        };
        let wanted = Wanted {
            host: &server.host,
            port: server.port,
            encryption: encryption.into(),
            credentials: digest,
        };
        let Some((connection, note)) = kept.reuse(&owner, &wanted).await else {
            return Ok(None);
        };
        self.last_server = Some(server.role);
        Ok(Some((self.hand_over(connection)?, note)))
    }
}
