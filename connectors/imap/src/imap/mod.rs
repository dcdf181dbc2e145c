//! IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) client: greeting, capabilities, STARTTLS,
//! login through the host, and the commands the connector's operations need.

mod list;
mod reply;
mod state;
mod sync;
mod utf7;

pub use sync::JobMemory;

use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::auth::Protocol;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind, Folder};
use crate::transport::{Transport, wants_starttls};
use reply::{Reader, Reply, Status};

pub struct Client<T: Transport> {
    transport: T,
    reader: Reader,
    next_tag: u32,
    capabilities: Vec<String>,
    /// Whether `ENABLE QRESYNC` succeeded; `None` until tried.
    qresync: Option<bool>,
}

impl<T: Transport> Client<T> {
    /// Reads the greeting, upgrades to TLS when the account asks for STARTTLS, and has the
    /// host log in (unless the server greeted with PREAUTH).
    pub fn login(transport: T, encryption: Encryption) -> Result<Self, Error> {
        let mut client = Self {
            transport,
            reader: Reader::default(),
            next_tag: 0,
            capabilities: Vec::new(),
            qresync: None,
        };
        let preauthenticated = client.greeting()?;
        if client.capabilities.is_empty() {
            client.refresh_capabilities()?;
        }
        if wants_starttls(encryption) {
            if !client.has_capability("STARTTLS") {
                return Err(error(
                    ErrorKind::Tls,
                    "the server does not offer STARTTLS; Mailroom will not log in without encryption",
                ));
            }
            client.run("STARTTLS")?.ok("STARTTLS")?;
            client.transport.start_tls()?;
            // Nothing said before the handshake can be trusted, capabilities included.
            client.reader = Reader::default();
            client.refresh_capabilities()?;
        }
        if !preauthenticated {
            let mechanisms: Vec<String> = client
                .capabilities
                .iter()
                .filter_map(|c| c.strip_prefix("AUTH="))
                .map(str::to_owned)
                .collect();
            if mechanisms.is_empty() && client.has_capability("LOGINDISABLED") {
                return Err(error(
                    ErrorKind::Unsupported,
                    "the server allows no login on this connection (LOGINDISABLED)",
                ));
            }
            client.transport.authenticate(Protocol::Imap, &mechanisms)?;
            client.refresh_capabilities()?;
        }
        Ok(client)
    }

    pub fn list_folders(&mut self) -> Result<Vec<Folder>, Error> {
        let special_use = self.has_capability("SPECIAL-USE");
        let command = if special_use {
            r#"LIST "" "*" RETURN (SPECIAL-USE)"#
        } else {
            r#"LIST "" "*""#
        };
        let mut entries = Vec::new();
        self.run_with(command, |reply| {
            if let Reply::List(entry) = reply {
                entries.push(entry);
            }
        })?
        .ok("LIST")?;
        Ok(list::folders(entries, special_use))
    }

    fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Returns whether the server greeted with PREAUTH.
    fn greeting(&mut self) -> Result<bool, Error> {
        match self.reader.next(&mut self.transport)? {
            Reply::Untagged {
                status: Status::Ok,
                capabilities,
                ..
            } => {
                self.capabilities = capabilities.unwrap_or_default();
                Ok(false)
            }
            Reply::Untagged {
                status: Status::PreAuth,
                capabilities,
                ..
            } => {
                self.capabilities = capabilities.unwrap_or_default();
                Ok(true)
            }
            Reply::Untagged {
                status: Status::Bye,
                text,
                ..
            } => Err(error(
                ErrorKind::Connect,
                format!("the server refused the connection: {text}"),
            )),
            _ => Err(protocol("the server did not greet like an IMAP server")),
        }
    }

    fn refresh_capabilities(&mut self) -> Result<(), Error> {
        let mut capabilities = None;
        self.run_with("CAPABILITY", |reply| {
            if let Reply::Capabilities(list) = reply {
                capabilities = Some(list);
            }
        })?
        .ok("CAPABILITY")?;
        self.capabilities =
            capabilities.ok_or_else(|| protocol("the server sent no CAPABILITY response"))?;
        Ok(())
    }

    fn run(&mut self, command: &str) -> Result<Done, Error> {
        self.run_with(command, |_| {})
    }

    /// Sends one command and reads until its completion, handing every other reply to
    /// `on_reply`.
    fn run_with(&mut self, command: &str, mut on_reply: impl FnMut(Reply)) -> Result<Done, Error> {
        self.next_tag += 1;
        let tag = format!("m{}", self.next_tag);
        self.transport
            .write(format!("{tag} {command}\r\n").as_bytes())?;
        loop {
            match self.reader.next(&mut self.transport)? {
                Reply::Tagged {
                    tag: done,
                    status,
                    capabilities,
                    text,
                } if done == tag => {
                    if let Some(capabilities) = capabilities {
                        self.capabilities = capabilities;
                    }
                    return Ok(Done { status, text });
                }
                Reply::Untagged {
                    status: Status::Bye,
                    text,
                    ..
                } => {
                    return Err(error(
                        ErrorKind::Connect,
                        format!("the server ended the session: {text}"),
                    ));
                }
                reply => on_reply(reply),
            }
        }
    }
}

/// A mailbox name as an IMAP quoted string.
fn quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// A command's completion.
struct Done {
    status: Status,
    text: String,
}

impl Done {
    fn ok(self, command: &str) -> Result<(), Error> {
        match self.status {
            Status::Ok => Ok(()),
            _ => Err(protocol(format!("{command} failed: {}", self.text))),
        }
    }
}
