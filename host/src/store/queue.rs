//! The outbox as kept: each account's queue of duties in order, and the record and bytes of
//! every message sent from Mailroom. A user's change is applied to the message and queued in
//! one transaction; a duty's end updates the message and the mapping in another.
//!
//! Tables: `outbox` (acct, seq) → duty, and `outbox_last` acct → the last number given
//! (numbers are never reused); `outgoing` outbox id → send record; `outgoing_raw` outbox id
//! → the message's bytes.

use super::kv::{Bytes, Json, Key, Reader, Table, Writer};
use super::mail::{Incoming, PageWrite};
use super::mailbox::{
    ORPHANS, delete_message, load, map, mapped, orphan_key, save, set_flags, settle, unmap, updated,
};
use super::outbox::{Change, ChangeDone, Duty, OutboxEntry, Outgoing};
use super::{Result, StoreError, events, ingest};
use crate::folder::FolderId;
use crate::mail::Fetched;
use crate::mail::message::{Membership, Message, Placement};
use crate::mail::parse::Parsed;
use serde_json::json;
use std::ops::Bound;

const OUTBOX: Table<Json<Duty>> = Table::new("outbox");
const OUTBOX_LAST: Table<Json<u64>> = Table::new("outbox_last");
const OUTGOING: Table<Json<Outgoing>> = Table::new("outgoing");
const OUTGOING_RAW: Table<Bytes> = Table::new("outgoing_raw");

fn duty_key(account: &str, seq: u64) -> Key {
    Key::new().str(account).u64(seq)
}

fn id_key(id: &str) -> Key {
    Key::new().str(id)
}

/// Appends a duty to the account's queue.
fn enqueue(txn: &mut dyn Writer, account: &str, duty: &Duty) -> Result<()> {
    let seq = OUTBOX_LAST.get(txn, &id_key(account))?.unwrap_or(0) + 1;
    OUTBOX_LAST.put(txn, &id_key(account), &seq)?;
    OUTBOX.put(txn, &duty_key(account, seq), duty)
}

/// Duties queued, every account together.
pub fn queued_count(txn: &dyn Reader) -> Result<u64> {
    OUTBOX.count(txn, &Key::new())
}

fn dequeue(txn: &mut dyn Writer, entry: &OutboxEntry) -> Result<()> {
    OUTBOX.remove(txn, &duty_key(&entry.account_id, entry.seq))?;
    Ok(())
}

/// Applies a user's change to a message and queues it for the server; the message as the
/// user now sees it, or none when there is no such message.
pub fn queue_change(txn: &mut dyn Writer, id: &str, change: Change) -> Result<Option<Message>> {
    let Some(mut message) = load(txn, id)? else {
        return Ok(None);
    };
    if message.is_removed() {
        return Ok(None);
    }
    match &change {
        Change::Flags(update) => {
            let flags = update.applied_to(message.flags);
            if flags == message.flags {
                return Ok(Some(message));
            }
            message.pending.get_or_insert_default().changes += 1;
            set_flags(txn, &mut message, flags)?;
            events::push(txn, "message.updated", updated(&message))?;
        }
        Change::Move { to } => {
            if message.folder_ids() == [to] {
                return Ok(Some(message));
            }
            let pending = message.pending.get_or_insert_default();
            pending.changes += 1;
            pending.placement = Some(Placement::Folder(to.clone()));
            save(txn, &message)?;
            events::push(txn, "message.updated", updated(&message))?;
        }
        Change::Expunge => {
            let pending = message.pending.get_or_insert_default();
            pending.changes += 1;
            pending.placement = Some(Placement::Removed);
            save(txn, &message)?;
            events::push(txn, "message.deleted", updated(&message))?;
        }
    }
    enqueue(
        txn,
        &message.account_id,
        &Duty::Change {
            message_id: message.id.clone(),
            change,
            retried: false,
        },
    )?;
    Ok(Some(message))
}

