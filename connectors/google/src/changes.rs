//! The outbox's work on Gmail: `apply` (flags, moves, deletions), `append` and `send`.
//!
//! Follows the Gmail API reference for `users.messages.modify` (labels added and removed:
//! UNREAD and STARRED are the seen and flagged flags, a folder is a label), `trash` and
//! `untrash` (moving to and from the trash, which Gmail keeps apart from labels), `delete`
//! (for good), `insert` (like IMAP APPEND) and `send`, and the "Sending email" guide (a reply
//! joins its conversation through `threadId`). Gmail ids name a message in the whole mailbox,
//! so a moved message keeps its id.

use crate::gmail::{Gmail, Sent};
use crate::headers::reply_parent;
use crate::labels::{STARRED, TRASH, UNREAD, folders_of, in_folder};
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::mailroom::connector0_2_0::mail::MessageFlags;
use crate::mailroom::connector0_3_0::changes::{
    Applied, Change, Delivery, Envelope, FlagUpdate, Recipient, Reply, Target,
};

/// The labels to add and remove for a flag update. Gmail has no "answered" label.
pub fn flag_labels(update: &FlagUpdate) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    match update.seen {
        Some(true) => remove.push(UNREAD),
        Some(false) => add.push(UNREAD),
        None => {}
    }
    match update.flagged {
        Some(true) => add.push(STARRED),
        Some(false) => remove.push(STARRED),
        None => {}
    }
    (add, remove)
}

/// The labels a stored message starts with: its folder, UNREAD unless seen, STARRED if
/// flagged.
pub fn append_labels(folder: &str, flags: MessageFlags) -> Vec<String> {
    let mut labels = vec![folder.to_owned()];
    if !flags.seen {
        labels.push(UNREAD.to_owned());
    }
    if flags.flagged {
        labels.push(STARRED.to_owned());
    }
    labels
}

/// What an answer of "no such message" means for a change.
fn done_or_gone(found: Option<()>, id: Option<&str>) -> Applied {
    match found {
        Some(()) => Applied::Done(id.map(str::to_owned)),
        None => Applied::Gone,
    }
}

/// Changes one message. `user_labels` gives the ids of the account's user labels (the
/// folders besides the system ones).
pub fn apply(
    gmail: &Gmail,
    user_labels: impl FnOnce() -> Result<Vec<String>, Error>,
    target: &Target,
    change: &Change,
) -> Result<Applied, Error> {
    let id = target.id.as_str();
    match change {
        Change::SetFlags(update) => {
            let (add, remove) = flag_labels(update);
            if add.is_empty() && remove.is_empty() {
                return Ok(Applied::Done(Some(target.id.clone())));
            }
            Ok(done_or_gone(gmail.modify(id, &add, &remove)?, Some(id)))
        }
        Change::MoveTo(destination) => {
            let destination = destination.as_str();
            if destination == target.folder {
                return Ok(Applied::Done(Some(target.id.clone())));
            }
            if destination == TRASH {
                return Ok(done_or_gone(gmail.trash(id)?, Some(id)));
            }
            if target.folder == TRASH {
                if gmail.untrash(id)?.is_none() {
                    return Ok(Applied::Gone);
                }
                return Ok(done_or_gone(
                    gmail.modify(id, &[destination], &[])?,
                    Some(id),
                ));
            }
            Ok(done_or_gone(
                gmail.modify(id, &[destination], &[target.folder.as_str()])?,
                Some(id),
            ))
        }
        Change::Expunge => {
            let Some(meta) = gmail.get_minimal(id)? else {
                return Ok(Applied::Gone);
            };
            let found = match expunge(&meta.label_ids, &target.folder, &user_labels()?) {
                Expunge::Gone => return Ok(Applied::Gone),
                Expunge::Unlabel => gmail.modify(id, &[], &[target.folder.as_str()])?,
                Expunge::Delete => gmail.delete(id)?,
            };
            Ok(done_or_gone(found, None))
        }
    }
}

/// How a message leaves a folder for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expunge {
    /// It is not in that folder.
    Gone,
    /// It stays in other folders: only the folder's label goes.
    Unlabel,
    /// The folder is its only one (the trash and spam always are): deleted for good.
    Delete,
}

pub fn expunge(labels: &[String], folder: &str, user_labels: &[String]) -> Expunge {
    if !in_folder(labels, folder) {
        return Expunge::Gone;
    }
    if folders_of(labels, user_labels)
        .into_iter()
        .any(|f| f != folder)
    {
        Expunge::Unlabel
    } else {
        Expunge::Delete
    }
}

/// Stores a message in a folder (`messages.insert`); returns its id.
pub fn append(
    gmail: &Gmail,
    folder: &str,
    raw: &[u8],
    flags: MessageFlags,
) -> Result<Option<String>, Error> {
    if raw.is_empty() {
        return Err(crate::error::error(
            ErrorKind::Unsupported,
            "an empty message cannot be stored",
        ));
    }
    gmail.insert(raw, &append_labels(folder, flags)).map(Some)
}

