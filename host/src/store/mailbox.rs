//! Synced mail as kept: messages, their raw bytes, where each sits on the server, and each
//! folder's sync progress; the reads the API and the sync make of them.
//!
//! Tables (`acct` the account id):
//! * `messages` id → message; `bodies` id → raw bytes, exactly as fetched;
//! * `provider_ids` (acct, folder, provider id) → flags byte + message id: the folder's
//!   mapping, and what `held` and the folder counts read without touching a message;
//! * `identities` (acct, identity) → message id: recognises a message in another folder;
//! * `timeline` (acct, received_at, id): lists, newest first;
//! * `folder_syncs` (acct, folder) → progress; `orphans` (acct, id): in no folder since a
//!   page of the current job; `orphan_ids` (acct, provider id) → id: the provider ids such a
//!   message last had, so that a connector with mailbox-wide ids finds it held.

use super::kv::{Bytes, Json, Key, Reader, Table, Text, Unit, Writer};
use super::mail::{FolderCounts, FolderSync, MessageQuery};
use super::{Result, StoreError, events, filing};
use crate::folder::FolderId;
use crate::mail::Flags;
use crate::mail::message::{Membership, Message, Placement};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ops::Bound;

pub(super) const MESSAGES: Table<Json<Message>> = Table::new("messages");
pub(super) const BODIES: Table<Bytes> = Table::new("bodies");
pub(super) const PROVIDER_IDS: Table<Bytes> = Table::new("provider_ids");
pub(super) const IDENTITIES: Table<Text> = Table::new("identities");
pub(super) const TIMELINE: Table<Unit> = Table::new("timeline");
pub(super) const FOLDER_SYNCS: Table<Json<FolderSync>> = Table::new("folder_syncs");
pub(super) const ORPHANS: Table<Unit> = Table::new("orphans");
pub(super) const ORPHAN_IDS: Table<Text> = Table::new("orphan_ids");

pub(super) fn id_key(id: &str) -> Key {
    Key::new().str(id)
}

pub(super) fn provider_key(account: &str, folder: &str, provider_id: &str) -> Key {
    Key::new().str(account).str(folder).str(provider_id)
}

pub(super) fn identity_key(account: &str, identity: &str) -> Key {
    Key::new().str(account).str(identity)
}

pub(super) fn timeline_key(account: &str, received_at: i64, id: &str) -> Key {
    Key::new().str(account).i64(received_at).str(id)
}