/// Ends a change duty: updates the message and the mapping as `done` says.
pub fn change_done(txn: &mut dyn Writer, entry: &OutboxEntry, done: ChangeDone) -> Result<()> {
    dequeue(txn, entry)?;
    let Duty::Change { message_id, .. } = &entry.duty else {
        return Err(StoreError::Backend("not a change duty".into()));
    };
    let Some(mut message) = load(txn, message_id)? else {
        return Ok(());
    };
    let account = message.account_id.clone();
    if let Some(pending) = &mut message.pending {
        pending.changes = pending.changes.saturating_sub(1);
    }
    match done {
        ChangeDone::Applied => {}
        ChangeDone::Moved {
            from,
            provider_id,
            to,
            new_id,
        } => {
            unmap(txn, &account, from.as_str(), &provider_id)?;
            message
                .folders
                .retain(|m| !(m.folder_id == from && m.provider_id == provider_id));
            match new_id {
                Some(new_id) => {
                    map(
                        txn,
                        &account,
                        to.as_str(),
                        &new_id,
                        message.flags,
                        &message.id,
                    )?;
                    message.folders.push(Membership {
                        folder_id: to,
                        provider_id: new_id,
                    });
                }
                None if message.folders.is_empty() => {
                    // The target folder's sync finds it by Message-ID later in this job.
                    ORPHANS.put(txn, &orphan_key(&account, &message.id), &())?;
                }
                None => {}
            }
        }
        ChangeDone::Expunged(removed) => {
            for (folder, provider_id) in removed {
                unmap(txn, &account, folder.as_str(), &provider_id)?;
                message
                    .folders
                    .retain(|m| !(m.folder_id == folder && m.provider_id == provider_id));
            }
            if message.folders.is_empty() {
                let announced = message.is_removed();
                delete_message(txn, &message)?;
                if !announced {
                    events::push(txn, "message.deleted", updated(&message))?;
                }
                return Ok(());
            }
        }
        ChangeDone::Dropped { reason } => {
            if let Some(pending) = &mut message.pending {
                pending.placement = None;
            }
            events::push(
                txn,
                "message.change_failed",
                json!({"account_id": account, "message_id": message.id, "reason": reason}),
            )?;
            events::push(txn, "message.updated", updated(&message))?;
        }
    }
    settle(&mut message);
    save(txn, &message)
}

/// Queues a message to send with its bytes; a second call with the same id returns the
/// first record and queues nothing.
pub fn queue_send(txn: &mut dyn Writer, outgoing: Outgoing, raw: &[u8]) -> Result<Outgoing> {
    if let Some(first) = OUTGOING.get(txn, &id_key(&outgoing.id))? {
        return Ok(first);
    }
    OUTGOING.put(txn, &id_key(&outgoing.id), &outgoing)?;
    OUTGOING_RAW.put(txn, &id_key(&outgoing.id), &raw.to_vec())?;
    enqueue(
        txn,
        &outgoing.account_id,
        &Duty::Send {
            outbox_id: outgoing.id.clone(),
        },
    )?;
    Ok(outgoing)
}

/// The account's oldest queued duty after the one numbered `after` (0: the oldest).
pub fn next_duty(txn: &dyn Reader, account: &str, after: u64) -> Result<Option<OutboxEntry>> {
    let start = duty_key(account, after);
    let mut next = None;
    OUTBOX.scan_between(
        txn,
        &Key::new().str(account),
        Bound::Excluded(&start),
        Bound::Unbounded,
        false,
        |mut key, duty| {
            next = Some(OutboxEntry {
                account_id: account.to_owned(),
                seq: key.u64()?,
                duty,
            });
            Ok(false)
        },
    )?;
    Ok(next)
}

/// Saves a send's record; ends `entry` when given, and queues `then` after it.
pub fn save_outgoing(
    txn: &mut dyn Writer,
    outgoing: &Outgoing,
    entry: Option<&OutboxEntry>,
    then: &[Duty],
) -> Result<()> {
    if let Some(entry) = entry {
        dequeue(txn, entry)?;
    }
    OUTGOING.put(txn, &id_key(&outgoing.id), outgoing)?;
    for duty in then {
        enqueue(txn, &outgoing.account_id, duty)?;
    }
    Ok(())
}

pub fn outgoing(txn: &dyn Reader, id: &str) -> Result<Option<Outgoing>> {
    OUTGOING.get(txn, &id_key(id))
}

