//! `sync-folder`: a folder's first sync, and its incremental syncs after.
//!
//! Follows "Synchronizing clients with Gmail". The first sync reads the mailbox's history id
//! (`getProfile`), then lists the folder's messages since the start date (`messages.list`,
//! newest first) and fetches them (`messages.get`, several at once): in raw format the ones
//! the host does not hold yet, in minimal format (labels only) the ones it holds under
//! another folder, which then travel as `held`. Later syncs read the change records from the
//! folder's history id (`history.list`), once per job for the whole mailbox: every folder's
//! page is worked out from the same records. A history id Gmail no longer knows (404) means
//! a full sync again: the page says `reset`, and the first sync finds every message the host
//! holds by its id, so nothing is fetched twice.
//!
//! When the host asks for a count, a folder at rest lists its label's messages inside the
//! window and counts them for the host to compare with what it holds; in a label the window
//! does not cover whole (older mail is there), a message inside the window the host does not
//! hold is fetched there and then.

use crate::error::protocol;
use crate::gmail::{self, Format, Gmail, ListQuery, MessageList};
use crate::history::{self, Touched, Tracker};
use crate::labels::{self, in_folder};
use crate::mailroom::connector0_1_0::log::{self, Level};
use crate::mailroom::connector0_1_0::types::Error;
use crate::mailroom::connector0_2_0::mail::Start;
use crate::mailroom::connector0_4_0::sinks;
use crate::mailroom::connector0_5_0::sync::{self as host, Body, Message};
use crate::mailroom::connector0_6_0::sync::{Page, SyncRequest};
use crate::page::{Admit, Budget, Candidate, FetchWindow};
use crate::state::FolderState;
use mailroom_wasi_http::{Flow, Reply};

/// `messages.list` calls one page may make (a list page can come back empty).
const LISTS_PER_PAGE: usize = 4;
/// Fetched messages kept for the next page when one page could not take them: how many,
/// and how many bytes at most.
const STASH_MESSAGES: usize = 64;
const STASH_BYTES: usize = 16 << 20;
/// How much of a message to write into a body sink at once.
const SINK_PART: usize = 1 << 20;
/// Candidates asked about in one `held-ids` call (the host answers up to 10,000).
const SLICE: usize = 1000;
/// A label with more messages than this in its window is not counted.
const MAX_CHECKED: usize = 50_000;
/// Ids asked of one `messages.list` page when counting.
const LIST_PAGE: usize = 500;
/// Mail of the last seconds is left out of a count: the change records this job read may
/// not reach it yet.
const RECENT_SECS: i64 = 600;

/// What a session learns across its folders and pages.
#[derive(Default)]
pub struct Memory {
    /// The change records read in this job.
    history: Option<Digest>,
    /// History ids Gmail answered 404 for in this job.
    expired: Vec<u64>,
    /// Messages fetched for a page that was full by the time they came.
    stash: Vec<Fetched>,
    /// The mean size of the messages fetched, to fetch about what a page can take.
    mean_size: Option<u64>,
    /// Folders listed against the host in this job: asked for again, they are listed again,
    /// from a fresh reading of the change records.
    checked: Vec<String>,
    /// Folders whose last page said `more`: the host may still be storing it while the next
    /// is made, so what it holds is not yet what it was handed.
    paging: Vec<String>,
}

/// The end state of every message the records from `start` touched, up to `end`.
struct Digest {
    start: u64,
    end: u64,
    /// Names this reading of the records, for the offsets of folder states.
    run: u64,
    touched: Vec<Touched>,
}

/// A message fetched in raw format.
struct Fetched {
    id: String,
    labels: Vec<String>,
    received_at: i64,
    raw: Vec<u8>,
}

impl Memory {
    /// Learns a fetched message's size.
    fn saw_size(&mut self, size: u64) {
        self.mean_size = Some(match self.mean_size {
            Some(mean) => (mean * 7 + size) / 8,
            None => size,
        });
    }

    fn take_stashed(&mut self, id: &str) -> Option<Fetched> {
        let at = self.stash.iter().position(|f| f.id == id)?;
        Some(self.stash.remove(at))
    }

    /// Keeps a fetched message for a later page. Candidates come in order, so when the
    /// stash is full it keeps what it has: those are needed first.
    fn stash(&mut self, fetched: Fetched) {
        self.stash.retain(|f| f.id != fetched.id);
        let total: usize = self.stash.iter().map(|f| f.raw.len()).sum();
        if self.stash.len() < STASH_MESSAGES && total + fetched.raw.len() <= STASH_BYTES {
            self.stash.push(fetched);
        }
    }
}

