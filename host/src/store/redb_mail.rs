//! [`MailStore`] on redb.
//!
//! Tables (keys are tuples, `acct` the account id):
//! * `messages` id → message JSON; `bodies` id → raw bytes, exactly as fetched;
//! * `provider_ids` (acct, folder, provider id) → flags byte + message id: the folder's
//!   mapping, and what `held` and the folder counts read without touching message JSON;
//! * `identities` (acct, identity) → message id: recognises a message in another folder;
//! * `timeline` (acct, received_at, id) → (): lists newest first;
//! * `folder_syncs` (acct, folder) → state JSON; `orphans` (acct, id): in no folder since a
//!   page of the current job; `events` seq → event JSON.

use super::mail::{
    Event, FolderCounts, FolderSync, Incoming, MailStore, MessageQuery, PageOutcome, PageWrite,
};
use super::redb::{RedbStore, backend, decode, encode};
use super::redb_records::{ContactRules, create_contacts};
use super::{Result, StoreError};
use crate::folder::FolderId;
use crate::mail::Flags;
use crate::mail::message::{Membership, Message, Placement};
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");
pub(super) const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("bodies");
pub(super) const PROVIDER_IDS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("provider_ids");
pub(super) const IDENTITIES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("identities");
pub(super) const TIMELINE: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("timeline");
pub(super) const FOLDER_SYNCS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("folder_syncs");
pub(super) const ORPHANS: TableDefinition<(&str, &str), ()> = TableDefinition::new("orphans");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// How many events the log keeps; older ones are trimmed as new ones arrive.
const EVENTS_KEPT: u64 = 100_000;

/// The largest string that sorts after every provider id and message id.
pub(super) const MAX_KEY: &str = "\u{10FFFF}";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(MESSAGES).map_err(backend)?;
    txn.open_table(BODIES).map_err(backend)?;
    txn.open_table(PROVIDER_IDS).map_err(backend)?;
    txn.open_table(IDENTITIES).map_err(backend)?;
    txn.open_table(TIMELINE).map_err(backend)?;
    txn.open_table(FOLDER_SYNCS).map_err(backend)?;
    txn.open_table(ORPHANS).map_err(backend)?;
    txn.open_table(EVENTS).map_err(backend)?;
    Ok(())
}

fn flags_byte(flags: Flags) -> u8 {
    flags.seen as u8
        | (flags.flagged as u8) << 1
        | (flags.answered as u8) << 2
        | (flags.draft as u8) << 3
}

fn flags_of(byte: u8) -> Flags {
    Flags {
        seen: byte & 1 != 0,
        flagged: byte & 2 != 0,
        answered: byte & 4 != 0,
        draft: byte & 8 != 0,
    }
}

pub(super) fn mapping(flags: Flags, message_id: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + message_id.len());
    value.push(flags_byte(flags));
    value.extend_from_slice(message_id.as_bytes());
    value
}

pub(super) fn mapped_id(value: &[u8]) -> Result<(Flags, String)> {
    let (&flags, id) = value
        .split_first()
        .ok_or_else(|| StoreError::Backend("a folder mapping is damaged".into()))?;
    let id = std::str::from_utf8(id)
        .map_err(|_| StoreError::Backend("a folder mapping is damaged".into()))?;
    Ok((flags_of(flags), id.to_owned()))
}

/// Appends an event in the transaction that caused it.
pub(super) fn push_event(txn: &WriteTransaction, kind: &str, data: Value) -> Result<u64> {
    let mut events = txn.open_table(EVENTS).map_err(backend)?;
    let seq = match events.last().map_err(backend)? {
        Some((key, _)) => key.value() + 1,
        None => 1,
    };
    let event = Event {
        seq,
        kind: kind.to_owned(),
        at: crate::user::now_rfc3339(),
        data,
    };
    events
        .insert(seq, encode(&event)?.as_slice())
        .map_err(backend)?;
    if seq > EVENTS_KEPT && seq % 1024 == 0 {
        events
            .retain_in(..seq - EVENTS_KEPT, |_, _| false)
            .map_err(backend)?;
    }
    Ok(seq)
}

