//! What the store keeps for CRM records, and the filing of mail under them.
//!
//! A message is filed under every record its addresses (From, To, Cc, Bcc, Reply-To, the
//! account's own address left out) concern: contacts with one of the addresses, their
//! companies, companies owning an address's domain, and deals linking any of those. Filing is
//! kept true both ways: at ingest, and whenever a record changes, through an index of the
//! messages by address and by domain.

use super::Result;
use crate::mail::message::Message;
use crate::record::{CreatedBy, Record, RecordRef, RecordType};
use async_trait::async_trait;
use std::collections::HashSet;

#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Creates or replaces a record and files the mail it concerns anew; returns whether it
    /// was created.
    async fn put_record(&self, record: Record) -> Result<bool>;
    async fn record(&self, reference: &RecordRef) -> Result<Option<Record>>;
    /// Deletes a record and the filing it made; returns whether it existed.
    async fn delete_record(&self, reference: &RecordRef) -> Result<bool>;
    /// Records of a type in id order after `after`, optionally only those created by
    /// `created_by`; and whether more follow.
    async fn records(
        &self,
        kind: RecordType,
        created_by: Option<CreatedBy>,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Record>, bool)>;
    /// A record's messages, newest first after `(received_at, id)`: one per message, when
    /// copies of it sit in several accounts (the earliest copy stands for them); and whether
    /// more follow. With `accounts`, only the messages of those accounts count.
    async fn timeline(
        &self,
        reference: &RecordRef,
        accounts: Option<&HashSet<String>>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)>;
    /// Whether the message is on the record's timeline.
    async fn on_timeline(&self, reference: &RecordRef, message_id: &str) -> Result<bool>;
    /// The records each message is filed under.
    async fn message_records(&self, message_ids: &[String]) -> Result<Vec<Vec<RecordRef>>>;
}
