//! A connector of world 0.5.0 that reports what its HTTP requests came to, so the tests can
//! show where the host lets a connector's requests go and what it adds to them. `check` sends
//! a GET to each URL of the account's `settings.urls` (space-separated), with the header
//! `settings.header` (`name: value`) when given, and fails with one outcome per URL:
//! `<status> <body>` or `refused <error>`.

wit_bindgen::generate!({
    world: "mailroom:connector/mail-connector@0.5.0",
    path: [
        "../../../wit/0.1.0",
        "../../../wit/0.2.0",
        "../../../wit/0.3.0",
        "../../../wit/0.4.0",
        "../../../wit/0.5.0",
    ],
    generate_all,
});

use exports::mailroom::connector0_5_0::connector::{AuthKind, Guest, GuestSession, Info};
use mailroom::connector0_1_0::types::{Account, Error, ErrorKind, Folder};
use mailroom::connector0_2_0::mail::{MessageFlags, SyncRequest};
use mailroom::connector0_3_0::changes::{Applied, Change, Delivery, Envelope, Target};
use mailroom::connector0_5_0::sync::Page;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingBody, OutgoingRequest, Scheme};

struct Probe;

impl Guest for Probe {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "http-probe".into(),
            name: "HTTP probe test connector".into(),
            version: "0.0.1".into(),
            auth: AuthKind::Password,
            servers: vec!["api".into()],
            hosts: vec!["localhost".into()],
            files_sent: false,
            mailbox_wide_ids: false,
        }
    }
}

struct Session {
    account: Account,
}

fn setting<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn unsupported() -> Error {
    Error {
        kind: ErrorKind::Unsupported,
        message: "a probe only checks".into(),
        server: None,
        retry_after_secs: None,
    }
}

/// One GET: `<status> <body>` or `refused <why>`.
fn get(url: &str, header: Option<&str>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("refused not a URL: {url}");
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some((name, value)) = header.and_then(|h| h.split_once(':'))
        && let Err(e) = headers.append(name.trim(), value.trim().as_bytes())
    {
        return format!("refused header {e:?}");
    }
    let request = OutgoingRequest::new(headers);
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    if request.set_scheme(Some(&scheme)).is_err()
        || request.set_authority(Some(authority)).is_err()
        || request.set_path_with_query(Some(path)).is_err()
    {
        return "refused the request's URL".into();
    }
    let Ok(body) = request.body() else {
        return "refused the request's body".into();
    };
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(e) => return format!("refused {e:?}"),
    };
    if OutgoingBody::finish(body, None).is_err() {
        return "refused finishing the body".into();
    }
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return format!("refused {e:?}"),
        _ => return "refused without an answer".into(),
    };
    let status = response.status();
    let mut text = Vec::new();
    if let Ok(body) = response.consume()
        && let Ok(stream) = body.stream()
    {
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            text.extend_from_slice(&chunk);
        }
    }
    format!("{status} {}", String::from_utf8_lossy(&text).trim())
}

impl GuestSession for Session {
    fn new(account: Account) -> Self {
        Self { account }
    }

    fn check(&self) -> Result<(), Error> {
        let header = setting(&self.account, "header");
        let outcomes: Vec<String> = setting(&self.account, "urls")
            .unwrap_or_default()
            .split_whitespace()
            .map(|url| get(url, header))
            .collect();
        Err(Error {
            kind: ErrorKind::Protocol,
            message: outcomes.join(" | "),
            server: None,
            retry_after_secs: None,
        })
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        Ok(Vec::new())
    }

    fn sync_folder(&self, _: SyncRequest) -> Result<Page, Error> {
        Err(unsupported())
    }

    fn apply(&self, _: Target, _: Change) -> Result<Applied, Error> {
        Err(unsupported())
    }

    fn append(&self, _: String, _: Vec<u8>, _: MessageFlags) -> Result<Option<String>, Error> {
        Err(unsupported())
    }

    fn send(&self, _: Envelope, _: Vec<u8>) -> Result<Delivery, Error> {
        Err(unsupported())
    }
}

export!(Probe);