pub(super) fn load(txn: &WriteTransaction, id: &str) -> Result<Option<Message>> {
    let messages = txn.open_table(MESSAGES).map_err(backend)?;
    let value = messages.get(id).map_err(backend)?;
    value.map(|v| decode(v.value())).transpose()
}

pub(super) fn save(txn: &WriteTransaction, message: &Message) -> Result<()> {
    let mut messages = txn.open_table(MESSAGES).map_err(backend)?;
    messages
        .insert(message.id.as_str(), encode(message)?.as_slice())
        .map_err(backend)?;
    Ok(())
}

/// Sets a message's flags, in its record and in every folder mapping.
pub(super) fn set_flags(txn: &WriteTransaction, message: &mut Message, flags: Flags) -> Result<()> {
    message.flags = flags;
    let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
    for m in &message.folders {
        let key = (
            message.account_id.as_str(),
            m.folder_id.as_str(),
            m.provider_id.as_str(),
        );
        provider
            .insert(key, mapping(flags, &message.id).as_slice())
            .map_err(backend)?;
    }
    save(txn, message)
}

pub(super) fn updated(message: &Message) -> Value {
    json!({"account_id": message.account_id, "message_id": message.id})
}

pub(super) fn commit(txn: &WriteTransaction, page: PageWrite) -> Result<PageOutcome> {
    let account = page.account_id.as_str();
    let folder = page.folder_id.as_str();
    let mut outcome = PageOutcome::default();
    let mut rules = None;
    for Incoming { fetched, parsed } in page.incoming {
        let key = (account, folder, fetched.provider_id.as_str());
        let held = {
            let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            let value = provider.get(key).map_err(backend)?;
            value.map(|v| mapped_id(v.value())).transpose()?
        };
        if let Some((_, id)) = held {
            // Already here: only its flags can be news, unless Mailroom's own change of
            // them is still on its way to the server.
            if let Some(mut message) = load(txn, &id)?
                && message.flags != fetched.flags
                && !message.has_pending()
            {
                set_flags(txn, &mut message, fetched.flags)?;
                outcome.updated += 1;
                push_event(txn, "message.updated", updated(&message))?;
            }
            continue;
        }
        let known = match (&parsed, &fetched.known) {
            (Some(parsed), _) => {
                let identities = txn.open_table(IDENTITIES).map_err(backend)?;
                let value = identities
                    .get((account, parsed.identity.as_str()))
                    .map_err(backend)?;
                value.map(|v| v.value().to_owned())
            }
            (None, Some((message_id, size))) => {
                let identities = txn.open_table(IDENTITIES).map_err(backend)?;
                let messages = txn.open_table(MESSAGES).map_err(backend)?;
                let found = find_known(&identities, &messages, account, message_id, *size)?;
                // The host said it held the message when the connector asked, in this job:
                // nothing deletes it before the job ends.
                Some(found.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "message <{message_id}> was announced as held but is gone"
                    ))
                })?)
            }
            (None, None) => {
                return Err(StoreError::Backend(
                    "a message came without its body".into(),
                ));
            }
        };
        if let Some(id) = known
            && let Some(mut message) = load(txn, &id)?
        {
            // The same message in another folder, or back after a reset: same id, no copy.
            message.folders.push(Membership {
                folder_id: page.folder_id.clone(),
                provider_id: fetched.provider_id.clone(),
            });
            let flags = if message.has_pending() {
                message.flags
            } else {
                fetched.flags
            };
            settle(&mut message);
            set_flags(txn, &mut message, flags)?;
            txn.open_table(ORPHANS)
                .map_err(backend)?
                .remove((account, id.as_str()))
                .map_err(backend)?;
            outcome.matched += 1;
            push_event(txn, "message.updated", updated(&message))?;
            continue;
        }
        let Some(parsed) = parsed else {
            continue;
        };
        let id = crate::user::new_id("msg");
        let automated = parsed.automated;
        let message = parsed.into_message(id, account, &page.folder_id, &fetched);
        txn.open_table(BODIES)
            .map_err(backend)?
            .insert(message.id.as_str(), fetched.raw.as_slice())
            .map_err(backend)?;
        txn.open_table(IDENTITIES)
            .map_err(backend)?
            .insert((account, message.identity.as_str()), message.id.as_str())
            .map_err(backend)?;
        txn.open_table(TIMELINE)
            .map_err(backend)?
            .insert((account, message.received_at, message.id.as_str()), ())
            .map_err(backend)?;
        txn.open_table(PROVIDER_IDS)
            .map_err(backend)?
            .insert(key, mapping(message.flags, &message.id).as_slice())
            .map_err(backend)?;
        save(txn, &message)?;
        super::redb_records::file_new(txn, &message)?;
        if rules.is_none() {
            rules = Some(ContactRules::load(txn, account)?);
        }
        if let Some(rules) = &rules {
            create_contacts(txn, &message, automated, rules)?;
        }
        outcome.created += 1;
        push_event(
            txn,
            "message.created",
            json!({"account_id": account, "message_id": message.id, "initial": page.initial}),
        )?;
    }
    for (provider_id, flags) in page.changed {
        let held = {
            let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            let value = provider
                .get((account, folder, provider_id.as_str()))
                .map_err(backend)?;
            value.map(|v| mapped_id(v.value())).transpose()?
        };
        if let Some((held_flags, id)) = held
            && held_flags != flags
            && let Some(mut message) = load(txn, &id)?
            && !message.has_pending()
        {
            set_flags(txn, &mut message, flags)?;
            outcome.updated += 1;
            push_event(txn, "message.updated", updated(&message))?;
        }
    }
    for provider_id in page.removed {
        let held = {
            let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            let value = provider
                .remove((account, folder, provider_id.as_str()))
                .map_err(backend)?;
            value.map(|v| mapped_id(v.value())).transpose()?
        };
        if let Some((_, id)) = held
            && let Some(mut message) = load(txn, &id)?
        {
            leave_folder(txn, &mut message, &page.folder_id, Some(&provider_id))?;
            outcome.removed += 1;
        }
    }
    if let Some(sync) = &page.sync {
        txn.open_table(FOLDER_SYNCS)
            .map_err(backend)?
            .insert((account, folder), encode(sync)?.as_slice())
            .map_err(backend)?;
    }
    Ok(outcome)
}

