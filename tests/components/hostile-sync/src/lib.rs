//! A syncing connector (world 0.2.0) that misbehaves on purpose, so the tests can show what
//! the host refuses to take from it. The account's `settings.mode` picks the misbehaviour:
//! the smuggling modes act in `check`, on real servers; in every other mode `check` passes
//! without a server and the listing or the sync does the damage.

wit_bindgen::generate!({
    world: "mailroom:connector/mail-connector@0.2.0",
    path: ["../../../wit/0.1.0", "../../../wit/0.2.0"],
    generate_all,
});

use exports::mailroom::connector0_2_0::connector::{AuthKind, Guest, GuestSession, Info};
use mailroom::connector0_1_0::auth::{self, Protocol};
use mailroom::connector0_1_0::types::{Account, Error, ErrorKind, Folder, FolderRole};
use mailroom::connector0_1_0::{log, net};
use mailroom::connector0_2_0::mail::{
    self, Body, BodySink, Message, MessageFlags, MessageProbe, Page, SyncRequest,
};

struct HostileSync;

impl Guest for HostileSync {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "hostile-sync".into(),
            name: "Hostile syncing test connector".into(),
            version: "0.0.1".into(),
            auth: AuthKind::Password,
            servers: vec!["imap".into(), "smtp".into()],
        }
    }
}

struct Session {
    account: Account,
    mode: String,
}

fn report(message: String) -> Error {
    Error {
        kind: ErrorKind::Protocol,
        message,
        server: None,
        retry_after_secs: None,
    }
}

/// Reads what the server says until a line starting with `prefix` arrives.
fn read_until(connection: &net::Connection, prefix: &str) -> Result<(), Error> {
    let mut seen = Vec::new();
    loop {
        let chunk = connection.read(4096)?;
        if chunk.is_empty() {
            return Ok(());
        }
        seen.extend_from_slice(&chunk);
        if String::from_utf8_lossy(&seen)
            .lines()
            .any(|l| l.starts_with(prefix))
        {
            return Ok(());
        }
    }
}

fn folder(path: String) -> Folder {
    Folder {
        name: path.clone(),
        path,
        role: None,
        selectable: true,
    }
}

fn message(id: u32, body: Body) -> Message {
    Message {
        id: id.to_string(),
        flags: MessageFlags {
            seen: false,
            flagged: false,
            answered: false,
            draft: false,
        },
        received_at: 1_700_000_000,
        size: 0,
        body,
    }
}

fn page(messages: Vec<Message>, state: Vec<u8>) -> Page {
    Page {
        reset: false,
        messages,
        changed: Vec::new(),
        removed: Vec::new(),
        state,
        backfilled: true,
        more: false,
    }
}

fn small_message(id: u32, len: usize) -> Vec<u8> {
    let mut raw = format!("From: a@example.test\r\nSubject: {id}\r\n\r\n").into_bytes();
    raw.resize(len.max(raw.len()), b'x');
    raw
}

impl GuestSession for Session {
    fn new(account: Account) -> Self {
        let mode = account
            .settings
            .iter()
            .find(|(k, _)| k == "mode")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Self { account, mode }
    }

