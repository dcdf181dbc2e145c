//! `mailroom:connector@0.4.0`: logins beyond IMAP and SMTP (the host's `login`, with POP3)
//! and body sinks that can be refused (the host's `sinks`). Its exported `connector` is
//! 0.3.0's under this version's name.

use self::mailroom::connector0_4_0::{login, sinks};
use super::super::sandbox::JobState;
use super::super::sink::BodySink;
use super::v0_1_0::Wit;
use super::v0_2_0::page_from_wit;
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::Connection;
use crate::net::preauth::Protocol;
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.4.0",
    path: ["../wit/0.1.0", "../wit/0.2.0", "../wit/0.3.0", "../wit/0.4.0"],
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
        "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
        "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
        "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
        "mailroom:connector/mail@0.2.0": super::v0_2_0::mailroom::connector0_2_0::mail,
        "mailroom:connector/changes@0.3.0": super::v0_3_0::mailroom::connector0_3_0::changes,
    },
});

use self::exports::mailroom::connector0_4_0::connector as exported;

pub const VERSION: &str = "0.4.0";

pub type Pre = MailConnectorPre<JobState>;

/// 0.4.0 takes the earlier interfaces as they are and adds `login` and `sinks`.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    login::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)?;
    sinks::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(mailroom_connector0_4_0_connector);
super::session_calls!(mailroom_connector0_4_0_connector);
super::work_calls!();

impl login::Host for JobState {
    async fn authenticate(
        &mut self,
        connection: Resource<Connection>,
        protocol: login::Protocol,
        mechanisms: Vec<String>,
    ) -> Wit<String> {
        let protocol = match protocol {
            login::Protocol::Imap => Protocol::Imap,
            login::Protocol::Smtp => Protocol::Smtp,
            login::Protocol::Pop3 => Protocol::Pop3,
        };
        super::v0_1_0::login(self, connection, protocol, mechanisms).await
    }
}

impl sinks::Host for JobState {
    async fn open(&mut self, size: u64) -> Wit<Resource<BodySink>> {
        Ok(super::v0_2_0::open_sink(self, size)?
            .map_err(|reason| ConnectorError::new(ErrorKind::Denied, reason).into()))
    }
}
