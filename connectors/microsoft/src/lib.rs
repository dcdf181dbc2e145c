//! Mailroom's Microsoft connector: Outlook mail (Microsoft 365, Outlook.com) over Microsoft
//! Graph v1.0, a `wasm32-wasip2` component of the `mailroom:connector@0.6.0` world.
//!
//! It speaks HTTP to the Graph the host names (`provider.api-url`) through `wasi:http`, with
//! the HTTP connectors' shared client (`mailroom-wasi-http`) under Outlook's per-mailbox
//! limits; the host adds the account's OAuth token to each request, so no credential ever
//! reaches this code. Graph's immutable ids are mailbox-wide: a message moved by another
//! client keeps its id, travels as `held` and is never downloaded twice.
//!
//! * [`graph`]: the API calls and their JSON;
//! * [`folders`]: mail folders as folders, with roles from the well-known names;
//! * [`sync`]: `sync-folder` as delta rounds;
//! * [`changes`]: `apply`, `append` and `send`.

mod changes;
mod error;
mod folders;
mod graph;
mod sync;
mod time;

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
use graph::Graph;
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
            id: "microsoft".into(),
            name: "Microsoft (Outlook via Graph)".into(),
            version: VERSION.into(),
            auth: AuthKind::Oauth2,
            servers: Vec::new(),
            hosts: Vec::new(),
            files_sent: true,
            mailbox_wide_ids: true,
        }
    }
}

/// One job's work for one account.
struct Session {
    graph: Result<Graph, Error>,
    memory: RefCell<sync::Memory>,
    /// The ids of the well-known folders ([`folders::WELL_KNOWN`]), once asked for.
    well_known: RefCell<Option<Vec<Option<String>>>>,
}

impl Session {
    fn graph(&self) -> Result<&Graph, Error> {
        self.graph.as_ref().map_err(Clone::clone)
    }

    fn well_known(&self) -> Result<Vec<Option<String>>, Error> {
        if let Some(ids) = self.well_known.borrow().as_ref() {
            return Ok(ids.clone());
        }
        let names = folders::WELL_KNOWN.map(|(name, _)| name);
        let ids = self.graph()?.well_known(&names)?;
        *self.well_known.borrow_mut() = Some(ids.clone());
        Ok(ids)
    }

    /// The id of Deleted Items, when the mailbox has one.
    fn trash(&self) -> Result<Option<String>, Error> {
        let at = folders::WELL_KNOWN
            .iter()
            .position(|(name, _)| *name == "deleteditems");
        let known = self.well_known()?;
        Ok(at.and_then(|at| known.get(at).cloned().flatten()))
    }
}

impl GuestSession for Session {
    fn new(_account: Account) -> Self {
        let graph = match provider::api_url() {
            None => Err(error::no_api()),
            Some(base) => mailroom_wasi_http::url::parse_base(&base)
                .map(Graph::new)
                .map_err(|reason| error::error(ErrorKind::Unsupported, reason)),
        };
        Self {
            graph,
            memory: RefCell::new(sync::Memory::default()),
            well_known: RefCell::new(None),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.graph()?.me()
    }

    fn list_folders(&self) -> Result<Vec<Folder>, Error> {
        let all = self.graph()?.folders()?;
        Ok(folders::folders(&all, &self.well_known()?))
    }

    fn sync_folder(&self, request: SyncRequest) -> Result<Page, Error> {
        sync::sync_folder(self.graph()?, &mut self.memory.borrow_mut(), &request)
    }

    fn apply(&self, target: Target, change: Change) -> Result<Applied, Error> {
        changes::apply(self.graph()?, || self.trash(), &target, &change)
    }

    fn append(
        &self,
        folder: String,
        raw: Vec<u8>,
        flags: MessageFlags,
    ) -> Result<Option<String>, Error> {
        changes::append(self.graph()?, &folder, &raw, flags)
    }

    fn send(&self, envelope: Envelope, raw: Vec<u8>) -> Result<Delivery, Error> {
        changes::send(self.graph()?, &envelope, &raw)
    }
}

// Native builds (unit tests of the pure modules) have no component to export from.
#[cfg(target_arch = "wasm32")]
export!(Connector);
