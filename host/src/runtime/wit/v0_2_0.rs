//! `mailroom:connector@0.2.0`: a connector that syncs folders page by page. It introduced
//! the host's `mail` interface: what the host holds (`held`, `known`) and body sinks for
//! messages larger than a page.

use self::mailroom::connector0_2_0::mail;
use super::super::host::{Denied, truncate};
use super::super::sandbox::JobState;
use super::super::sink::BodySink;
use super::{Fetched, FolderRequest};
use crate::connector::{ConnectorError, ErrorKind};
use crate::mail::{Fetched as FetchedMessage, Flags, Known, PageLimits, SyncPage, SyncStart};
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, Resource};

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.2.0",
    path: ["../wit/0.1.0", "../wit/0.2.0"],
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
        "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
        "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
        "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
        "mailroom:connector/mail.body-sink": crate::runtime::sink::BodySink,
    },
});

use self::exports::mailroom::connector0_2_0::connector as exported;

pub const VERSION: &str = "0.2.0";

pub type Pre = MailConnectorPre<JobState>;

/// How many messages one `known` call may ask about.
const MAX_PROBES: usize = 10_000;
/// The longest header line (RFC 5322), which bounds a Message-ID.
const MAX_LINE_BYTES: usize = 998;

type Wit<T> = wasmtime::Result<Result<T, super::v0_1_0::mailroom::connector::types::Error>>;

/// 0.2.0 takes 0.1.0's interfaces as they are and adds `mail`.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    mail::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(mailroom_connector0_2_0_connector);
super::session_calls!(mailroom_connector0_2_0_connector);

/// A page asked for, in this version's terms (later versions ask the same way).
pub(super) fn request_to_wit(request: &FolderRequest) -> mail::SyncRequest {
    mail::SyncRequest {
        folder: request.path.clone(),
        state: request.state.clone(),
        start: match request.start {
            SyncStart::Now => mail::Start::Now,
            SyncStart::Since(at) => mail::Start::Since(at),
        },
        limits: mail::Limits {
            max_messages: request.limits.max_messages,
            max_bytes: request.limits.max_bytes,
        },
    }
}

impl mail::Host for JobState {
    async fn held(&mut self, folder: String) -> wasmtime::Result<Vec<mail::HeldRange>> {
        let started = Instant::now();
        let lookup = self.account.as_ref().and_then(|a| a.held.clone());
        let held = match lookup {
            Some(lookup) => lookup(folder).await,
            None => Vec::new(),
        };
        self.charge_since(started)?;
        Ok(held
            .into_iter()
            .map(|range| mail::HeldRange {
                first: range.first,
                last: range.last,
                flags: flags_to_wit(range.flags),
            })
            .collect())
    }

    async fn known(&mut self, probes: Vec<mail::MessageProbe>) -> wasmtime::Result<Vec<bool>> {
        if probes.len() > MAX_PROBES {
            return Err(wasmtime::Error::msg(format!(
                "a connector asked about {} messages at once; at most {MAX_PROBES} are answered",
                probes.len()
            )));
        }
        let started = Instant::now();
        // A Message-ID longer than a header line can hold is no message's.
        let probes: Vec<(String, u64)> = probes
            .into_iter()
            .map(|p| (truncate(p.message_id, MAX_LINE_BYTES), p.size))
            .collect();
        let lookup = self.account.as_ref().and_then(|a| a.known.clone());
        let known = match lookup {
            Some(lookup) => lookup(probes).await,
            None => vec![false; probes.len()],
        };
        self.charge_since(started)?;
        Ok(known)
    }
}

impl mail::HostBodySink for JobState {
    async fn new(&mut self, size: u64) -> wasmtime::Result<Resource<BodySink>> {
        match open_sink(self, size)? {
            Ok(sink) => Ok(sink),
            // This constructor cannot answer an error: a sink the host refuses ends the job
            // with a clear reason rather than an error value the connector might ignore.
            // (0.4.0's `sinks.open` answers one.)
            Err(reason) => Err(wasmtime::Error::new(Denied(reason))),
        }
    }

    async fn write(&mut self, sink: Resource<BodySink>, data: Vec<u8>) -> Wit<()> {
        let started = Instant::now();
        let written = self.table.get_mut(&sink)?.write(&data);
        self.charge_since(started)?;
        Ok(written.map_err(|message| ConnectorError::new(ErrorKind::Denied, message).into()))
    }

    async fn drop(&mut self, sink: Resource<BodySink>) -> wasmtime::Result<()> {
        self.table.delete(sink)?;
        Ok(())
    }
}

/// A body sink of `size` bytes for the job, or why the host will not hold one.
pub(super) fn open_sink(
    state: &mut JobState,
    size: u64,
) -> wasmtime::Result<Result<Resource<BodySink>, String>> {
    let sink = BodySink::new(
        state.sinks.clone(),
        state.live_sinks.clone(),
        size,
        state.sink_memory_share,
    );
    Ok(match sink {
        Ok(sink) => Ok(state.table.push(sink)?),
        Err(reason) => Err(reason),
    })
}

/// A message's body as a page of any version carries it.
pub(super) enum PageBody {
    Bytes(Vec<u8>),
    Sink(Resource<BodySink>),
    Known(Known),
}

