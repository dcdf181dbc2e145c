//! Contacts Mailroom creates for the unknown parties of new mail, when an account asks for
//! it, and their absorption into the contact the CRM later pushes for the same address.

use super::kv::{Key, Reader, Writer};
use super::{Result, directory, events, filing};
use crate::mail::message::{Address, Message};
use crate::record::{Contact, CreatedBy, Record, RecordRef, RecordType, normalize_email};
use serde_json::json;
use std::collections::BTreeSet;

/// What deciding on new contacts needs, read once per page.
pub struct Rules {
    /// The account asks for contacts.
    create: bool,
    /// The account's own address.
    own: Option<String>,
    /// Every connected account's and every user's address.
    ours: BTreeSet<String>,
}

impl Rules {
    pub fn load(txn: &dyn Reader, account_id: &str) -> Result<Self> {
        let account = directory::account(txn, account_id)?;
        let create = account.as_ref().is_some_and(|a| a.create_contact);
        Ok(Self {
            create,
            own: account.and_then(|a| normalize_email(&a.email)),
            ours: if create {
                directory::own_addresses(txn)?
                    .iter()
                    .filter_map(|a| normalize_email(a))
                    .collect()
            } else {
                BTreeSet::new()
            },
        })
    }
}

/// The addresses a new message would create contacts for: the sender of received mail, the
/// recipients of mail the account sent; never an address of Mailroom's own, a no-reply
/// address, or anything when a machine sent the mail (`automated` says why: a bounce, an
/// automatic reply, list traffic). Each with the name the mail gave it.
pub fn candidates(
    message: &Message,
    automated: Option<&str>,
    rules: &Rules,
) -> Vec<(String, Option<String>)> {
    if !rules.create || automated.is_some() {
        return Vec::new();
    }
    let party = |a: &Address| normalize_email(&a.email).map(|email| (email, a.name.clone()));
    let from = message.from.as_ref().and_then(party);
    let sent = from.is_some() && from.as_ref().map(|f| &f.0) == rules.own.as_ref();
    let parties: Vec<(String, Option<String>)> = if sent {
        message
            .to
            .iter()
            .chain(&message.cc)
            .chain(&message.bcc)
            .filter_map(party)
            .collect()
    } else {
        from.into_iter().collect()
    };
    parties
        .into_iter()
        .filter(|(email, _)| !rules.ours.contains(email) && !is_no_reply(email))
        .collect()
}

/// Creates a contact for each candidate of a new message that no contact has yet.
/// Concurrent ingests cannot create two contacts for one address: writes are serialized and
/// the check is in the same transaction.
pub fn create_for(
    txn: &mut dyn Writer,
    message: &Message,
    automated: Option<&str>,
    rules: &Rules,
) -> Result<()> {
    for (email, name) in candidates(message, automated, rules) {
        if !with_email(txn, &email)?.is_empty() {
            continue;
        }
        let contact = Contact {
            id: crate::id::new_id("ct"),
            name: name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty() && !n.contains('@'))
                .unwrap_or_else(|| name_from_address(&email)),
            emails: vec![email.clone()],
            company_ids: Vec::new(),
            created_by: CreatedBy::Mailroom,
            visible_to: None,
        };
        let record = Record::Contact(contact);
        let reference = record.reference();
        events::push(
            txn,
            "contact.created",
            json!({"record": reference, "email": email, "account_id": message.account_id}),
        )?;
        filing::replace_record(txn, &reference, Some(&record))?;
    }
    Ok(())
}

/// Stores a record the CRM pushed; a CRM contact absorbs the contacts Mailroom created for
/// its addresses. Returns whether the record is new.
pub fn put_record(txn: &mut dyn Writer, record: &Record) -> Result<bool> {
    let reference = record.reference();
    if let Record::Contact(contact) = record
        && contact.created_by == CreatedBy::Crm
    {
        for email in &contact.emails {
            for created in with_email(txn, email)? {
                if created.created_by != CreatedBy::Mailroom || created.id == contact.id {
                    continue;
                }
                let absorbed = RecordRef {
                    kind: RecordType::Contacts,
                    id: created.id,
                };
                filing::replace_record(txn, &absorbed, None)?;
                events::push(
                    txn,
                    "contact.merged",
                    json!({"from": absorbed, "into": reference}),
                )?;
            }
        }
    }
    Ok(filing::replace_record(txn, &reference, Some(record))?.is_none())
}

/// Whether an address says no one reads it.
fn is_no_reply(email: &str) -> bool {
    let local: String = email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    [
        "noreply",
        "donotreply",
        "mailerdaemon",
        "postmaster",
        "bounce",
    ]
    .iter()
    .any(|robot| local.contains(robot))
}

