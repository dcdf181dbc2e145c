//! One page of a folder's sync (`sync-folder`).
//!
//! A page does, in order and within its budget: the changes to what the host already holds
//! (once per job and folder: with QRESYNC one `CHANGEDSINCE … VANISHED` fetch; with CONDSTORE
//! the flag changes from the change log and the removals from a comparison of UID sets;
//! without either, a comparison of UID sets and flag sets, each fetched as ranges with
//! `ESEARCH`), then new mail above the high-water mark, then the backfill — newest first,
//! down from the low-water mark to the account's start date. Bodies are fetched by UID set,
//! never one round trip per message; a message larger than the page's byte budget is fetched
//! in parts into a host-side sink.
//!
//! The page that ends a folder's sync carries the server's count of the messages inside the
//! sync window, for the host to compare with what it holds.

use super::reply::{Code, Fetch, Reply};
use super::state::FolderState;
use super::{Client, quote};
use crate::error::protocol;
use crate::mailroom::connector0_1_0::log::{self, Level};
use crate::mailroom::connector0_1_0::types::Error;
use crate::mailroom::connector0_2_0::mail::{
    self, BodySink, FlagChange, HeldRange, MessageFlags, MessageProbe, Start,
};
use crate::mailroom::connector0_5_0::sync::{Body, Message};
use crate::mailroom::connector0_6_0::sync::{Page, SyncRequest};
use crate::transport::Transport;
use std::collections::HashMap;

/// The part size for messages fetched in parts.
const PART_BYTES: u32 = 4 * 1024 * 1024;
/// The most messages a count looks at one by one around the window's start (two or three
/// days of mail).
const MAX_EDGE: u64 = 50_000;

/// What `SELECT` reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selected {
    uid_validity: Option<u32>,
    uid_next: Option<u32>,
    modseq: Option<u64>,
    exists: u32,
}

/// What a job remembers between the pages of a folder. A folder's sync that ends (a page
/// without `more`) leaves nothing: a later call for it in the same job is a fresh look.
#[derive(Default)]
pub struct JobMemory {
    /// The folders whose changes were already checked in this job.
    checked: Vec<String>,
    /// The backfill of one folder, as far as this job went.
    backfill: Option<Backfill>,
}

/// A folder's backfill in one job: the UIDs left to take (ascending) from one `SEARCH`, and
/// the metadata fetched ahead for the next pages, so that a page costs one `FETCH` of bodies
/// rather than one of metadata too. Flags fetched ahead are no older than the folder state's
/// MODSEQ, which moves only at a job's first look at the folder, so a later change is found.
struct Backfill {
    folder: String,
    pending: Vec<u32>,
    /// None for a UID the server no longer has.
    metas: HashMap<u32, Option<Meta>>,
}

/// How many of the backfill's next UIDs have their metadata fetched at once.
const METAS_AHEAD: usize = 2_000;

impl JobMemory {
    /// Forgets what the job learnt of `folder`.
    fn forget(&mut self, folder: &str) {
        self.checked.retain(|f| f != folder);
        if self.backfill.as_ref().is_some_and(|b| b.folder == folder) {
            self.backfill = None;
        }
    }
}

/// A message's metadata, fetched before its body to fit the page.
#[derive(Clone)]
struct Meta {
    uid: u32,
    flags: MessageFlags,
    received_at: i64,
    size: u32,
}

struct Budget {
    messages: u32,
    bytes: u64,
}