fn empty_page() -> Page {
    Page {
        reset: false,
        messages: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        state: Vec::new(),
        backfilled: false,
        more: false,
        server_count: None,
    }
}

pub fn sync_folder(
    gmail: &Gmail,
    memory: &mut Memory,
    request: &SyncRequest,
) -> Result<Page, Error> {
    let sync = FolderSync {
        gmail,
        memory,
        start: request.start,
        count: request.count,
        folder: &request.folder,
        max_messages: request.limits.max_messages,
        budget: Budget::new(request.limits.max_messages, request.limits.max_bytes),
        page: empty_page(),
    };
    let state = request.state.as_deref().and_then(FolderState::decode);
    let page = match (state, request.start) {
        (Some(state), _) if state.backfilled => sync.changes(state),
        (Some(state), Start::Since(since)) => sync.backfill(state, since),
        (Some(state), Start::Now) => {
            sync.at_rest(state.keeping_whole(FolderState::synced(state.history_id)))
        }
        (None, start) => {
            let profile = gmail.profile()?;
            match start {
                Start::Now => {
                    let mut state = FolderState::synced(profile.history_id);
                    // Only mail from now on is taken: the window is the whole label when it
                    // holds nothing yet.
                    state.whole = sync.covers_whole(None);
                    sync.at_rest(state)
                }
                Start::Since(since) => sync.backfill(FolderState::first(profile.history_id), since),
            }
        }
    }?;
    memory.paging.retain(|f| f != &request.folder);
    if page.more {
        memory.paging.push(request.folder.clone());
    }
    Ok(page)
}

/// How a candidate's outcome is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// First sync: what is not in the folder is skipped.
    Backfill,
    /// Change records: what the host holds and is not in the folder is removed.
    Changes,
}

/// How a candidate is to be had.
enum Plan {
    /// The host holds it and its labels are known: nothing to fetch.
    Held(Vec<String>),
    /// The host holds it: fetch its labels.
    Minimal,
    /// Fetch it whole.
    Raw,
    /// Fetched already, for an earlier page.
    Stashed(Fetched),
}

struct FolderSync<'a> {
    gmail: &'a Gmail,
    memory: &'a mut Memory,
    start: Start,
    /// The host asked for a count.
    count: bool,
    folder: &'a str,
    max_messages: u32,
    budget: Budget,
    page: Page,
}