/// Ends a message's pending record once nothing is queued for it and the server holds it
/// where the user put it.
pub(super) fn settle(message: &mut Message) {
    let Some(pending) = &message.pending else {
        return;
    };
    let placed = match &pending.placement {
        None => true,
        Some(Placement::Folder(folder)) => message.folders.iter().all(|m| &m.folder_id == folder),
        Some(Placement::Removed) => message.folders.is_empty(),
    };
    if pending.changes == 0 && placed {
        message.pending = None;
    }
}

/// The account's message with this Message-ID and raw size, if any (identities begin with
/// the Message-ID and a space).
fn find_known(
    identities: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    messages: &impl ReadableTable<&'static str, &'static [u8]>,
    account: &str,
    message_id: &str,
    size: u64,
) -> Result<Option<String>> {
    let prefix = format!("{message_id} ");
    let end = format!("{message_id}!");
    for entry in identities
        .range((account, prefix.as_str())..(account, end.as_str()))
        .map_err(backend)?
    {
        let (_, id) = entry.map_err(backend)?;
        let Some(value) = messages.get(id.value()).map_err(backend)? else {
            continue;
        };
        let message: Message = decode(value.value())?;
        if message.size == size {
            return Ok(Some(message.id));
        }
    }
    Ok(None)
}

