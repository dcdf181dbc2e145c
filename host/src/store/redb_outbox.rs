//! [`OutboxStore`] on redb.
//!
//! Tables: `outbox` (acct, seq) → duty JSON, the account's queue in order (seq 0: the
//! last number given);
//! `outgoing` outbox id → send record JSON; `outgoing_raw` outbox id → the message's bytes.

use super::mail::{Incoming, PageWrite};
use super::outbox::{Change, ChangeDone, Duty, OutboxEntry, OutboxStore, Outgoing};
use super::redb::{RedbStore, backend, decode, encode};
use super::redb_mail::{
    IDENTITIES, ORPHANS, PROVIDER_IDS, commit, delete_message, load, mapped_id, mapping,
    push_event, save, set_flags, settle, updated,
};
use super::{Result, StoreError};
use crate::folder::FolderId;
use crate::mail::Fetched;
use crate::mail::message::{Membership, Message, Placement};
use crate::mail::parse::Parsed;
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde_json::json;

pub(super) const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
pub(super) const OUTGOING: TableDefinition<&str, &[u8]> = TableDefinition::new("outgoing");
pub(super) const OUTGOING_RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("outgoing_raw");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(OUTBOX).map_err(backend)?;
    txn.open_table(OUTGOING).map_err(backend)?;
    txn.open_table(OUTGOING_RAW).map_err(backend)?;
    Ok(())
}

/// Appends a duty to the account's queue. Numbers are never reused: key (acct, 0) holds
/// the last one given.
fn enqueue(txn: &WriteTransaction, account: &str, duty: &Duty) -> Result<()> {
    let mut outbox = txn.open_table(OUTBOX).map_err(backend)?;
    let last = match outbox.get((account, 0)).map_err(backend)? {
        Some(value) => u64::from_be_bytes(
            value
                .value()
                .try_into()
                .map_err(|_| StoreError::Backend("the outbox counter is damaged".into()))?,
        ),
        None => 0,
    };
    let seq = last + 1;
    outbox
        .insert((account, 0), seq.to_be_bytes().as_slice())
        .map_err(backend)?;
    outbox
        .insert((account, seq), encode(duty)?.as_slice())
        .map_err(backend)?;
    Ok(())
}

fn dequeue(txn: &WriteTransaction, entry: &OutboxEntry) -> Result<()> {
    txn.open_table(OUTBOX)
        .map_err(backend)?
        .remove((entry.account_id.as_str(), entry.seq))
        .map_err(backend)?;
    Ok(())
}

fn queue_change(txn: &WriteTransaction, id: &str, change: Change) -> Result<Option<Message>> {
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
            push_event(txn, "message.updated", updated(&message))?;
        }
        Change::Move { to } => {
            if message.folder_ids() == [to] {
                return Ok(Some(message));
            }
            let pending = message.pending.get_or_insert_default();
            pending.changes += 1;
            pending.placement = Some(Placement::Folder(to.clone()));
            save(txn, &message)?;
            push_event(txn, "message.updated", updated(&message))?;
        }
        Change::Expunge => {
            let pending = message.pending.get_or_insert_default();
            pending.changes += 1;
            pending.placement = Some(Placement::Removed);
            save(txn, &message)?;
            push_event(txn, "message.deleted", updated(&message))?;
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

fn change_done(txn: &WriteTransaction, entry: &OutboxEntry, done: ChangeDone) -> Result<()> {
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
            let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            provider
                .remove((account.as_str(), from.as_str(), provider_id.as_str()))
                .map_err(backend)?;
            message
                .folders
                .retain(|m| !(m.folder_id == from && m.provider_id == provider_id));
            match new_id {
                Some(new_id) => {
                    provider
                        .insert(
                            (account.as_str(), to.as_str(), new_id.as_str()),
                            mapping(message.flags, &message.id).as_slice(),
                        )
                        .map_err(backend)?;
                    message.folders.push(Membership {
                        folder_id: to,
                        provider_id: new_id,
                    });
                }
                None if message.folders.is_empty() => {
                    // The target folder's sync finds it by Message-ID later in this job.
                    txn.open_table(ORPHANS)
                        .map_err(backend)?
                        .insert((account.as_str(), message.id.as_str()), ())
                        .map_err(backend)?;
                }
                None => {}
            }
        }
        ChangeDone::Expunged(removed) => {
            let mut provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
            for (folder, provider_id) in removed {
                provider
                    .remove((account.as_str(), folder.as_str(), provider_id.as_str()))
                    .map_err(backend)?;
                message
                    .folders
                    .retain(|m| !(m.folder_id == folder && m.provider_id == provider_id));
            }
            drop(provider);
            if message.folders.is_empty() {
                let announced = message.is_removed();
                delete_message(txn, &message)?;
                if !announced {
                    push_event(txn, "message.deleted", updated(&message))?;
                }
                return Ok(());
            }
        }
        ChangeDone::Dropped { reason } => {
            if let Some(pending) = &mut message.pending {
                pending.placement = None;
            }
            push_event(
                txn,
                "message.change_failed",
                json!({"account_id": account, "message_id": message.id, "reason": reason}),
            )?;
            push_event(txn, "message.updated", updated(&message))?;
        }
    }
    settle(&mut message);
    save(txn, &message)
}

