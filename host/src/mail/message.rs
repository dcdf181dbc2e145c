//! A stored message: the metadata the API lists and filters by. The raw bytes are stored
//! apart; text, HTML and attachment contents are derived from them when asked for.

use super::Flags;
use crate::folder::FolderId;
use serde::{Deserialize, Serialize};

/// A name and an address, as a header gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

/// Where a message sits: a folder and the provider's id for it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub folder_id: FolderId,
    pub provider_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `att_` and the part's position among the message's attachments.
    pub id: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub inline: bool,
    pub content_id: Option<String>,
    /// Where the part's encoded body sits in the raw message, when its decoded bytes are
    /// the download as it is (binary parts): it is then served without parsing the
    /// message again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRange>,
}

/// A byte range of the raw message and the transfer encoding to undo on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRange {
    pub start: u32,
    pub end: u32,
    pub encoding: TransferEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEncoding {
    Identity,
    Base64,
    QuotedPrintable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `msg_` and random hex; survives moves, resets and re-connects.
    pub id: String,
    pub account_id: String,
    pub folders: Vec<Membership>,
    /// The Message-ID header without angle brackets.
    pub message_id: Option<String>,
    /// Message-ID plus a digest of size and key headers: what recognises the same message
    /// in another folder, or after the server renumbered a folder.
    pub identity: String,
    pub thread_id: String,
    pub subject: Option<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub reply_to: Vec<Address>,
    /// The Date header, RFC 3339.
    pub date: Option<String>,
    /// When the server received it, Unix seconds.
    pub received_at: i64,
    pub snippet: String,
    pub flags: Flags,
    pub size: u64,
    pub attachments: Vec<Attachment>,
    /// Changes made in Mailroom that the server has not taken yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// Changes made in Mailroom and queued for the server. `folders` stays what the server holds
/// (sync matches against it); the views show where the user put the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Queued changes of this message not yet pushed; at zero the record goes away.
    pub changes: u32,
    /// Where the user put the message, when that differs from the server for now.
    pub placement: Option<Placement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Moved to this folder.
    Folder(FolderId),
    /// Deleted for good.
    Removed,
}

impl Message {
    /// The folders the user sees the message in.
    pub fn folder_ids(&self) -> Vec<&FolderId> {
        match self.pending.as_ref().and_then(|p| p.placement.as_ref()) {
            Some(Placement::Folder(folder)) => vec![folder],
            Some(Placement::Removed) => Vec::new(),
            None => self.folders.iter().map(|m| &m.folder_id).collect(),
        }
    }

    pub fn in_folder(&self, folder: &FolderId) -> bool {
        self.folder_ids().contains(&folder)
    }

    /// Deleted in Mailroom: gone from every view while the server catches up.
    pub fn is_removed(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.placement == Some(Placement::Removed))
    }

    /// Whether the server's word on flags and folders waits until queued changes are pushed.
    pub fn has_pending(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.changes > 0)
    }
}