/// Takes a message out of a folder (one provider id, or all of that folder's); a message
/// left in no folder becomes an orphan, deleted when the job ends unless it turns up again.
pub(super) fn leave_folder(
    txn: &WriteTransaction,
    message: &mut Message,
    folder: &FolderId,
    provider_id: Option<&str>,
) -> Result<()> {
    message
        .folders
        .retain(|m| !(&m.folder_id == folder && provider_id.is_none_or(|p| p == m.provider_id)));
    if message.folders.is_empty() {
        txn.open_table(ORPHANS)
            .map_err(backend)?
            .insert((message.account_id.as_str(), message.id.as_str()), ())
            .map_err(backend)?;
    } else {
        push_event(txn, "message.updated", updated(message))?;
    }
    save(txn, message)
}

/// Deletes a message and everything that points at it.
pub(super) fn delete_message(txn: &WriteTransaction, message: &Message) -> Result<()> {
    super::redb_records::unfile(txn, message)?;
    let account = message.account_id.as_str();
    let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
    for m in &message.folders {
        provider
            .remove((account, m.folder_id.as_str(), m.provider_id.as_str()))
            .map_err(backend)?;
    }
    let mut identities = txn.open_table(IDENTITIES).map_err(backend)?;
    if identities
        .get((account, message.identity.as_str()))
        .map_err(backend)?
        .is_some_and(|v| v.value() == message.id)
    {
        identities
            .remove((account, message.identity.as_str()))
            .map_err(backend)?;
    }
    txn.open_table(TIMELINE)
        .map_err(backend)?
        .remove((account, message.received_at, message.id.as_str()))
        .map_err(backend)?;
    txn.open_table(BODIES)
        .map_err(backend)?
        .remove(message.id.as_str())
        .map_err(backend)?;
    txn.open_table(MESSAGES)
        .map_err(backend)?
        .remove(message.id.as_str())
        .map_err(backend)?;
    Ok(())
}

/// Removes everything an account's mail left in the store (the account is being deleted).
pub(super) fn delete_account_mail(txn: &WriteTransaction, account: &str) -> Result<()> {
    let ids: Vec<String> = {
        let timeline = txn.open_table(TIMELINE).map_err(backend)?;
        let mut ids = Vec::new();
        for entry in timeline
            .range((account, i64::MIN, "")..=(account, i64::MAX, MAX_KEY))
            .map_err(backend)?
        {
            ids.push(entry.map_err(backend)?.0.value().2.to_owned());
        }
        ids
    };
    for id in ids {
        if let Some(message) = load(txn, &id)? {
            delete_message(txn, &message)?;
        }
    }
    txn.open_table(FOLDER_SYNCS)
        .map_err(backend)?
        .retain_in((account, "")..=(account, MAX_KEY), |_, _| false)
        .map_err(backend)?;
    txn.open_table(ORPHANS)
        .map_err(backend)?
        .retain_in((account, "")..=(account, MAX_KEY), |_, _| false)
        .map_err(backend)?;
    Ok(())
}

fn matches(message: &Message, query: &MessageQuery) -> bool {
    if message.is_removed() {
        return false;
    }
    if let Some(folder) = &query.folder
        && !message.in_folder(folder)
    {
        return false;
    }
    if let Some(unread) = query.unread
        && unread == message.flags.seen
    {
        return false;
    }
    if query.words.is_empty() {
        return true;
    }
    let mut haystack = String::new();
    haystack.push_str(message.subject.as_deref().unwrap_or_default());
    haystack.push(' ');
    haystack.push_str(&message.snippet);
    let addresses = message
        .from
        .iter()
        .chain(&message.to)
        .chain(&message.cc)
        .chain(&message.bcc)
        .chain(&message.reply_to);
    for a in addresses {
        haystack.push(' ');
        haystack.push_str(a.name.as_deref().unwrap_or_default());
        haystack.push(' ');
        haystack.push_str(&a.email);
    }
    let haystack = haystack.to_lowercase();
    query.words.iter().all(|w| haystack.contains(w.as_str()))
}

