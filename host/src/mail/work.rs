//! What the outbox asks a connector to do on the server, and what came of it, in the host's
//! terms (each contract version translates them).

use super::{FlagUpdate, Flags};

/// Something the outbox asks the server to do.
#[derive(Debug, Clone)]
pub enum Work {
    /// Changes the message with `provider_id` in the folder at `folder` (its path).
    Apply {
        folder: String,
        provider_id: String,
        change: WorkChange,
    },
    /// Stores a message in the folder at `folder`.
    Append {
        folder: String,
        raw: Vec<u8>,
        flags: Flags,
    },
    /// Submits a message.
    Send {
        from: String,
        recipients: Vec<String>,
        raw: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub enum WorkChange {
    Flags(FlagUpdate),
    /// To the folder with this path.
    MoveTo(String),
    Expunge,
}

/// What came of a [`Work`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkDone {
    /// Applied; a move's new id in the target folder when the server said it.
    Applied(Option<String>),
    /// The message is not in that folder on the server any more.
    Gone,
    /// Stored, with its id when the server said it.
    Appended(Option<String>),
    Delivered(Delivery),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

/// The server's answers to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub recipients: Vec<(String, SmtpReply)>,
    /// The reply that refused the message before any recipient.
    pub refused: Option<SmtpReply>,
    /// The reply to the end of DATA; none when DATA was not sent.
    pub data: Option<SmtpReply>,
}
