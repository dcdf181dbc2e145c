//! Mailroom's Google connector: Gmail over the Gmail API v1, a `wasm32-wasip2` component of
//! the `mailroom:connector@0.6.0` world.
//!
//! It speaks HTTP to the API the host names (`provider.api-url`) through `wasi:http`; the
//! host adds the account's OAuth token to each request, so no credential ever reaches this
//! code. Labels are folders and Gmail's message ids are mailbox-wide: a message under a
//! second label, or moved, travels as `held` and is never downloaded twice.
//!
//! * [`gmail`]: the API calls and their JSON, made with the HTTP connectors' shared client
//!   (`mailroom-wasi-http`) under Gmail's quota ([`pace`]);
//! * [`labels`]: labels as folders and flags;
//! * [`sync`]: `sync-folder`, with its [`state`], [`page`] budget and [`history`] reading;
//! * [`changes`]: `apply`, `append` and `send`, with [`headers`] for replies.

mod changes;
mod error;
mod gmail;
mod headers;
mod history;
mod labels;
mod pace;
mod page;
mod state;
mod sync;

wit_bindgen::generate!({
    world: "mailroom:connector/mail-connector@0.6.0",
    path: [
        "../../wit/0.1.0",
        "../../wit/0.2.0",
        "../../wit/0.3.0",
        "../../wit/0.4.0",
        "../../wit/0.5.0",
        "../../wit/0.6.0",
    ],
    // The interfaces 0.6.0 takes from earlier versions are generated here too.
    generate_all,
});

use exports::mailroom::connector0_6_0::connector::{AuthKind, Guest, GuestSession, Info};
use gmail::Gmail;
use mailroom::connector0_1_0::types::{Account, Error, ErrorKind, Folder};
use mailroom::connector0_2_0::mail::MessageFlags;
use mailroom::connector0_3_0::changes::{Applied, Change, Delivery, Envelope, Target};
use mailroom::connector0_5_0::provider;
use mailroom::connector0_6_0::sync::{Page, SyncRequest};
use std::cell::RefCell;

/// The connector's own version, as `describe` reports it.
const VERSION: &str = "1.0.0";

struct Connector;

impl Guest for Connector {
    type Session = Session;

    fn describe() -> Info {
        Info {
            id: "google".into(),
            name: "Google (Gmail API)".into(),
            version: VERSION.into(),
            auth: AuthKind::Oauth2,
            servers: Vec::new(),
            hosts: Vec::new(),
            files_sent: true,
            mailbox_wide_ids: true,
        }
    }
}

/// One job's work for one account. What it learns for the whole mailbox (the change records,
/// the user labels) serves every folder of the job.
struct Session {
    gmail: Result<Gmail, Error>,
    memory: RefCell<sync::Memory>,
    /// The ids of the account's user labels, once listed.
    user_labels: RefCell<Option<Vec<String>>>,
}

impl Session {
    fn gmail(&self) -> Result<&Gmail, Error> {
        self.gmail.as_ref().map_err(Clone::clone)
    }

    fn user_labels(&self) -> Result<Vec<String>, Error> {
        if let Some(ids) = self.user_labels.borrow().as_ref() {
            return Ok(ids.clone());
        }
        self.list_folders()?;
        Ok(self.user_labels.borrow().clone().unwrap_or_default())
    }
}

impl GuestSession for Session {
    fn new(_account: Account) -> Self {
        let gmail = match provider::api_url() {
            None => Err(error::no_api()),
            Some(base) => mailroom_wasi_http::url::parse_base(&base)
                .map(Gmail::new)
                .map_err(|reason| error::error(ErrorKind::Unsupported, reason)),
        };
        Self {
            gmail,
            memory: RefCell::new(sync::Memory::default()),
            user_labels: RefCell::new(None),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.gmail()?.profile().map(|_| ())
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        let all = self.gmail()?.labels()?;
        *self.user_labels.borrow_mut() = Some(
            all.iter()
                .filter(|l| l.user)
                .map(|l| l.id.clone())
                .collect(),
        );
        Ok(labels::folders(&all))
    }

    fn sync_folder(&self, request: SyncRequest) -> Result<Page, Error> {
        let gmail = self.gmail()?;
        sync::sync_folder(gmail, &mut self.memory.borrow_mut(), &request)
    }

    fn apply(&self, target: Target, change: Change) -> Result<Applied, Error> {
        changes::apply(self.gmail()?, || self.user_labels(), &target, &change)
    }

    fn append(
        &self,
        folder: String,
        raw: Vec<u8>,
        flags: MessageFlags,
    ) -> Result<Option<String>, Error> {
        changes::append(self.gmail()?, &folder, &raw, flags)
    }

    fn send(&self, envelope: Envelope, raw: Vec<u8>) -> Result<Delivery, Error> {
        changes::send(self.gmail()?, &envelope, &raw)
    }
}

// Native builds (unit tests of the pure modules) have no component to export from.
#[cfg(target_arch = "wasm32")]
export!(Connector);