impl<T: Transport> Client<T> {
    pub fn sync_folder(
        &mut self,
        request: &SyncRequest,
        memory: &mut JobMemory,
    ) -> Result<Page, Error> {
        self.enable_qresync()?;
        let selected = self.select(&request.folder)?;
        let uid_validity = selected
            .uid_validity
            .ok_or_else(|| protocol("the server sent no UIDVALIDITY for the folder"))?;
        let uid_next = match selected.uid_next {
            Some(next) => next,
            None => self.uid_next_by_fetch(selected.exists)?,
        };
        let previous = request.state.as_deref().and_then(FolderState::decode);
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
        if previous.is_none() {
            // The folder starts over: what this job learnt of it is void.
            memory.forget(&request.folder);
        }
        let mut state = match previous {
            Some(state) if state.uid_validity != uid_validity => {
                memory.forget(&request.folder);
                page.reset = true;
                return Ok(page);
            }
            // A state from before the first sync's UIDNEXT was kept: from here on, new mail
            // is counted whatever its date (the count is then a lower bound, which is safe).
            Some(state) if state.origin == 0 => FolderState {
                origin: state.high,
                ..state
            },
            Some(state) => state,
            None => FolderState {
                uid_validity,
                high: uid_next,
                modseq: selected.modseq.unwrap_or(0),
                low: uid_next,
                backfilled: matches!(request.start, Start::Now),
                origin: uid_next,
            },
        };
        let mut budget = Budget {
            messages: request.limits.max_messages.max(1),
            bytes: request.limits.max_bytes.max(1),
        };

        if previous.is_some() && !memory.checked.contains(&request.folder) {
            self.changes(&request.folder, &state, &mut page)?;
            memory.checked.push(request.folder.clone());
            if let Some(modseq) = selected.modseq {
                state.modseq = modseq;
            }
        }

        if uid_next > state.high {
            let metas = self.metas(&format!("{}:*", state.high))?;
            let fresh: Vec<Meta> = metas.into_iter().filter(|m| m.uid >= state.high).collect();
            let (taken, all) = take_within(fresh, &mut budget);
            state.high = match (all, taken.last()) {
                (false, Some(last)) => last.uid + 1,
                _ => uid_next,
            };
            page.more |= !all;
            // After the first page, new mail may be mail moved in from another folder, which
            // the host holds already.
            let taken = if previous.is_some() {
                self.skip_known(taken, &mut page.messages)?
            } else {
                taken
            };
            self.bodies(taken, &mut page.messages)?;
        }

        if !state.backfilled && budget.messages > 0 && budget.bytes > 0 {
            if let Start::Since(since) = request.start {
                self.backfill(
                    &request.folder,
                    since,
                    &mut state,
                    &mut budget,
                    memory,
                    &mut page,
                )?;
            } else {
                state.backfilled = true;
            }
        }

        page.backfilled = state.backfilled;
        page.more |= !state.backfilled;
        page.state = state.encode();
        if !page.more {
            memory.forget(&request.folder);
        }
        if !page.more && request.count {
            // A server that cannot count leaves the folder uncounted, never unsynced.
            page.server_count = self
                .count_window(request.start, &state)
                .unwrap_or_else(|e| {
                    log::write(
                        Level::Warn,
                        &format!("cannot count folder {}: {}", request.folder, e.message),
                    );
                    None
                });
        }
        Ok(page)
    }

    /// How many messages below the high-water mark the sync window holds on the server: those
    /// received since `start` and everything from the first sync's UIDNEXT on. None for a
    /// folder whose state does not say where its first sync began.
    fn count_window(&mut self, start: Start, state: &FolderState) -> Result<Option<u64>, Error> {
        if state.origin == 0 {
            return Ok(None);
        }
        if state.high <= 1 {
            return Ok(Some(0));
        }
        let top = state.high - 1;
        let news = (state.origin <= top).then(|| format!("UID {}:{top}", state.origin));
        let Start::Since(since) = start else {
            return Ok(Some(match news {
                Some(news) => count(&self.search(&news)?, state.origin, top),
                None => 0,
            }));
        };
        // SEARCH compares dates in the server's time zone (at most 14 hours from UTC): a date
        // two days past the start's is surely inside the window, one the day before or the
        // day after is decided by its INTERNALDATE, an earlier one is surely outside.
        let day = since.div_euclid(86_400) * 86_400;
        let after = imap_date(day + 2 * 86_400);
        let sure = match &news {
            Some(news) => format!("UID 1:{top} OR SINCE {after} {news}"),
            None => format!("UID 1:{top} SINCE {after}"),
        };
        let mut total = count(&self.search(&sure)?, 1, top);
        let below = state.origin.min(state.high);
        if below > 1 {
            let edge = self.search(&format!(
                "UID 1:{} SINCE {} BEFORE {after}",
                below - 1,
                imap_date(day - 86_400)
            ))?;
            if count(&edge, 1, below - 1) > MAX_EDGE {
                return Err(protocol(
                    "the server found too many messages around the window's start",
                ));
            }
            if !edge.is_empty() {
                let uids: Vec<u32> = edge
                    .iter()
                    .flat_map(|&range| within(range, 1, below - 1))
                    .collect();
                total += self
                    .metas(&uid_set(&uids))?
                    .iter()
                    .filter(|m| m.uid < below && m.received_at >= since)
                    .count() as u64;
            }
        }
        Ok(Some(total))
    }