pub fn outgoing_raw(txn: &dyn Reader, id: &str) -> Result<Option<Vec<u8>>> {
    OUTGOING_RAW.get(txn, &id_key(id))
}

/// Files the copy of a sent message that the connector stored in `folder`, so sync does not
/// fetch it again; returns its Mailroom id. Ends `entry`.
pub fn file_sent_copy(
    txn: &mut dyn Writer,
    entry: &OutboxEntry,
    folder: FolderId,
    fetched: Fetched,
    parsed: Parsed,
) -> Result<String> {
    dequeue(txn, entry)?;
    let Duty::CopyToSent { outbox_id } = &entry.duty else {
        return Err(StoreError::Backend("not a copy-to-Sent duty".into()));
    };
    let account = entry.account_id.as_str();
    let provider_id = fetched.provider_id.clone();
    ingest::commit(
        txn,
        PageWrite {
            account_id: account.to_owned(),
            folder_id: folder.clone(),
            initial: false,
            incoming: vec![Incoming {
                fetched,
                parsed: Some(parsed),
            }],
            changed: Vec::new(),
            removed: Vec::new(),
            sync: None,
        },
    )?;
    let Some((_, id)) = mapped(txn, account, folder.as_str(), &provider_id)? else {
        return Err(StoreError::Backend("the Sent copy was not filed".into()));
    };
    if let Some(mut outgoing) = OUTGOING.get(txn, &id_key(outbox_id))? {
        outgoing.sent_message_id = Some(id.clone());
        OUTGOING.put(txn, &id_key(outbox_id), &outgoing)?;
    }
    Ok(id)
}

/// Marks a change duty as found gone once; it stays first in the queue.
pub fn defer_duty(txn: &mut dyn Writer, entry: &OutboxEntry) -> Result<()> {
    let key = duty_key(&entry.account_id, entry.seq);
    // Gone meanwhile (the account was deleted): nothing to put back.
    if !OUTBOX.contains(txn, &key)? {
        return Ok(());
    }
    let mut duty = entry.duty.clone();
    if let Duty::Change { retried, .. } = &mut duty {
        *retried = true;
    }
    OUTBOX.put(txn, &key, &duty)
}

pub fn drop_duty(txn: &mut dyn Writer, entry: &OutboxEntry) -> Result<()> {
    dequeue(txn, entry)
}

