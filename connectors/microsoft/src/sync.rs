//! `sync-folder`: a folder's first sync and its incremental syncs, both delta rounds.
//!
//! Follows "Get incremental changes to messages in a folder". The first round asks for the
//! folder's messages received since the sync-from date, newest first (`$filter` on
//! `receivedDateTime`, `$orderby=receivedDateTime desc`); its last page hands a delta link,
//! and each later round from that link names what changed since: new and changed messages
//! whole, deleted or moved-out ones with `@removed`. Links are kept as Graph wrote them.
//! A message the host holds under its immutable id (in this folder or another, after a move
//! or a reset) travels as `held`; any other is fetched as MIME (`$value`), several at once.
//! A token Graph no longer knows (410) resets the folder: the next round starts over and
//! finds what the host holds by id, so nothing is fetched twice.
//!
//! A page is one Graph page, sized from the page limits and the mean message size so that
//! its bodies fit; when they do not, the page ends early and the state keeps how much of the
//! Graph page is done (asking for it again with the same size gives the same entries), with
//! the bodies already fetched kept for the next page.
//!
//! When the host asks, a round that reaches its delta link ends with Graph's count of the
//! folder's messages received from the first round's start until ten minutes ago (`$count`),
//! for the host to compare with what it holds.

use crate::error::protocol;
use crate::graph::{Delta, Entry, Graph};
use crate::mailroom::connector0_1_0::log::{self, Level};
use crate::mailroom::connector0_1_0::types::Error;
use crate::mailroom::connector0_2_0::mail::{MessageFlags, Start};
use crate::mailroom::connector0_4_0::sinks;
use crate::mailroom::connector0_5_0::sync::{self as host, Body, Message};
use crate::mailroom::connector0_6_0::sync::{Page, SyncRequest};
use mailroom_wasi_http::Flow;
use serde::{Deserialize, Serialize};

/// The most entries asked of one Graph page.
const MAX_PAGE: u32 = 100;
/// Entries asked for while the mean message size is unknown.
const FIRST_PAGE: u32 = 25;
/// Bodies kept for the next page when a page could not take them, in bytes.
const STASH_BYTES: usize = 16 << 20;
/// How much of a message to write into a body sink at once.
const SINK_PART: usize = 1 << 20;
/// Mail of the last milliseconds is left out of a count: the delta round may not reach it.
const RECENT_MS: i64 = 600_000;

/// What a session learns across its folders and pages.
#[derive(Default)]
pub struct Memory {
    /// Bodies fetched for a page that was full by the time they came.
    stash: Vec<(String, Vec<u8>)>,
    /// The mean size of the messages fetched.
    mean_size: Option<u64>,
}

impl Memory {
    fn saw_size(&mut self, size: u64) {
        self.mean_size = Some(match self.mean_size {
            Some(mean) => (mean * 7 + size) / 8,
            None => size,
        });
    }

    fn take_stashed(&mut self, id: &str) -> Option<Vec<u8>> {
        let at = self.stash.iter().position(|(s, _)| s == id)?;
        Some(self.stash.remove(at).1)
    }

    fn stash(&mut self, id: String, raw: Vec<u8>) {
        let held: usize = self.stash.iter().map(|(_, r)| r.len()).sum();
        if held + raw.len() <= STASH_BYTES {
            self.stash.push((id, raw));
        }
    }

    /// Entries to ask of the next Graph page.
    fn page_size(&self, request: &SyncRequest) -> u32 {
        let by_count = request.limits.max_messages.clamp(1, MAX_PAGE);
        match self.mean_size {
            None => by_count.min(FIRST_PAGE),
            Some(mean) => {
                let by_bytes = request.limits.max_bytes / mean.max(1);
                by_count.min(u32::try_from(by_bytes).unwrap_or(u32::MAX).max(1))
            }
        }
    }
}

/// A folder's sync state, the bytes the host keeps between pages and jobs. Compact JSON:
/// `{"v":1,"l":"/v1.0/me/mailFolders/…/messages/delta?$deltatoken=…","d":true}`:
///
/// * `l`: the path (and query) of the call that gives the next page: the first round's
///   call, or a link Graph handed out (after the API base's own path).
/// * `d`: present once the first round is over (`l` is a delta round's).
/// * `s` and `n`: entries of `l`'s page already handed over, and the page size it was
///   asked with (when a page ended early).
/// * `f`: where the first round started (`receivedDateTime`, in milliseconds): the window
///   Graph counts. Absent from states written before the connector counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    v: u8,
    l: String,
    #[serde(default, skip_serializing_if = "is_false")]
    d: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    s: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    n: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<i64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl State {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|s| s.v == 1 && s.l.starts_with('/'))
    }
}

