//! `history.list`: the records after `startHistoryId` in order, filtered by
//! label and kind of change, in pages; 404 from before what the mailbox keeps.

use serde_json::{Value, json};

use super::{Mailbox, decode_token, encode_token, hex, invalid_page_token};
use crate::error::ApiError;

/// The parameters of `history.list`.
#[derive(Debug, Default)]
pub(crate) struct HistoryParams {
    pub start_history_id: Option<String>,
    pub max_results: usize,
    pub page_token: Option<String>,
    pub label_id: Option<String>,
    pub history_types: Vec<HistoryType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HistoryType {
    MessageAdded,
    MessageDeleted,
    LabelAdded,
    LabelRemoved,
}

impl HistoryType {
    pub(crate) fn parse(value: &str) -> Option<HistoryType> {
        match value {
            "messageAdded" => Some(HistoryType::MessageAdded),
            "messageDeleted" => Some(HistoryType::MessageDeleted),
            "labelAdded" => Some(HistoryType::LabelAdded),
            "labelRemoved" => Some(HistoryType::LabelRemoved),
            _ => None,
        }
    }
}

/// What one history record says happened.
pub(super) enum Change {
    Added,
    Deleted,
    Labels {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

/// One change of the mailbox, as `history.list` serves it.
pub(super) struct Record {
    pub(super) id: u64,
    pub(super) message_id: u64,
    pub(super) thread_id: u64,
    /// The message's labels after the change (at deletion, for a delete).
    pub(super) labels: Vec<String>,
    pub(super) change: Change,
}

impl Record {
    fn touches_label(&self, label: &str) -> bool {
        let named = |labels: &[String]| labels.iter().any(|l| l == label);
        named(&self.labels)
            || matches!(&self.change, Change::Labels { added, removed } if named(added) || named(removed))
    }

    /// The record as `history.list` gives it, keeping only the wanted kinds of
    /// change; `None` when nothing wanted is left.
    fn json(&self, types: &[HistoryType]) -> Option<Value> {
        let wanted = |kind| types.is_empty() || types.contains(&kind);
        let message = json!({
            "id": hex(self.message_id),
            "threadId": hex(self.thread_id),
            "labelIds": self.labels,
        });
        let mut record = json!({
            "id": self.id.to_string(),
            "messages": [{ "id": hex(self.message_id), "threadId": hex(self.thread_id) }],
        });
        let mut kept = false;
        match &self.change {
            Change::Added if wanted(HistoryType::MessageAdded) => {
                record["messagesAdded"] = json!([{ "message": message }]);
                kept = true;
            }
            Change::Deleted if wanted(HistoryType::MessageDeleted) => {
                record["messagesDeleted"] = json!([{ "message": message }]);
                kept = true;
            }
            Change::Labels { added, removed } => {
                if !added.is_empty() && wanted(HistoryType::LabelAdded) {
                    record["labelsAdded"] = json!([{ "message": message, "labelIds": added }]);
                    kept = true;
                }
                if !removed.is_empty() && wanted(HistoryType::LabelRemoved) {
                    record["labelsRemoved"] = json!([{ "message": message, "labelIds": removed }]);
                    kept = true;
                }
            }
            _ => {}
        }
        kept.then_some(record)
    }
}

impl Mailbox {
    /// `history.list`.
    pub(crate) fn history(&self, params: &HistoryParams) -> Result<Value, ApiError> {
        let start = params.start_history_id.as_deref().ok_or_else(|| {
            ApiError::invalid_argument("Missing required parameter: startHistoryId")
        })?;
        let start: u64 = start
            .parse()
            .map_err(|_| ApiError::invalid_argument(format!("Invalid startHistoryId: {start}")))?;
        if start < self.oldest_history_id || start > self.history_id {
            return Err(ApiError::not_found());
        }
        let cursor = match params.page_token.as_deref() {
            Some(token) => decode_history_token(token, start)?,
            None => start,
        };
        if cursor < self.oldest_history_id {
            return Err(ApiError::not_found());
        }
        let first = self.history.partition_point(|record| record.id <= cursor);
        let mut records = self.history[first..]
            .iter()
            .filter(|record| {
                params
                    .label_id
                    .as_deref()
                    .is_none_or(|label| record.touches_label(label))
            })
            .filter_map(|record| Some((record.id, record.json(&params.history_types)?)));

        let page: Vec<(u64, Value)> = records.by_ref().take(params.max_results).collect();
        let mut answer = json!({ "historyId": self.history_id.to_string() });
        if let Some((last, _)) = page.last()
            && records.next().is_some()
        {
            answer["nextPageToken"] = json!(encode_token(&format!("h:{start}:{last}")));
        }
        if !page.is_empty() {
            answer["history"] = page.into_iter().map(|(_, record)| record).collect();
        }
        Ok(answer)
    }
}

/// The id of the last record of the previous page; the token must come from
/// a listing with the same startHistoryId.
fn decode_history_token(token: &str, start: u64) -> Result<u64, ApiError> {
    let cursor = decode_token(token).ok_or_else(invalid_page_token)?;
    let mut fields = cursor.split(':');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some("h"), Some(from), Some(last), None) if from == start.to_string() => {
            last.parse().map_err(|_| invalid_page_token())
        }
        _ => Err(invalid_page_token()),
    }
}
