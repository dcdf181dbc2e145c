//! CRM records, and the filing of messages under them.
//!
//! A message is filed under every record its addresses (From, To, Cc, Bcc, Reply-To, the
//! account's own address left out) concern: contacts with one of the addresses, their
//! companies, companies owning an address's domain, and deals linking any of those. Filing
//! stays true both ways: at ingest, and whenever a record changes, through an index of the
//! messages by address and by domain.
//!
//! Tables:
//! * `records` (type, id) → record;
//! * `contact_emails` (email, contact), `company_domains` (domain, company),
//!   `company_contacts` (company, contact), `deal_members` (member type, member id, deal):
//!   from an address or a record to the records it brings in;
//! * `addresses` (email, message) and `domains` (domain, message): every message by each
//!   address it names, so a record that changes finds its mail without a scan;
//! * `copies` (identity, message): the same message in several accounts;
//! * `filed` (type, id, received_at, message): a record's timeline, and `filing`
//!   (message, type, id): a message's records.

use super::kv::{Json, Key, Reader, Table, Unit, Writer};
use super::mailbox::{MESSAGES, load};
use super::{Result, directory, events};
use crate::mail::message::Message;
use crate::record::{CreatedBy, Record, RecordRef, RecordType, domain_of, normalize_email};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

const RECORDS: Table<Json<Record>> = Table::new("records");
pub(super) const CONTACT_EMAILS: Table<Unit> = Table::new("contact_emails");
const COMPANY_DOMAINS: Table<Unit> = Table::new("company_domains");
const COMPANY_CONTACTS: Table<Unit> = Table::new("company_contacts");
const DEAL_MEMBERS: Table<Unit> = Table::new("deal_members");
const ADDRESSES: Table<Unit> = Table::new("addresses");
const DOMAINS: Table<Unit> = Table::new("domains");
const COPIES: Table<Unit> = Table::new("copies");
const FILED: Table<Unit> = Table::new("filed");
const FILING: Table<Unit> = Table::new("filing");

fn record_key(reference: &RecordRef) -> Key {
    Key::new().str(reference.kind.as_str()).str(&reference.id)
}

fn pair(first: &str, second: &str) -> Key {
    Key::new().str(first).str(second)
}

fn filed_key(reference: &RecordRef, received_at: i64, message: &str) -> Key {
    record_key(reference).i64(received_at).str(message)
}

fn filing_key(message: &str, reference: &RecordRef) -> Key {
    Key::new()
        .str(message)
        .str(reference.kind.as_str())
        .str(&reference.id)
}

/// The second parts of the keys of a two-part index that begin with `first`.
fn seconds(txn: &dyn Reader, table: &Table<Unit>, first: &str) -> Result<Vec<String>> {
    table.keys(txn, &Key::new().str(first), |key| key.str())
}

/// The records a message is filed under.
pub fn filed_as(txn: &dyn Reader, message_id: &str) -> Result<Vec<RecordRef>> {
    let mut records = Vec::new();
    FILING.scan_prefix(txn, &Key::new().str(message_id), false, |mut key, ()| {
        let kind = key.str()?;
        let id = key.str()?;
        if let Some(kind) = RecordType::parse(&kind) {
            records.push(RecordRef { kind, id });
        }
        Ok(true)
    })?;
    Ok(records)
}

/// Every normalized address a message names.
fn addresses(message: &Message) -> BTreeSet<String> {
    message
        .from
        .iter()
        .chain(&message.to)
        .chain(&message.cc)
        .chain(&message.bcc)
        .chain(&message.reply_to)
        .filter_map(|a| normalize_email(&a.email))
        .collect()
}

pub fn record(txn: &dyn Reader, reference: &RecordRef) -> Result<Option<Record>> {
    RECORDS.get(txn, &record_key(reference))
}

fn exists(txn: &dyn Reader, kind: RecordType, id: &str) -> Result<bool> {
    RECORDS.contains(txn, &Key::new().str(kind.as_str()).str(id))
}