pub fn sync_folder(
    graph: &Graph,
    memory: &mut Memory,
    request: &SyncRequest,
) -> Result<Page, Error> {
    let state = match &request.state {
        None => {
            let since = since_ms(&request.start);
            State {
                v: 1,
                l: Graph::first_delta(&request.folder, since),
                d: false,
                s: 0,
                n: 0,
                f: Some(since),
            }
        }
        Some(bytes) => State::decode(bytes)
            .ok_or_else(|| protocol("the folder's sync state is not one this connector wrote"))?,
    };
    let size = if state.s > 0 {
        state.n
    } else {
        memory.page_size(request)
    };
    let delta = match graph.delta(&state.l, size)? {
        Delta::Expired => {
            return Ok(Page {
                reset: true,
                messages: Vec::new(),
                changed: Vec::new(),
                removed: Vec::new(),
                state: Vec::new(),
                backfilled: false,
                more: true,
                server_count: None,
            });
        }
        Delta::Page(page) => page,
    };
    let skip = (state.s as usize).min(delta.value.len());
    let entries = &delta.value[skip..];
    let (done, mut page) = hand_over(graph, memory, request, entries)?;
    if done < entries.len() {
        // The page is full: the rest of this Graph page comes next time.
        page.state = State {
            s: u32::try_from(skip + done).unwrap_or(u32::MAX),
            n: size,
            ..state.clone()
        }
        .encode();
        page.backfilled = state.d;
        page.more = true;
        return Ok(page);
    }
    let (link, finished) = match (&delta.next_link, &delta.delta_link) {
        (Some(next), _) => (next, false),
        (None, Some(delta_link)) => (delta_link, true),
        (None, None) => {
            return Err(protocol(
                "a delta page of Microsoft Graph ends with no link",
            ));
        }
    };
    let next = State {
        v: 1,
        l: graph.link_path(link)?,
        d: state.d || finished,
        s: 0,
        n: 0,
        f: state.f,
    };
    page.backfilled = next.d;
    page.more = !finished;
    page.state = next.encode();
    // A state from before the connector counted knows the window's start when it was a date.
    let window = next.f.or(match request.start {
        Start::Since(at) => Some(at.saturating_mul(1000)),
        Start::Now => None,
    });
    if finished
        && request.count
        && let Some(since) = window
    {
        // A folder Graph cannot count stays uncounted, never unsynced.
        // Mail of the last minutes is left out: this round may not have reached it.
        let until = now_ms().saturating_sub(RECENT_MS);
        page.server_count = graph
            .count_between(&request.folder, since, until)
            .map_err(|e| {
                log::write(
                    Level::Warn,
                    &format!("cannot count folder {}: {}", request.folder, e.message),
                )
            })
            .ok();
    }
    Ok(page)
}

/// When the first round starts, in milliseconds: the sync-from date, or now (to the
/// millisecond, so that mail of the second before is not taken for new).
fn since_ms(start: &Start) -> i64 {
    match start {
        Start::Since(at) => at.saturating_mul(1000),
        Start::Now => now_ms(),
    }
}

/// The wall clock, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let now = wasi::clocks::wall_clock::now();
    let ms = u64::from(now.nanoseconds / 1_000_000);
    i64::try_from(now.seconds.saturating_mul(1000).saturating_add(ms)).unwrap_or(i64::MAX)
}

fn flags(entry: &Entry) -> MessageFlags {
    MessageFlags {
        seen: entry.is_read,
        flagged: entry.flagged(),
        // Graph keeps no "answered" state of its own.
        answered: false,
        draft: entry.is_draft,
    }
}