/// Sends a message, in its conversation when it is a reply Gmail knows the parent of.
pub fn send(gmail: &Gmail, envelope: &Envelope, raw: &[u8]) -> Result<Delivery, Error> {
    let thread = match reply_parent(raw) {
        Some(parent) => match gmail.thread_of(&parent) {
            Ok(thread) => thread,
            // Not finding the conversation does not keep the message from going.
            Err(e) if matches!(e.kind, ErrorKind::Protocol | ErrorKind::NotFound) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    Ok(match gmail.send(raw, thread.as_deref())? {
        Sent::Accepted(id) => delivered(envelope, &id),
        Sent::Refused(reason) => refused(reason),
    })
}

/// Gmail took the message: every recipient accepted.
pub fn delivered(envelope: &Envelope, id: &str) -> Delivery {
    Delivery {
        recipients: envelope
            .recipients
            .iter()
            .map(|address| Recipient {
                address: address.clone(),
                reply: Reply {
                    code: 250,
                    text: "accepted by Gmail".into(),
                },
            })
            .collect(),
        refused: None,
        data: Some(Reply {
            code: 250,
            text: format!("sent as {id}"),
        }),
    }
}

/// Gmail refused the message itself.
pub fn refused(reason: String) -> Delivery {
    Delivery {
        recipients: Vec::new(),
        refused: Some(Reply {
            code: 554,
            text: reason,
        }),
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flag_updates_become_label_changes() {
        let update = FlagUpdate {
            seen: Some(true),
            flagged: Some(true),
            answered: Some(true),
        };
        assert_eq!(flag_labels(&update), (vec![STARRED], vec![UNREAD]));
        let update = FlagUpdate {
            seen: Some(false),
            flagged: Some(false),
            answered: None,
        };
        assert_eq!(flag_labels(&update), (vec![UNREAD], vec![STARRED]));
        let update = FlagUpdate {
            seen: None,
            flagged: None,
            answered: Some(false),
        };
        assert_eq!(flag_labels(&update), (vec![], vec![]));
    }

    #[test]
    fn stored_messages_carry_their_flags_as_labels() {
        let flags = MessageFlags {
            seen: false,
            flagged: true,
            answered: true,
            draft: false,
        };
        assert_eq!(
            append_labels("Label_3", flags),
            strings(&["Label_3", "UNREAD", "STARRED"])
        );
        let flags = MessageFlags {
            seen: true,
            flagged: false,
            answered: false,
            draft: false,
        };
        assert_eq!(append_labels("SENT", flags), strings(&["SENT"]));
    }

    #[test]
    fn expunge_deletes_only_what_is_in_no_other_folder() {
        let user = strings(&["Label_1"]);
        assert_eq!(
            expunge(&strings(&["INBOX", "Label_1", "UNREAD"]), "INBOX", &user),
            Expunge::Unlabel
        );
        assert_eq!(
            expunge(&strings(&["INBOX", "Label_1"]), "Label_1", &user),
            Expunge::Unlabel
        );
        // Labels that are not folders do not count.
        assert_eq!(
            expunge(
                &strings(&["INBOX", "IMPORTANT", "CATEGORY_PERSONAL"]),
                "INBOX",
                &user
            ),
            Expunge::Delete
        );
        // In the trash, whatever labels it kept.
        assert_eq!(
            expunge(&strings(&["TRASH", "Label_1"]), "TRASH", &user),
            Expunge::Delete
        );
        assert_eq!(
            expunge(&strings(&["TRASH", "INBOX"]), "INBOX", &user),
            Expunge::Gone
        );
        assert_eq!(
            expunge(&strings(&["Label_1"]), "INBOX", &user),
            Expunge::Gone
        );
    }

    #[test]
    fn deliveries_say_what_gmail_did() {
        let envelope = Envelope {
            from: "me@example.com".into(),
            recipients: strings(&["a@example.com", "b@example.com"]),
        };
        let delivery = delivered(&envelope, "18c0ffee");
        assert_eq!(delivery.recipients.len(), 2);
        assert_eq!(delivery.recipients[1].address, "b@example.com");
        assert_eq!(delivery.recipients[0].reply.code, 250);
        assert_eq!(delivery.recipients[0].reply.text, "accepted by Gmail");
        assert!(delivery.refused.is_none());
        let data = delivery.data.unwrap();
        assert_eq!((data.code, data.text.as_str()), (250, "sent as 18c0ffee"));

        let delivery = refused("Invalid To header".into());
        assert!(delivery.recipients.is_empty() && delivery.data.is_none());
        let refusal = delivery.refused.unwrap();
        assert_eq!(
            (refusal.code, refusal.text.as_str()),
            (554, "Invalid To header")
        );
    }
}
