//! [`RecordStore`] on redb, and the filing of messages under records.
//!
//! Tables (keys are tuples):
//! * `records` (type, id) → record JSON;
//! * `contact_emails` (email, contact), `company_domains` (domain, company),
//!   `company_contacts` (company, contact), `deal_members` (member type, member id, deal):
//!   from an address or a record to the records it brings in;
//! * `addresses` (email, message) and `domains` (domain, message): every message by each
//!   address it names, so a record that changes finds its mail without a scan;
//! * `copies` (identity, message): the same message in several accounts;
//! * `filed` (type, id, received_at, message) → (): a record's timeline, and `filing`
//!   (message, type, id) → (): a message's records.

use super::Result;
use super::records::RecordStore;
use super::redb::{RedbStore, backend, decode, encode, load_account, own_addresses};
use super::redb_mail::{MESSAGES, push_event};
use crate::mail::message::Message;
use crate::record::{
    Contact, CreatedBy, Record, RecordRef, RecordType, domain_of, normalize_email,
};
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};

const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
const CONTACT_EMAILS: TableDefinition<(&str, &str), ()> = TableDefinition::new("contact_emails");
const COMPANY_DOMAINS: TableDefinition<(&str, &str), ()> = TableDefinition::new("company_domains");
const COMPANY_CONTACTS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("company_contacts");
const DEAL_MEMBERS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("deal_members");
const ADDRESSES: TableDefinition<(&str, &str), ()> = TableDefinition::new("addresses");
const DOMAINS: TableDefinition<(&str, &str), ()> = TableDefinition::new("domains");
const COPIES: TableDefinition<(&str, &str), ()> = TableDefinition::new("copies");
const FILED: TableDefinition<(&str, &str, i64, &str), ()> = TableDefinition::new("filed");
const FILING: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("filing");

/// The largest string that sorts after every key part used here.
const MAX_KEY: &str = "\u{10FFFF}";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(RECORDS).map_err(backend)?;
    txn.open_table(CONTACT_EMAILS).map_err(backend)?;
    txn.open_table(COMPANY_DOMAINS).map_err(backend)?;
    txn.open_table(COMPANY_CONTACTS).map_err(backend)?;
    txn.open_table(DEAL_MEMBERS).map_err(backend)?;
    txn.open_table(ADDRESSES).map_err(backend)?;
    txn.open_table(DOMAINS).map_err(backend)?;
    txn.open_table(COPIES).map_err(backend)?;
    txn.open_table(FILED).map_err(backend)?;
    txn.open_table(FILING).map_err(backend)?;
    Ok(())
}

/// The second parts of the keys of a two-part table that begin with `first`.
fn seconds(
    table: &impl ReadableTable<(&'static str, &'static str), ()>,
    first: &str,
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in table
        .range((first, "")..=(first, MAX_KEY))
        .map_err(backend)?
    {
        found.push(entry.map_err(backend)?.0.value().1.to_owned());
    }
    Ok(found)
}

