//! The mailbox model of one Gmail account: labels, messages, threads and the
//! history that `users.history.list` serves.
//!
//! * Message ids are 16 lowercase hex digits that grow with each new message;
//!   a new thread takes the id of its first message, as in Gmail.
//! * Every change (insert, send, label change, trash, untrash, delete)
//!   raises the mailbox's historyId by one, stamps the message with it and
//!   appends one history record; a label change that changes nothing is no
//!   change. A record's `message.labelIds` are the labels after the change.
//! * Trash adds TRASH and removes INBOX; untrash removes TRASH.
//! * `messages.list` is newest first by internalDate, then by id, and leaves
//!   out SPAM and TRASH unless asked for them.
//!
//! References: <https://developers.google.com/gmail/api/reference/rest/v1/users.messages>,
//! <https://developers.google.com/gmail/api/reference/rest/v1/users.history/list>.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::Stored;
use crate::error::ApiError;
use crate::mime;
use crate::query;

mod history;
mod list;
#[cfg(test)]
mod tests;

use history::{Change, Record};
pub(crate) use history::{HistoryParams, HistoryType};
pub(crate) use list::ListParams;

/// Gmail's system labels, in the order `labels.list` gives them.
pub(crate) const SYSTEM_LABELS: &[&str] = &[
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

/// The historyId of a new mailbox.
const FIRST_HISTORY_ID: u64 = 1000;

/// A message id as Gmail writes it.
pub(crate) fn hex(id: u64) -> String {
    format!("{id:016x}")
}

fn parse_hex(id: &str) -> Option<u64> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

/// How much of a message `messages.get` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Minimal,
    Metadata,
    Full,
    Raw,
}

impl Format {
    pub(crate) fn parse(value: &str) -> Option<Format> {
        match value.to_ascii_lowercase().as_str() {
            "minimal" => Some(Format::Minimal),
            "metadata" => Some(Format::Metadata),
            "full" => Some(Format::Full),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }
}

/// Which thread a new message joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threading {
    /// The thread of a message it replies to (`In-Reply-To`, `References`),
    /// else a new one.
    Headers,
    /// This existing thread.
    Join(u64),
    /// A thread of its own.
    New,
}

struct Label {
    id: String,
    name: String,
    system: bool,
}

struct Message {
    id: u64,
    thread_id: u64,
    labels: Vec<String>,
    raw: Vec<u8>,
    internal_date_ms: i64,
    history_id: u64,
    snippet: String,
    message_id: Option<String>,
}

impl Message {
    fn stored(&self) -> Stored {
        Stored {
            id: hex(self.id),
            thread_id: hex(self.thread_id),
            labels: self.labels.clone(),
            raw: self.raw.clone(),
            internal_date_ms: self.internal_date_ms,
        }
    }

    /// `{id, threadId, labelIds}`, as history records and modify answer.
    fn reference(&self) -> Value {
        json!({ "id": hex(self.id), "threadId": hex(self.thread_id), "labelIds": self.labels })
    }
}

/// One account's mailbox.
pub(crate) struct Mailbox {
    email: String,
    labels: Vec<Label>,
    next_label: u32,
    messages: BTreeMap<u64, Message>,
    /// Messages per thread, for `threadsTotal` and to check a `threadId`.
    threads: HashMap<u64, usize>,
    /// Gmail message id by `Message-ID` header, for threading replies.
    by_message_id: HashMap<String, u64>,
    next_id: u64,
    history_id: u64,
    history: Vec<Record>,
    /// `history.list` from before this id answers 404.
    oldest_history_id: u64,
    sent: Vec<Stored>,
}

