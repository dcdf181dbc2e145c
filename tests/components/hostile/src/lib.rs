//! A connector that misbehaves on purpose, so the tests can show that the host contains it.
//! The account's `settings.mode` picks the misbehaviour; `check` performs it and reports what
//! happened as its error (or succeeds if the host let it through).

wit_bindgen::generate!({
    world: "mail-connector",
    path: "../../../wit/0.1.0",
});

use exports::mailroom::connector::connector::{AuthKind, Guest, GuestSession, Info};
use mailroom::connector::auth::{self, Protocol};
use mailroom::connector::net;
use mailroom::connector::types::{Account, Error, ErrorKind, Folder};

struct Hostile;

impl Guest for Hostile {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "hostile".into(),
            name: "Hostile test connector".into(),
            version: "0.0.1".into(),
            auth: AuthKind::Password,
            servers: vec!["imap".into()],
        }
    }
}

struct Session {
    account: Account,
}

fn setting<'a>(account: &'a Account, key: &str) -> &'a str {
    account
        .settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
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
fn read_until(connection: &net::Connection, prefix: &str, seen: &mut Vec<u8>) -> Result<(), Error> {
    loop {
        let chunk = connection.read(4096)?;
        if chunk.is_empty() {
            return Ok(());
        }
        seen.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(seen);
        if text.lines().any(|l| l.starts_with(prefix)) {
            return Ok(());
        }
    }
}

impl GuestSession for Session {
    fn new(account: Account) -> Self {
        Self { account }
    }

    fn check(&self) -> Result<(), Error> {
        let imap = self.account.servers[0].clone();
        match setting(&self.account, "mode") {
            // Reach a server that is not the account's.
            "other-host" => {
                let target = setting(&self.account, "target");
                let (host, port) = target.rsplit_once(':').unwrap_or((target, "25"));
                net::connect(host, port.parse().unwrap_or(25), imap.encryption)?;
                Err(report(format!("connected to {target}")))
            }
            // Open a message upload, then ask the host to log in on the same connection.
            "data-before-auth" => {
                let connection = net::connect(&imap.host, imap.port, imap.encryption)?;
                let mut seen = Vec::new();
                read_until(&connection, "* ", &mut seen)?;
                connection.write(b"a1 APPEND INBOX {200}\r\n")?;
                auth::authenticate(&connection, Protocol::Imap, &["PLAIN".into()])?;
                Err(report("the host logged in after APPEND".into()))
            }
            // Ask for an SMTP login on the IMAP connection, whose pre-auth rules differ.
            "wrong-protocol" => {
                let connection = net::connect(&imap.host, imap.port, imap.encryption)?;
                let mut seen = Vec::new();
                read_until(&connection, "* ", &mut seen)?;
                auth::authenticate(&connection, Protocol::Smtp, &["PLAIN".into()])?;
                Err(report(
                    "the host ran an SMTP login on an IMAP connection".into(),
                ))
            }
            // Log in properly, then read everything the server sends and hand it back.
            "spy" => {
                let connection = net::connect(&imap.host, imap.port, imap.encryption)?;
                let mut seen = Vec::new();
                read_until(&connection, "* ", &mut seen)?;
                let reply = auth::authenticate(&connection, Protocol::Imap, &["PLAIN".into()])?;
                seen.extend_from_slice(reply.as_bytes());
                seen.extend_from_slice(b"\r\n");
                connection.write(b"a2 NOOP\r\n")?;
                read_until(&connection, "a2 ", &mut seen)?;
                Err(report(format!("saw: {}", String::from_utf8_lossy(&seen))))
            }
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("the hostile connector panics"),
            other => Err(report(format!("unknown mode `{other}`"))),
        }
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        Ok(Vec::new())
    }
}

// Native builds (unit tests of the protocol code) have no component to export from.
#[cfg(target_arch = "wasm32")]
export!(Hostile);
