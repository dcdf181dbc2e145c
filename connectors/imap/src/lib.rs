//! Mailroom's IMAP + SMTP connector, a `wasm32-wasip2` component of the
//! `mailroom:connector@0.8.0` world.
//!
//! It speaks the protocols; the host does everything else. Connections are opened by the
//! host (`net`), which also does TLS; logins are run by the host (`auth`), so no password ever
//! reaches this code. The connector keeps no state between jobs: the IMAP connection it ends
//! a job with goes back to the host (`keep`), with a note of the session, for the next job.
//! A session the host asks to watch idles on its connection (IDLE, NOTIFY) and waits for
//! the server in the host (`wait`).

mod error;
mod imap;
mod smtp;
mod transport;

wit_bindgen::generate!({
    world: "mailroom:connector/mail-connector@0.8.0",
    path: [
        "../../wit/0.1.0",
        "../../wit/0.2.0",
        "../../wit/0.3.0",
        "../../wit/0.4.0",
        "../../wit/0.5.0",
        "../../wit/0.6.0",
        "../../wit/0.7.0",
        "../../wit/0.8.0",
    ],
    // The interfaces 0.8.0 takes from earlier versions are generated here too.
    generate_all,
});

use error::{Failure, fail};
use exports::mailroom::connector0_8_0::connector::{AuthKind, Guest, GuestSession, Info, Watching};
use mailroom::connector0_1_0::types::{Account, Error, ErrorKind, Folder, Server};
use mailroom::connector0_2_0::mail::MessageFlags;
use mailroom::connector0_3_0::changes::{Applied, Change, Delivery, Envelope, Target};
use mailroom::connector0_6_0::sync::{Page, SyncRequest};
use mailroom::connector0_7_0::keep;
use std::cell::RefCell;
use transport::HostConnection;

struct Connector;

impl Guest for Connector {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "imap".into(),
            name: "IMAP and SMTP".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            auth: AuthKind::Password,
            servers: vec!["imap".into(), "smtp".into()],
            hosts: Vec::new(),
            files_sent: false,
            mailbox_wide_ids: false,
        }
    }
}

/// One job's work for one account. The IMAP connection made by `check` is reused by the
/// calls that follow it in the same job, and kept by the host for the next one.
struct Session {
    account: Account,
    imap: RefCell<Option<imap::Client<HostConnection>>>,
    memory: RefCell<imap::JobMemory>,
}

impl Session {
    fn server(&self, role: &str) -> Result<&Server, Error> {
        self.account
            .servers
            .iter()
            .find(|s| s.role == role)
            .ok_or_else(|| {
                fail(
                    ErrorKind::Unsupported,
                    role,
                    format!("the account has no {role} server"),
                )
            })
    }

    /// The logged-in IMAP client, connecting first when this job has none yet.
    fn with_imap<T>(
        &self,
        f: impl FnOnce(&mut imap::Client<HostConnection>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut slot = self.imap.borrow_mut();
        if slot.is_none() {
            let server = self.server("imap")?;
            let kept = keep::reuse(&server.host, server.port, server.encryption).and_then(
                |(connection, note)| imap::Client::resume(HostConnection::from(connection), &note),
            );
            *slot = Some(match kept {
                Some(client) => client,
                None => {
                    let connection = HostConnection::connect(server)?;
                    imap::Client::login(connection, server.encryption).at("imap")?
                }
            });
        }
        let client = slot.as_mut().expect("connected above");
        let result = f(client);
        if result.is_err() {
            // A failed exchange may leave the connection in an unknown state.
            *slot = None;
        }
        result
    }
}

impl Drop for Session {
    /// The IMAP connection, idle now, goes back to the host for the account's next job.
    fn drop(&mut self) {
        if let Some((connection, note)) = self.imap.take().and_then(imap::Client::into_kept) {
            keep::keep(connection.into(), &note);
        }
    }
}

impl GuestSession for Session {
    fn new(account: Account) -> Self {
        Self {
            account,
            imap: RefCell::new(None),
            memory: RefCell::new(imap::JobMemory::default()),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.with_imap(|_| Ok(()))?;
        let server = self.server("smtp")?;
        let connection = HostConnection::connect(server)?;
        smtp::check(connection, server.encryption).at("smtp")
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        self.with_imap(|client| client.list_folders().at("imap"))
    }

    fn sync_folder(&self, request: SyncRequest) -> Result<Page, Error> {
        let mut memory = self.memory.borrow_mut();
        self.with_imap(|client| client.sync_folder(&request, &mut memory).at("imap"))
    }

    fn apply(&self, target: Target, change: Change) -> Result<Applied, Error> {
        self.with_imap(|client| client.apply(&target, &change).at("imap"))
    }

    fn append(
        &self,
        folder: String,
        raw: Vec<u8>,
        flags: MessageFlags,
    ) -> Result<Option<String>, Error> {
        self.with_imap(|client| client.append(&folder, &raw, flags).at("imap"))
    }

    fn send(&self, envelope: Envelope, raw: Vec<u8>) -> Result<Delivery, Error> {
        let server = self.server("smtp")?;
        let connection = HostConnection::connect(server)?;
        smtp::send(connection, server.encryption, &envelope, &raw).at("smtp")
    }

    fn watch(&self, folders: Vec<String>) -> Result<Watching, Error> {
        self.with_imap(|client| {
            let watching = client.watch(&folders).at("imap")?;
            Ok(Watching {
                folders: watching.folders,
                method: watching.method.to_owned(),
            })
        })
    }

    fn wait(&self, timeout_secs: u32) -> Result<Vec<String>, Error> {
        let timeout = std::time::Duration::from_secs(timeout_secs.into());
        self.with_imap(|client| client.wait(timeout).at("imap"))
    }
}

// Native builds (unit tests of the protocol code) have no component to export from.
#[cfg(target_arch = "wasm32")]
export!(Connector);
