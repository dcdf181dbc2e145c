//! What the store keeps for synced mail, and the operations sync and the API need.
//!
//! A page of a folder's sync is written in one transaction together with the folder's new
//! state and the events it causes, so a crash repeats a page or keeps it, never half of it.

use super::Result;
use crate::folder::FolderId;
use crate::mail::message::Message;
use crate::mail::parse::Parsed;
use crate::mail::{Fetched, Flags};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A folder's sync progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSync {
    /// The connector's opaque state; none before the first page.
    pub state: Option<Vec<u8>>,
    /// The first sync of the folder is complete.
    pub backfilled: bool,
}

/// A fetched message with its parsed metadata (none for a message the connector did not
/// fetch because the host holds it: `fetched.known`).
pub struct Incoming {
    pub fetched: Fetched,
    pub parsed: Option<Parsed>,
}

/// One page to commit.
pub struct PageWrite {
    pub account_id: String,
    pub folder_id: FolderId,
    /// Events mark the messages of a first sync as `initial`.
    pub initial: bool,
    pub incoming: Vec<Incoming>,
    pub changed: Vec<(String, Flags)>,
    pub removed: Vec<String>,
    /// The folder's new sync progress; none for messages filed outside a sync (the copy
    /// of a sent message).
    pub sync: Option<FolderSync>,
}

/// What a committed page did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageOutcome {
    pub created: usize,
    /// Messages already held that were found in this folder too (moves, copies, resets).
    pub matched: usize,
    pub updated: usize,
    pub removed: usize,
}

/// A message list query.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub folder: Option<FolderId>,
    pub unread: Option<bool>,
    /// Lower-cased words that must all occur in the subject, an address or the snippet.
    pub words: Vec<String>,
    /// Continue after this `(received_at, id)`.
    pub after: Option<(i64, String)>,
    pub limit: usize,
}

/// The types of events the log holds (docs/api.md, "Events").
pub const EVENT_TYPES: &[&str] = &[
    "message.created",
    "message.updated",
    "message.deleted",
    "message.sent",
    "message.change_failed",
    "account.state_changed",
    "contact.created",
    "contact.merged",
    "record.associated",
];

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    pub data: Value,
}

/// Per folder: (unread, total).
pub type FolderCounts = HashMap<FolderId, (u64, u64)>;

#[async_trait]
pub trait MailStore: Send + Sync {
    /// The sync progress of every folder of an account that has any.
    async fn folder_syncs(&self, account_id: &str) -> Result<HashMap<FolderId, FolderSync>>;
    async fn commit_page(&self, page: PageWrite) -> Result<PageOutcome>;
    /// Drops a folder's ids and state (a reset, a deactivated or vanished folder). Messages
    /// left in no folder are deleted by [`MailStore::finish_job`], so a message that shows
    /// up in another folder in the same job keeps its id.
    async fn forget_folder(&self, account_id: &str, folder_id: &FolderId) -> Result<()>;
    /// Deletes the messages left in no folder; returns how many.
    async fn finish_job(&self, account_id: &str) -> Result<usize>;
    /// For each (Message-ID, size), whether the account holds such a message.
    async fn known(&self, account_id: &str, probes: Vec<(String, u64)>) -> Result<Vec<bool>>;
    /// For each provider id, whether a folder of the account holds a message under it.
    async fn held_ids(&self, account_id: &str, ids: Vec<String>) -> Result<Vec<bool>>;
    /// `(numeric provider id, flags)` of a folder's messages, by id.
    async fn held(&self, account_id: &str, folder_id: &FolderId) -> Result<Vec<(u64, Flags)>>;
    async fn message(&self, id: &str) -> Result<Option<Message>>;
    async fn raw_message(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Newest first by arrival; returns the page and whether more follow.
    async fn messages(&self, account_id: &str, query: MessageQuery)
    -> Result<(Vec<Message>, bool)>;
    async fn folder_counts(&self, account_id: &str) -> Result<FolderCounts>;
    /// How many messages one folder holds.
    async fn folder_total(&self, account_id: &str, folder_id: &FolderId) -> Result<u64>;
    /// Appends an event outside a page (account state changes).
    async fn push_event(&self, kind: &str, data: Value) -> Result<u64>;
    /// Events after `after`, oldest first; and the oldest sequence number still kept.
    async fn events(&self, after: u64, limit: usize) -> Result<(Vec<Event>, u64)>;
    async fn last_event_seq(&self) -> Result<u64>;
}
