//! The delta function of messages in a folder
//! (<https://learn.microsoft.com/en-us/graph/api/message-delta>,
//! <https://learn.microsoft.com/en-us/graph/delta-query-messages>,
//! <https://learn.microsoft.com/en-us/graph/delta-query-overview>).
//!
//! A round is one or more pages: each but the last carries a `$skiptoken`
//! for the next, the last a `$deltatoken` that starts the next round. The
//! tokens are opaque to the client but carry the whole state — the folder,
//! the query options of the round's first request, the change number up to
//! which the round reports, and where the last page ended — so a link
//! answers the same when requested again.
//!
//! * The first round reports every message in the folder that passes the
//!   `$filter`, newest first under `$orderby=receivedDateTime desc`, else
//!   in order of arrival.
//! * A later round reports, in order of change, each message changed in or
//!   moved into the folder since the previous round (in full) and each one
//!   that left it — moved, deleted or purged — as
//!   `{"@odata.type","id","@removed":{"reason":"deleted"}}` under the id the
//!   client knew. Under regular ids, a message that left and came back is
//!   both: its old id removed, then the message under its new id.
//! * A round reports the mailbox as of its first request; what changes
//!   during the round is reported (again) by the next.
//! * After `expire_delta_tokens`, every token issued before answers 410
//!   `syncStateNotFound` with a `Location` to start over from.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{IdForm, Mailbox};
use crate::error::GraphError;
use crate::odata::ReceivedFilter;

/// The query options a round keeps from its first request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RoundOptions {
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    filter: Option<ReceivedFilter>,
    #[serde(rename = "d", default)]
    descending: bool,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    select: Option<Vec<String>>,
}

/// The state a `$skiptoken` or `$deltatoken` carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    /// The mailbox, as its salt in hex.
    m: String,
    /// The folder number.
    f: u32,
    /// The mailbox's sync epoch when issued.
    e: u32,
    /// The change number the previous round reported up to; none in a first round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
    /// The change number this round reports up to, fixed by its first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upto: Option<u64>,
    /// The sort key of the last entry served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<(i64, u64)>,
    o: RoundOptions,
}

impl Token {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Option<Token> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

fn invalid_token() -> GraphError {
    GraphError::new(
        400,
        "ErrorInvalidSyncStateData",
        "The sync state data is corrupt or otherwise invalid.",
    )
}

/// One delta request.
pub(crate) struct DeltaQuery<'a> {
    /// The `$skiptoken` or `$deltatoken`, if any; with one, the options
    /// below are the round's, not the request's.
    pub token: Option<&'a str>,
    pub filter: Option<ReceivedFilter>,
    pub descending: bool,
    pub select: Option<Vec<String>>,
    pub page_size: usize,
    pub form: IdForm,
    /// The delta URL without a query, for the `Location` of a 410.
    pub restart_url: &'a str,
}

/// One page of a round: its entries and either the next page's token or
/// the next round's.
#[derive(Debug)]
pub(crate) struct DeltaPage {
    pub value: Vec<Value>,
    pub skip_token: Option<String>,
    pub delta_token: Option<String>,
}

enum Entry {
    Full(u64),
    Removed { number: u64, regular_id: String },
}