impl Mailbox {
    pub(crate) fn new(email: &str) -> Self {
        let labels = SYSTEM_LABELS
            .iter()
            .map(|id| Label {
                id: (*id).to_owned(),
                name: (*id).to_owned(),
                system: true,
            })
            .collect();
        Mailbox {
            email: email.to_owned(),
            labels,
            next_label: 1,
            messages: BTreeMap::new(),
            threads: HashMap::new(),
            by_message_id: HashMap::new(),
            // Leading digit 1, room below for more messages than any test makes.
            next_id: (1 << 60) | (rand::random::<u64>() >> 8),
            history_id: FIRST_HISTORY_ID,
            history: Vec::new(),
            oldest_history_id: FIRST_HISTORY_ID,
            sent: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn history_id(&self) -> u64 {
        self.history_id
    }

    // ----- labels -----

    fn label(&self, id: &str) -> Option<&Label> {
        self.labels.iter().find(|label| label.id == id)
    }

    fn label_by_name(&self, name: &str) -> Option<&Label> {
        self.labels
            .iter()
            .find(|label| label.name.eq_ignore_ascii_case(name))
    }

    /// Label ids for the control methods, which accept ids or user label names.
    ///
    /// # Panics
    /// On a label the mailbox does not have.
    pub(crate) fn resolve_labels(&self, labels: &[&str]) -> Vec<String> {
        labels
            .iter()
            .map(|wanted| {
                self.label(wanted)
                    .or_else(|| self.label_by_name(wanted))
                    .map(|label| label.id.clone())
                    .unwrap_or_else(|| panic!("{} has no label {wanted}", self.email))
            })
            .collect()
    }

    /// The label a search term names (`in:`, `label:`, `is:`).
    fn search_label(&self, search_name: &str) -> Option<String> {
        if let Some(system) = query::system_label(search_name) {
            return Some(system.to_owned());
        }
        self.labels
            .iter()
            .find(|label| {
                query::search_name(&label.name) == search_name
                    || label.id.eq_ignore_ascii_case(search_name)
            })
            .map(|label| label.id.clone())
    }

    fn check_labels<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Result<(), ApiError> {
        for id in ids {
            if self.label(id).is_none() {
                return Err(ApiError::invalid_argument(format!("Invalid label: {id}")));
            }
        }
        Ok(())
    }

    /// Creates a user label, or returns the id of the one with that name.
    pub(crate) fn add_label(&mut self, name: &str) -> String {
        if let Some(label) = self.label_by_name(name) {
            return label.id.clone();
        }
        self.create_label(name)
            .map(|label| label["id"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// `labels.create`.
    pub(crate) fn create_label(&mut self, name: &str) -> Result<Value, ApiError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::invalid_argument("Invalid label name"));
        }
        if self.label_by_name(name).is_some() {
            return Err(ApiError::conflict("Label name exists or conflicts"));
        }
        let id = format!("Label_{}", self.next_label);
        self.next_label += 1;
        self.labels.push(Label {
            id: id.clone(),
            name: name.to_owned(),
            system: false,
        });
        self.label_json(&id)
    }

    fn label_summary(label: &Label) -> Value {
        let mut value = json!({
            "id": label.id,
            "name": label.name,
            "type": if label.system { "system" } else { "user" },
        });
        if !label.system {
            value["messageListVisibility"] = json!("show");
            value["labelListVisibility"] = json!("labelShow");
        }
        value
    }

    /// `labels.list`.
    pub(crate) fn labels_json(&self) -> Value {
        let labels: Vec<Value> = self.labels.iter().map(Self::label_summary).collect();
        json!({ "labels": labels })
    }

    /// `labels.get`, with the counts Gmail adds there.
    pub(crate) fn label_json(&self, id: &str) -> Result<Value, ApiError> {
        let label = self.label(id).ok_or_else(ApiError::not_found)?;
        let mut value = Self::label_summary(label);
        let mut threads = HashMap::<u64, bool>::new();
        let (mut total, mut unread) = (0, 0);
        for message in self.messages.values() {
            if message.labels.contains(&label.id) {
                let is_unread = message.labels.iter().any(|l| l == "UNREAD");
                total += 1;
                unread += usize::from(is_unread);
                *threads.entry(message.thread_id).or_default() |= is_unread;
            }
        }
        value["messagesTotal"] = json!(total);
        value["messagesUnread"] = json!(unread);
        value["threadsTotal"] = json!(threads.len());
        value["threadsUnread"] = json!(threads.values().filter(|u| **u).count());
        Ok(value)
    }

    // ----- messages -----

    /// `users.getProfile`.
    pub(crate) fn profile(&self) -> Value {
        json!({
            "emailAddress": self.email,
            "messagesTotal": self.messages.len(),
            "threadsTotal": self.threads.len(),
            "historyId": self.history_id.to_string(),
        })
    }

    fn find(&self, id: &str) -> Result<u64, ApiError> {
        parse_hex(id)
            .filter(|id| self.messages.contains_key(id))
            .ok_or_else(ApiError::not_found)
    }

    /// A thread of the mailbox, or 404.
    fn thread(&self, thread_id: &str) -> Result<u64, ApiError> {
        parse_hex(thread_id)
            .filter(|thread| self.threads.contains_key(thread))
            .ok_or_else(ApiError::not_found)
    }

    fn record(&mut self, message_id: u64, change: Change) {
        self.history_id += 1;
        let message = self
            .messages
            .get_mut(&message_id)
            .expect("a recorded message exists");
        message.history_id = self.history_id;
        self.history.push(Record {
            id: self.history_id,
            message_id,
            thread_id: message.thread_id,
            labels: message.labels.clone(),
            change,
        });
    }

    /// Adds a message to the thread `threading` decides and records
    /// `messagesAdded`.
    pub(crate) fn insert(
        &mut self,
        raw: Vec<u8>,
        labels: Vec<String>,
        internal_date_ms: i64,
        threading: Threading,
    ) -> u64 {
        let summary = mime::summarize(&raw);
        let id = self.next_id;
        self.next_id += 1;
        let thread_id = match threading {
            Threading::Join(thread) => thread,
            Threading::New => id,
            Threading::Headers => summary
                .replies_to
                .iter()
                .find_map(|parent| self.by_message_id.get(parent))
                .and_then(|parent| self.messages.get(parent))
                .map_or(id, |parent| parent.thread_id),
        };
        let mut unique = Vec::with_capacity(labels.len());
        for label in labels {
            if !unique.contains(&label) {
                unique.push(label);
            }
        }
        if let Some(message_id) = &summary.message_id {
            self.by_message_id.entry(message_id.clone()).or_insert(id);
        }
        *self.threads.entry(thread_id).or_default() += 1;
        self.messages.insert(
            id,
            Message {
                id,
                thread_id,
                labels: unique,
                raw,
                internal_date_ms,
                history_id: self.history_id,
                snippet: summary.snippet,
                message_id: summary.message_id,
            },
        );
        self.record(id, Change::Added);
        id
    }

    /// `messages.insert`: labels are checked, a given thread must exist, and
    /// with `date_header` the internalDate comes from the `Date` header.
    pub(crate) fn api_insert(
        &mut self,
        raw: Vec<u8>,
        labels: Vec<String>,
        thread: Option<&str>,
        now_ms: i64,
        date_header: bool,
    ) -> Result<Value, ApiError> {
        self.check_labels(&labels)?;
        let threading = match thread {
            Some(thread) => Threading::Join(self.thread(thread)?),
            None => Threading::Headers,
        };
        let internal_date_ms = if date_header {
            mime::summarize(&raw).date_ms.unwrap_or(now_ms)
        } else {
            now_ms
        };
        let id = self.insert(raw, labels, internal_date_ms, threading);
        Ok(self.messages[&id].reference())
    }

    /// `messages.send`: stored with SENT, in the given thread (which must
    /// exist) or a new one, and remembered for [`Mailbox::sent`].
    pub(crate) fn send(
        &mut self,
        raw: Vec<u8>,
        thread: Option<&str>,
        now_ms: i64,
    ) -> Result<Value, ApiError> {
        // A sent message without a threadId starts a thread of its own.
        let threading = match thread {
            Some(thread) => Threading::Join(self.thread(thread)?),
            None => Threading::New,
        };
        let id = self.insert(raw, vec!["SENT".to_owned()], now_ms, threading);
        let message = &self.messages[&id];
        self.sent.push(message.stored());
        Ok(message.reference())
    }

    /// Adds and removes labels, recording one history record if anything
    /// changed.
    fn change_labels(&mut self, id: u64, add: &[String], remove: &[String]) {
        let message = self
            .messages
            .get_mut(&id)
            .expect("a changed message exists");
        let mut added = Vec::new();
        for label in add {
            if !remove.contains(label) && !message.labels.contains(label) && !added.contains(label)
            {
                message.labels.push(label.clone());
                added.push(label.clone());
            }
        }
        let mut removed = Vec::new();
        for label in remove {
            if let Some(at) = message.labels.iter().position(|l| l == label) {
                message.labels.remove(at);
                removed.push(label.clone());
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            self.record(id, Change::Labels { added, removed });
        }
    }

    /// `messages.modify`.
    pub(crate) fn modify(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<Value, ApiError> {
        let id = self.find(id)?;
        self.check_labels(add.iter().chain(remove))?;
        self.change_labels(id, add, remove);
        Ok(self.messages[&id].reference())
    }

    /// `messages.trash`: adds TRASH and takes the message out of the inbox.
    pub(crate) fn trash(&mut self, id: &str) -> Result<Value, ApiError> {
        let id = self.find(id)?;
        self.change_labels(id, &["TRASH".to_owned()], &["INBOX".to_owned()]);
        Ok(self.messages[&id].reference())
    }

    /// `messages.untrash`.
    pub(crate) fn untrash(&mut self, id: &str) -> Result<Value, ApiError> {
        let id = self.find(id)?;
        self.change_labels(id, &[], &["TRASH".to_owned()]);
        Ok(self.messages[&id].reference())
    }

    /// `messages.delete`: gone for good.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        let id = self.find(id)?;
        self.record(id, Change::Deleted);
        let message = self.messages.remove(&id).expect("found above");
        if let Some(count) = self.threads.get_mut(&message.thread_id) {
            *count -= 1;
            if *count == 0 {
                self.threads.remove(&message.thread_id);
            }
        }
        if let Some(message_id) = &message.message_id
            && self.by_message_id.get(message_id) == Some(&id)
        {
            self.by_message_id.remove(message_id);
        }
        Ok(())
    }

    /// `messages.get`.
    pub(crate) fn get(
        &self,
        id: &str,
        format: Format,
        metadata_headers: &[String],
    ) -> Result<Value, ApiError> {
        let message = &self.messages[&self.find(id)?];
        let mut value = json!({
            "id": hex(message.id),
            "threadId": hex(message.thread_id),
            "labelIds": message.labels,
            "snippet": message.snippet,
            "sizeEstimate": message.raw.len(),
            "historyId": message.history_id.to_string(),
            "internalDate": message.internal_date_ms.to_string(),
        });
        match format {
            Format::Minimal => {}
            Format::Raw => {
                value["raw"] =
                    json!(base64::engine::general_purpose::URL_SAFE.encode(&message.raw));
            }
            Format::Metadata => {
                value["payload"] = mime::payload(&message.raw, false, metadata_headers)
            }
            Format::Full => value["payload"] = mime::payload(&message.raw, true, &[]),
        }
        Ok(value)
    }

    pub(crate) fn stored(&self, id: &str) -> Option<Stored> {
        let id = self.find(id).ok()?;
        Some(self.messages[&id].stored())
    }

    pub(crate) fn all(&self) -> Vec<Stored> {
        self.messages.values().map(Message::stored).collect()
    }

    pub(crate) fn sent(&self) -> &[Stored] {
        &self.sent
    }

    /// Drops all history up to the current historyId.
    pub(crate) fn forget_history(&mut self) {
        self.history.clear();
        self.oldest_history_id = self.history_id;
    }
}

fn encode_token(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor)
}

fn decode_token(token: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()
}

fn invalid_page_token() -> ApiError {
    ApiError::invalid_argument("Invalid pageToken")
}
