//! `mailroom:connector@0.5.0`: HTTP connectors and OAuth accounts. It introduced the host's
//! `provider` (where the provider's API is) and `sync` (0.2.0's page with bodies the host
//! holds under a mailbox-wide id, and `held-ids`); its components may import `wasi:http`,
//! served under the host's policy (see `runtime/http.rs`). Its `describe` says more: hosts to
//! be granted, whether the provider files sent mail, whether ids are mailbox-wide.

use self::mailroom::connector0_5_0::{provider, sync};
use super::super::sandbox::JobState;
use super::Fetched;
use super::v0_2_0::{PageBody, PageMessage, checked_page, flags_from_wit, page_of};
use crate::mail::{Known, PageLimits};
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.5.0",
    path: ["../wit/0.1.0", "../wit/0.2.0", "../wit/0.3.0", "../wit/0.4.0", "../wit/0.5.0"],
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "mailroom:connector/types@0.1.0": super::v0_1_0::mailroom::connector::types,
        "mailroom:connector/net@0.1.0": super::v0_1_0::mailroom::connector::net,
        "mailroom:connector/auth@0.1.0": super::v0_1_0::mailroom::connector::auth,
        "mailroom:connector/log@0.1.0": super::v0_1_0::mailroom::connector::log,
        "mailroom:connector/mail@0.2.0": super::v0_2_0::mailroom::connector0_2_0::mail,
        "mailroom:connector/changes@0.3.0": super::v0_3_0::mailroom::connector0_3_0::changes,
        "mailroom:connector/login@0.4.0": super::v0_4_0::mailroom::connector0_4_0::login,
        "mailroom:connector/sinks@0.4.0": super::v0_4_0::mailroom::connector0_4_0::sinks,
    },
});

use self::exports::mailroom::connector0_5_0::connector as exported;

pub const VERSION: &str = "0.5.0";

pub type Pre = MailConnectorPre<JobState>;

/// How many ids one `held-ids` call may ask about.
const MAX_IDS: usize = 10_000;

/// 0.5.0 takes the earlier interfaces as they are and adds `provider` and `sync`.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    provider::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)?;
    sync::add_to_linker::<_, HasSelf<JobState>>(linker, |state| state)
}

super::common_calls!(@describe_all mailroom_connector0_5_0_connector);
super::common_calls!(@test mailroom_connector0_5_0_connector);
super::session_calls!(mailroom_connector0_5_0_connector);
super::work_calls!();

/// The host's own page, from this version's (see [`v0_2_0::checked_page`]).
fn page_from_wit(
    store: &mut Store<JobState>,
    page: sync::Page,
    limits: PageLimits,
) -> wasmtime::Result<Fetched> {
    let messages = messages_from_wit(page.messages);
    let page = page_of(
        page.reset,
        page.changed,
        page.removed,
        page.state,
        (page.backfilled, page.more),
    );
    checked_page(store, page, messages, limits)
}

/// A page's messages in the host's terms, for this version's pages and later ones that take
/// its `message` unchanged.
pub(super) fn messages_from_wit(messages: Vec<sync::Message>) -> Vec<PageMessage> {
    messages
        .into_iter()
        .map(|message| PageMessage {
            id: message.id,
            flags: flags_from_wit(message.flags),
            received_at: message.received_at,
            body: match message.body {
                sync::Body::Bytes(bytes) => PageBody::Bytes(bytes),
                sync::Body::Sink(sink) => PageBody::Sink(sink),
                sync::Body::Known(probe) => PageBody::Known(Known::Probe {
                    message_id: probe.message_id,
                    size: probe.size,
                }),
                sync::Body::Held => PageBody::Known(Known::ProviderId),
            },
        })
        .collect()
}

impl provider::Host for JobState {
    async fn api_url(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.account.as_ref().and_then(|a| a.api_url.clone()))
    }
}

impl sync::Host for JobState {
    async fn held_ids(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<bool>> {
        if ids.len() > MAX_IDS {
            return Err(wasmtime::Error::msg(format!(
                "a connector asked about {} ids at once; at most {MAX_IDS} are answered",
                ids.len()
            )));
        }
        let started = Instant::now();
        let max = self.caps.max_id_bytes;
        let lookup = self.account.as_ref().and_then(|a| a.held_ids.clone());
        let held = match lookup {
            // An id longer than the host keeps is no id it holds.
            Some(lookup) => {
                let (short, long): (Vec<_>, Vec<_>) = ids
                    .into_iter()
                    .enumerate()
                    .partition(|(_, id)| id.len() <= max);
                let answers = lookup(short.iter().map(|(_, id)| id.clone()).collect()).await;
                let mut held = vec![false; short.len() + long.len()];
                for ((index, _), answer) in short.into_iter().zip(answers) {
                    held[index] = answer;
                }
                held
            }
            None => vec![false; ids.len()],
        };
        self.charge_since(started)?;
        Ok(held)
    }
}
