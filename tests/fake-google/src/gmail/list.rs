//! `messages.list`: newest first by internalDate, then by id; SPAM and TRASH
//! left out unless asked for; pages cut at the last message shown, so mail
//! arriving between pages does not shift them.

use serde_json::{Value, json};

use super::{Mailbox, Message, decode_token, encode_token, hex, invalid_page_token};
use crate::error::ApiError;
use crate::query::{self, Term};

/// The parameters of `messages.list`.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub label_ids: Vec<String>,
    pub q: Option<String>,
    pub max_results: usize,
    pub page_token: Option<String>,
    pub include_spam_trash: bool,
}

impl Mailbox {
    /// `messages.list`.
    pub(crate) fn list(&self, params: &ListParams) -> Result<Value, ApiError> {
        self.check_labels(&params.label_ids)?;
        let terms = match &params.q {
            Some(q) => query::parse(q, |name| self.search_label(name))
                .map_err(ApiError::invalid_argument)?,
            None => Vec::new(),
        };
        let spam_and_trash = params.include_spam_trash
            || params.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH")
            || terms.iter().any(Term::reaches_spam_or_trash);
        let after = params
            .page_token
            .as_deref()
            .map(decode_list_token)
            .transpose()?;

        let mut matching: Vec<&Message> = self
            .messages
            .values()
            .filter(|m| spam_and_trash || !m.labels.iter().any(|l| l == "SPAM" || l == "TRASH"))
            .filter(|m| params.label_ids.iter().all(|l| m.labels.contains(l)))
            .filter(|m| {
                terms
                    .iter()
                    .all(|t| t.matches(&m.labels, m.internal_date_ms, m.message_id.as_deref()))
            })
            .collect();
        matching.sort_by_key(|m| std::cmp::Reverse((m.internal_date_ms, m.id)));
        let total = matching.len();
        let start = after.map_or(0, |cursor| {
            matching.partition_point(|m| (m.internal_date_ms, m.id) >= cursor)
        });
        let page: Vec<&Message> = matching[start..]
            .iter()
            .take(params.max_results)
            .copied()
            .collect();

        let mut answer = json!({ "resultSizeEstimate": total });
        if !page.is_empty() {
            answer["messages"] = page
                .iter()
                .map(|m| json!({ "id": hex(m.id), "threadId": hex(m.thread_id) }))
                .collect();
        }
        if let Some(last) = page.last()
            && start + page.len() < total
        {
            answer["nextPageToken"] = json!(encode_token(&format!(
                "m:{}:{}",
                last.internal_date_ms, last.id
            )));
        }
        Ok(answer)
    }
}

/// The (internalDate, id) of the last message of the previous page.
fn decode_list_token(token: &str) -> Result<(i64, u64), ApiError> {
    let cursor = decode_token(token).ok_or_else(invalid_page_token)?;
    let mut fields = cursor.split(':');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some("m"), Some(date), Some(id), None) => Ok((
            date.parse().map_err(|_| invalid_page_token())?,
            id.parse().map_err(|_| invalid_page_token())?,
        )),
        _ => Err(invalid_page_token()),
    }
}