impl Mailbox {
    fn salt_hex(&self) -> String {
        self.salt.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Serves a delta request on `folder`.
    pub(crate) fn delta(
        &self,
        folder: u32,
        query: &DeltaQuery<'_>,
    ) -> Result<DeltaPage, GraphError> {
        let token = match query.token {
            Some(text) => {
                let token = Token::decode(text).ok_or_else(invalid_token)?;
                if token.m != self.salt_hex() || token.f != folder {
                    return Err(invalid_token());
                }
                if token.e != self.sync_epoch {
                    return Err(GraphError::sync_state_not_found(restart(
                        query.restart_url,
                        &token.o,
                    )));
                }
                token
            }
            None => Token {
                m: self.salt_hex(),
                f: folder,
                e: self.sync_epoch,
                since: None,
                upto: None,
                after: None,
                o: RoundOptions {
                    filter: query.filter,
                    descending: query.descending,
                    select: query.select.clone(),
                },
            },
        };
        let upto = token.upto.unwrap_or(self.seq);
        let descending = token.since.is_none() && token.o.descending;
        let admits = |number: u64| {
            token
                .o
                .filter
                .is_none_or(|filter| filter.admits(self.messages[&number].received_ms))
        };

        let mut entries: Vec<((i64, u64), Entry)> = Vec::new();
        match token.since {
            None => {
                for message in self.messages.values() {
                    if message.folder == folder && message.changed <= upto && admits(message.number)
                    {
                        entries.push((
                            (message.received_ms, message.number),
                            Entry::Full(message.number),
                        ));
                    }
                }
            }
            Some(since) => {
                let fresh = |seq: u64| since < seq && seq <= upto;
                for message in self.messages.values() {
                    if message.folder == folder && fresh(message.changed) && admits(message.number)
                    {
                        let key = (
                            i64::try_from(message.changed).unwrap_or(i64::MAX),
                            message.number,
                        );
                        entries.push((key, Entry::Full(message.number)));
                    }
                }
                // Under immutable ids a message that left is one removal (its
                // latest), and none if it is back; under regular ids every id
                // it left under is gone, back or not.
                let mut departed = BTreeMap::new();
                for departure in &self.departures {
                    if departure.folder != folder || !fresh(departure.seq) {
                        continue;
                    }
                    let still_here = self
                        .messages
                        .get(&departure.number)
                        .is_some_and(|m| m.folder == folder);
                    match query.form {
                        IdForm::Immutable if still_here => {}
                        IdForm::Immutable => {
                            departed.insert(departure.number, departure);
                        }
                        IdForm::Regular => {
                            departed.insert(departure.seq, departure);
                        }
                    }
                }
                for departure in departed.into_values() {
                    let key = (
                        i64::try_from(departure.seq).unwrap_or(i64::MAX),
                        departure.number,
                    );
                    entries.push((
                        key,
                        Entry::Removed {
                            number: departure.number,
                            regular_id: departure.regular_id.clone(),
                        },
                    ));
                }
            }
        }

        let beyond = |key: &(i64, u64)| match token.after {
            None => true,
            Some(after) if descending => *key < after,
            Some(after) => *key > after,
        };
        entries.retain(|(key, _)| beyond(key));
        let order = |a: &((i64, u64), Entry), b: &((i64, u64), Entry)| {
            if descending {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            }
        };
        let page_size = query.page_size.max(1);
        let more = entries.len() > page_size;
        if more {
            entries.select_nth_unstable_by(page_size, order);
            entries.truncate(page_size);
        }
        entries.sort_unstable_by(order);

        let value = entries
            .iter()
            .map(|(_, entry)| match entry {
                Entry::Full(number) => {
                    let mut object =
                        self.message_json(*number, query.form, token.o.select.as_deref());
                    object["@odata.type"] = json!("#microsoft.graph.message");
                    object
                }
                Entry::Removed { number, regular_id } => {
                    let id = match query.form {
                        IdForm::Immutable => self.immutable_id(*number),
                        IdForm::Regular => regular_id.clone(),
                    };
                    json!({
                        "@odata.type": "#microsoft.graph.message",
                        "id": id,
                        "@removed": { "reason": "deleted" },
                    })
                }
            })
            .collect();

        if more {
            let next = Token {
                upto: Some(upto),
                after: entries.last().map(|(key, _)| *key),
                ..token
            };
            Ok(DeltaPage {
                value,
                skip_token: Some(next.encode()),
                delta_token: None,
            })
        } else {
            let next_round = Token {
                since: Some(upto),
                upto: None,
                after: None,
                ..token
            };
            Ok(DeltaPage {
                value,
                skip_token: None,
                delta_token: Some(next_round.encode()),
            })
        }
    }
}

/// The URL of a first request with the round's options: where to start over.
fn restart(url: &str, options: &RoundOptions) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(select) = &options.select {
        pairs.push(("$select", select.join(",")));
    }
    if let Some(filter) = options.filter {
        pairs.push(("$filter", filter.to_query()));
    }
    if options.descending {
        pairs.push(("$orderby", "receivedDateTime desc".to_owned()));
    }
    if pairs.is_empty() {
        return url.to_owned();
    }
    format!(
        "{url}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}