fn file_sent_copy(
    txn: &WriteTransaction,
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
    commit(
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
    let id = {
        let provider = txn.open_table(PROVIDER_IDS).map_err(backend)?;
        let value = provider
            .get((account, folder.as_str(), provider_id.as_str()))
            .map_err(backend)?;
        match value {
            Some(value) => mapped_id(value.value())?.1,
            None => return Err(StoreError::Backend("the Sent copy was not filed".into())),
        }
    };
    let mut outgoing_table = txn.open_table(OUTGOING).map_err(backend)?;
    let stored = outgoing_table.get(outbox_id.as_str()).map_err(backend)?;
    let outgoing: Option<Outgoing> = stored.map(|v| decode(v.value())).transpose()?;
    if let Some(mut outgoing) = outgoing {
        outgoing.sent_message_id = Some(id.clone());
        outgoing_table
            .insert(outbox_id.as_str(), encode(&outgoing)?.as_slice())
            .map_err(backend)?;
    }
    Ok(id)
}

/// Removes an account's queue and send records (the account is being deleted).
pub(super) fn delete_account_outbox(txn: &WriteTransaction, account: &str) -> Result<()> {
    txn.open_table(OUTBOX)
        .map_err(backend)?
        .retain_in((account, 0)..=(account, u64::MAX), |_, _| false)
        .map_err(backend)?;
    let mut ids = Vec::new();
    {
        let outgoing = txn.open_table(OUTGOING).map_err(backend)?;
        for entry in outgoing.iter().map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            let record: Outgoing = decode(value.value())?;
            if record.account_id == account {
                ids.push(key.value().to_owned());
            }
        }
    }
    let mut outgoing = txn.open_table(OUTGOING).map_err(backend)?;
    let mut raw = txn.open_table(OUTGOING_RAW).map_err(backend)?;
    for id in ids {
        outgoing.remove(id.as_str()).map_err(backend)?;
        raw.remove(id.as_str()).map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for RedbStore {
    async fn queue_change(&self, message_id: &str, change: Change) -> Result<Option<Message>> {
        let id = message_id.to_owned();
        self.write(move |txn| queue_change(txn, &id, change)).await
    }

    async fn queue_send(&self, outgoing: Outgoing, raw: Vec<u8>) -> Result<Outgoing> {
        self.write(move |txn| {
            let mut table = txn.open_table(OUTGOING).map_err(backend)?;
            let first: Option<Outgoing> = table
                .get(outgoing.id.as_str())
                .map_err(backend)?
                .map(|v| decode(v.value()))
                .transpose()?;
            if let Some(first) = first {
                return Ok(first);
            }
            table
                .insert(outgoing.id.as_str(), encode(&outgoing)?.as_slice())
                .map_err(backend)?;
            txn.open_table(OUTGOING_RAW)
                .map_err(backend)?
                .insert(outgoing.id.as_str(), raw.as_slice())
                .map_err(backend)?;
            enqueue(
                txn,
                &outgoing.account_id,
                &Duty::Send {
                    outbox_id: outgoing.id.clone(),
                },
            )?;
            Ok(outgoing)
        })
        .await
    }

    async fn next_duty(&self, account_id: &str, after: u64) -> Result<Option<OutboxEntry>> {
        self.read(|txn| {
            let outbox = txn.open_table(OUTBOX).map_err(backend)?;
            let mut range = outbox
                .range((account_id, after.saturating_add(1))..=(account_id, u64::MAX))
                .map_err(backend)?;
            let Some(entry) = range.next() else {
                return Ok(None);
            };
            let (key, value) = entry.map_err(backend)?;
            Ok(Some(OutboxEntry {
                account_id: account_id.to_owned(),
                seq: key.value().1,
                duty: decode(value.value())?,
            }))
        })
    }

    async fn change_done(&self, entry: &OutboxEntry, done: ChangeDone) -> Result<()> {
        let entry = entry.clone();
        self.write(move |txn| change_done(txn, &entry, done)).await
    }

    async fn save_outgoing(
        &self,
        outgoing: Outgoing,
        entry: Option<&OutboxEntry>,
        then: Vec<Duty>,
    ) -> Result<()> {
        let entry = entry.cloned();
        self.write(move |txn| {
            if let Some(entry) = &entry {
                dequeue(txn, entry)?;
            }
            txn.open_table(OUTGOING)
                .map_err(backend)?
                .insert(outgoing.id.as_str(), encode(&outgoing)?.as_slice())
                .map_err(backend)?;
            for duty in &then {
                enqueue(txn, &outgoing.account_id, duty)?;
            }
            Ok(())
        })
        .await
    }

    async fn outgoing(&self, id: &str) -> Result<Option<Outgoing>> {
        self.get_json(OUTGOING, id)
    }

    async fn outgoing_raw(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let table = txn.open_table(OUTGOING_RAW).map_err(backend)?;
            let value = table.get(id).map_err(backend)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
    }

    async fn file_sent_copy(
        &self,
        entry: &OutboxEntry,
        folder: FolderId,
        fetched: Fetched,
        parsed: Parsed,
    ) -> Result<String> {
        let entry = entry.clone();
        self.write(move |txn| file_sent_copy(txn, &entry, folder, fetched, parsed))
            .await
    }

    async fn drop_duty(&self, entry: &OutboxEntry) -> Result<()> {
        let entry = entry.clone();
        self.write(move |txn| dequeue(txn, &entry)).await
    }

    async fn defer_duty(&self, entry: &OutboxEntry) -> Result<()> {
        let mut entry = entry.clone();
        if let Duty::Change { retried, .. } = &mut entry.duty {
            *retried = true;
        }
        self.write(move |txn| {
            txn.open_table(OUTBOX)
                .map_err(backend)?
                .insert(
                    (entry.account_id.as_str(), entry.seq),
                    encode(&entry.duty)?.as_slice(),
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn find_message_id(&self, account_id: &str, message_id: &str) -> Result<Option<String>> {
        self.read(|txn| {
            let identities = txn.open_table(IDENTITIES).map_err(backend)?;
            let prefix = format!("{message_id} ");
            let end = format!("{message_id}!");
            let mut range = identities
                .range((account_id, prefix.as_str())..(account_id, end.as_str()))
                .map_err(backend)?;
            match range.next() {
                Some(entry) => Ok(Some(entry.map_err(backend)?.1.value().to_owned())),
                None => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::FlagUpdate;
    use crate::mail::Flags;
    use crate::mail::parse::parse;
    use crate::store::MailStore;
    use crate::store::mail::FolderSync;

    fn raw(message_id: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"
        )
        .into_bytes()
    }

    async fn store_with(uid: &str, flags: Flags) -> (tempfile::TempDir, RedbStore, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 16 << 20).unwrap();
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