/// One message of a page, whatever the version.
pub(super) struct PageMessage {
    pub id: String,
    pub flags: Flags,
    pub received_at: i64,
    pub body: PageBody,
}

/// The host's own page, from this version's, if it keeps within the limits the host asked
/// for (see [`checked_page`]).
pub(super) fn page_from_wit(
    store: &mut Store<JobState>,
    page: mail::Page,
    limits: PageLimits,
) -> wasmtime::Result<Fetched> {
    let messages = page
        .messages
        .into_iter()
        .map(|message| PageMessage {
            id: message.id,
            flags: flags_from_wit(message.flags),
            received_at: message.received_at,
            body: match message.body {
                mail::Body::Bytes(bytes) => PageBody::Bytes(bytes),
                mail::Body::Sink(sink) => PageBody::Sink(sink),
                mail::Body::Known(probe) => PageBody::Known(Known::Probe {
                    message_id: probe.message_id,
                    size: probe.size,
                }),
            },
        })
        .collect();
    let page = page_of(
        page.reset,
        page.changed,
        page.removed,
        page.state,
        (page.backfilled, page.more),
    );
    checked_page(store, page, messages, limits)
}

/// The host's page of what a connector's page says besides its messages; `progress` is
/// (`backfilled`, `more`).
pub(super) fn page_of(
    reset: bool,
    changed: Vec<mail::FlagChange>,
    removed: Vec<String>,
    state: Vec<u8>,
    (backfilled, more): (bool, bool),
) -> SyncPage {
    SyncPage {
        reset,
        messages: Vec::new(),
        changed: changed
            .into_iter()
            .map(|c| (c.id, flags_from_wit(c.flags)))
            .collect(),
        removed,
        state,
        backfilled,
        more,
        server_count: None,
    }
}

/// The host's own page — `page` with `messages` taken in — if it keeps within the limits
/// the host asked for and the caps on what it stores ([`super::sandbox::OutputCaps`]): at
/// most `max_messages` messages, and at most `max_bytes` bytes besides its largest message
/// (which may be larger than a page and travel in a sink).
pub(super) fn checked_page(
    store: &mut Store<JobState>,
    mut page: SyncPage,
    messages: Vec<PageMessage>,
    limits: PageLimits,
) -> wasmtime::Result<Fetched> {
    let caps = store.data().caps;
    let denied = |message: String| {
        Ok(Fetched::Refused(ConnectorError::new(
            ErrorKind::Denied,
            message,
        )))
    };
    if messages.len() > limits.max_messages as usize {
        return denied(format!(
            "the connector returned a page of {} messages when at most {} were asked for",
            messages.len(),
            limits.max_messages
        ));
    }
    let mut sizes = Vec::with_capacity(messages.len());
    for message in &messages {
        sizes.push(match &message.body {
            PageBody::Bytes(bytes) => bytes.len() as u64,
            PageBody::Sink(sink) => store.data().table.get(sink)?.written(),
            PageBody::Known(_) => 0,
        });
    }
    let total: u64 = sizes.iter().sum();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    if total - largest > limits.max_bytes {
        return denied(format!(
            "the connector returned a page of {total} bytes when {} (and one larger message) were asked for",
            limits.max_bytes
        ));
    }
    if page.state.len() > caps.max_state_bytes {
        return denied(format!(
            "the connector returned a folder state of {} bytes; at most {} are kept",
            page.state.len(),
            caps.max_state_bytes
        ));
    }
    if page.changed.len() + page.removed.len() > caps.max_page_ids {
        return denied(format!(
            "the connector returned {} changed and removed ids in one page; at most {} are taken",
            page.changed.len() + page.removed.len(),
            caps.max_page_ids
        ));
    }
    let ids = messages
        .iter()
        .map(|m| &m.id)
        .chain(page.changed.iter().map(|(id, _)| id))
        .chain(page.removed.iter());
    if let Some(id) = ids.into_iter().find(|id| id.len() > caps.max_id_bytes) {
        return denied(format!(
            "the connector returned a message id of {} bytes; at most {} are kept",
            id.len(),
            caps.max_id_bytes
        ));
    }
    page.messages.reserve(messages.len());
    for message in messages {
        let (raw, known) = match message.body {
            PageBody::Bytes(bytes) => (bytes, None),
            PageBody::Sink(sink) => {
                let sink = store.data_mut().table.delete(sink)?;
                match sink.into_bytes() {
                    Ok(bytes) => (bytes, None),
                    Err(reason) => {
                        return Ok(Fetched::Refused(ConnectorError::new(
                            ErrorKind::Connector,
                            reason,
                        )));
                    }
                }
            }
            PageBody::Known(known) => (Vec::new(), Some(known)),
        };
        page.messages.push(FetchedMessage {
            provider_id: message.id,
            flags: message.flags,
            received_at: message.received_at,
            raw,
            known,
        });
    }
    Ok(Fetched::Page(page))
}

pub(super) fn flags_from_wit(flags: mail::MessageFlags) -> Flags {
    Flags {
        seen: flags.seen,
        flagged: flags.flagged,
        answered: flags.answered,
        draft: flags.draft,
    }
}

pub(super) fn flags_to_wit(flags: Flags) -> mail::MessageFlags {
    mail::MessageFlags {
        seen: flags.seen,
        flagged: flags.flagged,
        answered: flags.answered,
        draft: flags.draft,
    }
}
