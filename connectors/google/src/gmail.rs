//! The Gmail API v1 calls the connector makes, and the JSON they exchange.
//!
//! Follows the Gmail API reference: `users.getProfile`, `users.labels.list`,
//! `users.messages.list` / `get` / `modify` / `trash` / `untrash` / `delete` / `send` /
//! `insert` and `users.history.list`, all under `{base}/gmail/v1/users/me`. Gmail writes
//! int64 values (history ids, `internalDate`) as decimal strings and message bodies in
//! base64url (`format=raw`). A message to send or store goes as base64url in JSON when small,
//! else to the upload URI (`{base}/upload/gmail/v1/users/me/…`, "Uploading attachments":
//! `uploadType=multipart`), since Gmail refuses large JSON bodies. Error answers follow
//! "Resolve errors": a JSON `error` object with a `message` and `errors[].reason`.

use crate::error::{auth_failed, error, protocol, rate_limited};
use crate::labels::LabelInfo;
use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
use crate::pace::{self, cost};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use mailroom_wasi_http::url::{Base, encode, query};
use mailroom_wasi_http::{Call, Http, Method, Reply};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Every call's path starts here, after the base URL's own path.
const USER: &str = "/gmail/v1/users/me";

/// The largest JSON body sent to Gmail's metadata URIs: Gmail refuses larger ones ("Request
/// payload size exceeds the limit"), so a larger message goes to the upload URI instead.
const JSON_LIMIT: usize = 1 << 20;

/// base64url, padded when written, padding optional when read.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---- JSON shapes ----

/// An int64 as Gmail writes it (a decimal string), or as a plain number.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64<'a> {
        Number(i64),
        #[serde(borrow)]
        Text(Cow<'a, str>),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn history_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let n = int64(deserializer)?;
    u64::try_from(n).map_err(|_| serde::de::Error::custom("a negative history id"))
}

fn opt_history_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    history_id(deserializer).map(Some)
}

fn opt_int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    int64(deserializer).map(Some)
}

/// A text borrowed from the answer when it has no escapes.
fn borrowed_text<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Text>::deserialize(deserializer)?.map(|text| text.0))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(deserialize_with = "history_id")]
    pub history_id: u64,
}

#[derive(Debug, Deserialize)]
struct Label {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct LabelList {
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    #[serde(default)]
    pub thread_id: Option<String>,
}

/// A message as `format=minimal` gives it: no body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageMeta {
    #[serde(default)]
    pub label_ids: Vec<String>,
    #[serde(default, deserialize_with = "opt_int64")]
    pub internal_date: Option<i64>,
    #[serde(default)]
    pub size_estimate: Option<u64>,
}

/// A message as `format=raw` gives it. The body is borrowed from the answer when it needs no
/// unescaping (base64url never does), so a large message is not held twice.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage<'a> {
    #[serde(default)]
    pub label_ids: Vec<String>,
    #[serde(default, deserialize_with = "opt_int64")]
    pub internal_date: Option<i64>,
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    pub raw: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    #[serde(default)]
    pub history: Vec<HistoryRecord>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default, deserialize_with = "opt_history_id")]
    pub history_id: Option<u64>,
}

/// One change record. Its `messages` list is left out: the reference recommends the
/// specific change kinds, which carry the message's labels.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    #[serde(default)]
    pub messages_added: Vec<MessageChange>,
    #[serde(default)]
    pub messages_deleted: Vec<MessageChange>,
    #[serde(default)]
    pub labels_added: Vec<MessageChange>,
    #[serde(default)]
    pub labels_removed: Vec<MessageChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChange {
    pub message: ChangedMessage,
    /// For `labelsAdded` and `labelsRemoved`: the labels added or removed.
    #[serde(default)]
    pub label_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedMessage {
    pub id: String,
    /// The message's labels after the change, when Gmail says them.
    #[serde(default)]
    pub label_ids: Option<Vec<String>>,
}

/// Gmail's error answer (`{"error": {…}}`).
#[derive(Debug, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    details: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|e| e.error)
    }

    fn has_reason(&self, reason: &str) -> bool {
        self.errors
            .iter()
            .chain(&self.details)
            .any(|e| e.reason == reason)
    }

    /// `rateLimitExceeded` or `userRateLimitExceeded` (or the newer `RATE_LIMIT_EXCEEDED`).
    pub fn is_rate_limit(&self) -> bool {
        self.has_reason("rateLimitExceeded")
            || self.has_reason("userRateLimitExceeded")
            || self.has_reason("RATE_LIMIT_EXCEEDED")
    }

    /// The grant lacks a scope the call needs.
    fn is_missing_scope(&self) -> bool {
        self.has_reason("insufficientPermissions")
            || self.has_reason("ACCESS_TOKEN_SCOPE_INSUFFICIENT")
    }
}