/// Removes an account's queue and send records (the account is being deleted).
pub fn delete_account_outbox(txn: &mut dyn Writer, account: &str) -> Result<()> {
    OUTBOX.delete_prefix(txn, &Key::new().str(account))?;
    OUTBOX_LAST.remove(txn, &id_key(account))?;
    let mut ids = Vec::new();
    OUTGOING.scan_prefix(txn, &Key::new(), false, |mut key, record| {
        if record.account_id == account {
            ids.push(key.str()?);
        }
        Ok(true)
    })?;
    for id in ids {
        OUTGOING.remove(txn, &id_key(&id))?;
        OUTGOING_RAW.remove(txn, &id_key(&id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::FlagUpdate;
    use crate::mail::Flags;
    use crate::mail::parse::parse;
    use crate::store::kv::Backend;
    use crate::store::kv::memory::MemoryBackend;
    use crate::store::mail::FolderSync;
    use crate::store::{KvStore, MailStore, OutboxStore};

    type Store = KvStore<MemoryBackend>;

    fn raw(message_id: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"
        )
        .into_bytes()
    }

    async fn store_with(uid: &str, flags: Flags) -> ((), Store, String) {
        let dir = ();
        let store = KvStore::new(MemoryBackend::new());
        let bytes = raw("m1@example.com");
        let fetched = Fetched {
            provider_id: uid.into(),
            flags,
            received_at: 1_800_000_000,
            raw: bytes.clone(),
            known: None,
        };
        let parsed = parse(&bytes);
        store
            .commit_page(PageWrite {
                account_id: "acc".into(),
                folder_id: FolderId::from_stored("inbox"),
                initial: true,
                incoming: vec![Incoming {
                    fetched,
                    parsed: Some(parsed),
                }],
                changed: Vec::new(),
                removed: Vec::new(),
                sync: Some(FolderSync::default()),
            })
            .await
            .unwrap();
        let id = store
            .find_message_id("acc", "m1@example.com")
            .await
            .unwrap()
            .expect("filed");
        (dir, store, id)
    }

    fn page(changed: Vec<(String, Flags)>) -> PageWrite {
        PageWrite {
            account_id: "acc".into(),
            folder_id: FolderId::from_stored("inbox"),
            initial: false,
            incoming: Vec::new(),
            changed,
            removed: Vec::new(),
            sync: Some(FolderSync::default()),
        }
    }

    #[tokio::test]
    async fn a_pending_flag_change_is_not_reverted_by_the_servers_older_state() {
        let (_dir, store, id) = store_with("7", Flags::default()).await;
        let seen = Change::Flags(FlagUpdate {
            seen: Some(true),
            ..FlagUpdate::default()
        });
        let message = store.queue_change(&id, seen).await.unwrap().unwrap();
        assert!(message.flags.seen);
        // A sync that read the server before the change reached it.
        store
            .commit_page(page(vec![("7".into(), Flags::default())]))
            .await
            .unwrap();
        assert!(store.message(&id).await.unwrap().unwrap().flags.seen);
        // Once pushed, the server's word counts again.
        let entry = store.next_duty("acc", 0).await.unwrap().expect("queued");
        store
            .change_done(&entry, ChangeDone::Applied)
            .await
            .unwrap();
        assert!(store.next_duty("acc", 0).await.unwrap().is_none());
        let message = store.message(&id).await.unwrap().unwrap();
        assert_eq!(message.pending, None);
        store
            .commit_page(page(vec![("7".into(), Flags::default())]))
            .await
            .unwrap();
        assert!(!store.message(&id).await.unwrap().unwrap().flags.seen);
    }

    #[tokio::test]
    async fn a_move_shows_at_once_and_keeps_the_id_when_the_server_confirms_it() {
        let (_dir, store, id) = store_with("7", Flags::default()).await;
        let archive = FolderId::from_stored("archive");
        let message = store
            .queue_change(
                &id,
                Change::Move {
                    to: archive.clone(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.folder_ids(), [&archive]);
        let entry = store.next_duty("acc", 0).await.unwrap().unwrap();
        store
            .change_done(
                &entry,
                ChangeDone::Moved {
                    from: FolderId::from_stored("inbox"),
                    provider_id: "7".into(),
                    to: archive.clone(),
                    new_id: Some("3".into()),
                },
            )
            .await
            .unwrap();
        let message = store.message(&id).await.unwrap().unwrap();
        assert_eq!(message.pending, None);
        assert_eq!(
            message.folders,
            [Membership {
                folder_id: archive.clone(),
                provider_id: "3".into()
            }]
        );
        assert_eq!(
            store.held("acc", &archive).await.unwrap(),
            [(3, Flags::default())]
        );
    }

    #[tokio::test]
    async fn a_duty_of_a_deleted_account_is_not_put_back() {
        let (_dir, store, id) = store_with("7", Flags::default()).await;
        store.queue_change(&id, Change::Expunge).await.unwrap();
        let entry = store.next_duty("acc", 0).await.unwrap().unwrap();
        store
            .backend
            .write(|txn| delete_account_outbox(txn, "acc"))
            .await
            .unwrap();
        store.defer_duty(&entry).await.unwrap();
        assert!(store.next_duty("acc", 0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expunge_hides_the_message_then_deletes_it() {
        let (_dir, store, id) = store_with("7", Flags::default()).await;
        store.queue_change(&id, Change::Expunge).await.unwrap();
        assert!(store.message(&id).await.unwrap().unwrap().is_removed());
        // A second delete of a deleted message finds nothing.
        assert_eq!(
            store.queue_change(&id, Change::Expunge).await.unwrap(),
            None
        );
        let entry = store.next_duty("acc", 0).await.unwrap().unwrap();
        store
            .change_done(
                &entry,
                ChangeDone::Expunged(vec![(FolderId::from_stored("inbox"), "7".into())]),
            )
            .await
            .unwrap();
        assert_eq!(store.message(&id).await.unwrap(), None);
    }
}