pub(super) fn orphan_key(account: &str, id: &str) -> Key {
    Key::new().str(account).str(id)
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

/// A folder mapping's value: the flags and the message id.
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

/// The message a folder holds under a provider id, with the flags the mapping has.
pub(super) fn mapped(
    txn: &dyn Reader,
    account: &str,
    folder: &str,
    provider_id: &str,
) -> Result<Option<(Flags, String)>> {
    PROVIDER_IDS
        .get(txn, &provider_key(account, folder, provider_id))?
        .map(|value| mapped_id(&value))
        .transpose()
}

pub(super) fn map(
    txn: &mut dyn Writer,
    account: &str,
    folder: &str,
    provider_id: &str,
    flags: Flags,
    message_id: &str,
) -> Result<()> {
    PROVIDER_IDS.put(
        txn,
        &provider_key(account, folder, provider_id),
        &mapping(flags, message_id),
    )
}

/// Removes a folder mapping; returns what it held.
pub(super) fn unmap(
    txn: &mut dyn Writer,
    account: &str,
    folder: &str,
    provider_id: &str,
) -> Result<Option<(Flags, String)>> {
    PROVIDER_IDS
        .take(txn, &provider_key(account, folder, provider_id))?
        .map(|value| mapped_id(&value))
        .transpose()
}

pub(super) fn load(txn: &dyn Reader, id: &str) -> Result<Option<Message>> {
    MESSAGES.get(txn, &id_key(id))
}

pub(super) fn save(txn: &mut dyn Writer, message: &Message) -> Result<()> {
    MESSAGES.put(txn, &id_key(&message.id), message)
}

/// Stores a new message: its record, bytes, identity, place on the timeline and in its
/// folder.
pub(super) fn insert(
    txn: &mut dyn Writer,
    message: &Message,
    folder: &str,
    provider_id: &str,
    raw: &[u8],
) -> Result<()> {
    let account = message.account_id.as_str();
    BODIES.put_slice(txn, &id_key(&message.id), raw)?;
    IDENTITIES.put(txn, &identity_key(account, &message.identity), &message.id)?;
    TIMELINE.put(
        txn,
        &timeline_key(account, message.received_at, &message.id),
        &(),
    )?;
    map(
        txn,
        account,
        folder,
        provider_id,
        message.flags,
        &message.id,
    )?;
    save(txn, message)
}

/// Sets a message's flags, in its record and in every folder mapping.
pub(super) fn set_flags(txn: &mut dyn Writer, message: &mut Message, flags: Flags) -> Result<()> {
    message.flags = flags;
    for m in &message.folders {
        map(
            txn,
            &message.account_id,
            m.folder_id.as_str(),
            &m.provider_id,
            flags,
            &message.id,
        )?;
    }
    save(txn, message)
}

/// The data of an event about one message.
pub(super) fn updated(message: &Message) -> Value {
    json!({"account_id": message.account_id, "message_id": message.id})
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
pub(super) fn find_known(
    txn: &dyn Reader,
    account: &str,
    message_id: &str,
    size: u64,
) -> Result<Option<String>> {
    let prefix = Key::new()
        .str(account)
        .str_prefix(&format!("{message_id} "));
    let mut found = None;
    IDENTITIES.scan_prefix(txn, &prefix, false, |_, id| match load(txn, &id)? {
        Some(message) if message.size == size => {
            found = Some(message.id);
            Ok(false)
        }
        _ => Ok(true),
    })?;
    Ok(found)
}

/// The folders of an account that have synced (that hold its provider ids).
pub(super) fn synced_folders(txn: &dyn Reader, account: &str) -> Result<Vec<String>> {
    FOLDER_SYNCS.keys(txn, &Key::new().str(account), |key| key.str())
}

/// The account's message held under `provider_id` in one of `folders` (see
/// [`synced_folders`]), or left in none by this job under that id (moved between folders
/// the job reaches one after the other), for connectors whose ids are mailbox-wide.
pub(super) fn held_by_id(
    txn: &dyn Reader,
    account: &str,
    folders: &[String],
    provider_id: &str,
) -> Result<Option<String>> {
    for folder in folders {
        if let Some((_, id)) = mapped(txn, account, folder, provider_id)? {
            return Ok(Some(id));
        }
    }
    match ORPHAN_IDS.get(txn, &orphan_key(account, provider_id))? {
        Some(id) if load(txn, &id)?.is_some_and(|m| m.folders.is_empty()) => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// The id of the account's message with this Message-ID, if any.
pub(super) fn find_by_message_id(
    txn: &dyn Reader,
    account: &str,
    message_id: &str,
) -> Result<Option<String>> {
    let prefix = Key::new()
        .str(account)
        .str_prefix(&format!("{message_id} "));
    Ok(IDENTITIES.first(txn, &prefix, false)?.map(|(_, id)| id))
}

/// Takes a message out of a folder (one provider id, or all of that folder's); a message
/// left in no folder becomes an orphan, deleted when the job ends unless it turns up again.
pub(super) fn leave_folder(
    txn: &mut dyn Writer,
    message: &mut Message,
    folder: &FolderId,
    provider_id: Option<&str>,
) -> Result<()> {
    let leaving =
        |m: &Membership| &m.folder_id == folder && provider_id.is_none_or(|p| p == m.provider_id);
    let left: Vec<String> = message
        .folders
        .iter()
        .filter(|m| leaving(m))
        .map(|m| m.provider_id.clone())
        .collect();
    message.folders.retain(|m| !leaving(m));
    if message.folders.is_empty() {
        ORPHANS.put(txn, &orphan_key(&message.account_id, &message.id), &())?;
        for provider_id in left {
            ORPHAN_IDS.put(
                txn,
                &orphan_key(&message.account_id, &provider_id),
                &message.id,
            )?;
        }
    } else {
        events::push(txn, "message.updated", updated(message))?;
    }
    save(txn, message)
}

/// Deletes a message and everything that points at it.
pub(super) fn delete_message(txn: &mut dyn Writer, message: &Message) -> Result<()> {
    filing::unfile(txn, message)?;
    let account = message.account_id.as_str();
    for m in &message.folders {
        unmap(txn, account, m.folder_id.as_str(), &m.provider_id)?;
    }
    let identity = identity_key(account, &message.identity);
    if IDENTITIES.get(txn, &identity)?.as_deref() == Some(message.id.as_str()) {
        IDENTITIES.remove(txn, &identity)?;
    }
    TIMELINE.delete(
        txn,
        &timeline_key(account, message.received_at, &message.id),
    )?;
    BODIES.remove(txn, &id_key(&message.id))?;
    MESSAGES.remove(txn, &id_key(&message.id))?;
    Ok(())
}

/// Removes everything an account's mail left in the store (the account is being deleted).
pub(super) fn delete_account_mail(txn: &mut dyn Writer, account: &str) -> Result<()> {
    let ids = TIMELINE.keys(txn, &Key::new().str(account), |key| {
        key.i64()?;
        key.str()
    })?;
    for id in ids {
        if let Some(message) = load(txn, &id)? {
            delete_message(txn, &message)?;
        }
    }
    FOLDER_SYNCS.delete_prefix(txn, &Key::new().str(account))?;
    ORPHANS.delete_prefix(txn, &Key::new().str(account))?;
    ORPHAN_IDS.delete_prefix(txn, &Key::new().str(account))?;
    Ok(())
}

pub fn folder_syncs(txn: &dyn Reader, account: &str) -> Result<HashMap<FolderId, FolderSync>> {
    let mut syncs = HashMap::new();
    FOLDER_SYNCS.scan_prefix(txn, &Key::new().str(account), false, |mut key, sync| {
        syncs.insert(FolderId::from_stored(&key.str()?), sync);
        Ok(true)
    })?;
    Ok(syncs)
}

pub(super) fn set_folder_sync(
    txn: &mut dyn Writer,
    account: &str,
    folder: &str,
    sync: &FolderSync,
) -> Result<()> {
    FOLDER_SYNCS.put(txn, &Key::new().str(account).str(folder), sync)
}

/// Takes every message out of a folder no longer synced, and forgets its progress.
pub fn forget_folder(txn: &mut dyn Writer, account: &str, folder: &FolderId) -> Result<()> {
    let prefix = Key::new().str(account).str(folder.as_str());
    let mut held = Vec::new();
    PROVIDER_IDS.scan_prefix(txn, &prefix, false, |mut key, value| {
        held.push((key.str()?, mapped_id(&value)?.1));
        Ok(true)
    })?;
    for (provider_id, _) in &held {
        unmap(txn, account, folder.as_str(), provider_id)?;
    }
    for (_, id) in held {
        if let Some(mut message) = load(txn, &id)? {
            leave_folder(txn, &mut message, folder, None)?;
        }
    }
    FOLDER_SYNCS.remove(txn, &prefix)?;
    Ok(())
}

/// Whether the job left messages in no folder.
pub fn has_orphans(txn: &dyn Reader, account: &str) -> Result<bool> {
    Ok(ORPHANS
        .first(txn, &Key::new().str(account), false)?
        .is_some())
}

/// Deletes the messages a job left in no folder; returns how many.
pub fn delete_orphans(txn: &mut dyn Writer, account: &str) -> Result<usize> {
    let orphans = ORPHANS.keys(txn, &Key::new().str(account), |key| key.str())?;
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
            events::push(
                txn,
                "message.deleted",
                json!({"account_id": account, "message_id": id}),
            )?;
        }
    }
    ORPHANS.delete_prefix(txn, &Key::new().str(account))?;
    ORPHAN_IDS.delete_prefix(txn, &Key::new().str(account))?;
    Ok(deleted)
}

/// How many messages a folder holds.
pub fn folder_total(txn: &dyn Reader, account: &str, folder: &FolderId) -> Result<u64> {
    PROVIDER_IDS.count(txn, &Key::new().str(account).str(folder.as_str()))
}

/// The numeric provider ids a folder holds, ascending, with their flags.
pub fn held(txn: &dyn Reader, account: &str, folder: &FolderId) -> Result<Vec<(u64, Flags)>> {
    let mut held = Vec::new();
    let prefix = Key::new().str(account).str(folder.as_str());
    PROVIDER_IDS.scan_prefix(txn, &prefix, false, |mut key, value| {
        if let Ok(id) = key.str()?.parse::<u64>() {
            let flags = value.first().copied().map(flags_of);
            held.push((id, flags.unwrap_or_default()));
        }
        Ok(true)
    })?;
    held.sort_unstable_by_key(|(id, _)| *id);
    Ok(held)
}

pub fn raw(txn: &dyn Reader, id: &str) -> Result<Option<Vec<u8>>> {
    BODIES.get(txn, &id_key(id))
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

/// An account's messages, newest first, that match the query; and whether more follow.
pub fn messages(
    txn: &dyn Reader,
    account: &str,
    query: &MessageQuery,
) -> Result<(Vec<Message>, bool)> {
    let prefix = Key::new().str(account);
    let before = query
        .after
        .as_ref()
        .map(|(at, id)| timeline_key(account, *at, id));
    let mut page = Page {
        found: Vec::new(),
        more: false,
    };
    // Ids from the timeline, loaded together once they could fill the page.
    let mut ids = Vec::new();
    TIMELINE.scan_between(
        txn,
        &prefix,
        Bound::Unbounded,
        before.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
        true,
        |mut key, ()| {
            key.i64()?;
            ids.push(id_key(&key.str()?));
            if page.found.len() + ids.len() <= query.limit {
                return Ok(true);
            }
            page.take(txn, std::mem::take(&mut ids), query)?;
            Ok(!page.more)
        },
    )?;
    if !page.more {
        page.take(txn, ids, query)?;
    }
    Ok((page.found, page.more))
}

/// A page of messages being filled.
struct Page {
    found: Vec<Message>,
    /// A match was found past the page's end.
    more: bool,
}

impl Page {
    /// Loads the messages `ids` name, in order, and takes those that match until the page
    /// is full.
    fn take(&mut self, txn: &dyn Reader, ids: Vec<Key>, query: &MessageQuery) -> Result<()> {
        for message in MESSAGES.get_many(txn, &ids)?.into_iter().flatten() {
            if !matches(&message, query) {
                continue;
            }
            if self.found.len() == query.limit {
                self.more = true;
                break;
            }
            self.found.push(message);
        }
        Ok(())
    }
}

/// Per folder of the account: unread and total messages.
pub fn folder_counts(txn: &dyn Reader, account: &str) -> Result<FolderCounts> {
    let mut counts: FolderCounts = HashMap::new();
    PROVIDER_IDS.scan_prefix(txn, &Key::new().str(account), false, |mut key, value| {
        let count = counts
            .entry(FolderId::from_stored(&key.str()?))
            .or_default();
        count.1 += 1;
        if value.first().is_some_and(|f| f & 1 == 0) {
            count.0 += 1;
        }
        Ok(true)
    })?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use crate::mail::Flags;
    use crate::store::MailStore;
    use crate::store::mail::MessageQuery;
    use crate::store::testing::{account, fetched, ingest, simple, store};

    /// A filtered list read page by page, each from the last one's cursor, is the filtered
    /// timeline cut in pieces: newest first, none missed, none twice, and every page but
    /// the last full.
    #[tokio::test]
    async fn filtered_pages_cover_the_timeline_once() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let incoming = (1..=23)
            .map(|n| {
                let raw = simple("a@y.test", "me@x.test", &format!("{n}@y.test"));
                let flags = Flags {
                    seen: n % 3 == 0,
                    ..Flags::default()
                };
                fetched(&n.to_string(), &raw, flags)
            })
            .collect();
        ingest(&store, "acc_1", "inbox", incoming).await;
        for (unread, expected) in [(None, 23), (Some(true), 16), (Some(false), 7)] {
            for limit in [1, 4, 7, 16, 30] {
                let mut after = None;
                let mut listed = Vec::new();
                loop {
                    let query = MessageQuery {
                        unread,
                        after: after.clone(),
                        limit,
                        ..MessageQuery::default()
                    };
                    let (page, more) = store.messages("acc_1", query).await.unwrap();
                    assert!(
                        page.iter().all(|m| unread != Some(m.flags.seen)),
                        "unread {unread:?}"
                    );
                    listed.extend(page.iter().map(|m| (m.received_at, m.id.clone())));
                    if !more {
                        break;
                    }
                    assert_eq!(page.len(), limit, "a page with more after it is full");
                    let last = page.last().unwrap();
                    after = Some((last.received_at, last.id.clone()));
                }
                assert_eq!(listed.len(), expected, "unread {unread:?}, limit {limit}");
                assert!(
                    listed.windows(2).all(|w| w[0] > w[1]),
                    "newest first, once each"
                );
            }
        }
    }
}
