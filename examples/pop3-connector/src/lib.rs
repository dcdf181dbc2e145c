//! A POP3 connector for Mailroom (RFC 1939, with STLS from RFC 2595 and UIDL), a
//! `wasm32-wasip2` component of the `mailroom:connector@0.4.0` world.
//!
//! POP3 knows one mailbox and no flags, so an account has one folder, INBOX, whose messages
//! are named by their UIDL; read, star, move and delete stay in Mailroom (the connector answers
//! `unsupported`), and sending needs an SMTP connector. The host opens the connection and logs
//! in (`login`, POP3 being new in 0.4.0): this code never sees the password.

mod date;
mod pop3;
mod state;

wit_bindgen::generate!({
    world: "mailroom:connector/mail-connector@0.4.0",
    path: ["../../wit/0.1.0", "../../wit/0.2.0", "../../wit/0.3.0", "../../wit/0.4.0"],
    generate_all,
});

use exports::mailroom::connector0_4_0::connector::{AuthKind, Guest, GuestSession, Info};
use mailroom::connector0_1_0::log::{self, Level};
use mailroom::connector0_1_0::types::{Account, Error, ErrorKind, Folder, FolderRole, Server};
use mailroom::connector0_2_0::mail::{Body, Message, MessageFlags, Page, Start, SyncRequest};
use mailroom::connector0_3_0::changes::{Applied, Change, Delivery, Envelope, Target};
use mailroom::connector0_4_0::sinks;
use pop3::Client;
use state::{Backfill, Known};
use std::cell::RefCell;

/// The one folder.
const INBOX: &str = "INBOX";

struct Connector;

impl Guest for Connector {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "pop3".into(),
            name: "POP3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            auth: AuthKind::Password,
            servers: vec!["pop3".into()],
        }
    }
}

/// One job's work for one account; the connection made first serves the rest of the job.
struct Session {
    account: Account,
    client: RefCell<Option<Client>>,
}

impl Session {
    fn server(&self) -> Result<&Server, Error> {
        self.account
            .servers
            .iter()
            .find(|s| s.role == "pop3")
            .ok_or_else(|| fail(ErrorKind::Unsupported, "the account has no pop3 server"))
    }

    /// Runs `work` on the logged-in connection, connecting first when there is none.
    fn with_client<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut slot = self.client.borrow_mut();
        if slot.is_none() {
            *slot = Some(Client::login(self.server()?)?);
        }
        let client = slot.as_mut().expect("connected above");
        let result = work(client);
        if result.is_err() {
            // After a failure the connection's state is unknown: the next call starts over.
            *slot = None;
        }
        result
    }
}

impl GuestSession for Session {
    fn new(account: Account) -> Self {
        Self {
            account,
            client: RefCell::new(None),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.with_client(|_| Ok(()))
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        Ok(vec![Folder {
            path: INBOX.into(),
            name: "Inbox".into(),
            role: Some(FolderRole::Inbox),
            selectable: true,
        }])
    }

    fn sync_folder(&self, request: SyncRequest) -> Result<Page, Error> {
        if request.folder != INBOX {
            return Err(fail(ErrorKind::NotFound, "a POP3 mailbox has only INBOX"));
        }
        self.with_client(|client| sync(client, request))
    }

    fn apply(&self, _target: Target, _change: Change) -> Result<Applied, Error> {
        Err(fail(
            ErrorKind::Unsupported,
            "POP3 keeps no flags or folders: read, starred, moved and deleted stay in Mailroom",
        ))
    }

    fn append(
        &self,
        _folder: String,
        _raw: Vec<u8>,
        _flags: MessageFlags,
    ) -> Result<Option<String>, Error> {
        Err(fail(
            ErrorKind::Unsupported,
            "POP3 cannot store a message on the server",
        ))
    }

    fn send(&self, _envelope: Envelope, _raw: Vec<u8>) -> Result<Delivery, Error> {
        Err(fail(
            ErrorKind::Unsupported,
            "POP3 cannot send; connect the address with an SMTP connector to send",
        ))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.get_mut().take() {
            client.quit();
        }
    }
}

/// One page of INBOX: the new messages (newest first), the UIDLs gone from the server, and
/// the state that remembers which UIDLs the host holds.
fn sync(client: &mut Client, request: SyncRequest) -> Result<Page, Error> {
    let listing = client.listing()?;
    let mut known = match &request.state {
        Some(state) => Known::decode(state)?,
        None => Known::first(),
    };
    let mut page = Page {
        reset: false,
        messages: Vec::new(),
        changed: Vec::new(),
        removed: known.removed(&listing),
        state: Vec::new(),
        backfilled: false,
        more: false,
    };
    known.forget(&page.removed);

    let since = match (request.state.is_none(), request.start) {
        // From now on: what the mailbox holds already is taken as synced.
        (true, Start::Now) => {
            known.remember_all(&listing);
            known.backfill = Backfill::Done;
            page.state = known.encode(&listing);
            page.backfilled = true;
            return Ok(page);
        }
        (_, Start::Since(at)) if known.backfill != Backfill::Done => Some(at),
        _ => None,
    };

    let limits = request.limits;
    let mut bytes = 0u64;
    let new = known.new_in(&listing);
    let mut taken = 0;
    for entry in new.iter().rev() {
        if page.messages.len() as u32 >= limits.max_messages {
            break;
        }
        let large = entry.size > limits.max_bytes;
        if large && !page.messages.is_empty() || !large && bytes + entry.size > limits.max_bytes {
            break;
        }
        let date = match since {
            Some(_) => date::of_headers(&client.top(entry.number)?),
            None => None,
        };
        if let (Some(since), Some(date)) = (since, date)
            && date < since
        {
            // Mail arrives in order: this message and everything older precede the start.
            known.start_reached(&listing, entry);
            taken = new.len();
            break;
        }
        let body = if large {
            let sink = match sinks::open(entry.size) {
                Ok(sink) => sink,
                Err(error) => {
                    log::write(
                        Level::Warn,
                        &format!("skipping message {}: {}", entry.uid, error.message),
                    );
                    known.remember(entry, &listing);
                    taken += 1;
                    continue;
                }
            };
            client.retrieve(entry.number, &mut |chunk| sink.write(chunk))?;
            Body::Sink(sink)
        } else {
            let mut raw = Vec::with_capacity(entry.size as usize);
            client.retrieve(entry.number, &mut |chunk| {
                raw.extend_from_slice(chunk);
                Ok(())
            })?;
            bytes += raw.len() as u64;
            Body::Bytes(raw)
        };
        let received_at = match (date, &body) {
            (Some(date), _) => date,
            (None, Body::Bytes(raw)) => date::of_headers(raw).unwrap_or_else(date::now),
            (None, _) => date::of_headers(&client.top(entry.number)?).unwrap_or_else(date::now),
        };
        page.messages.push(Message {
            id: entry.uid.clone(),
            flags: MessageFlags {
                seen: false,
                flagged: false,
                answered: false,
                draft: false,
            },
            received_at,
            size: entry.size,
            body,
        });
        known.remember(entry, &listing);
        taken += 1;
        if large {
            break;
        }
    }
    page.more = taken < new.len();
    if !page.more {
        known.backfill = Backfill::Done;
        page.backfilled = true;
    }
    page.state = known.encode(&listing);
    Ok(page)
}

fn fail(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
        server: Some("pop3".into()),
        retry_after_secs: None,
    }
}

export!(Connector);