/// The entries that fit one page, in order: how many of `entries` it took, and the page.
fn hand_over(
    graph: &Graph,
    memory: &mut Memory,
    request: &SyncRequest,
    entries: &[Entry],
) -> Result<(usize, Page), Error> {
    let mut page = Page {
        reset: false,
        messages: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        state: Vec::new(),
        backfilled: false,
        more: false,
        server_count: None,
    };
    let present: Vec<String> = entries
        .iter()
        .filter(|e| e.removed.is_none())
        .map(|e| e.id.clone())
        .collect();
    let held = if present.is_empty() {
        Vec::new()
    } else {
        host::held_ids(&present)
    };
    if held.len() != present.len() {
        return Err(protocol("the host answered held-ids for other ids"));
    }
    let is_held = |id: &str| {
        present
            .iter()
            .zip(&held)
            .any(|(p, &h)| h && p.as_str() == id)
    };

    // Fetch the bodies the host does not hold, several at once, up to the page's bytes.
    let wanted: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.removed.is_none() && !is_held(&e.id))
        .collect();
    let mut bodies: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    let mut calls = Vec::new();
    let mut fetch_at = Vec::new();
    for (i, entry) in wanted.iter().enumerate() {
        match memory.take_stashed(&entry.id) {
            Some(raw) => bodies[i] = Some(raw),
            None => {
                calls.push(Graph::value_call(&entry.id));
                fetch_at.push(i);
            }
        }
    }
    let budget = request.limits.max_bytes;
    let mut fetched: u64 = bodies.iter().flatten().map(|b| b.len() as u64).sum();
    let mut full = fetched > budget;
    graph.http.run(calls, |k, reply| {
        let i = fetch_at[k];
        let reply = reply?;
        if reply.status == 404 {
            // Gone since the delta page named it: the next round says so.
            bodies[i] = Some(Vec::new());
            return Ok(if full { Flow::Drain } else { Flow::Continue });
        }
        crate::graph::success(&reply)?;
        memory.saw_size(reply.body.len() as u64);
        if full {
            memory.stash(wanted[i].id.clone(), reply.body);
            return Ok(Flow::Drain);
        }
        fetched += reply.body.len() as u64;
        full = fetched > budget;
        bodies[i] = Some(reply.body);
        Ok(if full { Flow::Drain } else { Flow::Continue })
    })?;

    // The page, entry by entry, until one does not fit.
    let mut bytes: u64 = 0;
    let mut next_body = 0;
    for (done, entry) in entries.iter().enumerate() {
        if entry.removed.is_some() {
            page.removed.push(entry.id.clone());
            continue;
        }
        let received_at = entry
            .received_date_time
            .as_deref()
            .and_then(crate::time::parse)
            .unwrap_or(0);
        let base = Message {
            id: entry.id.clone(),
            flags: flags(entry),
            received_at,
            size: 0,
            body: Body::Held,
        };
        if is_held(&entry.id) {
            page.messages.push(base);
            continue;
        }
        let slot = next_body;
        next_body += 1;
        let Some(raw) = bodies[slot].take() else {
            return Ok((done, page));
        };
        if raw.is_empty() {
            continue;
        }
        let size = raw.len() as u64;
        if bytes + size > budget {
            let alone = !page.messages.iter().any(|m| !matches!(m.body, Body::Held));
            if !alone {
                memory.stash(entry.id.clone(), raw);
                return Ok((done, page));
            }
            let sink = match sinks::open(size) {
                Ok(sink) => sink,
                Err(e) => {
                    memory.stash(entry.id.clone(), raw);
                    return if page.messages.is_empty() && page.removed.is_empty() {
                        Err(e)
                    } else {
                        Ok((done, page))
                    };
                }
            };
            raw.chunks(SINK_PART)
                .try_for_each(|part| sink.write(part))?;
            bytes += size;
            page.messages.push(Message {
                size,
                body: Body::Sink(sink),
                ..base
            });
            continue;
        }
        bytes += size;
        page.messages.push(Message {
            size,
            body: Body::Bytes(raw),
            ..base
        });
    }
    Ok((entries.len(), page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_refuse_strangers() {
        let state = State {
            v: 1,
            l: "/v1.0/me/mailFolders/AQ/messages/delta?$deltatoken=x".into(),
            d: true,
            s: 0,
            n: 0,
            f: Some(1_700_000_000_000),
        };
        assert_eq!(
            state.encode(),
            br#"{"v":1,"l":"/v1.0/me/mailFolders/AQ/messages/delta?$deltatoken=x","d":true,"f":1700000000000}"#
        );
        assert_eq!(State::decode(&state.encode()), Some(state.clone()));
        // A state from before the connector counted reads with no window start.
        let old = br#"{"v":1,"l":"/v1.0/me/mailFolders/AQ/messages/delta?$deltatoken=x","d":true}"#;
        assert_eq!(State::decode(old), Some(State { f: None, ..state }));
        assert_eq!(State::decode(br#"{"v":2,"l":"/x"}"#), None);
        assert_eq!(State::decode(br#"{"v":1,"l":"https://evil/x"}"#), None);
        assert_eq!(State::decode(b"{\"h\":5}"), None);
    }
}
