//! IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) client: greeting, capabilities, STARTTLS,
//! login through the host, and the commands the connector's operations need.

mod apply;
mod list;
mod reply;
mod state;
mod sync;
mod utf7;
mod watch;

pub use sync::JobMemory;

use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::auth::Protocol;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind, Folder};
use crate::transport::{Transport, wants_starttls};
use reply::{Code, Reader, Reply, Status};

/// The first line of a kept connection's note: the note's format.
const NOTE_VERSION: &str = "mailroom-imap-note 1";

pub struct Client<T: Transport> {
    transport: T,
    reader: Reader,
    next_tag: u32,
    capabilities: Vec<String>,
    /// Whether `ENABLE QRESYNC` succeeded; `None` until tried.
    qresync: Option<bool>,
    /// The folder a watch examined, once the session watches: its news comes as `EXISTS`,
    /// `EXPUNGE`, `FETCH` and `VANISHED`.
    watched: Option<String>,
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
            watched: None,
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

    /// A client on a connection an earlier job kept, from the note it kept with it
    /// ([`Client::into_kept`]); none when the note is not one this connector wrote.
    pub fn resume(transport: T, note: &[u8]) -> Option<Self> {
        let note = std::str::from_utf8(note).ok()?;
        let mut lines = note.lines();
        if lines.next()? != NOTE_VERSION {
            return None;
        }
        let qresync = match lines.next()? {
            "qresync" => true,
            "no-qresync" => false,
            _ => return None,
        };
        let capabilities: Vec<String> = lines.next()?.split(' ').map(str::to_owned).collect();
        Some(Self {
            transport,
            reader: Reader::default(),
            next_tag: 0,
            capabilities,
            qresync: Some(qresync),
            watched: None,
        })
    }

    /// The connection and a note of the session (capabilities, QRESYNC enabled or not), for
    /// the host to keep for the account's next job; none when replies are left unread.
    pub fn into_kept(self) -> Option<(T, Vec<u8>)> {
        // A connection that watched is busy with the server's news.
        if !self.reader.is_drained() || self.watched.is_some() {
            return None;
        }
        // ENABLE is refused once a mailbox is selected: a session that never tried it is not
        // worth keeping where the server has QRESYNC (and without it, there is nothing to try).
        let qresync = match self.qresync {
            Some(enabled) => enabled,
            None if self.has_capability("QRESYNC") => return None,
            None => false,
        };
        let qresync = if qresync { "qresync" } else { "no-qresync" };
        let note = format!(
            "{NOTE_VERSION}\n{qresync}\n{}\n",
            self.capabilities.join(" ")
        );
        Some((self.transport, note.into_bytes()))
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
    fn run_with(&mut self, command: &str, on_reply: impl FnMut(Reply)) -> Result<Done, Error> {
        let tag = self.send(command)?;
        self.complete(&tag, on_reply)
    }

    /// Writes one command line; returns its tag.
    fn send(&mut self, command: &str) -> Result<String, Error> {
        self.next_tag += 1;
        let tag = format!("m{}", self.next_tag);
        self.transport
            .write(format!("{tag} {command}\r\n").as_bytes())?;
        Ok(tag)
    }

    /// Reads until the completion of the command tagged `tag`, handing every other reply to
    /// `on_reply`.
    fn complete(&mut self, tag: &str, mut on_reply: impl FnMut(Reply)) -> Result<Done, Error> {
        loop {
            match self.next_reply(tag)? {
                Next::Done(done) => return Ok(done),
                Next::Reply(reply) => on_reply(reply),
            }
        }
    }

    /// The next reply while the command tagged `tag` runs; `BYE` is an error.
    fn next_reply(&mut self, tag: &str) -> Result<Next, Error> {
        match self.reader.next(&mut self.transport)? {
            Reply::Tagged {
                tag: done,
                status,
                capabilities,
                code,
                text,
            } if done == tag => {
                if let Some(capabilities) = capabilities {
                    self.capabilities = capabilities;
                }
                Ok(Next::Done(Done { status, code, text }))
            }
            Reply::Untagged {
                status: Status::Bye,
                text,
                ..
            } => Err(error(
                ErrorKind::Connect,
                format!("the server ended the session: {text}"),
            )),
            reply => Ok(Next::Reply(reply)),
        }
    }
}

/// A logged-in client on a scripted server, for the protocol modules' tests.
#[cfg(test)]
fn scripted(
    capabilities: &[&str],
    replies: &[&'static str],
) -> (
    Client<crate::transport::script::Dialogue>,
    crate::transport::script::Log,
) {
    let (transport, log) = crate::transport::script::Dialogue::new(replies);
    let client = Client {
        transport,
        reader: Reader::default(),
        next_tag: 0,
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        qresync: Some(false),
        watched: None,
    };
    (client, log)
}

/// A mailbox name as an IMAP quoted string. A name holding CR, LF or NUL, which no quoted
/// string can carry, is refused rather than allowed to end the command line.
fn quote(name: &str) -> Result<String, Error> {
    if name.contains(['\r', '\n', '\0']) {
        return Err(error(
            ErrorKind::Unsupported,
            format!("the folder name {name:?} cannot be used in an IMAP command"),
        ));
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Ok(quoted)
}

/// What came while a command ran.
enum Next {
    Reply(Reply),
    Done(Done),
}

/// A command's completion.
struct Done {
    status: Status,
    code: Option<Code>,
    text: String,
}

impl Done {
    /// Whether the command succeeded; when it did not, an error with the server's text, of
    /// kind `not-found` when the server said that a mailbox does not exist.
    fn ok(self, command: &str) -> Result<(), Error> {
        match (self.status, self.code) {
            (Status::Ok, _) => Ok(()),
            (_, Some(Code::NoMailbox)) => Err(error(
                ErrorKind::NotFound,
                format!("{command} failed: {}", self.text),
            )),
            _ => Err(protocol(format!("{command} failed: {}", self.text))),
        }
    }
}
