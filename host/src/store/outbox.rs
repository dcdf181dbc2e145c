//! The outbox: what Mailroom owes the server. Every change a user makes (flags, moves,
//! deletes, sends) is applied to the store at once and queued here in the same transaction;
//! sync jobs push the queue through the connector, in order, under the account's job lock.

use super::Result;
use crate::folder::FolderId;
use crate::mail::message::Message;
use crate::mail::parse::Parsed;
use crate::mail::{Fetched, FlagUpdate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A change a user made to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Flags(FlagUpdate),
    Move {
        to: FolderId,
    },
    /// Removes the message for good.
    Expunge,
}

/// One queued duty, in the order it was queued for its account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Duty {
    Change {
        message_id: String,
        change: Change,
        /// Found gone once already: the server may have renumbered the message (another
        /// client moved it), so it is tried again after a sync has caught up.
        #[serde(default)]
        retried: bool,
    },
    Send {
        outbox_id: String,
    },
    /// Stores the copy of a sent message in the account's Sent folder.
    CopyToSent {
        outbox_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub account_id: String,
    pub seq: u64,
    pub duty: Duty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    Queued,
    /// Handed to the server; never handed again automatically.
    Sending,
    Sent,
    Failed,
}

/// The server's answer for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientReply {
    pub email: String,
    pub accepted: bool,
    pub reply: String,
}

/// A message sent from Mailroom, as `GET /v1/outbox/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// `out_` and hex.
    pub id: String,
    pub account_id: String,
    /// The RFC 5322 Message-ID, without angle brackets.
    pub message_id: String,
    pub state: SendState,
    pub error: Option<String>,
    /// The envelope: MAIL FROM and one RCPT TO per address (To, Cc and Bcc).
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub recipients: Vec<RecipientReply>,
    /// The Mailroom message this one answers; it gets \Answered once this is sent.
    pub in_reply_to: Option<String>,
    /// The copy in Sent, once stored there and known.
    pub sent_message_id: Option<String>,
    pub created_at: String,
    /// How often it was handed to the server.
    #[serde(default)]
    pub attempts: u32,
}

/// How a pushed change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeDone {
    /// The server has it (flags).
    Applied,
    /// Moved on the server: out of `from` (its id there), into `to` (with its new id when
    /// the server said it; the next sync finds it by Message-ID otherwise).
    Moved {
        from: FolderId,
        provider_id: String,
        to: FolderId,
        new_id: Option<String>,
    },
    /// Removed on the server from these folders (with its id in each).
    Expunged(Vec<(FolderId, String)>),
    /// Can never succeed (the message is gone on the server, the target folder too): given
    /// up, with the reason for the event; the next sync brings the server's state.
    Dropped { reason: String },
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Applies `change` to the message at once and queues it for the server; returns the
    /// message as the user now sees it, or none when there is no such message.
    async fn queue_change(&self, message_id: &str, change: Change) -> Result<Option<Message>>;
    /// Queues a message to send with its bytes (the Sent copy, Bcc included). A second call
    /// with the same id returns the first record and queues nothing.
    async fn queue_send(&self, outgoing: Outgoing, raw: Vec<u8>) -> Result<Outgoing>;
    /// The account's oldest queued duty after the one numbered `after` (0: the oldest).
    async fn next_duty(&self, account_id: &str, after: u64) -> Result<Option<OutboxEntry>>;
    /// Ends a change duty: updates the message and the mapping as `done` says.
    async fn change_done(&self, entry: &OutboxEntry, done: ChangeDone) -> Result<()>;
    /// Saves a send's record; ends `entry` when given, and queues `then` after it, in the
    /// same transaction.
    async fn save_outgoing(
        &self,
        outgoing: Outgoing,
        entry: Option<&OutboxEntry>,
        then: Vec<Duty>,
    ) -> Result<()>;
    async fn outgoing(&self, id: &str) -> Result<Option<Outgoing>>;
    async fn outgoing_raw(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Files the copy of a sent message that the connector stored in `folder` under
    /// `provider_id`, so sync does not fetch it again; returns its Mailroom id. Ends `entry`.
    async fn file_sent_copy(
        &self,
        entry: &OutboxEntry,
        folder: FolderId,
        fetched: Fetched,
        parsed: Parsed,
    ) -> Result<String>;
    /// Ends a duty without anything else to record.
    async fn drop_duty(&self, entry: &OutboxEntry) -> Result<()>;
    /// Marks a change duty as found gone once; it stays first in the queue.
    async fn defer_duty(&self, entry: &OutboxEntry) -> Result<()>;
    /// The Mailroom id of an account's message with this Message-ID, if it holds one.
    async fn find_message_id(&self, account_id: &str, message_id: &str) -> Result<Option<String>>;
    /// Duties queued, every account together.
    async fn queued_duties(&self) -> Result<u64>;
}
