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
}

impl Message {
    pub fn in_folder(&self, folder: &FolderId) -> bool {
        self.folders.iter().any(|m| &m.folder_id == folder)
    }
}