    /// `ENABLE QRESYNC` once per connection, when the server has it.
    fn enable_qresync(&mut self) -> Result<(), Error> {
        if self.qresync.is_none() {
            let enabled = self.has_capability("QRESYNC") && {
                let done = self.run("ENABLE QRESYNC")?;
                matches!(done.status, super::reply::Status::Ok)
            };
            self.qresync = Some(enabled);
        }
        Ok(())
    }

    pub(super) fn select(&mut self, folder: &str) -> Result<Selected, Error> {
        let condstore = self.has_capability("CONDSTORE") || self.qresync == Some(true);
        let command = if condstore {
            format!("SELECT {} (CONDSTORE)", quote(folder)?)
        } else {
            format!("SELECT {}", quote(folder)?)
        };
        let mut selected = Selected::default();
        let done = self.run_with(&command, |reply| match reply {
            Reply::Untagged {
                code: Some(code), ..
            } => match code {
                Code::UidValidity(n) => selected.uid_validity = Some(n),
                Code::UidNext(n) => selected.uid_next = Some(n),
                Code::HighestModSeq(n) => selected.modseq = Some(n),
                _ => {}
            },
            Reply::Exists(n) => selected.exists = n,
            _ => {}
        })?;
        if !matches!(done.status, super::reply::Status::Ok) {
            return Err(crate::error::error(
                crate::mailroom::connector0_1_0::types::ErrorKind::NotFound,
                format!("cannot open folder {folder}: {}", done.text),
            ));
        }
        if !condstore {
            selected.modseq = None;
        }
        Ok(selected)
    }

    /// UIDNEXT for a server that does not report it: one past the last message's UID.
    fn uid_next_by_fetch(&mut self, exists: u32) -> Result<u32, Error> {
        if exists == 0 {
            return Ok(1);
        }
        let mut last = 0;
        self.run_with("UID FETCH * (UID)", |reply| {
            if let Reply::Fetch(fetch) = reply {
                last = last.max(fetch.uid.unwrap_or(0));
            }
        })?
        .ok("UID FETCH")?;
        Ok(last + 1)
    }