/// The records mail naming these addresses is filed under.
fn records_for(txn: &dyn Reader, addresses: &BTreeSet<String>) -> Result<BTreeSet<RecordRef>> {
    let mut contacts = BTreeSet::new();
    let mut companies = BTreeSet::new();
    for address in addresses {
        contacts.extend(seconds(txn, &CONTACT_EMAILS, address)?);
        companies.extend(seconds(txn, &COMPANY_DOMAINS, domain_of(address))?);
    }
    for contact in &contacts {
        let reference = RecordRef {
            kind: RecordType::Contacts,
            id: contact.clone(),
        };
        if let Some(Record::Contact(contact)) = record(txn, &reference)? {
            for company in contact.company_ids {
                if exists(txn, RecordType::Companies, &company)? {
                    companies.insert(company);
                }
            }
        }
    }
    let mut deals = BTreeSet::new();
    let mut deals_of = |kind: RecordType, id: &str| -> Result<()> {
        let prefix = Key::new().str(kind.as_str()).str(id);
        deals.extend(DEAL_MEMBERS.keys(txn, &prefix, |key| key.str())?);
        Ok(())
    };
    for contact in &contacts {
        deals_of(RecordType::Contacts, contact)?;
    }
    for company in &companies {
        deals_of(RecordType::Companies, company)?;
    }
    let refs = |kind: RecordType, ids: BTreeSet<String>| {
        ids.into_iter().map(move |id| RecordRef { kind, id })
    };
    Ok(refs(RecordType::Contacts, contacts)
        .chain(refs(RecordType::Companies, companies))
        .chain(refs(RecordType::Deals, deals))
        .collect())
}