#[async_trait]
impl MailStore for RedbStore {
    async fn folder_syncs(&self, account_id: &str) -> Result<HashMap<FolderId, FolderSync>> {
        self.read(|txn| {
            let table = txn.open_table(FOLDER_SYNCS).map_err(backend)?;
            let mut syncs = HashMap::new();
            for entry in table
                .range((account_id, "")..=(account_id, MAX_KEY))
                .map_err(backend)?
            {
                let (key, value) = entry.map_err(backend)?;
                syncs.insert(FolderId::from_stored(key.value().1), decode(value.value())?);
            }
            Ok(syncs)
        })
    }

    async fn commit_page(&self, page: PageWrite) -> Result<PageOutcome> {
        self.write(move |txn| commit(txn, page)).await
    }

    async fn forget_folder(&self, account_id: &str, folder_id: &FolderId) -> Result<()> {
        let (account, folder) = (account_id.to_owned(), folder_id.clone());
        self.write(move |txn| {
            let held: Vec<(String, String)> = {
                let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
                let range = (account.as_str(), folder.as_str(), "")
                    ..=(account.as_str(), folder.as_str(), MAX_KEY);
                let mut held = Vec::new();
                for entry in provider.range(range).map_err(backend)? {
                    let (key, value) = entry.map_err(backend)?;
                    held.push((key.value().2.to_owned(), mapped_id(value.value())?.1));
                }
                held
            };
            let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            for (provider_id, _) in &held {
                provider
                    .remove((account.as_str(), folder.as_str(), provider_id.as_str()))
                    .map_err(backend)?;
            }
            drop(provider);
            for (_, id) in held {
                if let Some(mut message) = load(txn, &id)? {
                    leave_folder(txn, &mut message, &folder, None)?;
                }
            }
            txn.open_table(FOLDER_SYNCS)
                .map_err(backend)?
                .remove((account.as_str(), folder.as_str()))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn finish_job(&self, account_id: &str) -> Result<usize> {
        // Most jobs leave no orphan: then there is nothing to write (and no fsync to wait for).
        let any = self.read(|txn| {
            let table = txn.open_table(ORPHANS).map_err(backend)?;
            let mut range = table
                .range((account_id, "")..=(account_id, MAX_KEY))
                .map_err(backend)?;
            Ok(range.next().is_some())
        })?;
        if !any {
            return Ok(0);
        }
        let account = account_id.to_owned();
        self.write(move |txn| {
            let orphans: Vec<String> = {
                let table = txn.open_table(ORPHANS).map_err(backend)?;
                let mut ids = Vec::new();
                for entry in table
                    .range((account.as_str(), "")..=(account.as_str(), MAX_KEY))
                    .map_err(backend)?
                {
                    ids.push(entry.map_err(backend)?.0.value().1.to_owned());
                }
                ids
            };
            let mut deleted = 0;
            for id in &orphans {
                if let Some(message) = load(txn, id)?
                    && message.folders.is_empty()
                {
                    delete_message(txn, &message)?;
                    deleted += 1;
                    // A message deleted in Mailroom was announced when it was deleted.
                    if message.is_removed() {
                        continue;
                    }
                    push_event(
                        txn,
                        "message.deleted",
                        json!({"account_id": account, "message_id": id}),
                    )?;
                }
            }
            txn.open_table(ORPHANS)
                .map_err(backend)?
                .retain_in(
                    (account.as_str(), "")..=(account.as_str(), MAX_KEY),
                    |_, _| false,
                )
                .map_err(backend)?;
            Ok(deleted)
        })
        .await
    }

    async fn known(&self, account_id: &str, probes: Vec<(String, u64)>) -> Result<Vec<bool>> {
        self.read(|txn| {
            let identities = txn.open_table(IDENTITIES).map_err(backend)?;
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            probes
                .iter()
                .map(|(message_id, size)| {
                    find_known(&identities, &messages, account_id, message_id, *size)
                        .map(|found| found.is_some())
                })
                .collect()
        })
    }

    async fn held(&self, account_id: &str, folder_id: &FolderId) -> Result<Vec<(u64, Flags)>> {
        self.read(|txn| {
            let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            let folder = folder_id.as_str();
            let mut held = Vec::new();
            for entry in provider
                .range((account_id, folder, "")..=(account_id, folder, MAX_KEY))
                .map_err(backend)?
            {
                let (key, value) = entry.map_err(backend)?;
                if let Ok(id) = key.value().2.parse::<u64>() {
                    let flags = value.value().first().copied().map(flags_of);
                    held.push((id, flags.unwrap_or_default()));
                }
            }
            held.sort_unstable_by_key(|(id, _)| *id);
            Ok(held)
        })
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        self.get_json(MESSAGES, id)
    }

    async fn raw_message(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let bodies = txn.open_table(BODIES).map_err(backend)?;
            let value = bodies.get(id).map_err(backend)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
    }

    async fn messages(
        &self,
        account_id: &str,
        query: MessageQuery,
    ) -> Result<(Vec<Message>, bool)> {
        self.read(|txn| {
            let timeline = txn.open_table(TIMELINE).map_err(backend)?;
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            let start = (account_id, i64::MIN, "");
            let range = match &query.after {
                Some((at, id)) => timeline.range(start..(account_id, *at, id.as_str())),
                None => timeline.range(start..=(account_id, i64::MAX, MAX_KEY)),
            }
            .map_err(backend)?;
            let mut found = Vec::new();
            for entry in range.rev() {
                let (key, _) = entry.map_err(backend)?;
                let Some(value) = messages.get(key.value().2).map_err(backend)? else {
                    continue;
                };
                let message: Message = decode(value.value())?;
                if matches(&message, &query) {
                    if found.len() == query.limit {
                        return Ok((found, true));
                    }
                    found.push(message);
                }
            }
            Ok((found, false))
        })
    }

    async fn folder_counts(&self, account_id: &str) -> Result<FolderCounts> {
        self.read(|txn| {
            let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            let mut counts: FolderCounts = HashMap::new();
            for entry in provider
                .range((account_id, "", "")..=(account_id, MAX_KEY, MAX_KEY))
                .map_err(backend)?
            {
                let (key, value) = entry.map_err(backend)?;
                let count = counts
                    .entry(FolderId::from_stored(key.value().1))
                    .or_default();
                count.1 += 1;
                if value.value().first().is_some_and(|f| f & 1 == 0) {
                    count.0 += 1;
                }
            }
            Ok(counts)
        })
    }

    async fn push_event(&self, kind: &str, data: Value) -> Result<u64> {
        let kind = kind.to_owned();
        self.write(move |txn| push_event(txn, &kind, data)).await
    }

    async fn events(&self, after: u64, limit: usize) -> Result<(Vec<Event>, u64)> {
        self.read(|txn| {
            let table = txn.open_table(EVENTS).map_err(backend)?;
            let oldest = table
                .first()
                .map_err(backend)?
                .map(|(k, _)| k.value())
                .unwrap_or(1);
            let mut events = Vec::new();
            for entry in table.range(after.saturating_add(1)..).map_err(backend)? {
                if events.len() == limit {
                    break;
                }
                events.push(decode(entry.map_err(backend)?.1.value())?);
            }
            Ok((events, oldest))
        })
    }

    async fn last_event_seq(&self) -> Result<u64> {
        self.read(|txn| {
            let table = txn.open_table(EVENTS).map_err(backend)?;
            Ok(table
                .last()
                .map_err(backend)?
                .map(|(k, _)| k.value())
                .unwrap_or(0))
        })
    }
}