impl FolderSync<'_> {
    /// A page that ends with the folder at rest.
    fn at_rest(mut self, state: FolderState) -> Result<Page, Error> {
        self.page.backfilled = true;
        self.page.more = false;
        self.check(&state)?;
        self.page.state = state.encode();
        Ok(self.page)
    }

    /// One page of the folder's label listing: messages matching `q`, newest first.
    fn list(&self, q: Option<&str>, max: u32, token: Option<&str>) -> Result<MessageList, Error> {
        self.gmail.list(&ListQuery {
            label: Some(self.folder),
            q,
            include_spam_trash: labels::lists_spam_or_trash(self.folder),
            max_results: max,
            page_token: token,
        })
    }

    /// Every id of the folder's messages matching `q`; none past [`MAX_CHECKED`].
    fn list_all(&self, q: &str) -> Result<Option<Vec<String>>, Error> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        // A listing that goes on past its pages (empty ones, say) is cut where it must end.
        for _ in 0..=MAX_CHECKED / LIST_PAGE + 1 {
            let list = self.list(Some(q), LIST_PAGE as u32, token.as_deref())?;
            ids.extend(list.messages.into_iter().map(|m| m.id));
            if ids.len() > MAX_CHECKED {
                return Ok(None);
            }
            match list.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(Some(ids)),
            }
        }
        Ok(None)
    }

    /// The check of a folder at rest, when the host asks for a count: the label's messages
    /// inside the window are listed (but for the last minutes', which the change records
    /// read in this job may not reach) and counted for the host; in a label the window does
    /// not cover whole, those the host holds nowhere are fetched there and then (the page
    /// then says `more` while some of them wait).
    fn check(&mut self, state: &FolderState) -> Result<(), Error> {
        if !self.count {
            return Ok(());
        }
        let until = now_secs().saturating_sub(RECENT_SECS);
        let q = match (state.whole, self.start) {
            (true, _) => format!("before:{until}"),
            (false, Start::Since(since)) => format!("after:{since} before:{until}"),
            // Nothing to list against: the window is no search.
            (false, Start::Now) => return Ok(()),
        };
        if !self.memory.checked.iter().any(|f| f == self.folder) {
            self.memory.checked.push(self.folder.to_owned());
        }
        let ids = match self.list_all(&q) {
            Ok(Some(mut ids)) => {
                // A label that changed while it was listed may name an id twice.
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            // Too many to list: the label is not counted.
            Ok(None) => return Ok(()),
            // A listing that fails leaves the label uncounted, never unsynced.
            Err(e) => {
                log::write(
                    Level::Warn,
                    &format!(
                        "cannot list folder {} to count it: {}",
                        self.folder, e.message
                    ),
                );
                return Ok(());
            }
        };
        self.page.server_count = Some(ids.len() as u64);
        // What the host holds is known only once it stored every page of this job's: a
        // folder that paged is looked through at its next count.
        let in_flight = self.memory.paging.iter().any(|f| f == self.folder);
        if state.whole || in_flight {
            return Ok(());
        }
        // This page's own messages are not held yet.
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.page.messages.iter().any(|m| &m.id == id))
            .collect();
        let mut missing = Vec::new();
        for slice in ids.chunks(SLICE) {
            let held = host::held_ids(slice);
            missing.extend(
                slice
                    .iter()
                    .zip(held.iter().copied().chain(std::iter::repeat(false)))
                    .filter(|(_, held)| !held)
                    .map(|(id, _)| Candidate {
                        id: id.clone(),
                        labels: None,
                    }),
            );
        }
        if !missing.is_empty() {
            log::write(
                Level::Warn,
                &format!(
                    "{} messages of folder {} inside the sync window were missing; fetching them",
                    missing.len(),
                    self.folder
                ),
            );
        }
        match self.collect(&missing, Mode::Backfill) {
            Ok(done) if done < missing.len() => self.page.more = true,
            Ok(_) => {}
            // What could not be fetched now is found missing again at the next count; the
            // page keeps what it has.
            Err(e) => {
                log::write(
                    Level::Warn,
                    &format!(
                        "cannot fetch the missing messages of folder {}: {}",
                        self.folder, e.message
                    ),
                );
                self.page.server_count = None;
            }
        }
        Ok(())
    }

    /// Whether the window covers the whole label: it holds no message matching `older` (one
    /// list call); a label that cannot be asked counts as not whole.
    fn covers_whole(&self, older: Option<&str>) -> bool {
        match self.list(older, 1, None) {
            Ok(list) => list.messages.is_empty(),
            Err(e) => {
                log::write(
                    Level::Warn,
                    &format!("cannot list folder {}: {}", self.folder, e.message),
                );
                false
            }
        }
    }

    /// The first sync, down the folder's listing from the newest message.
    fn backfill(mut self, mut state: FolderState, since: i64) -> Result<Page, Error> {
        let q = format!("after:{since}");
        let mut lists = 0;
        loop {
            if state.pending.is_empty() {
                if state.listing_done() {
                    state = state.keeping_whole(FolderState::synced(state.history_id));
                    break;
                }
                if !self.budget.has_room() || lists == LISTS_PER_PAGE {
                    break;
                }
                let list = self.list(
                    Some(&q),
                    self.max_messages.min(500),
                    state.next_page.as_deref(),
                )?;
                lists += 1;
                state.listed = true;
                state.next_page = list.next_page_token.filter(|t| !t.is_empty());
                state.pending = list.messages.into_iter().map(|m| m.id).collect();
                continue;
            }
            if !self.budget.has_room() {
                break;
            }
            let candidates: Vec<Candidate> = state
                .pending
                .iter()
                .map(|id| Candidate {
                    id: id.clone(),
                    labels: None,
                })
                .collect();
            let done = self.collect(&candidates, Mode::Backfill)?;
            state.pending.drain(..done);
            if done < candidates.len() {
                break;
            }
        }
        self.page.backfilled = state.backfilled;
        self.page.more = !state.backfilled;
        if state.backfilled {
            state.whole = self.covers_whole(Some(&format!("before:{since}")));
            self.check(&state)?;
        }
        self.page.state = state.encode();
        Ok(self.page)
    }

    /// An incremental sync from the folder's history id.
    fn changes(mut self, state: FolderState) -> Result<Page, Error> {
        if self.memory.checked.iter().any(|f| f == self.folder) {
            // Asked again after a check: what changed since is read afresh.
            self.memory.history = None;
        }
        let Some((plan, end, run)) = self.plan(state.history_id)? else {
            log::write(
                Level::Info,
                &format!(
                    "Gmail no longer has the changes since history id {}; folder {} syncs again",
                    state.history_id, self.folder
                ),
            );
            let mut page = empty_page();
            page.reset = true;
            return Ok(page);
        };
        let offset = match state.run {
            Some(r) if r == run => (state.offset as usize).min(plan.emit.len()),
            _ => 0,
        };
        if offset == 0 {
            self.page.removed = plan.removed;
        }
        let done = offset + self.collect(&plan.emit[offset..], Mode::Changes)?;
        let at_rest = done >= plan.emit.len();
        let next = state.keeping_whole(if at_rest {
            FolderState::synced(end)
        } else {
            FolderState::paging(
                state.history_id,
                u32::try_from(done).unwrap_or(u32::MAX),
                run,
            )
        });
        self.page.backfilled = true;
        self.page.more = !at_rest;
        if at_rest {
            self.check(&next)?;
        }
        self.page.state = next.encode();
        Ok(self.page)
    }

    /// This folder's part of the change records since `start` (read once per job), with the
    /// history id they reach and the reading's run id; none when Gmail has no history that
    /// old.
    fn plan(&mut self, start: u64) -> Result<Option<(history::FolderPlan, u64, u64)>, Error> {
        let covered = self
            .memory
            .history
            .as_ref()
            .is_some_and(|d| d.start <= start && start <= d.end);
        if !covered {
            if self.memory.expired.iter().any(|&gone| start <= gone) {
                return Ok(None);
            }
            let Some(digest) = read_history(self.gmail, start)? else {
                self.memory.expired.push(start);
                return Ok(None);
            };
            self.memory.history = Some(digest);
        }
        let digest = self.memory.history.as_ref().expect("read above");
        Ok(Some((
            history::plan(&digest.touched, self.folder),
            digest.end,
            digest.run,
        )))
    }

    /// Hands over candidates in order while the page takes them; returns how many are done
    /// (handed over, or skipped as not in the folder).
    fn collect(&mut self, candidates: &[Candidate], mode: Mode) -> Result<usize, Error> {
        let mut done = 0;
        while done < candidates.len() && self.budget.has_room() {
            let end = candidates
                .len()
                .min(done + self.budget.messages_left().min(SLICE));
            let (settled, considered) = self.collect_slice(&candidates[done..end], mode)?;
            done += settled;
            if settled < considered {
                break;
            }
        }
        Ok(done)
    }

    /// One round: asks the host which candidates it holds, then fetches what is needed, the
    /// messages to fetch whole no more than the page's room calls for. Returns how many
    /// candidates are done and how many the round considered.
    fn collect_slice(&mut self, slice: &[Candidate], mode: Mode) -> Result<(usize, usize), Error> {
        let ids: Vec<String> = slice.iter().map(|c| c.id.clone()).collect();
        let held = host::held_ids(&ids);
        let mut window = FetchWindow::new(self.budget.bytes_left(), self.memory.mean_size);
        let mut plans: Vec<Option<Plan>> = Vec::with_capacity(slice.len());
        let mut calls = Vec::new();
        let mut call_at = Vec::new();
        for (i, candidate) in slice.iter().enumerate() {
            let plan = if held.get(i).copied().unwrap_or(false) {
                // A copy at hand is of no use now.
                self.memory.take_stashed(&candidate.id);
                match &candidate.labels {
                    Some(labels) => Plan::Held(labels.clone()),
                    None => Plan::Minimal,
                }
            } else if let Some(fetched) = self.memory.take_stashed(&candidate.id) {
                window.known(fetched.raw.len() as u64);
                Plan::Stashed(fetched)
            } else if window.fetch() {
                Plan::Raw
            } else {
                break;
            };
            let format = match plan {
                Plan::Minimal => Some(Format::Minimal),
                Plan::Raw => Some(Format::Raw),
                _ => None,
            };
            if let Some(format) = format {
                calls.push(Gmail::get_call(&candidate.id, format));
                call_at.push(i);
            }
            plans.push(Some(plan));
        }
        let slice = &slice[..plans.len()];

        let mut settled = 0;
        let mut full = false;
        let gmail = self.gmail;
        gmail.http.run(calls, |k, reply| {
            let at = call_at[k];
            while !full && settled < at {
                let plan = plans[settled].take().expect("each plan is settled once");
                if self.settle(&slice[settled], plan, None, mode)? {
                    settled += 1;
                } else {
                    full = true;
                }
            }
            let plan = plans[at].take().expect("each plan is settled once");
            if full {
                self.keep_for_later(&slice[at], plan, reply);
                return Ok(Flow::Drain);
            }
            if self.settle(&slice[at], plan, Some(reply), mode)? {
                settled += 1;
                Ok(Flow::Continue)
            } else {
                full = true;
                Ok(Flow::Drain)
            }
        })?;
        while !full && settled < slice.len() {
            let Some(plan) = plans[settled].take() else {
                // A call dropped after the page filled.
                break;
            };
            if self.settle(&slice[settled], plan, None, mode)? {
                settled += 1;
            } else {
                full = true;
            }
        }
        // Fetched messages of candidates left for later stay at hand.
        for plan in plans.into_iter().skip(settled).flatten() {
            if let Plan::Stashed(fetched) = plan {
                self.memory.stash(fetched);
            }
        }
        Ok((settled, slice.len()))
    }

    /// Hands one candidate over or skips it. False when the page cannot take it: it is left
    /// for the next page (a fetched message is kept at hand for it).
    fn settle(
        &mut self,
        candidate: &Candidate,
        plan: Plan,
        reply: Option<Result<Reply, Error>>,
        mode: Mode,
    ) -> Result<bool, Error> {
        let id = candidate.id.as_str();
        let answer = || reply.ok_or_else(|| protocol("a message fetch went missing"))?;
        match plan {
            Plan::Held(labels) => Ok(self.hand_over_held(id, &labels, 0, 0)),
            Plan::Minimal => self.settle_minimal(id, answer()?, mode),
            Plan::Raw => self.settle_raw(id, answer()?),
            Plan::Stashed(fetched) => self.settle_fetched(fetched),
        }
    }

    /// A held message, from its minimal format.
    fn settle_minimal(&mut self, id: &str, reply: Reply, mode: Mode) -> Result<bool, Error> {
        if reply.status == 404 {
            self.gone(id, mode);
            return Ok(true);
        }
        let meta = Gmail::meta_of(&reply, id)?;
        if !in_folder(&meta.label_ids, self.folder) {
            self.gone(id, mode);
            return Ok(true);
        }
        let received_at = meta.internal_date.unwrap_or(0) / 1000;
        let size = meta.size_estimate.unwrap_or(0);
        Ok(self.hand_over_held(id, &meta.label_ids, received_at, size))
    }

    /// A message fetched whole: in the page, in a sink, or kept at hand for the next page.
    fn settle_raw(&mut self, id: &str, reply: Reply) -> Result<bool, Error> {
        if reply.status == 404 {
            // Deleted since it was listed: the host never had it.
            return Ok(true);
        }
        let message = Gmail::raw_of(&reply, id)?;
        if !in_folder(&message.label_ids, self.folder) {
            return Ok(true);
        }
        let raw = message
            .raw
            .as_deref()
            .ok_or_else(|| protocol(format!("Gmail sent message {id} without its body")))?;
        let size = gmail::decoded_len(raw);
        self.memory.saw_size(size);
        let base = MessageBase {
            id,
            labels: &message.label_ids,
            received_at: message.internal_date.unwrap_or(0) / 1000,
            size,
        };
        match self.budget.admit(size) {
            Admit::Inline => {
                let bytes = gmail::decode_raw(raw)?;
                self.push(&base, Body::Bytes(bytes));
                Ok(true)
            }
            Admit::Sink => {
                self.hand_over_in_sink(&base, |write| gmail::decode_in_parts(raw, write))
            }
            Admit::Full => {
                if size <= STASH_BYTES as u64 {
                    self.memory.stash(Fetched {
                        id: id.to_owned(),
                        labels: message.label_ids.clone(),
                        received_at: base.received_at,
                        raw: gmail::decode_raw(raw)?,
                    });
                }
                Ok(false)
            }
        }
    }

    /// A message fetched for an earlier page.
    fn settle_fetched(&mut self, fetched: Fetched) -> Result<bool, Error> {
        if !in_folder(&fetched.labels, self.folder) {
            return Ok(true);
        }
        let size = fetched.raw.len() as u64;
        let admit = self.budget.admit(size);
        if admit == Admit::Full {
            self.memory.stash(fetched);
            return Ok(false);
        }
        let Fetched {
            id,
            labels,
            received_at,
            raw,
        } = fetched;
        let base = MessageBase {
            id: &id,
            labels: &labels,
            received_at,
            size,
        };
        if admit == Admit::Inline {
            self.push(&base, Body::Bytes(raw));
            Ok(true)
        } else {
            self.hand_over_in_sink(&base, |write| raw.chunks(SINK_PART).try_for_each(write))
        }
    }

    /// A message the host holds: no body, its flags from its labels. The host keeps its own
    /// date and size when these are unknown (0).
    fn hand_over_held(&mut self, id: &str, labels: &[String], received_at: i64, size: u64) -> bool {
        if !self.budget.admit_held() {
            return false;
        }
        let base = MessageBase {
            id,
            labels,
            received_at,
            size,
        };
        self.push(&base, Body::Held);
        true
    }

    /// A message larger than a page, written into a body sink. When the host has no sink to
    /// give, the message waits for the next page, unless it is the page's first.
    fn hand_over_in_sink(
        &mut self,
        base: &MessageBase,
        fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), Error>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let sink = match sinks::open(base.size) {
            Ok(sink) => sink,
            Err(e) if self.page.messages.is_empty() => return Err(e),
            Err(_) => {
                self.budget.close();
                return Ok(false);
            }
        };
        fill(&mut |part: &[u8]| sink.write(part))?;
        self.push(base, Body::Sink(sink));
        Ok(true)
    }

    fn push(&mut self, base: &MessageBase, body: Body) {
        self.page.messages.push(Message {
            id: base.id.to_owned(),
            flags: labels::flags(base.labels),
            received_at: base.received_at,
            size: base.size,
            body,
        });
    }

    /// A held message that turned out not to be in the folder (or no longer to exist).
    fn gone(&mut self, id: &str, mode: Mode) {
        if mode == Mode::Changes {
            self.page.removed.push(id.to_owned());
        }
    }

    /// A fetched answer for a candidate after the page filled: kept at hand when it is a
    /// whole message small enough.
    fn keep_for_later(&mut self, candidate: &Candidate, plan: Plan, reply: Result<Reply, Error>) {
        match plan {
            Plan::Stashed(fetched) => self.memory.stash(fetched),
            Plan::Raw => {
                let Ok(reply) = reply else { return };
                let Ok(message) = Gmail::raw_of(&reply, &candidate.id) else {
                    return;
                };
                let Some(raw) = message.raw.as_deref() else {
                    return;
                };
                let size = gmail::decoded_len(raw);
                self.memory.saw_size(size);
                if size > STASH_BYTES as u64 {
                    return;
                }
                if let Ok(bytes) = gmail::decode_raw(raw) {
                    self.memory.stash(Fetched {
                        id: candidate.id.clone(),
                        labels: message.label_ids.clone(),
                        received_at: message.internal_date.unwrap_or(0) / 1000,
                        raw: bytes,
                    });
                }
            }
            Plan::Held(_) | Plan::Minimal => {}
        }
    }
}

/// What a page's message says besides its body.
struct MessageBase<'a> {
    id: &'a str,
    labels: &'a [String],
    received_at: i64,
    size: u64,
}

/// The wall clock, in Unix seconds.
fn now_secs() -> i64 {
    i64::try_from(wasi::clocks::wall_clock::now().seconds).unwrap_or(i64::MAX)
}

/// Reads every page of the change records since `start`; none on 404.
fn read_history(gmail: &Gmail, start: u64) -> Result<Option<Digest>, Error> {
    let mut tracker = Tracker::default();
    let mut end = start;
    let mut token: Option<String> = None;
    loop {
        let Some(page) = gmail.history_page(start, token.as_deref())? else {
            return Ok(None);
        };
        for record in &page.history {
            tracker.add(record);
        }
        if let Some(id) = page.history_id {
            end = end.max(id);
        }
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => break,
        }
    }
    Ok(Some(Digest {
        start,
        end,
        run: wasi::random::random::get_random_u64(),
        touched: tracker.finish(),
    }))
}