/// Google's message for an answer, short and on one line; the status line when there is none.
pub fn google_message(reply: &Reply) -> String {
    let message = ApiError::parse(&reply.body)
        .map(|e| e.message)
        .unwrap_or_default();
    let message: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.is_empty() {
        return format!("HTTP {}", reply.status);
    }
    match message.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message,
    }
}

/// The error for an answer that is not a success; `what` says what was asked
/// ("list the labels").
pub fn failure(reply: &Reply, what: &str) -> Error {
    let status = reply.status;
    let message = google_message(reply);
    match status {
        401 => auth_failed(),
        403 if ApiError::parse(&reply.body).is_some_and(|e| e.is_missing_scope()) => error(
            ErrorKind::AuthFailed,
            format!("the account did not give Mailroom enough access to Gmail ({message})"),
        ),
        403 => error(
            ErrorKind::Unsupported,
            format!("Gmail refused to {what}: {message}"),
        ),
        404 => error(
            ErrorKind::NotFound,
            format!("Gmail could not {what}: {message}"),
        ),
        429 => rate_limited(60),
        408 | 504 => error(
            ErrorKind::Timeout,
            format!("Gmail did not answer in time to {what} (HTTP {status})"),
        ),
        500..=599 => protocol(format!("Gmail failed to {what} (HTTP {status}): {message}")),
        _ => protocol(format!(
            "Gmail refused to {what} (HTTP {status}): {message}"
        )),
    }
}

fn success(reply: &Reply) -> bool {
    (200..300).contains(&reply.status)
}

/// A success's JSON.
fn parse<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, Error> {
    if !success(reply) {
        return Err(failure(reply, what));
    }
    serde_json::from_slice(&reply.body).map_err(|e| unexpected(what, &e))
}

pub fn unexpected(what: &str, e: &serde_json::Error) -> Error {
    protocol(format!(
        "Gmail's answer when asked to {what} is not what the connector understands ({e})"
    ))
}

// ---- bodies ----

/// base64url of a message, as `raw` takes it.
pub fn encode_raw(raw: &[u8]) -> String {
    BASE64URL.encode(raw)
}

/// The length of what a base64 text decodes to, from its length alone.
pub fn decoded_len(text: &str) -> u64 {
    let bare = text.trim_end_matches('=').len() as u64;
    bare / 4 * 3
        + match bare % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
}

pub fn decode_raw(text: &str) -> Result<Vec<u8>, Error> {
    BASE64URL.decode(text).map_err(|e| {
        protocol(format!(
            "Gmail sent a message body that is not base64url ({e})"
        ))
    })
}

/// The base64 characters that decode to just under 1 MiB (a multiple of 4).
const CHUNK_CHARS: usize = (1 << 20) / 3 * 4;

/// Decodes a base64 text part by part (each under 1 MiB), handing each part on.
pub fn decode_in_parts(
    text: &str,
    mut part: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rest = text.as_bytes();
    let mut buffer = Vec::with_capacity(CHUNK_CHARS / 4 * 3);
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(rest.len().min(CHUNK_CHARS));
        buffer.clear();
        BASE64URL.decode_vec(head, &mut buffer).map_err(|e| {
            protocol(format!(
                "Gmail sent a message body that is not base64url ({e})"
            ))
        })?;
        part(&buffer)?;
        rest = tail;
    }
    Ok(())
}

// ---- calls ----

/// What `messages.get` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Labels, date and size only.
    Minimal,
    /// The whole message in base64url, with its labels.
    Raw,
}

/// A `messages.list` request.
pub struct ListQuery<'a> {
    pub label: Option<&'a str>,
    pub q: Option<&'a str>,
    pub include_spam_trash: bool,
    pub max_results: u32,
    pub page_token: Option<&'a str>,
}