/// Files messages under the records they concern now: adds what is missing, removes what
/// no longer holds, and announces each new filing. `owners` caches accounts' addresses.
fn refile(
    txn: &mut dyn Writer,
    message_ids: impl IntoIterator<Item = String>,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<()> {
    for id in message_ids {
        let Some(message) = load(txn, &id)? else {
            continue;
        };
        let owner = match owners.get(&message.account_id) {
            Some(owner) => owner.clone(),
            None => {
                let owner = directory::account(txn, &message.account_id)?
                    .and_then(|account| normalize_email(&account.email));
                owners.insert(message.account_id.clone(), owner.clone());
                owner
            }
        };
        let mut named = addresses(&message);
        if let Some(owner) = &owner {
            named.remove(owner);
        }
        let now = records_for(txn, &named)?;
        let before: BTreeSet<RecordRef> = filed_as(txn, &id)?.into_iter().collect();
        for gone in before.difference(&now) {
            FILED.remove(txn, &filed_key(gone, message.received_at, &id))?;
            FILING.remove(txn, &filing_key(&id, gone))?;
        }
        for new in now.difference(&before) {
            FILED.put(txn, &filed_key(new, message.received_at, &id), &())?;
            FILING.put(txn, &filing_key(&id, new), &())?;
            events::push(
                txn,
                "record.associated",
                json!({"record": new, "message_id": id, "account_id": message.account_id}),
            )?;
        }
    }
    Ok(())
}

/// Indexes a new message by its addresses and identity and files it under its records.
pub fn file_new(txn: &mut dyn Writer, message: &Message) -> Result<()> {
    for address in &addresses(message) {
        ADDRESSES.put(txn, &pair(address, &message.id), &())?;
        DOMAINS.put(txn, &pair(domain_of(address), &message.id), &())?;
    }
    COPIES.put(txn, &pair(&message.identity, &message.id), &())?;
    refile(txn, [message.id.clone()], &mut HashMap::new())
}

/// Indexes and files every message held (mail stored before records existed).
pub fn file_all(txn: &mut dyn Writer) -> Result<()> {
    let ids = MESSAGES.keys(txn, &Key::new(), |key| key.str())?;
    for id in ids {
        if let Some(message) = load(txn, &id)? {
            file_new(txn, &message)?;
        }
    }
    Ok(())
}

/// Removes a message that is being deleted from the indexes and every record.
pub fn unfile(txn: &mut dyn Writer, message: &Message) -> Result<()> {
    let id = message.id.as_str();
    for address in &addresses(message) {
        ADDRESSES.remove(txn, &pair(address, id))?;
        // Another address of the message may share the domain: removing twice is harmless.
        DOMAINS.remove(txn, &pair(domain_of(address), id))?;
    }
    COPIES.remove(txn, &pair(&message.identity, id))?;
    for record in filed_as(txn, id)? {
        FILED.remove(txn, &filed_key(&record, message.received_at, id))?;
        FILING.remove(txn, &filing_key(id, &record))?;
    }
    Ok(())
}

/// The messages filed under a record.
fn filed_under(txn: &dyn Reader, reference: &RecordRef) -> Result<Vec<String>> {
    FILED.keys(txn, &record_key(reference), |key| {
        key.i64()?;
        key.str()
    })
}

/// The messages whose filing may depend on a record: those filed under it now, and those
/// naming its addresses or domains.
fn concerned(txn: &dyn Reader, record: &Record) -> Result<BTreeSet<String>> {
    let mut messages: BTreeSet<String> =
        filed_under(txn, &record.reference())?.into_iter().collect();
    match record {
        Record::Contact(contact) => {
            for email in &contact.emails {
                messages.extend(seconds(txn, &ADDRESSES, email)?);
            }
        }
        Record::Company(company) => {
            for domain in &company.domains {
                messages.extend(seconds(txn, &DOMAINS, domain)?);
            }
            // Mail of the contacts that name this company.
            for contact in seconds(txn, &COMPANY_CONTACTS, &company.id)? {
                let contact = RecordRef {
                    kind: RecordType::Contacts,
                    id: contact,
                };
                if record_exists(txn, &contact)? {
                    messages.extend(filed_under(txn, &contact)?);
                }
            }
        }
        Record::Deal(deal) => {
            let members = deal
                .contact_ids
                .iter()
                .map(|id| (RecordType::Contacts, id))
                .chain(
                    deal.company_ids
                        .iter()
                        .map(|id| (RecordType::Companies, id)),
                );
            for (kind, id) in members {
                messages.extend(filed_under(
                    txn,
                    &RecordRef {
                        kind,
                        id: id.clone(),
                    },
                )?);
            }
        }
    }
    Ok(messages)
}

fn record_exists(txn: &dyn Reader, reference: &RecordRef) -> Result<bool> {
    RECORDS.contains(txn, &record_key(reference))
}

/// Adds (`add`) or removes a record's entries in the lookup tables.
fn index_record(txn: &mut dyn Writer, record: &Record, add: bool) -> Result<()> {
    let set = |txn: &mut dyn Writer, table: &Table<Unit>, key: Key| {
        if add {
            table.put(txn, &key, &())
        } else {
            table.remove(txn, &key)
        }
    };
    match record {
        Record::Contact(contact) => {
            for email in &contact.emails {
                set(txn, &CONTACT_EMAILS, pair(email, &contact.id))?;
            }
            for company in &contact.company_ids {
                set(txn, &COMPANY_CONTACTS, pair(company, &contact.id))?;
            }
        }
        Record::Company(company) => {
            for domain in &company.domains {
                set(txn, &COMPANY_DOMAINS, pair(domain, &company.id))?;
            }
        }
        Record::Deal(deal) => {
            for contact in &deal.contact_ids {
                let key = Key::new().str("contacts").str(contact).str(&deal.id);
                set(txn, &DEAL_MEMBERS, key)?;
            }
            for company in &deal.company_ids {
                let key = Key::new().str("companies").str(company).str(&deal.id);
                set(txn, &DEAL_MEMBERS, key)?;
            }
        }
    }
    Ok(())
}

/// Replaces (or with `new` none, deletes) a record and refiles the mail either version
/// concerns. Returns the version it replaced.
pub fn replace_record(
    txn: &mut dyn Writer,
    reference: &RecordRef,
    new: Option<&Record>,
) -> Result<Option<Record>> {
    let old = record(txn, reference)?;
    let mut concerned_messages = BTreeSet::new();
    if let Some(old) = &old {
        concerned_messages.extend(concerned(txn, old)?);
        index_record(txn, old, false)?;
    }
    match new {
        Some(record) => RECORDS.put(txn, &record_key(reference), record)?,
        None => {
            RECORDS.remove(txn, &record_key(reference))?;
        }
    }
    if let Some(new) = new {
        index_record(txn, new, true)?;
        concerned_messages.extend(concerned(txn, new)?);
    }
    refile(txn, concerned_messages, &mut HashMap::new())?;
    Ok(old)
}

/// Records of a type in id order after `after`, optionally only those created by
/// `created_by`; and whether more follow.
pub fn records(
    txn: &dyn Reader,
    kind: RecordType,
    created_by: Option<CreatedBy>,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Record>, bool)> {
    let prefix = Key::new().str(kind.as_str());
    let after = after.map(|id| Key::new().str(kind.as_str()).str(id));
    let mut found = Vec::new();
    let mut more = false;
    RECORDS.scan_between(
        txn,
        &prefix,
        after.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
        false,
        |_, record| {
            let wanted = match (created_by, &record) {
                (None, _) => true,
                (Some(by), Record::Contact(contact)) => contact.created_by == by,
                (Some(by), _) => by == CreatedBy::Crm,
            };
            if !wanted {
                return Ok(true);
            }
            if found.len() == limit {
                more = true;
                return Ok(false);
            }
            found.push(record);
            Ok(true)
        },
    )?;
    Ok((found, more))
}

/// A record's messages, newest first after `after`: one per message, when copies of it sit
/// in several accounts (the earliest copy stands for them); and whether more follow. With
/// `accounts`, only the messages of those accounts count.
pub fn timeline(
    txn: &dyn Reader,
    reference: &RecordRef,
    accounts: Option<&HashSet<String>>,
    after: Option<(i64, &str)>,
    limit: usize,
) -> Result<(Vec<Message>, bool)> {
    let prefix = record_key(reference);
    let before = after.map(|(at, message)| filed_key(reference, at, message));
    let load_visible = |id: &str| -> Result<Option<Message>> {
        Ok(load(txn, id)?.filter(|m| accounts.is_none_or(|a| a.contains(&m.account_id))))
    };
    let mut found = Vec::new();
    let mut more = false;
    FILED.scan_between(
        txn,
        &prefix,
        Bound::Unbounded,
        before.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
        true,
        |mut key, ()| {
            key.i64()?;
            let Some(message) = load_visible(&key.str()?)? else {
                return Ok(true);
            };
            // One item per message: the earliest copy filed here stands for the others.
            for copy in seconds(txn, &COPIES, &message.identity)? {
                if copy == message.id || !FILING.contains(txn, &filing_key(&copy, reference))? {
                    continue;
                }
                if let Some(other) = load_visible(&copy)?
                    && (other.received_at, &other.id) < (message.received_at, &message.id)
                {
                    return Ok(true);
                }
            }
            if found.len() == limit {
                more = true;
                return Ok(false);
            }
            found.push(message);
            Ok(true)
        },
    )?;
    Ok((found, more))
}

/// Whether the message is on the record's timeline.
pub fn on_timeline(txn: &dyn Reader, reference: &RecordRef, message_id: &str) -> Result<bool> {
    FILING.contains(txn, &filing_key(message_id, reference))
}

#[cfg(test)]
mod tests {
    use crate::mail::Flags;
    use crate::record::RecordType;
    use crate::store::testing::*;
    use crate::store::{MailStore, RecordStore};

    /// One account `me@x.test` holding one message from `from` to `to`; its id.
    async fn with_message(store: &Memory, from: &str, to: &str) -> String {
        account(store, "acc_1", "me@x.test", false).await;
        let raw = simple(from, to, "m1@y");
        ingest(
            store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        id_of(store, "acc_1", "m1@y").await
    }

    #[tokio::test]
    async fn mail_is_filed_under_contacts_by_any_address_it_names() {
        let store = store();
        store
            .put_record(contact("ann", &["ann@y.test"], &[]))
            .await
            .unwrap();
        store
            .put_record(contact("bob", &["bob@z.test"], &[]))
            .await
            .unwrap();
        store
            .put_record(contact("cy", &["cy@z.test"], &[]))
            .await
            .unwrap();
        let raw = mail(
            "From: Ann <ANN@y.test>\r\nTo: me@x.test\r\nCc: bob@z.test\r\n\
Reply-To: nobody@w.test\r\nMessage-ID: <m1@y>\r\n",
        );
        account(&store, "acc_1", "me@x.test", false).await;
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        let id = id_of(&store, "acc_1", "m1@y").await;
        assert_eq!(filed(&store, &id).await, ["contacts/ann", "contacts/bob"]);
    }

    #[tokio::test]
    async fn the_accounts_own_address_files_nothing() {
        let store = store();
        store
            .put_record(contact("me", &["me@x.test"], &[]))
            .await
            .unwrap();
        let id = with_message(&store, "a@y.test", "me@x.test").await;
        assert!(filed(&store, &id).await.is_empty());
    }

    #[tokio::test]
    async fn companies_come_by_domain_and_through_their_contacts_deals_through_either() {
        let store = store();
        store
            .put_record(company("acme", &["acme.test"]))
            .await
            .unwrap();
        store
            .put_record(company("initech", &["initech.test"]))
            .await
            .unwrap();
        store
            .put_record(contact("ann", &["ann@gmail.test"], &["initech", "ghost"]))
            .await
            .unwrap();
        store.put_record(deal("d1", &["ann"], &[])).await.unwrap();
        store.put_record(deal("d2", &[], &["acme"])).await.unwrap();
        store
            .put_record(deal("d3", &["nobody"], &[]))
            .await
            .unwrap();
        let id = with_message(&store, "ann@gmail.test", "me@x.test, bo@acme.test").await;
        assert_eq!(
            filed(&store, &id).await,
            [
                "companies/acme",
                "companies/initech",
                "contacts/ann",
                "deals/d1",
                "deals/d2"
            ]
        );
    }

    #[tokio::test]
    async fn a_record_that_changes_refiles_the_mail_it_concerns() {
        let store = store();
        let id = with_message(&store, "ann@y.test", "me@x.test").await;
        assert!(filed(&store, &id).await.is_empty());
        // A contact pushed later finds the mail already held.
        store
            .put_record(contact("ann", &["ann@y.test"], &[]))
            .await
            .unwrap();
        assert_eq!(filed(&store, &id).await, ["contacts/ann"]);
        let associated = events(&store)
            .await
            .into_iter()
            .filter(|e| e.kind == "record.associated")
            .count();
        assert_eq!(associated, 1);
        // Its company, named later, brings the company in.
        store
            .put_record(company("co", &["other.test"]))
            .await
            .unwrap();
        store
            .put_record(contact("ann", &["ann@y.test"], &["co"]))
            .await
            .unwrap();
        assert_eq!(filed(&store, &id).await, ["companies/co", "contacts/ann"]);
        // A changed address takes the mail away again.
        store
            .put_record(contact("ann", &["ann@new.test"], &["co"]))
            .await
            .unwrap();
        assert!(filed(&store, &id).await.is_empty());
        // Deleting a record unfiles.
        store.put_record(company("y", &["y.test"])).await.unwrap();
        assert_eq!(filed(&store, &id).await, ["companies/y"]);
        let y = reference(RecordType::Companies, "y");
        assert!(store.delete_record(&y).await.unwrap());
        assert!(filed(&store, &id).await.is_empty());
        assert!(!store.on_timeline(&y, &id).await.unwrap());
    }

    #[tokio::test]
    async fn a_timeline_shows_one_copy_of_a_message_held_by_several_accounts() {
        let store = store();
        store
            .put_record(contact("ann", &["ann@y.test"], &[]))
            .await
            .unwrap();
        account(&store, "acc_1", "me@x.test", false).await;
        account(&store, "acc_2", "you@x.test", false).await;
        let raw = simple("ann@y.test", "me@x.test, you@x.test", "m1@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("1", &raw, Flags::default())],
        )
        .await;
        ingest(
            &store,
            "acc_2",
            "inbox",
            vec![fetched("2", &raw, Flags::default())],
        )
        .await;
        let other = simple("ann@y.test", "me@x.test", "m2@y");
        ingest(
            &store,
            "acc_1",
            "inbox",
            vec![fetched("3", &other, Flags::default())],
        )
        .await;
        let ann = reference(RecordType::Contacts, "ann");
        let (all, more) = store.timeline(&ann, None, None, 10).await.unwrap();
        assert!(!more);
        let ids: Vec<&str> = all
            .iter()
            .map(|m| m.message_id.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["m2@y", "m1@y"], "newest first, one item per message");
        assert_eq!(
            all[1].account_id, "acc_1",
            "the earliest copy stands for the others"
        );
        // A reader of the second account alone sees its own copy.
        let only = ["acc_2".to_owned()].into_iter().collect();
        let (theirs, _) = store.timeline(&ann, Some(&only), None, 10).await.unwrap();
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].account_id, "acc_2");
        // Paging continues after the last item.
        let (first, more) = store.timeline(&ann, None, None, 1).await.unwrap();
        assert!(more);
        let after = (first[0].received_at, first[0].id.clone());
        let (rest, _) = store.timeline(&ann, None, Some(after), 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].message_id.as_deref(), Some("m1@y"));
    }

    #[tokio::test]
    async fn a_deleted_message_leaves_every_timeline() {
        let store = store();
        store
            .put_record(contact("ann", &["ann@y.test"], &[]))
            .await
            .unwrap();
        let id = with_message(&store, "ann@y.test", "me@x.test").await;
        let ann = reference(RecordType::Contacts, "ann");
        assert!(store.on_timeline(&ann, &id).await.unwrap());
        store
            .commit_page(crate::store::mail::PageWrite {
                account_id: "acc_1".into(),
                folder_id: folder("inbox"),
                initial: false,
                incoming: Vec::new(),
                changed: Vec::new(),
                removed: vec!["1".into()],
                sync: None,
            })
            .await
            .unwrap();
        store.finish_job("acc_1").await.unwrap();
        assert!(!store.on_timeline(&ann, &id).await.unwrap());
        assert!(
            store
                .timeline(&ann, None, None, 10)
                .await
                .unwrap()
                .0
                .is_empty()
        );
    }
}