    /// Flag changes and removals among the messages below the high-water mark.
    fn changes(&mut self, folder: &str, state: &FolderState, page: &mut Page) -> Result<(), Error> {
        if state.high <= 1 {
            return Ok(());
        }
        let below = format!("1:{}", state.high - 1);
        let qresync = self.qresync == Some(true) && state.modseq > 0;
        let condstore = state.modseq > 0 && self.has_capability("CONDSTORE");
        if qresync || condstore {
            let modifier = if qresync {
                format!("(CHANGEDSINCE {} VANISHED)", state.modseq)
            } else {
                format!("(CHANGEDSINCE {})", state.modseq)
            };
            let high = state.high;
            let (changed, removed) = (&mut page.changed, &mut page.removed);
            self.run_with(
                &format!("UID FETCH {below} (UID FLAGS) {modifier}"),
                |reply| match reply {
                    Reply::Fetch(fetch) => {
                        if let (Some(uid), Some(flags)) = (fetch.uid, &fetch.flags)
                            && uid < high
                        {
                            changed.push(FlagChange {
                                id: uid.to_string(),
                                flags: flags_of(flags),
                            });
                        }
                    }
                    Reply::Vanished(ranges) => {
                        for (first, last) in ranges {
                            removed.extend((first..=last.min(high - 1)).map(|u| u.to_string()));
                        }
                    }
                    _ => {}
                },
            )?
            .ok("UID FETCH CHANGEDSINCE")?;
            if qresync {
                return Ok(());
            }
        }
        // Compare what the host holds with the server's UID set (and, without a change log,
        // its flag sets).
        let held: Vec<HeldRange> = mail::held(folder)
            .into_iter()
            .filter(|r| r.first < state.high as u64)
            .collect();
        let (Some(first), Some(last)) = (held.first(), held.last()) else {
            return Ok(());
        };
        let span = format!("{}:{}", first.first, last.last.min(state.high as u64 - 1));
        let present = self.search(&format!("UID {span}"))?;
        let flag_sets = if condstore {
            None
        } else {
            Some([
                self.search(&format!("UID {span} SEEN"))?,
                self.search(&format!("UID {span} FLAGGED"))?,
                self.search(&format!("UID {span} ANSWERED"))?,
                self.search(&format!("UID {span} DRAFT"))?,
            ])
        };
        for range in &held {
            for uid in range.first..=range.last.min(state.high as u64 - 1) {
                let uid = uid as u32;
                if !contains(&present, uid) {
                    page.removed.push(uid.to_string());
                    continue;
                }
                if let Some([seen, flagged, answered, draft]) = &flag_sets {
                    let now = MessageFlags {
                        seen: contains(seen, uid),
                        flagged: contains(flagged, uid),
                        answered: contains(answered, uid),
                        draft: contains(draft, uid),
                    };
                    if !same_flags(now, range.flags) {
                        page.changed.push(FlagChange {
                            id: uid.to_string(),
                            flags: now,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// `UID SEARCH` as sorted ranges (with `ESEARCH` when the server has it).
    pub(super) fn search(&mut self, criteria: &str) -> Result<Vec<(u32, u32)>, Error> {
        let command = if self.has_capability("ESEARCH") {
            format!("UID SEARCH RETURN (ALL) {criteria}")
        } else {
            format!("UID SEARCH {criteria}")
        };
        let mut ranges = Vec::new();
        self.run_with(&command, |reply| {
            if let Reply::Search(found) = reply {
                ranges.extend(found);
            }
        })?
        .ok("UID SEARCH")?;
        ranges.sort_unstable();
        Ok(ranges)
    }

    fn backfill(
        &mut self,
        folder: &str,
        since: i64,
        state: &mut FolderState,
        budget: &mut Budget,
        memory: &mut JobMemory,
        page: &mut Page,
    ) -> Result<(), Error> {
        if memory.backfill.as_ref().map(|b| b.folder.as_str()) != Some(folder) {
            let uids = if state.low <= 1 {
                Vec::new()
            } else {
                // SEARCH SINCE compares days in the server's time zone: ask from the day before
                // and keep exactly the messages received at or after `since`.
                let day = imap_date(since - 86_400);
                let ranges = self.search(&format!("UID 1:{} SINCE {day}", state.low - 1))?;
                // A folder synced again (after a count found mail missing) fetches only what
                // the host does not hold there.
                let held = mail::held(folder);
                ranges
                    .into_iter()
                    .flat_map(|range| within(range, 1, state.low - 1))
                    .filter(|&uid| !held_in(&held, uid))
                    .collect()
            };
            memory.backfill = Some(Backfill {
                folder: folder.to_owned(),
                pending: uids,
                metas: HashMap::new(),
            });
        }
        let Backfill {
            pending,
            metas: ahead,
            ..
        } = memory.backfill.as_mut().expect("set above");
        let window = pending.len().saturating_sub(budget.messages as usize);
        let candidates = pending[window..].to_vec();
        if candidates.is_empty() {
            state.backfilled = true;
            return Ok(());
        }
        if candidates.iter().any(|uid| !ahead.contains_key(uid)) {
            let from = pending
                .len()
                .saturating_sub(METAS_AHEAD.max(candidates.len()));
            let wanted: Vec<u32> = pending[from..]
                .iter()
                .copied()
                .filter(|uid| !ahead.contains_key(uid))
                .collect();
            let mut fetched: HashMap<u32, Meta> = self
                .metas(&uid_set(&wanted))?
                .into_iter()
                .map(|m| (m.uid, m))
                .collect();
            ahead.extend(wanted.iter().map(|uid| (*uid, fetched.remove(uid))));
        }
        let mut metas: Vec<Meta> = candidates
            .iter()
            .filter_map(|uid| ahead.get(uid).cloned().flatten())
            .filter(|m| m.received_at >= since)
            .collect();
        metas.sort_unstable_by_key(|m| std::cmp::Reverse(m.uid));
        let (taken, all) = take_within(metas, budget);
        // Everything from the lowest UID handled up is done: the taken messages, and the
        // candidates that turned out older than the start or gone.
        let done_from = if all {
            candidates[0]
        } else {
            taken.last().map(|m| m.uid).unwrap_or(state.low)
        };
        pending.retain(|&uid| uid < done_from);
        ahead.retain(|&uid, _| uid < done_from);
        state.low = done_from;
        if pending.is_empty() {
            state.backfilled = true;
        }
        let mut messages = Vec::with_capacity(taken.len());
        self.bodies(taken, &mut messages)?;
        messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.received_at));
        page.messages.extend(messages);
        Ok(())
    }

    /// Flags, arrival time and size of the messages in a UID set.
    fn metas(&mut self, set: &str) -> Result<Vec<Meta>, Error> {
        let mut metas = Vec::new();
        self.run_with(
            &format!("UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE)"),
            |reply| {
                if let Reply::Fetch(fetch) = reply
                    && let Some(meta) = meta_of(&fetch)
                {
                    metas.push(meta);
                }
            },
        )?
        .ok("UID FETCH")?;
        metas.sort_unstable_by_key(|m| m.uid);
        Ok(metas)
    }

    /// Asks the host which of `metas` it holds already (by Message-ID and size), puts those
    /// in `out` as `known`, and returns the others.
    fn skip_known(&mut self, metas: Vec<Meta>, out: &mut Vec<Message>) -> Result<Vec<Meta>, Error> {
        if metas.is_empty() {
            return Ok(metas);
        }
        let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
        let mut ids: Vec<(u32, String)> = Vec::with_capacity(metas.len());
        self.run_with(
            &format!(
                "UID FETCH {} (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                uid_set(&uids)
            ),
            |reply| {
                if let Reply::Fetch(fetch) = reply
                    && let (Some(uid), Some(header)) = (fetch.uid, fetch.header.as_deref())
                    && let Some(id) = message_id(header)
                {
                    ids.push((uid, id));
                }
            },
        )?
        .ok("UID FETCH")?;
        let probes: Vec<(u32, MessageProbe)> = ids
            .into_iter()
            .filter_map(|(uid, id)| {
                let size = metas.iter().find(|m| m.uid == uid)?.size as u64;
                Some((
                    uid,
                    MessageProbe {
                        message_id: id,
                        size,
                    },
                ))
            })
            .collect();
        if probes.is_empty() {
            return Ok(metas);
        }
        let held = mail::known(&probes.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>());
        let mut rest = Vec::with_capacity(metas.len());
        for meta in metas {
            let known = probes
                .iter()
                .zip(&held)
                .find(|((uid, _), held)| *uid == meta.uid && **held)
                .map(|((_, probe), _)| probe.clone());
            match known {
                Some(probe) => out.push(message(&meta, Body::Known(probe))),
                None => rest.push(meta),
            }
        }
        Ok(rest)
    }

    /// Fetches the bodies of `metas`: those within the page in one command, a larger one in
    /// parts into a sink. A message gone meanwhile is left out.
    fn bodies(&mut self, metas: Vec<Meta>, out: &mut Vec<Message>) -> Result<(), Error> {
        let (large, small): (Vec<Meta>, Vec<Meta>) =
            metas.into_iter().partition(|m| m.size > PART_BYTES);
        if !small.is_empty() {
            let uids: Vec<u32> = small.iter().map(|m| m.uid).collect();
            let mut bodies: Vec<(u32, Vec<u8>)> = Vec::with_capacity(small.len());
            self.run_with(
                &format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&uids)),
                |reply| {
                    if let Reply::Fetch(fetch) = reply
                        && let (Some(uid), Some((_, body))) = (fetch.uid, fetch.body)
                    {
                        bodies.push((uid, body));
                    }
                },
            )?
            .ok("UID FETCH")?;
            bodies.sort_unstable_by_key(|(uid, _)| *uid);
            for meta in small {
                if let Ok(at) = bodies.binary_search_by_key(&meta.uid, |(uid, _)| *uid) {
                    let body = std::mem::take(&mut bodies[at].1);
                    out.push(message(&meta, Body::Bytes(body)));
                }
            }
        }
        for meta in large {
            if let Some(sink) = self.body_in_parts(&meta)? {
                out.push(message(&meta, Body::Sink(sink)));
            }
        }
        Ok(())
    }

    fn body_in_parts(&mut self, meta: &Meta) -> Result<Option<BodySink>, Error> {
        let sink = BodySink::new(meta.size as u64);
        let mut offset: u32 = 0;
        loop {
            let mut part: Option<Vec<u8>> = None;
            self.run_with(
                &format!(
                    "UID FETCH {} (UID BODY.PEEK[]<{offset}.{PART_BYTES}>)",
                    meta.uid
                ),
                |reply| {
                    if let Reply::Fetch(fetch) = reply
                        && fetch.uid == Some(meta.uid)
                    {
                        part = fetch.body.map(|(_, bytes)| bytes);
                    }
                },
            )?
            .ok("UID FETCH")?;
            let Some(part) = part else {
                // Expunged meanwhile.
                return Ok(None);
            };
            let len = part.len() as u32;
            if len > 0 {
                sink.write(&part)?;
            }
            offset += len;
            if len < PART_BYTES || offset >= meta.size {
                return Ok(Some(sink));
            }
        }
    }
}

/// Takes messages in order while they fit the budget; the first always fits (a message
/// larger than the page travels in parts). Returns the taken ones and whether all were.
fn take_within(metas: Vec<Meta>, budget: &mut Budget) -> (Vec<Meta>, bool) {
    let total = metas.len();
    let mut taken = Vec::new();
    for meta in metas {
        let size = meta.size as u64;
        let fits = budget.messages > 0 && (size <= budget.bytes || taken.is_empty());
        if !fits {
            break;
        }
        budget.messages -= 1;
        budget.bytes = budget.bytes.saturating_sub(size);
        taken.push(meta);
        // A message that travels in parts ends the run: the host holds few sinks at once.
        if budget.bytes == 0 || size > PART_BYTES as u64 {
            break;
        }
    }
    let all = taken.len() == total;
    (taken, all)
}

fn message(meta: &Meta, body: Body) -> Message {
    Message {
        id: meta.uid.to_string(),
        flags: meta.flags,
        received_at: meta.received_at,
        size: meta.size as u64,
        body,
    }
}

fn meta_of(fetch: &Fetch) -> Option<Meta> {
    Some(Meta {
        uid: fetch.uid?,
        flags: flags_of(fetch.flags.as_deref().unwrap_or_default()),
        received_at: fetch
            .internal_date
            .as_deref()
            .and_then(parse_internal_date)
            .unwrap_or(0),
        size: fetch.size.unwrap_or(0),
    })
}

/// The Message-ID in a `Message-ID:` header field, without angle brackets.
fn message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let (name, value) = text.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("message-id") {
        return None;
    }
    let id = value.trim().trim_start_matches('<');
    let id = id.split('>').next()?.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

fn flags_of(flags: &[String]) -> MessageFlags {
    let has = |name: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(name));
    MessageFlags {
        seen: has("\\Seen"),
        flagged: has("\\Flagged"),
        answered: has("\\Answered"),
        draft: has("\\Draft"),
    }
}

fn same_flags(a: MessageFlags, b: MessageFlags) -> bool {
    (a.seen, a.flagged, a.answered, a.draft) == (b.seen, b.flagged, b.answered, b.draft)
}

/// Whether the host holds `uid` in the folder, by its runs (ascending, as `held` gives them).
fn held_in(held: &[HeldRange], uid: u32) -> bool {
    let uid = u64::from(uid);
    let at = held.partition_point(|r| r.last < uid);
    held.get(at).is_some_and(|r| r.first <= uid)
}

/// The UIDs of a range a server sent (perhaps reversed) that lie from `low` to `high`.
fn within((a, b): (u32, u32), low: u32, high: u32) -> std::ops::RangeInclusive<u32> {
    a.min(b).max(low)..=a.max(b).min(high)
}

/// How many distinct UIDs from `low` to `high` `ranges` hold, however a server wrote them
/// (reversed, overlapping, out of bounds).
fn count(ranges: &[(u32, u32)], low: u32, high: u32) -> u64 {
    let mut clamped: Vec<(u32, u32)> = ranges
        .iter()
        .map(|&range| within(range, low, high))
        .filter(|r| !r.is_empty())
        .map(|r| (*r.start(), *r.end()))
        .collect();
    clamped.sort_unstable();
    let mut total = 0;
    let mut next = low;
    for (a, b) in clamped {
        let from = a.max(next);
        if from <= b {
            total += u64::from(b - from) + 1;
            next = b.saturating_add(1);
        }
    }
    total
}

/// Whether `uid` is in `ranges` (sorted and disjoint, as `search` returns them).
pub(super) fn contains(ranges: &[(u32, u32)], uid: u32) -> bool {
    let at = ranges.partition_point(|&(_, last)| last < uid);
    ranges.get(at).is_some_and(|&(first, _)| first <= uid)
}

/// A UID set in IMAP syntax from ascending or descending UIDs: `1:3,7,9:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while i + 1 < sorted.len() && sorted[i + 1] == last + 1 {
            i += 1;
            last = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if first == last {
            out.push_str(&first.to_string());
        } else {
            out.push_str(&format!("{first}:{last}"));
        }
        i += 1;
    }
    out
}