/// What `messages.send` came to.
pub enum Sent {
    /// Gmail took it: the new message's id.
    Accepted(String),
    /// Gmail refused the message itself (400), with its reason.
    Refused(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Modify<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    add_label_ids: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    remove_label_ids: &'a [&'a str],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Upload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    label_ids: &'a [String],
}

fn json_body(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("a request body always serialises")
}

/// A multipart boundary that occurs nowhere in `raw`.
fn boundary_for(raw: &[u8]) -> String {
    (0u32..)
        .map(|n| format!("mailroom-part-{n:08x}"))
        .find(|b| !raw.windows(b.len()).any(|w| w == b.as_bytes()))
        .expect("some boundary is free")
}

/// A `multipart/related` upload ("Uploading attachments": `uploadType=multipart`): the
/// metadata as JSON, then the message as `message/rfc822`. Returns the body and its type.
fn multipart(metadata: &Upload, raw: &[u8]) -> (Vec<u8>, String) {
    let boundary = boundary_for(raw);
    let mut body = Vec::with_capacity(raw.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&json_body(metadata));
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(raw);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/related; boundary={boundary}"))
}

/// The call that stores (`path` `/messages`) or sends (`/messages/send`) a message: its
/// base64url in JSON when small, else the message itself to the upload URI. Never repeated
/// after a server error: the message may have been taken.
fn message_call(
    path: &str,
    raw: &[u8],
    thread_id: Option<&str>,
    labels: &[String],
    cost: u32,
) -> Call {
    let encoded_len = raw.len().div_ceil(3) * 4;
    let (path, body, content_type) = if encoded_len + 1024 <= JSON_LIMIT {
        let body = json_body(&Upload {
            raw: Some(encode_raw(raw)),
            thread_id,
            label_ids: labels,
        });
        (format!("{USER}{path}"), body, None)
    } else {
        let metadata = Upload {
            raw: None,
            thread_id,
            label_ids: labels,
        };
        let (body, content_type) = multipart(&metadata, raw);
        (
            format!("/upload{USER}{path}?uploadType=multipart"),
            body,
            Some(content_type),
        )
    };
    Call {
        method: Method::Post,
        path,
        headers: Vec::new(),
        body: Some(body),
        content_type,
        cost,
        idempotent: false,
    }
}

pub struct Gmail {
    /// The client the calls go through, several at once when asked ([`Http::run`]).
    pub http: Http<Error>,
}

impl Gmail {
    pub fn new(base: Base) -> Self {
        Self {
            http: Http::new(base, pace::service()),
        }
    }

    fn call(method: Method, path: String, body: Option<Vec<u8>>, cost: u32) -> Call {
        Call {
            method,
            path: format!("{USER}{path}"),
            body,
            headers: Vec::new(),
            content_type: None,
            cost,
            idempotent: true,
        }
    }

    pub fn profile(&self) -> Result<Profile, Error> {
        let reply = self.http.one(Self::call(
            Method::Get,
            "/profile".into(),
            None,
            cost::GET_PROFILE,
        ))?;
        parse(&reply, "read the mailbox profile")
    }

    pub fn labels(&self) -> Result<Vec<LabelInfo>, Error> {
        let reply = self.http.one(Self::call(
            Method::Get,
            "/labels".into(),
            None,
            cost::LABELS_LIST,
        ))?;
        let list: LabelList = parse(&reply, "list the labels")?;
        Ok(list
            .labels
            .into_iter()
            .map(|l| LabelInfo {
                user: l.kind == "user",
                name: if l.name.is_empty() {
                    l.id.clone()
                } else {
                    l.name
                },
                id: l.id,
            })
            .collect())
    }

    pub fn list(&self, list: &ListQuery) -> Result<MessageList, Error> {
        let max = list.max_results.clamp(1, 500).to_string();
        let mut pairs = Vec::with_capacity(5);
        if let Some(label) = list.label {
            pairs.push(("labelIds", label));
        }
        if let Some(q) = list.q {
            pairs.push(("q", q));
        }
        if list.include_spam_trash {
            pairs.push(("includeSpamTrash", "true"));
        }
        pairs.push(("maxResults", &max));
        if let Some(token) = list.page_token {
            pairs.push(("pageToken", token));
        }
        let reply = self.http.one(Self::call(
            Method::Get,
            format!("/messages{}", query(&pairs)),
            None,
            cost::MESSAGES_LIST,
        ))?;
        parse(&reply, "list messages")
    }