/// The records a message is filed under.
fn filed_as(
    filing: &impl ReadableTable<(&'static str, &'static str, &'static str), ()>,
    message_id: &str,
) -> Result<Vec<RecordRef>> {
    let mut records = Vec::new();
    let range = (message_id, "", "")..=(message_id, MAX_KEY, MAX_KEY);
    for entry in filing.range(range).map_err(backend)? {
        let (key, _) = entry.map_err(backend)?;
        let (_, kind, id) = key.value();
        if let Some(kind) = RecordType::parse(kind) {
            records.push(RecordRef {
                kind,
                id: id.to_owned(),
            });
        }
    }
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

fn load_record(txn: &WriteTransaction, reference: &RecordRef) -> Result<Option<Record>> {
    let records = txn.open_table(RECORDS).map_err(backend)?;
    let value = records
        .get((reference.kind.as_str(), reference.id.as_str()))
        .map_err(backend)?;
    value.map(|v| decode(v.value())).transpose()
}

fn exists(txn: &WriteTransaction, kind: RecordType, id: &str) -> Result<bool> {
    let records = txn.open_table(RECORDS).map_err(backend)?;
    Ok(records.get((kind.as_str(), id)).map_err(backend)?.is_some())
}

/// The records mail naming these addresses is filed under.
fn records_for(
    txn: &WriteTransaction,
    addresses: &BTreeSet<String>,
) -> Result<BTreeSet<RecordRef>> {
    let mut contacts = BTreeSet::new();
    let mut companies = BTreeSet::new();
    {
        let emails = txn.open_table(CONTACT_EMAILS).map_err(backend)?;
        let domains = txn.open_table(COMPANY_DOMAINS).map_err(backend)?;
        for address in addresses {
            contacts.extend(seconds(&emails, address)?);
            companies.extend(seconds(&domains, domain_of(address))?);
        }
    }
    for contact in &contacts {
        let reference = RecordRef {
            kind: RecordType::Contacts,
            id: contact.clone(),
        };
        if let Some(Record::Contact(contact)) = load_record(txn, &reference)? {
            for company in contact.company_ids {
                if exists(txn, RecordType::Companies, &company)? {
                    companies.insert(company);
                }
            }
        }
    }
    let mut deals = BTreeSet::new();
    {
        let members = txn.open_table(DEAL_MEMBERS).map_err(backend)?;
        let mut deals_of = |kind: RecordType, id: &str| -> Result<()> {
            let range = (kind.as_str(), id, "")..=(kind.as_str(), id, MAX_KEY);
            for entry in members.range(range).map_err(backend)? {
                deals.insert(entry.map_err(backend)?.0.value().2.to_owned());
            }
            Ok(())
        };
        for contact in &contacts {
            deals_of(RecordType::Contacts, contact)?;
        }
        for company in &companies {
            deals_of(RecordType::Companies, company)?;
        }
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
    txn: &WriteTransaction,
    message_ids: impl IntoIterator<Item = String>,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<()> {
    for id in message_ids {
        let message: Message = {
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            let value = messages.get(id.as_str()).map_err(backend)?;
            match value {
                Some(value) => decode(value.value())?,
                None => continue,
            }
        };
        let owner = match owners.get(&message.account_id) {
            Some(owner) => owner.clone(),
            None => {
                let owner = load_account(txn, &message.account_id)?
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
        let before: BTreeSet<RecordRef> = filed_as(&txn.open_table(FILING).map_err(backend)?, &id)?
            .into_iter()
            .collect();
        let mut filed = txn.open_table(FILED).map_err(backend)?;
        let mut filing = txn.open_table(FILING).map_err(backend)?;
        for gone in before.difference(&now) {
            let kind = gone.kind.as_str();
            filed
                .remove((kind, gone.id.as_str(), message.received_at, id.as_str()))
                .map_err(backend)?;
            filing
                .remove((id.as_str(), kind, gone.id.as_str()))
                .map_err(backend)?;
        }
        drop((filed, filing));
        for new in now.difference(&before) {
            let kind = new.kind.as_str();
            txn.open_table(FILED)
                .map_err(backend)?
                .insert(
                    (kind, new.id.as_str(), message.received_at, id.as_str()),
                    (),
                )
                .map_err(backend)?;
            txn.open_table(FILING)
                .map_err(backend)?
                .insert((id.as_str(), kind, new.id.as_str()), ())
                .map_err(backend)?;
            push_event(
                txn,
                "record.associated",
                json!({"record": new, "message_id": id, "account_id": message.account_id}),
            )?;
        }
    }
    Ok(())
}

/// Indexes a new message by its addresses and identity and files it under its records.
pub(super) fn file_new(txn: &WriteTransaction, message: &Message) -> Result<()> {
    let named = addresses(message);
    {
        let mut by_address = txn.open_table(ADDRESSES).map_err(backend)?;
        let mut by_domain = txn.open_table(DOMAINS).map_err(backend)?;
        for address in &named {
            by_address
                .insert((address.as_str(), message.id.as_str()), ())
                .map_err(backend)?;
            by_domain
                .insert((domain_of(address), message.id.as_str()), ())
                .map_err(backend)?;
        }
        txn.open_table(COPIES)
            .map_err(backend)?
            .insert((message.identity.as_str(), message.id.as_str()), ())
            .map_err(backend)?;
    }
    refile(txn, [message.id.clone()], &mut HashMap::new())
}

/// Indexes and files every message held (a database from before records existed).
pub(super) fn file_all(txn: &WriteTransaction) -> Result<()> {
    let ids: Vec<String> = {
        let messages = txn.open_table(MESSAGES).map_err(backend)?;
        let mut ids = Vec::new();
        for entry in messages.iter().map_err(backend)? {
            ids.push(entry.map_err(backend)?.0.value().to_owned());
        }
        ids
    };
    for id in ids {
        let message: Option<Message> = {
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            let value = messages.get(id.as_str()).map_err(backend)?;
            value.map(|v| decode(v.value())).transpose()?
        };
        if let Some(message) = message {
            file_new(txn, &message)?;
        }
    }
    Ok(())
}

/// Removes a message that is being deleted from the indexes and every record.
pub(super) fn unfile(txn: &WriteTransaction, message: &Message) -> Result<()> {
    let id = message.id.as_str();
    let named = addresses(message);
    let mut by_address = txn.open_table(ADDRESSES).map_err(backend)?;
    let mut by_domain = txn.open_table(DOMAINS).map_err(backend)?;
    for address in &named {
        by_address.remove((address.as_str(), id)).map_err(backend)?;
        // Another address of the message may share the domain: removing twice is harmless.
        by_domain
            .remove((domain_of(address), id))
            .map_err(backend)?;
    }
    txn.open_table(COPIES)
        .map_err(backend)?
        .remove((message.identity.as_str(), id))
        .map_err(backend)?;
    let records = filed_as(&txn.open_table(FILING).map_err(backend)?, id)?;
    let mut filed = txn.open_table(FILED).map_err(backend)?;
    let mut filing = txn.open_table(FILING).map_err(backend)?;
    for record in &records {
        let kind = record.kind.as_str();
        filed
            .remove((kind, record.id.as_str(), message.received_at, id))
            .map_err(backend)?;
        filing
            .remove((id, kind, record.id.as_str()))
            .map_err(backend)?;
    }
    Ok(())
}

/// The messages whose filing may depend on a record: those filed under it now, and those
/// naming its addresses or domains.
fn concerned(txn: &WriteTransaction, record: &Record) -> Result<BTreeSet<String>> {
    let mut messages = BTreeSet::new();
    let reference = record.reference();
    {
        let filed = txn.open_table(FILED).map_err(backend)?;
        let kind = reference.kind.as_str();
        let range = (kind, reference.id.as_str(), i64::MIN, "")
            ..=(kind, reference.id.as_str(), i64::MAX, MAX_KEY);
        for entry in filed.range(range).map_err(backend)? {
            messages.insert(entry.map_err(backend)?.0.value().3.to_owned());
        }
    }
    match record {
        Record::Contact(contact) => {
            let by_address = txn.open_table(ADDRESSES).map_err(backend)?;
            for email in &contact.emails {
                messages.extend(seconds(&by_address, email)?);
            }
        }
        Record::Company(company) => {
            let by_domain = txn.open_table(DOMAINS).map_err(backend)?;
            for domain in &company.domains {
                messages.extend(seconds(&by_domain, domain)?);
            }
            drop(by_domain);
            // Mail of the contacts that name this company.
            let contacts = seconds(
                &txn.open_table(COMPANY_CONTACTS).map_err(backend)?,
                &company.id,
            )?;
            for contact in contacts {
                let contact = RecordRef {
                    kind: RecordType::Contacts,
                    id: contact,
                };
                if let Some(record) = load_record(txn, &contact)? {
                    messages.extend(filed_under(txn, &record.reference())?);
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

fn filed_under(txn: &WriteTransaction, reference: &RecordRef) -> Result<Vec<String>> {
    let filed = txn.open_table(FILED).map_err(backend)?;
    let kind = reference.kind.as_str();
    let range = (kind, reference.id.as_str(), i64::MIN, "")
        ..=(kind, reference.id.as_str(), i64::MAX, MAX_KEY);
    let mut messages = Vec::new();
    for entry in filed.range(range).map_err(backend)? {
        messages.push(entry.map_err(backend)?.0.value().3.to_owned());
    }
    Ok(messages)
}

/// Adds (`add`) or removes a record's entries in the lookup tables.
fn index_record(txn: &WriteTransaction, record: &Record, add: bool) -> Result<()> {
    fn set<K: redb::Key + 'static>(
        table: &mut redb::Table<K, ()>,
        key: K::SelfType<'_>,
        add: bool,
    ) -> Result<()> {
        if add {
            table.insert(key, ()).map_err(backend)?;
        } else {
            table.remove(key).map_err(backend)?;
        }
        Ok(())
    }
    match record {
        Record::Contact(contact) => {
            let mut emails = txn.open_table(CONTACT_EMAILS).map_err(backend)?;
            for email in &contact.emails {
                set(&mut emails, (email.as_str(), contact.id.as_str()), add)?;
            }
            let mut companies = txn.open_table(COMPANY_CONTACTS).map_err(backend)?;
            for company in &contact.company_ids {
                set(&mut companies, (company.as_str(), contact.id.as_str()), add)?;
            }
        }
        Record::Company(company) => {
            let mut domains = txn.open_table(COMPANY_DOMAINS).map_err(backend)?;
            for domain in &company.domains {
                set(&mut domains, (domain.as_str(), company.id.as_str()), add)?;
            }
        }
        Record::Deal(deal) => {
            let mut members = txn.open_table(DEAL_MEMBERS).map_err(backend)?;
            for contact in &deal.contact_ids {
                let key = ("contacts", contact.as_str(), deal.id.as_str());
                set(&mut members, key, add)?;
            }
            for company in &deal.company_ids {
                let key = ("companies", company.as_str(), deal.id.as_str());
                set(&mut members, key, add)?;
            }
        }
    }
    Ok(())
}

/// Replaces (or with `new` none, deletes) a record and refiles the mail either version
/// concerns. Returns the version it replaced.
pub(super) fn replace_record(
    txn: &WriteTransaction,
    reference: &RecordRef,
    new: Option<&Record>,
) -> Result<Option<Record>> {
    let old = load_record(txn, reference)?;
    let mut concerned_messages = BTreeSet::new();
    if let Some(old) = &old {
        concerned_messages.extend(concerned(txn, old)?);
        index_record(txn, old, false)?;
    }
    {
        let mut records = txn.open_table(RECORDS).map_err(backend)?;
        let key = (reference.kind.as_str(), reference.id.as_str());
        match new {
            Some(record) => {
                records
                    .insert(key, encode(record)?.as_slice())
                    .map_err(backend)?;
            }
            None => {
                records.remove(key).map_err(backend)?;
            }
        }
    }
    if let Some(new) = new {
        index_record(txn, new, true)?;
        concerned_messages.extend(concerned(txn, new)?);
    }
    refile(txn, concerned_messages, &mut HashMap::new())?;
    Ok(old)
}

/// What deciding on new contacts needs, read once per page.
pub(super) struct ContactRules {
    /// The account asks for contacts; its own address.
    create: bool,
    own: Option<String>,
    /// Every connected account's and every user's address.
    ours: BTreeSet<String>,
}

impl ContactRules {
    pub(super) fn load(txn: &WriteTransaction, account_id: &str) -> Result<Self> {
        let account = load_account(txn, account_id)?;
        let create = account.as_ref().is_some_and(|a| a.create_contact);
        Ok(Self {
            create,
            own: account.and_then(|a| normalize_email(&a.email)),
            ours: if create {
                own_addresses(txn)?
                    .iter()
                    .filter_map(|a| normalize_email(a))
                    .collect()
            } else {
                BTreeSet::new()
            },
        })
    }
}

/// Creates a contact for each unknown party of a new message when its account asks for it:
/// the sender of received mail, the recipients of mail the account sent. Never for an
/// address of Mailroom's own, a no-reply address, or mail sent by a machine (`automated`
/// says why: a bounce, an automatic reply, list traffic). Concurrent ingests cannot create
/// two contacts for one address: writes are serialized and the check is in the same
/// transaction.
pub(super) fn create_contacts(
    txn: &WriteTransaction,
    message: &Message,
    automated: Option<&str>,
    rules: &ContactRules,
) -> Result<()> {
    if !rules.create || automated.is_some() {
        return Ok(());
    }
    let party = |a: &crate::mail::message::Address| {
        normalize_email(&a.email).map(|email| (email, a.name.clone()))
    };
    let from = message.from.as_ref().and_then(party);
    let sent = from.is_some() && from.as_ref().map(|f| &f.0) == rules.own.as_ref();
    let candidates: Vec<(String, Option<String>)> = if sent {
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
    for (email, name) in candidates {
        if rules.ours.contains(&email)
            || is_no_reply(&email)
            || !contacts_with_email(txn, &email)?.is_empty()
        {
            continue;
        }
        let contact = Contact {
            id: crate::user::new_id("ct"),
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
        push_event(
            txn,
            "contact.created",
            json!({"record": reference, "email": email, "account_id": message.account_id}),
        )?;
        replace_record(txn, &reference, Some(&record))?;
    }
    Ok(())
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
pub(super) fn contacts_with_email(txn: &WriteTransaction, email: &str) -> Result<Vec<Contact>> {
    let ids = seconds(&txn.open_table(CONTACT_EMAILS).map_err(backend)?, email)?;
    let mut contacts = Vec::new();
    for id in ids {
        let reference = RecordRef {
            kind: RecordType::Contacts,
            id,
        };
        if let Some(Record::Contact(contact)) = load_record(txn, &reference)? {
            contacts.push(contact);
        }
    }
    Ok(contacts)
}

#[async_trait]
impl RecordStore for RedbStore {
    async fn put_record(&self, record: Record) -> Result<bool> {
        self.write(move |txn| {
            let reference = record.reference();
            // A CRM contact absorbs the contacts Mailroom created for its addresses.
            if let Record::Contact(contact) = &record
                && contact.created_by == CreatedBy::Crm
            {
                for email in &contact.emails {
                    for created in contacts_with_email(txn, email)? {
                        if created.created_by != CreatedBy::Mailroom || created.id == contact.id {
                            continue;
                        }
                        let absorbed = RecordRef {
                            kind: RecordType::Contacts,
                            id: created.id,
                        };
                        replace_record(txn, &absorbed, None)?;
                        push_event(
                            txn,
                            "contact.merged",
                            json!({"from": absorbed, "into": reference}),
                        )?;
                    }
                }
            }
            let old = replace_record(txn, &reference, Some(&record))?;
            Ok(old.is_none())
        })
        .await
    }

    async fn record(&self, reference: &RecordRef) -> Result<Option<Record>> {
        self.read(|txn| {
            let records = txn.open_table(RECORDS).map_err(backend)?;
            let value = records
                .get((reference.kind.as_str(), reference.id.as_str()))
                .map_err(backend)?;
            value.map(|v| decode(v.value())).transpose()
        })
    }

    async fn delete_record(&self, reference: &RecordRef) -> Result<bool> {
        let reference = reference.clone();
        self.write(move |txn| Ok(replace_record(txn, &reference, None)?.is_some()))
            .await
    }

    async fn records(
        &self,
        kind: RecordType,
        created_by: Option<CreatedBy>,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Record>, bool)> {
        self.read(|txn| {
            let records = txn.open_table(RECORDS).map_err(backend)?;
            let kind = kind.as_str();
            let range = match &after {
                Some(after) => records.range((kind, after.as_str())..=(kind, MAX_KEY)),
                None => records.range((kind, "")..=(kind, MAX_KEY)),
            }
            .map_err(backend)?;
            let mut found = Vec::new();
            for entry in range {
                let (key, value) = entry.map_err(backend)?;
                if after.as_deref() == Some(key.value().1) {
                    continue;
                }
                let record: Record = decode(value.value())?;
                let wanted = match (created_by, &record) {
                    (None, _) => true,
                    (Some(by), Record::Contact(contact)) => contact.created_by == by,
                    (Some(by), _) => by == CreatedBy::Crm,
                };
                if !wanted {
                    continue;
                }
                if found.len() == limit {
                    return Ok((found, true));
                }
                found.push(record);
            }
            Ok((found, false))
        })
    }

    async fn timeline(
        &self,
        reference: &RecordRef,
        accounts: Option<&HashSet<String>>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        self.read(|txn| {
            let filed = txn.open_table(FILED).map_err(backend)?;
            let filing = txn.open_table(FILING).map_err(backend)?;
            let copies = txn.open_table(COPIES).map_err(backend)?;
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            let kind = reference.kind.as_str();
            let id = reference.id.as_str();
            let start = (kind, id, i64::MIN, "");
            let range = match &after {
                Some((at, message)) => filed.range(start..(kind, id, *at, message.as_str())),
                None => filed.range(start..=(kind, id, i64::MAX, MAX_KEY)),
            }
            .map_err(backend)?;
            let load = |id: &str| -> Result<Option<Message>> {
                let value = messages.get(id).map_err(backend)?;
                let message: Option<Message> = value.map(|v| decode(v.value())).transpose()?;
                Ok(message.filter(|m| accounts.is_none_or(|a| a.contains(&m.account_id))))
            };
            let mut found = Vec::new();
            for entry in range.rev() {
                let (key, _) = entry.map_err(backend)?;
                let Some(message) = load(key.value().3)? else {
                    continue;
                };
                // One item per message: the earliest copy filed here stands for the others.
                let mut earlier = false;
                for copy in seconds(&copies, &message.identity)? {
                    if copy == message.id
                        || filing
                            .get((copy.as_str(), kind, id))
                            .map_err(backend)?
                            .is_none()
                    {
                        continue;
                    }
                    if let Some(other) = load(&copy)?
                        && (other.received_at, &other.id) < (message.received_at, &message.id)
                    {
                        earlier = true;
                        break;
                    }
                }
                if earlier {
                    continue;
                }
                if found.len() == limit {
                    return Ok((found, true));
                }
                found.push(message);
            }
            Ok((found, false))
        })
    }

    async fn on_timeline(&self, reference: &RecordRef, message_id: &str) -> Result<bool> {
        self.read(|txn| {
            let filing = txn.open_table(FILING).map_err(backend)?;
            Ok(filing
                .get((message_id, reference.kind.as_str(), reference.id.as_str()))
                .map_err(backend)?
                .is_some())
        })
    }

    async fn message_records(&self, message_ids: &[String]) -> Result<Vec<Vec<RecordRef>>> {
        self.read(|txn| {
            let filing = txn.open_table(FILING).map_err(backend)?;
            message_ids.iter().map(|id| filed_as(&filing, id)).collect()
        })
    }
}
