//! The outbox's work on Graph: `apply` (flags, moves, deletions), `append` and `send`.
//!
//! Follows the Graph reference: "Update message" (`isRead`; `flag.flagStatus` is `flagged`
//! or `notFlagged`), "message: move", "message: permanentDelete", "Create message" in MIME
//! format in a folder, and "user: sendMail" in MIME format, which files the message in Sent
//! Items itself. A deletion moves the message to Deleted Items, and deletes it for good when
//! it is there already. Graph keeps no "answered" flag: that part of an update is done by
//! doing nothing. Ids are immutable, so a moved message keeps its id.

use crate::error::error;
use crate::graph::{Graph, Outcome};
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::mailroom::connector0_2_0::mail::MessageFlags;
use crate::mailroom::connector0_3_0::changes::{
    Applied, Change, Delivery, Envelope, FlagUpdate, Recipient, Reply, Target,
};
use serde_json::{Map, Value, json};

/// The properties a flag update sets; none when it sets nothing Graph keeps.
pub fn flag_properties(update: &FlagUpdate) -> Option<Value> {
    let mut properties = Map::new();
    if let Some(seen) = update.seen {
        properties.insert("isRead".into(), Value::Bool(seen));
    }
    if let Some(flagged) = update.flagged {
        let status = if flagged { "flagged" } else { "notFlagged" };
        properties.insert("flag".into(), json!({ "flagStatus": status }));
    }
    (!properties.is_empty()).then_some(Value::Object(properties))
}

/// `trash`: the id of Deleted Items, when the mailbox has one.
pub fn apply(
    graph: &Graph,
    trash: impl FnOnce() -> Result<Option<String>, Error>,
    target: &Target,
    change: &Change,
) -> Result<Applied, Error> {
    let outcome = match change {
        Change::SetFlags(update) => match flag_properties(update) {
            None => return Ok(Applied::Done(None)),
            Some(properties) => graph.update(&target.id, &properties)?.map(|()| None),
        },
        Change::MoveTo(folder) => graph.move_to(&target.id, folder)?.map(Some),
        Change::Expunge => match trash()? {
            Some(trash) if trash != target.folder => {
                graph.move_to(&target.id, &trash)?.map(|_| None)
            }
            _ => graph.permanent_delete(&target.id)?.map(|()| None),
        },
    };
    Ok(match outcome {
        Outcome::Done(id) => Applied::Done(id.filter(|id| !id.is_empty())),
        Outcome::Gone => Applied::Gone,
    })
}

/// Stores a message in a folder, then gives it the flags Graph keeps.
pub fn append(
    graph: &Graph,
    folder: &str,
    raw: &[u8],
    flags: MessageFlags,
) -> Result<Option<String>, Error> {
    let id = graph.create(folder, raw)?;
    let update = FlagUpdate {
        seen: Some(flags.seen),
        flagged: flags.flagged.then_some(true),
        answered: None,
    };
    if let Some(properties) = flag_properties(&update) {
        match graph.update(&id, &properties)? {
            Outcome::Done(()) => {}
            Outcome::Gone => {
                return Err(error(
                    ErrorKind::NotFound,
                    "the stored message was gone before its flags were set",
                ));
            }
        }
    }
    Ok(Some(id))
}

pub fn send(graph: &Graph, envelope: &Envelope, raw: &[u8]) -> Result<Delivery, Error> {
    Ok(match graph.send_mail(raw)? {
        Ok(()) => Delivery {
            recipients: envelope
                .recipients
                .iter()
                .map(|address| Recipient {
                    address: address.clone(),
                    reply: Reply {
                        code: 250,
                        text: "accepted by Microsoft Graph".into(),
                    },
                })
                .collect(),
            refused: None,
            data: Some(Reply {
                code: 250,
                text: "accepted by Microsoft Graph".into(),
            }),
        },
        Err(reason) => Delivery {
            recipients: Vec::new(),
            refused: Some(Reply {
                code: 554,
                text: reason,
            }),
            data: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_updates_become_properties() {
        let update = FlagUpdate {
            seen: Some(true),
            flagged: Some(false),
            answered: Some(true),
        };
        assert_eq!(
            flag_properties(&update),
            Some(json!({"isRead": true, "flag": {"flagStatus": "notFlagged"}}))
        );
        let flag = FlagUpdate {
            seen: None,
            flagged: Some(true),
            answered: None,
        };
        assert_eq!(
            flag_properties(&flag),
            Some(json!({"flag": {"flagStatus": "flagged"}}))
        );
        let answered = FlagUpdate {
            seen: None,
            flagged: None,
            answered: Some(true),
        };
        assert_eq!(flag_properties(&answered), None);
    }
}
