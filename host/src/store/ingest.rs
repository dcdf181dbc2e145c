//! A sync page taken in: what is new, what is the same message seen again (moved, copied,
//! or back after a reset), what changed on the server and what left the folder, in one
//! transaction with the folder's new progress.
//!
//! Precedence: a message with a change of Mailroom's own still on its way to the server
//! keeps the flags the user gave it, whatever the server reports meanwhile.

use super::kv::Writer;
use super::mail::{Incoming, PageOutcome, PageWrite};
use super::mailbox::{
    self, ORPHANS, find_known, held_by_id, identity_key, leave_folder, load, mapped, orphan_key,
    set_flags, settle, unmap, updated,
};
use super::{Result, StoreError, contacts, events, filing};
use crate::mail::Known;
use crate::mail::message::Membership;
use serde_json::json;

/// Commits one page.
pub fn commit(txn: &mut dyn Writer, page: PageWrite) -> Result<PageOutcome> {
    let account = page.account_id.as_str();
    let folder = page.folder_id.as_str();
    let mut outcome = PageOutcome::default();
    let mut rules = None;
    // The account's synced folders, read once a page when a message is held by its id.
    let mut synced_folders = None;
    for Incoming { fetched, parsed } in page.incoming {
        if let Some((_, id)) = mapped(txn, account, folder, &fetched.provider_id)? {
            // Already here: only its flags can be news, unless Mailroom's own change of
            // them is still on its way to the server.
            if let Some(mut message) = load(txn, &id)?
                && message.flags != fetched.flags
                && !message.has_pending()
            {
                set_flags(txn, &mut message, fetched.flags)?;
                outcome.updated += 1;
                events::push(txn, "message.updated", updated(&message))?;
            }
            continue;
        }
        let known = match (&parsed, &fetched.known) {
            (Some(parsed), _) => {
                mailbox::IDENTITIES.get(txn, &identity_key(account, &parsed.identity))?
            }
            // The host said it held the message when the connector asked, in this job:
            // nothing deletes it before the job ends.
            (None, Some(Known::Probe { message_id, size })) => {
                Some(find_known(txn, account, message_id, *size)?.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "message <{message_id}> was announced as held but is gone"
                    ))
                })?)
            }
            (None, Some(Known::ProviderId)) => {
                if synced_folders.is_none() {
                    synced_folders = Some(mailbox::synced_folders(txn, account)?);
                }
                let folders = synced_folders.as_deref().unwrap_or_default();
                let held = held_by_id(txn, account, folders, &fetched.provider_id)?;
                Some(held.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "message {} was announced as held but is gone",
                        fetched.provider_id
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
            ORPHANS.remove(txn, &orphan_key(account, &id))?;
            outcome.matched += 1;
            events::push(txn, "message.updated", updated(&message))?;
            continue;
        }
        let Some(parsed) = parsed else {
            continue;
        };
        let id = crate::id::new_id("msg");
        let automated = parsed.automated;
        let message = parsed.into_message(id, account, &page.folder_id, &fetched);
        mailbox::insert(txn, &message, folder, &fetched.provider_id, &fetched.raw)?;
        filing::file_new(txn, &message)?;
        if rules.is_none() {
            rules = Some(contacts::Rules::load(txn, account)?);
        }
        if let Some(rules) = &rules {
            contacts::create_for(txn, &message, automated, rules)?;
        }
        outcome.created += 1;
        events::push(
            txn,
            "message.created",
            json!({"account_id": account, "message_id": message.id, "initial": page.initial}),
        )?;
    }
    for (provider_id, flags) in page.changed {
        if let Some((held_flags, id)) = mapped(txn, account, folder, &provider_id)?
            && held_flags != flags
            && let Some(mut message) = load(txn, &id)?
            && !message.has_pending()
        {
            set_flags(txn, &mut message, flags)?;
            outcome.updated += 1;
            events::push(txn, "message.updated", updated(&message))?;
        }
    }
    for provider_id in page.removed {
        if let Some((_, id)) = unmap(txn, account, folder, &provider_id)?
            && let Some(mut message) = load(txn, &id)?
        {
            leave_folder(txn, &mut message, &page.folder_id, Some(&provider_id))?;
            outcome.removed += 1;
        }
    }
    if let Some(sync) = &page.sync {
        mailbox::set_folder_sync(txn, account, folder, sync)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use crate::mail::FlagUpdate;
    use crate::mail::Flags;
    use crate::mail::Known;
    use crate::store::mail::{FolderSync, PageWrite};
    use crate::store::outbox::Change;
    use crate::store::testing::*;
    use crate::store::{MailStore, OutboxStore, StoreError};

    const SEEN: Flags = Flags {
        seen: true,
        flagged: false,
        answered: false,
        draft: false,
    };

    fn changes(
        folder_name: &str,
        changed: Vec<(String, Flags)>,
        removed: Vec<String>,
    ) -> PageWrite {
        PageWrite {
            account_id: "acc_1".into(),
            folder_id: folder(folder_name),
            initial: false,
            incoming: Vec::new(),
            changed,
            removed,
            sync: Some(FolderSync::default()),
        }
    }

    #[tokio::test]
    async fn a_new_message_is_stored_once_and_announced() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        let outcome = ingest(&store, "acc_1", "inbox", vec![fetched("1", &raw, SEEN)]).await;
        assert_eq!((outcome.created, outcome.matched), (1, 0));
        let id = id_of(&store, "acc_1", "m1@y").await;
        assert_eq!(store.raw_message(&id).await.unwrap().unwrap(), raw);
        assert_eq!(
            store.held("acc_1", &folder("inbox")).await.unwrap(),
            [(1, SEEN)]
        );
        let kinds: Vec<String> = events(&store).await.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["message.created"]);

        // The same uid again changes nothing.
        let again = ingest(&store, "acc_1", "inbox", vec![fetched("1", &raw, SEEN)]).await;
        assert_eq!(again, Default::default());
    }

    #[tokio::test]
    async fn the_same_message_in_another_folder_keeps_its_id_and_gains_a_place() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let id = id_of(&store, "acc_1", "m1@y").await;
        let outcome = ingest(&store, "acc_1", "archive", vec![fetched("9", &raw, SEEN)]).await;
        assert_eq!((outcome.created, outcome.matched), (0, 1));
        let message = store.message(&id).await.unwrap().unwrap();
        assert_eq!(message.folders.len(), 2);
        // The server's flags count: every place shows them.
        assert!(message.flags.seen);
        assert_eq!(
            store.held("acc_1", &folder("inbox")).await.unwrap(),
            [(1, SEEN)]
        );
    }

    #[tokio::test]
    async fn a_message_moved_away_and_found_again_in_the_same_job_keeps_its_id() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let id = id_of(&store, "acc_1", "m1@y").await;
        // Gone from the inbox: an orphan until the job ends.
        let gone = store
            .commit_page(changes("inbox", Vec::new(), vec!["1".into()]))
            .await
            .unwrap();
        assert_eq!(gone.removed, 1);
        ingest(
            &store,
            "acc_1",
            "archive",
            vec![fetched("4", &raw, Flags::default())],
        )
        .await;
        assert_eq!(store.finish_job("acc_1").await.unwrap(), 0);
        let message = store.message(&id).await.unwrap().unwrap();
        assert_eq!(message.folder_ids(), [&folder("archive")]);
    }

    #[tokio::test]
    async fn a_message_in_no_folder_when_the_job_ends_is_deleted_and_announced() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let id = id_of(&store, "acc_1", "m1@y").await;
        store
            .commit_page(changes("inbox", Vec::new(), vec!["1".into()]))
            .await
            .unwrap();
        assert_eq!(store.finish_job("acc_1").await.unwrap(), 1);
        assert!(store.message(&id).await.unwrap().is_none());
        assert!(store.raw_message(&id).await.unwrap().is_none());
        assert_eq!(events(&store).await.last().unwrap().kind, "message.deleted");
        assert_eq!(store.finish_job("acc_1").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_servers_flags_wait_while_a_change_of_mailrooms_is_on_its_way() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let id = id_of(&store, "acc_1", "m1@y").await;
        let flag = Change::Flags(FlagUpdate {
            flagged: Some(true),
            ..FlagUpdate::default()
        });
        store.queue_change(&id, flag).await.unwrap();
        // Changed flags and a re-seen uid both carry the server's older state.
        store
            .commit_page(changes("inbox", vec![("1".into(), SEEN)], Vec::new()))
            .await
            .unwrap();
        ingest(&store, "acc_1", "inbox", vec![fetched("1", &raw, SEEN)]).await;
        let message = store.message(&id).await.unwrap().unwrap();
        assert!(message.flags.flagged && !message.flags.seen);
        // Found in another folder meanwhile: still the user's flags.
        ingest(&store, "acc_1", "archive", vec![fetched("2", &raw, SEEN)]).await;
        let message = store.message(&id).await.unwrap().unwrap();
        assert!(message.flags.flagged && !message.flags.seen);
    }

    #[tokio::test]
    async fn a_mailbox_wide_id_finds_the_message_in_any_folder_even_between_folders() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("g1", &raw, Flags::default())],
        )
        .await;
        let ids = vec!["g1".to_owned(), "g2".to_owned()];
        assert_eq!(
            store.held_ids("acc_1", ids.clone()).await.unwrap(),
            [true, false]
        );
        assert_eq!(store.held_ids("acc_2", ids).await.unwrap(), [false, false]);
        let held = |id: &str| {
            let mut held = fetched(id, &[], SEEN);
            held.parsed = None;
            held.fetched.known = Some(Known::ProviderId);
            held
        };
        // Under a second label: the same message, with the flags the page brings.
        let outcome = ingest(&store, "acc_1", "label", vec![held("g1")]).await;
        assert_eq!(outcome.matched, 1);
        // Out of both folders, then into a third within the job: still found, not fetched.
        for folder in ["inbox", "label"] {
            store
                .commit_page(changes(folder, Vec::new(), vec!["g1".into()]))
                .await
                .unwrap();
        }
        assert_eq!(
            store.held_ids("acc_1", vec!["g1".into()]).await.unwrap(),
            [true]
        );
        let outcome = ingest(&store, "acc_1", "archive", vec![held("g1")]).await;
        assert_eq!(outcome.matched, 1);
        let listed = store
            .messages(
                "acc_1",
                crate::store::mail::MessageQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .0;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].folders.len(), 1);
        assert!(listed[0].flags.seen);
        // An id the account never held is refused, not stored empty.
        let refused = store
            .commit_page(PageWrite {
                incoming: vec![held("g9")],
                ..changes("archive", Vec::new(), Vec::new())
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_message_the_host_said_it_held_is_found_by_message_id_and_size() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let size = raw.len() as u64;
        let probes = vec![("m1@y".to_owned(), size), ("m1@y".to_owned(), size + 1)];
        assert_eq!(store.known("acc_1", probes).await.unwrap(), [true, false]);
        let mut known = fetched("5", &[], Flags::default());
        known.parsed = None;
        known.fetched.known = Some(Known::Probe {
            message_id: "m1@y".into(),
            size,
        });
        let outcome = ingest(&store, "acc_1", "archive", vec![known]).await;
        assert_eq!(outcome.matched, 1);
        // A probe the store cannot match is refused, not stored as an empty message.
        let mut gone = fetched("6", &[], Flags::default());
        gone.parsed = None;
        gone.fetched.known = Some(Known::Probe {
            message_id: "other@y".into(),
            size: 1,
        });
        let refused = store
            .commit_page(PageWrite {
                incoming: vec![gone],
                ..changes("archive", Vec::new(), Vec::new())
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn the_same_message_in_two_accounts_is_two_messages() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        account(&store, "acc_2", "you@x.test", false).await;
        let raw = simple("a@y.test", "me@x.test, you@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let outcome = ingest(
            &store,
            "acc_2",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        assert_eq!(outcome.created, 1);
        assert_ne!(
            id_of(&store, "acc_1", "m1@y").await,
            id_of(&store, "acc_2", "m1@y").await
        );
    }
}