    fn check(&self) -> Result<(), Error> {
        let server = |role: &str| {
            self.account
                .servers
                .iter()
                .find(|s| s.role == role)
                .cloned()
                .ok_or_else(|| report(format!("no {role} server")))
        };
        // Writes `smuggled` after the greeting, then asks the host to log in behind it.
        let smuggle = |role: &str, greeting: &str, smuggled: &[u8], protocol: Protocol| {
            let server = server(role)?;
            let connection = net::connect(&server.host, server.port, server.encryption)?;
            read_until(&connection, greeting)?;
            connection.write(smuggled)?;
            auth::authenticate(&connection, protocol, &["PLAIN".into()])?;
            Err(report("the host logged in after a smuggled command".into()))
        };
        match self.mode.as_str() {
            // A second command hidden behind a bare CR, which some servers take as a line end.
            "cr-smuggle" => smuggle(
                "imap",
                "* ",
                b"a1 ID NIL\ra2 LOGIN attacker secret\r\n",
                Protocol::Imap,
            ),
            // `MAIL FROM` hidden as `MAIL<tab>FROM`, which servers read as a command.
            "tab-smuggle" => smuggle(
                "smtp",
                "220 ",
                b"EHLO a\r\nMAIL\tFROM:<x@y>\r\n",
                Protocol::Smtp,
            ),
            _ => Ok(()),
        }
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        Ok(match self.mode.as_str() {
            // An account object of megabytes in every `GET /v1/accounts`.
            "many-folders" => (0..100_002).map(|i| folder(format!("F{i}"))).collect(),
            "long-folder-name" => vec![folder("N".repeat(100_000))],
            _ => vec![Folder {
                role: Some(FolderRole::Inbox),
                ..folder("INBOX".into())
            }],
        })
    }

    fn sync_folder(&self, request: SyncRequest) -> Result<Page, Error> {
        match self.mode.as_str() {
            // Many large sinks, each filled from one reused buffer: host memory, not guest.
            "sinks" => {
                const SIZE: u64 = 256 << 20;
                let buffer = vec![b'x'; 1 << 20];
                let mut held = Vec::new();
                for _ in 0..8 {
                    let sink = BodySink::new(SIZE);
                    for _ in 0..(SIZE >> 20) {
                        sink.write(&buffer)?;
                    }
                    held.push(sink);
                }
                Err(report(format!(
                    "the host held {} sinks of {SIZE} bytes",
                    held.len()
                )))
            }
            // Far more messages than the page asked for.
            "many-messages" => {
                let count = request.limits.max_messages * 20;
                let messages = (1..=count)
                    .map(|i| message(i, Body::Bytes(small_message(i, 200))))
                    .collect();
                Ok(page(messages, b"s".to_vec()))
            }
            // Far more bytes than the page asked for.
            "fat-page" => {
                let messages = (1..=12)
                    .map(|i| message(i, Body::Bytes(small_message(i, 1 << 20))))
                    .collect();
                Ok(page(messages, b"s".to_vec()))
            }
            // A folder state of megabytes, handed back on every page.
            "huge-state" => Ok(page(Vec::new(), vec![b's'; 48 << 20])),
            // Host work for the guest: the same expensive question, again and again.
            "known-flood" => {
                let probes: Vec<MessageProbe> = (0..10_000)
                    .map(|i| MessageProbe {
                        message_id: format!("{i:0>990}@flood.test"),
                        size: i,
                    })
                    .collect();
                let mut calls: u64 = 0;
                loop {
                    let known = mail::known(&probes);
                    calls += known.len() as u64;
                    if calls == u64::MAX {
                        return Err(report("unreachable".into()));
                    }
                }
            }
            "spin" => {
                let mut x: u64 = request.limits.max_bytes;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            // A well-behaved empty folder.
            "empty" => Ok(page(Vec::new(), b"s".to_vec())),
            // Gigabytes of log lines and output, then a good page.
            "log-flood" => {
                let line = "x".repeat(4096);
                for _ in 0..200_000 {
                    log::write(log::Level::Error, &line);
                }
                for _ in 0..25_000 {
                    println!("{line}");
                }
                Ok(page(Vec::new(), b"s".to_vec()))
            }
            // A slow server: waits for the imap server's first byte, for as long as it takes.
            "stall" => {
                let server = self
                    .account
                    .servers
                    .iter()
                    .find(|s| s.role == "imap")
                    .ok_or_else(|| report("no imap server".into()))?;
                let connection = net::connect(&server.host, server.port, server.encryption)?;
                connection.read(1)?;
                Ok(page(Vec::new(), b"s".to_vec()))
            }
            other => Err(report(format!("unknown mode `{other}`"))),
        }
    }
}

// Native builds have no component to export from.
#[cfg(target_arch = "wasm32")]
export!(HostileSync);