    /// One page of `history.list` from `start`; none when Gmail no longer has history that
    /// old (404: the client must sync in full).
    pub fn history_page(
        &self,
        start: u64,
        page_token: Option<&str>,
    ) -> Result<Option<HistoryPage>, Error> {
        let start = start.to_string();
        let mut pairs = vec![("startHistoryId", start.as_str()), ("maxResults", "500")];
        if let Some(token) = page_token {
            pairs.push(("pageToken", token));
        }
        let reply = self.http.one(Self::call(
            Method::Get,
            format!("/history{}", query(&pairs)),
            None,
            cost::HISTORY_LIST,
        ))?;
        if reply.status == 404 {
            return Ok(None);
        }
        parse(&reply, "read the mailbox's changes").map(Some)
    }

    /// A `messages.get` call, to run with others.
    pub fn get_call(id: &str, format: Format) -> Call {
        let format = match format {
            Format::Minimal => "minimal",
            Format::Raw => "raw",
        };
        Self::call(
            Method::Get,
            format!("/messages/{}?format={format}", encode(id)),
            None,
            cost::MESSAGES_GET,
        )
    }

    /// A message's labels, date and size; none when it no longer exists.
    pub fn get_minimal(&self, id: &str) -> Result<Option<MessageMeta>, Error> {
        let reply = self.http.one(Self::get_call(id, Format::Minimal))?;
        if reply.status == 404 {
            return Ok(None);
        }
        parse(&reply, &format!("read message {id}")).map(Some)
    }

    /// Parses a `messages.get` answer of the minimal format.
    pub fn meta_of(reply: &Reply, id: &str) -> Result<MessageMeta, Error> {
        parse(reply, &format!("read message {id}"))
    }

