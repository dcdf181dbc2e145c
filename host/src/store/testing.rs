//! What the rules' unit tests share: a store in memory, accounts, mail and records.

use super::directory::tests::an_account;
use super::kv::memory::MemoryBackend;
use super::mail::{Event, FolderSync, Incoming, PageOutcome, PageWrite};
use super::{KvStore, MailStore, RecordStore, Store};
use crate::folder::FolderId;
use crate::mail::parse::parse;
use crate::mail::{Fetched, Flags};
use crate::record::{Company, Contact, CreatedBy, Deal, Record, RecordRef, RecordType};

pub type Memory = KvStore<MemoryBackend>;

pub fn store() -> Memory {
    KvStore::new(MemoryBackend::new())
}

/// An account of `email` that creates contacts when `create_contact`.
pub async fn account(store: &Memory, id: &str, email: &str, create_contact: bool) {
    let mut account = an_account(id, email);
    account.create_contact = create_contact;
    store.insert_account(account, None).await.unwrap();
}

/// A message's bytes: `headers` (each ending in CRLF) and a body.
pub fn mail(headers: &str) -> Vec<u8> {
    format!("{headers}Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n").into_bytes()
}

/// A simple message from `from` to `to` with this Message-ID.
pub fn simple(from: &str, to: &str, message_id: &str) -> Vec<u8> {
    mail(&format!(
        "From: {from}\r\nTo: {to}\r\nSubject: s\r\nMessage-ID: <{message_id}>\r\n"
    ))
}

pub fn fetched(uid: &str, raw: &[u8], flags: Flags) -> Incoming {
    Incoming {
        fetched: Fetched {
            provider_id: uid.into(),
            flags,
            received_at: 1_800_000_000 + uid.parse::<i64>().unwrap_or(0),
            raw: raw.to_vec(),
            known: None,
        },
        parsed: Some(parse(raw)),
    }
}

pub fn folder(name: &str) -> FolderId {
    FolderId::from_stored(name)
}

/// Commits a page of `incoming` to a folder.
pub async fn ingest(
    store: &Memory,
    account: &str,
    folder_name: &str,
    incoming: Vec<Incoming>,
) -> PageOutcome {
    store
        .commit_page(PageWrite {
            account_id: account.into(),
            folder_id: folder(folder_name),
            initial: false,
            incoming,
            changed: Vec::new(),
            removed: Vec::new(),
            sync: Some(FolderSync::default()),
        })
        .await
        .unwrap()
}

/// The id of the account's only message with this Message-ID.
pub async fn id_of(store: &Memory, account: &str, message_id: &str) -> String {
    use super::OutboxStore;
    store
        .find_message_id(account, message_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no message <{message_id}>"))
}

pub fn contact(id: &str, emails: &[&str], companies: &[&str]) -> Record {
    Record::Contact(Contact {
        id: id.into(),
        name: id.into(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        company_ids: companies.iter().map(|c| c.to_string()).collect(),
        created_by: CreatedBy::Crm,
        visible_to: None,
    })
}

pub fn company(id: &str, domains: &[&str]) -> Record {
    Record::Company(Company {
        id: id.into(),
        name: id.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        visible_to: None,
    })
}

pub fn deal(id: &str, contacts: &[&str], companies: &[&str]) -> Record {
    Record::Deal(Deal {
        id: id.into(),
        name: id.into(),
        contact_ids: contacts.iter().map(|c| c.to_string()).collect(),
        company_ids: companies.iter().map(|c| c.to_string()).collect(),
        visible_to: None,
    })
}

pub fn reference(kind: RecordType, id: &str) -> RecordRef {
    RecordRef {
        kind,
        id: id.into(),
    }
}

/// The records a message is filed under, as `type/id`, sorted.
pub async fn filed(store: &Memory, message_id: &str) -> Vec<String> {
    let mut refs: Vec<String> = store
        .message_records(&[message_id.to_owned()])
        .await
        .unwrap()
        .remove(0)
        .into_iter()
        .map(|r| format!("{}/{}", r.kind.as_str(), r.id))
        .collect();
    refs.sort();
    refs
}

/// Every event of the log, oldest first.
pub async fn events(store: &Memory) -> Vec<Event> {
    store.events(0, 10_000).await.unwrap().0
}

/// The created contacts' addresses, sorted.
pub async fn created_contacts(store: &Memory) -> Vec<String> {
    let (records, _) = store
        .records(RecordType::Contacts, Some(CreatedBy::Mailroom), None, 1000)
        .await
        .unwrap();
    let mut emails: Vec<String> = records
        .into_iter()
        .flat_map(|r| match r {
            Record::Contact(c) => c.emails,
            _ => Vec::new(),
        })
        .collect();
    emails.sort();
    emails
}