/// RFC 3501 `date`: `d-Mon-yyyy`.
const IMAP_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[day padding:none]-[month repr:short]-[year]");

/// RFC 3501 `date-time`: `dd-Mon-yyyy hh:mm:ss +zzzz` (the day may be space-padded).
const INTERNAL_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[day padding:none]-[month repr:short case_sensitive:false]-[year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
);

/// `d-Mon-yyyy` of a Unix time, in UTC.
fn imap_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| at.format(IMAP_DATE).ok())
        .unwrap_or_else(|| "1-Jan-1970".to_owned())
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` to a Unix time.
fn parse_internal_date(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text.trim(), INTERNAL_DATE)
        .ok()
        .map(|at| at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::script::Dialogue;

    #[test]
    fn a_kept_connection_carries_its_session_in_its_note() {
        let (client, _) = crate::imap::scripted(&["ESEARCH"], &[]);
        let (transport, note) = client.into_kept().expect("an idle client is kept");
        let resumed = Client::resume(transport, &note).expect("its own note");
        assert_eq!(resumed.capabilities, ["ESEARCH"]);
        assert_eq!(resumed.qresync, Some(false));
        let (other, _) = Dialogue::new(&[]);
        assert!(Client::resume(other, b"a note of another kind").is_none());
    }

    #[test]
    fn internal_dates_parse_with_their_zone() {
        assert_eq!(
            parse_internal_date("17-Jul-1996 02:44:25 -0700"),
            Some(837_596_665)
        );
        assert_eq!(parse_internal_date(" 1-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_internal_date("1-Foo-1970 00:00:00 +0000"), None);
        assert_eq!(
            parse_internal_date("05-jan-2026 10:00:00 +0100"),
            Some(1_767_603_600)
        );
        assert_eq!(imap_date(837_596_665), "17-Jul-1996");
        assert_eq!(imap_date(0), "1-Jan-1970");
    }

    #[test]
    fn message_ids_come_out_of_their_header_field() {
        assert_eq!(
            message_id(b"Message-ID: <a@b>\r\n\r\n").as_deref(),
            Some("a@b")
        );
        assert_eq!(
            message_id(b"message-id:\r\n <x.y@z>\r\n\r\n").as_deref(),
            Some("x.y@z")
        );
        assert_eq!(message_id(b"\r\n"), None);
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[9, 1, 2, 3, 7, 10, 11, 12]), "1:3,7,9:12");
        assert_eq!(uid_set(&[5]), "5");
    }

    #[test]
    fn counts_take_each_uid_once_within_bounds() {
        assert_eq!(count(&[(1, 3), (7, 7)], 1, 10), 4);
        // Reversed, overlapping and out of bounds, as a hostile server might send them.
        assert_eq!(count(&[(5, 2), (3, 8), (9, 4_000_000_000)], 1, 10), 9);
        assert_eq!(count(&[(1, 100)], 50, 60), 11);
        assert_eq!(count(&[], 1, 10), 0);
        assert_eq!(count(&[(1, 5)], 6, 5), 0);
    }

    #[test]
    fn membership_in_ranges() {
        let ranges = [(1, 3), (7, 7), (9, 12)];
        assert!(contains(&ranges, 1) && contains(&ranges, 7) && contains(&ranges, 12));
        assert!(!contains(&ranges, 4) && !contains(&ranges, 8) && !contains(&ranges, 13));
    }
}