    /// Parses a `messages.get` answer of the raw format, borrowing its body.
    pub fn raw_of<'a>(reply: &'a Reply, id: &str) -> Result<RawMessage<'a>, Error> {
        let what = format!("read message {id}");
        if !success(reply) {
            return Err(failure(reply, &what));
        }
        serde_json::from_slice(&reply.body).map_err(|e| unexpected(&what, &e))
    }

    /// A call on one message that answers the message (or nothing); none when the message
    /// no longer exists.
    fn on_message(&self, call: Call, id: &str, what: &str) -> Result<Option<()>, Error> {
        let reply = self.http.one(call)?;
        match reply.status {
            404 => Ok(None),
            _ if success(&reply) => Ok(Some(())),
            _ => Err(failure(&reply, &format!("{what} message {id}"))),
        }
    }

    pub fn modify(&self, id: &str, add: &[&str], remove: &[&str]) -> Result<Option<()>, Error> {
        let body = json_body(&Modify {
            add_label_ids: add,
            remove_label_ids: remove,
        });
        let call = Self::call(
            Method::Post,
            format!("/messages/{}/modify", encode(id)),
            Some(body),
            cost::MESSAGES_MODIFY,
        );
        self.on_message(call, id, "relabel")
    }

    pub fn trash(&self, id: &str) -> Result<Option<()>, Error> {
        let call = Self::call(
            Method::Post,
            format!("/messages/{}/trash", encode(id)),
            None,
            cost::MESSAGES_TRASH,
        );
        self.on_message(call, id, "trash")
    }

    pub fn untrash(&self, id: &str) -> Result<Option<()>, Error> {
        let call = Self::call(
            Method::Post,
            format!("/messages/{}/untrash", encode(id)),
            None,
            cost::MESSAGES_UNTRASH,
        );
        self.on_message(call, id, "restore")
    }

    /// Deletes a message for good.
    pub fn delete(&self, id: &str) -> Result<Option<()>, Error> {
        let call = Self::call(
            Method::Delete,
            format!("/messages/{}", encode(id)),
            None,
            cost::MESSAGES_DELETE,
        );
        self.on_message(call, id, "delete")
    }

    /// Stores a message with these labels (`messages.insert`, like IMAP APPEND). A refusal
    /// of the message itself (400) is `unsupported`: it will never be taken.
    pub fn insert(&self, raw: &[u8], labels: &[String]) -> Result<String, Error> {
        let call = message_call("/messages", raw, None, labels, cost::MESSAGES_INSERT);
        let reply = self.http.one(call)?;
        if reply.status == 400 {
            return Err(error(
                ErrorKind::Unsupported,
                format!(
                    "Gmail refused to store the message: {}",
                    google_message(&reply)
                ),
            ));
        }
        let stored: MessageRef = parse(&reply, "store the message")?;
        Ok(stored.id)
    }

    /// Sends a message (`messages.send`), in `thread_id`'s conversation when given.
    pub fn send(&self, raw: &[u8], thread_id: Option<&str>) -> Result<Sent, Error> {
        let call = message_call("/messages/send", raw, thread_id, &[], cost::MESSAGES_SEND);
        let reply = self.http.one(call)?;
        if reply.status == 400 {
            return Ok(Sent::Refused(google_message(&reply)));
        }
        let sent: MessageRef = parse(&reply, "send the message")?;
        Ok(Sent::Accepted(sent.id))
    }

    /// The thread of the message with this Message-ID (in any folder), if Gmail has it.
    pub fn thread_of(&self, message_id: &str) -> Result<Option<String>, Error> {
        let q = format!("rfc822msgid:{message_id}");
        let list = self.list(&ListQuery {
            label: None,
            q: Some(&q),
            include_spam_trash: true,
            max_results: 1,
            page_token: None,
        })?;
        Ok(list.messages.into_iter().next().and_then(|m| m.thread_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn int64_strings_parse() {
        let profile: Profile = serde_json::from_str(
            r#"{"emailAddress":"a@b.c","messagesTotal":3,"threadsTotal":2,"historyId":"123456789012"}"#,
        )
        .unwrap();
        assert_eq!(profile.history_id, 123_456_789_012);
        let meta: MessageMeta = serde_json::from_str(
            r#"{"id":"18c","threadId":"18c","labelIds":["INBOX","UNREAD"],"internalDate":"1700000000123","sizeEstimate":2048,"historyId":"99"}"#,
        )
        .unwrap();
        assert_eq!(meta.internal_date, Some(1_700_000_000_123));
        assert_eq!(meta.size_estimate, Some(2048));
        assert_eq!(meta.label_ids, vec!["INBOX", "UNREAD"]);
        assert!(serde_json::from_str::<Profile>(r#"{"historyId":"x"}"#).is_err());
    }

    #[test]
    fn raw_bodies_are_borrowed() {
        let body = br#"{"id":"1","labelIds":["INBOX"],"internalDate":"5000","raw":"SGVsbG8"}"#;
        let reply = Reply {
            status: 200,
            body: body.to_vec(),
        };
        let message = Gmail::raw_of(&reply, "1").unwrap();
        assert!(matches!(message.raw, Some(Cow::Borrowed("SGVsbG8"))));
        assert_eq!(message.internal_date, Some(5000));
        let escaped = Reply {
            status: 200,
            body: br#"{"raw":"SGVs\u0062G8"}"#.to_vec(),
        };
        let message = Gmail::raw_of(&escaped, "1").unwrap();
        assert_eq!(message.raw.as_deref(), Some("SGVsbG8"));
        let none = Reply {
            status: 200,
            body: br#"{"id":"1"}"#.to_vec(),
        };
        assert!(Gmail::raw_of(&none, "1").unwrap().raw.is_none());
    }

    #[test]
    fn history_records_parse() {
        let page: HistoryPage = serde_json::from_str(
            r#"{"history":[{"id":"10","messages":[{"id":"a","threadId":"a"}],
                "messagesAdded":[{"message":{"id":"a","threadId":"a","labelIds":["INBOX","UNREAD"]}}]},
               {"id":"11","labelsRemoved":[{"message":{"id":"a","threadId":"a","labelIds":["INBOX"]},"labelIds":["UNREAD"]}]},
               {"id":"12","messagesDeleted":[{"message":{"id":"b","threadId":"b"}}]}],
              "nextPageToken":"t","historyId":"13"}"#,
        )
        .unwrap();
        assert_eq!(page.history.len(), 3);
        assert_eq!(page.history_id, Some(13));
        assert_eq!(page.next_page_token.as_deref(), Some("t"));
        assert_eq!(page.history[1].labels_removed[0].label_ids, vec!["UNREAD"]);
        assert_eq!(page.history[2].messages_deleted[0].message.label_ids, None);
    }

    #[test]
    fn base64url_round_trips_with_or_without_padding() {
        let raw = b"Subject: hi\r\n\r\n\xff\xfe?>";
        let text = encode_raw(raw);
        assert!(!text.contains('+') && !text.contains('/'));
        assert_eq!(decode_raw(&text).unwrap(), raw);
        assert_eq!(decode_raw(text.trim_end_matches('=')).unwrap(), raw);
        for n in 0..10 {
            let bytes = vec![7u8; n];
            let text = encode_raw(&bytes);
            assert_eq!(decoded_len(&text), n as u64);
            assert_eq!(decoded_len(text.trim_end_matches('=')), n as u64);
        }
    }

    #[test]
    fn large_bodies_decode_in_parts_under_a_mebibyte() {
        let raw: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
        let text = encode_raw(&raw);
        let mut parts = Vec::new();
        let mut out = Vec::new();
        decode_in_parts(&text, |part| {
            parts.push(part.len());
            out.extend_from_slice(part);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, raw);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|&n| n <= 1 << 20));
    }

    #[test]
    fn failures_map_to_error_kinds() {
        let scope = r#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.",
            "errors":[{"reason":"insufficientPermissions"}],"status":"PERMISSION_DENIED"}}"#;
        let bad = r#"{"error":{"code":400,"message":"Invalid to header","errors":[{"reason":"invalidArgument"}]}}"#;
        assert!(matches!(
            failure(&reply(401, ""), "x").kind,
            ErrorKind::AuthFailed
        ));
        assert!(matches!(
            failure(&reply(403, scope), "x").kind,
            ErrorKind::AuthFailed
        ));
        assert!(matches!(
            failure(&reply(404, ""), "x").kind,
            ErrorKind::NotFound
        ));
        assert!(matches!(
            failure(&reply(504, ""), "x").kind,
            ErrorKind::Timeout
        ));
        let e = failure(&reply(500, ""), "list messages");
        assert!(matches!(e.kind, ErrorKind::Protocol));
        assert_eq!(
            e.message,
            "Gmail failed to list messages (HTTP 500): HTTP 500"
        );
        let e = failure(&reply(400, bad), "list messages");
        assert_eq!(
            e.message,
            "Gmail refused to list messages (HTTP 400): Invalid to header"
        );
        assert_eq!(google_message(&reply(400, bad)), "Invalid to header");
    }

    #[test]
    fn request_bodies_are_compact_camel_case() {
        let body = json_body(&Modify {
            add_label_ids: &["STARRED"],
            remove_label_ids: &[],
        });
        assert_eq!(body, br#"{"addLabelIds":["STARRED"]}"#);
        let body = json_body(&Upload {
            raw: Some("QQ==".into()),
            thread_id: Some("t1"),
            label_ids: &[],
        });
        assert_eq!(body, br#"{"raw":"QQ==","threadId":"t1"}"#);
    }

    #[test]
    fn small_messages_go_as_json_and_large_ones_by_upload() {
        let labels = vec!["INBOX".to_owned()];
        let call = message_call("/messages", b"Subject: x\r\n\r\nhi", None, &labels, 25);
        assert_eq!(call.path, "/gmail/v1/users/me/messages");
        assert_eq!(call.content_type, None);
        assert!(!call.idempotent);
        let body: serde_json::Value = serde_json::from_slice(&call.body.unwrap()).unwrap();
        assert_eq!(body["labelIds"][0], "INBOX");
        assert_eq!(
            decode_raw(body["raw"].as_str().unwrap()).unwrap(),
            b"Subject: x\r\n\r\nhi"
        );

        let mut raw = b"Subject: big\r\n\r\n".to_vec();
        raw.resize(JSON_LIMIT, b'x');
        let call = message_call("/messages/send", &raw, Some("t9"), &[], 100);
        assert_eq!(
            call.path,
            "/upload/gmail/v1/users/me/messages/send?uploadType=multipart"
        );
        let content_type = call.content_type.unwrap();
        let boundary = content_type
            .strip_prefix("multipart/related; boundary=")
            .unwrap();
        let body = call.body.unwrap();
        let text = String::from_utf8_lossy(&body);
        let expected_head = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{\"threadId\":\"t9\"}}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\nSubject: big"
        );
        assert!(text.starts_with(&expected_head));
        assert!(text.ends_with(&format!("xx\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn boundaries_avoid_the_message() {
        assert_eq!(boundary_for(b"hello"), "mailroom-part-00000000");
        assert_eq!(
            boundary_for(b"x mailroom-part-00000000 y"),
            "mailroom-part-00000001"
        );
    }
}
