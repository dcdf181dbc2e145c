//! `mailroom:connector@0.6.0`: completeness. Asked to (`sync-request.count`), its page says
//! how many messages the server holds in the folder within the sync window (`server-count`),
//! which the host compares with what it holds. It introduces no host function; everything a
//! connector imports is an earlier version's.

use self::mailroom::connector0_6_0::sync;
use super::super::sandbox::JobState;
use super::Fetched;
use super::v0_2_0::{checked_page, page_of};
use super::v0_5_0::messages_from_wit;
use super::{FolderRequest, v0_2_0};
use crate::mail::PageLimits;
use wasmtime::Store;

wasmtime::component::bindgen!({
    world: "mailroom:connector/mail-connector@0.6.0",
    path: [
        "../wit/0.1.0",
        "../wit/0.2.0",
        "../wit/0.3.0",
        "../wit/0.4.0",
        "../wit/0.5.0",
        "../wit/0.6.0",
    ],
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
        "mailroom:connector/provider@0.5.0": super::v0_5_0::mailroom::connector0_5_0::provider,
        "mailroom:connector/sync@0.5.0": super::v0_5_0::mailroom::connector0_5_0::sync,
    },
});

use self::exports::mailroom::connector0_6_0::connector as exported;

pub const VERSION: &str = "0.6.0";

pub type Pre = MailConnectorPre<JobState>;

super::common_calls!(@describe_all mailroom_connector0_6_0_connector);
super::common_calls!(@test mailroom_connector0_6_0_connector);
super::session_calls!(mailroom_connector0_6_0_connector, request_to_wit);
super::work_calls!();

/// A page asked for, in this version's terms: 0.2.0's request and whether to count.
pub(super) fn request_to_wit(request: &FolderRequest) -> sync::SyncRequest {
    let earlier = v0_2_0::request_to_wit(request);
    sync::SyncRequest {
        folder: earlier.folder,
        state: earlier.state,
        start: earlier.start,
        limits: earlier.limits,
        count: request.count,
    }
}

/// The host's own page, from this version's (see [`super::v0_2_0::checked_page`]).
pub(super) fn page_from_wit(
    store: &mut Store<JobState>,
    page: sync::Page,
    limits: PageLimits,
) -> wasmtime::Result<Fetched> {
    let messages = messages_from_wit(page.messages);
    let mut host_page = page_of(
        page.reset,
        page.changed,
        page.removed,
        page.state,
        (page.backfilled, page.more),
    );
    host_page.server_count = page.server_count;
    checked_page(store, host_page, messages, limits)
}