/// A name for an address without one: `ann.smith@…` → "Ann Smith".
fn name_from_address(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let words: Vec<String> = local
        .split(['.', '_', '-', '+'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect();
    if words.is_empty() {
        email.to_owned()
    } else {
        words.join(" ")
    }
}

/// The contacts with this (normalized) address.
fn with_email(txn: &dyn Reader, email: &str) -> Result<Vec<Contact>> {
    let ids = filing::CONTACT_EMAILS.keys(txn, &Key::new().str(email), |key| key.str())?;
    let mut contacts = Vec::new();
    for id in ids {
        let reference = RecordRef {
            kind: RecordType::Contacts,
            id,
        };
        if let Some(Record::Contact(contact)) = filing::record(txn, &reference)? {
            contacts.push(contact);
        }
    }
    Ok(contacts)
}

#[cfg(test)]
mod tests {
    use super::name_from_address;
    use crate::mail::Flags;
    use crate::record::{Record, RecordType};
    use crate::store::directory::tests::a_user;
    use crate::store::testing::*;
    use crate::store::{RecordStore, Store};

    async fn receive(store: &Memory, raw: &[u8]) {
        ingest(
            store,
            "acc_1",
            "inbox",
            vec![fetched("1", raw, Flags::default())],
        )
        .await;
    }

    #[tokio::test]
    async fn an_unknown_sender_becomes_a_contact_only_when_the_account_asks() {
        let store = store();
        account(&store, "acc_1", "me@x.test", false).await;
        account(&store, "acc_2", "you@x.test", true).await;
        let raw = simple("Ann Smith <ann@y.test>", "me@x.test", "m1@y");
        receive(&store, &raw).await;
        assert!(created_contacts(&store).await.is_empty());
        ingest(
            &store,
            "acc_2",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        assert_eq!(created_contacts(&store).await, ["ann@y.test"]);
        let created = events(&store)
            .await
            .into_iter()
            .find(|e| e.kind == "contact.created")
            .expect("announced");
        assert_eq!(created.data["account_id"], "acc_2");
        assert_eq!(created.data["email"], "ann@y.test");
    }

    #[tokio::test]
    async fn mail_the_account_sent_creates_its_recipients() {
        let store = store();
        account(&store, "acc_1", "me@x.test", true).await;
        let raw = mail(
            "From: me@x.test\r\nTo: ann@y.test\r\nCc: Bob <bob@z.test>\r\n\
Bcc: cy@w.test\r\nMessage-ID: <m1@x>\r\n",
        );
        receive(&store, &raw).await;
        assert_eq!(
            created_contacts(&store).await,
            ["ann@y.test", "bob@z.test", "cy@w.test"]
        );
    }

    #[tokio::test]
    async fn no_contact_for_our_own_addresses_robots_or_machine_mail() {
        let store = store();
        account(&store, "acc_1", "me@x.test", true).await;
        account(&store, "acc_2", "sales@x.test", false).await;
        store
            .insert_user(a_user("usr_colleague", None))
            .await
            .unwrap();
        let ours = [
            simple("sales@x.test", "me@x.test", "a@x"),
            simple("usr_colleague@crm.test", "me@x.test", "b@x"),
            simple("no-reply@shop.test", "me@x.test", "c@x"),
            simple("Mailer-Daemon@mx.test", "me@x.test", "d@x"),
            mail(
                "From: list@lists.test\r\nTo: me@x.test\r\nList-Id: <l.lists.test>\r\nMessage-ID: <e@x>\r\n",
            ),
            mail(
                "From: ann@y.test\r\nTo: me@x.test\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <f@x>\r\n",
            ),
            mail("From: bob@y.test\r\nTo: me@x.test\r\nReturn-Path: <>\r\nMessage-ID: <g@x>\r\n"),
        ];
        for (uid, raw) in ours.iter().enumerate() {
            let uid = (uid + 1).to_string();
            ingest(
                &store,
                "acc_1",
                "inbox",
                vec![fetched(&uid, raw, Flags::default())],
            )
            .await;
        }
        assert!(created_contacts(&store).await.is_empty());
    }

    #[tokio::test]
    async fn an_address_with_a_contact_gets_no_second_one() {
        let store = store();
        account(&store, "acc_1", "me@x.test", true).await;
        store
            .put_record(contact("ann", &["ann@y.test"], &[]))
            .await
            .unwrap();
        receive(&store, &simple("ann@y.test", "me@x.test", "m1@y")).await;
        let raw =
            mail("From: me@x.test\r\nTo: bob@z.test, Bob <BOB@z.test>\r\nMessage-ID: <m2@x>\r\n");
        ingest(
            &store,
            "acc_1",
            "sent",
            vec![fetched("2", &raw, Flags::default())],
        )
        .await;
        assert_eq!(created_contacts(&store).await, ["bob@z.test"]);
    }

    #[tokio::test]
    async fn a_created_contact_is_named_from_the_mail_or_its_address() {
        let store = store();
        account(&store, "acc_1", "me@x.test", true).await;
        let raw = mail(
            "From: me@x.test\r\nTo: \"Ann Smith\" <ann@y.test>, ann.b.jones@z.test, \"x@y\" <q@w.test>\r\n\
Message-ID: <m1@x>\r\n",
        );
        receive(&store, &raw).await;
        let (records, _) = store
            .records(RecordType::Contacts, None, None, 10)
            .await
            .unwrap();
        let mut names: Vec<String> = records
            .into_iter()
            .map(|r| match r {
                Record::Contact(c) => c.name,
                _ => unreachable!(),
            })
            .collect();
        names.sort();
        assert_eq!(names, ["Ann B Jones", "Ann Smith", "Q"]);
        assert_eq!(name_from_address("x_y-z+tag@w.test"), "X Y Z Tag");
    }

    #[tokio::test]
    async fn the_crms_contact_absorbs_the_one_mailroom_created() {
        let store = store();
        account(&store, "acc_1", "me@x.test", true).await;
        receive(&store, &simple("ann@y.test", "me@x.test", "m1@y")).await;
        let (created, _) = store
            .records(RecordType::Contacts, None, None, 10)
            .await
            .unwrap();
        let created = created[0].reference();
        let id = id_of(&store, "acc_1", "m1@y").await;
        assert!(
            store
                .put_record(contact("crm-ann", &["ann@y.test"], &[]))
                .await
                .unwrap()
        );
        assert!(store.record(&created).await.unwrap().is_none());
        assert_eq!(filed(&store, &id).await, ["contacts/crm-ann"]);
        let merged = events(&store)
            .await
            .into_iter()
            .find(|e| e.kind == "contact.merged")
            .expect("announced");
        assert_eq!(merged.data["into"]["id"], "crm-ann");
        assert!(created_contacts(&store).await.is_empty());
    }
}
