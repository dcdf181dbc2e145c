//! The mailbox of one account: folders, messages, their two kinds of ids,
//! and the change log the delta function reads.
//!
//! * Folders: the root of the mail tree (`msgfolderroot`, "Top of
//!   Information Store") with the well-known folders under it — Archive,
//!   Conversation History, Deleted Items, Drafts, Inbox, Junk Email, Outbox,
//!   Sent Items, and Sync Issues with Conflicts, Local Failures and Server
//!   Failures — plus Recoverable Items' Deletions outside that tree, where
//!   `DELETE` puts a message. A folder's id never changes
//!   (<https://learn.microsoft.com/en-us/graph/api/resources/mailfolder>).
//! * Messages have an immutable id, stable for their life in the mailbox,
//!   and a regular id that changes with every move
//!   (<https://learn.microsoft.com/en-us/graph/outlook-immutable-id>); an old
//!   regular id names nothing.
//! * Every change (arrival, read or flag change, move, deletion) takes the
//!   next number of the mailbox's change sequence; a message remembers the
//!   number of its last change, and a message leaving a folder leaves a
//!   record of it behind, which is what delta reports as `@removed`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::GraphError;
use crate::odata::format_date_time;
use crate::{Stored, User};

mod delta;
#[cfg(test)]
mod tests;

pub(crate) use delta::DeltaQuery;

const FOLDER_PREFIX: &str = "AQMkAD";
const REGULAR_PREFIX: &str = "AAMkAG";
const IMMUTABLE_PREFIX: &str = "AAkALg";
const PREVIEW_CHARS: usize = 255;

/// The folder number of the mailbox root, above `msgfolderroot`.
const ROOT: u32 = 0;

/// The well-known folders: name, display name, parent's well-known name
/// (`None` for the mailbox root), hidden.
const WELL_KNOWN: &[(&str, &str, Option<&str>, bool)] = &[
    ("msgfolderroot", "Top of Information Store", None, false),
    ("archive", "Archive", Some("msgfolderroot"), false),
    (
        "conversationhistory",
        "Conversation History",
        Some("msgfolderroot"),
        false,
    ),
    (
        "deleteditems",
        "Deleted Items",
        Some("msgfolderroot"),
        false,
    ),
    ("drafts", "Drafts", Some("msgfolderroot"), false),
    ("inbox", "Inbox", Some("msgfolderroot"), false),
    ("junkemail", "Junk Email", Some("msgfolderroot"), false),
    ("outbox", "Outbox", Some("msgfolderroot"), false),
    ("sentitems", "Sent Items", Some("msgfolderroot"), false),
    ("syncissues", "Sync Issues", Some("msgfolderroot"), false),
    ("conflicts", "Conflicts", Some("syncissues"), false),
    ("localfailures", "Local Failures", Some("syncissues"), false),
    (
        "serverfailures",
        "Server Failures",
        Some("syncissues"),
        false,
    ),
    ("recoverableitemsdeletions", "Deletions", None, true),
];

/// The message properties, in the order a full representation lists them.
pub(crate) const PROPERTIES: &[&str] = &[
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

/// Properties a `$select` may name besides [`PROPERTIES`] and `id`.
const EXTRA_PROPERTIES: &[&str] = &["uniqueBody", "internetMessageHeaders"];

/// The canonical spelling of a message property, if it is one.
pub(crate) fn canonical_property(name: &str) -> Option<&'static str> {
    std::iter::once("id")
        .chain(PROPERTIES.iter().copied())
        .chain(EXTRA_PROPERTIES.iter().copied())
        .find(|property| property.eq_ignore_ascii_case(name))
}

/// Which of a message's ids an answer uses: immutable ones only when the
/// request carried `Prefer: IdType="ImmutableId"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdForm {
    Regular,
    Immutable,
}

/// A message's follow-up flag, `flag.flagStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlagStatus {
    NotFlagged,
    Flagged,
    Complete,
}

impl FlagStatus {
    pub(crate) fn parse(value: &str) -> Option<FlagStatus> {
        match value {
            "notFlagged" => Some(FlagStatus::NotFlagged),
            "flagged" => Some(FlagStatus::Flagged),
            "complete" => Some(FlagStatus::Complete),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            FlagStatus::NotFlagged => "notFlagged",
            FlagStatus::Flagged => "flagged",
            FlagStatus::Complete => "complete",
        }
    }
}

struct Folder {
    id: String,
    name: String,
    parent: u32,
    hidden: bool,
    well_known: Option<&'static str>,
}

/// What Graph shows of a message's headers, read once on arrival.
#[derive(Default)]
struct Facts {
    subject: Option<String>,
    internet_message_id: Option<String>,
    from: Vec<(Option<String>, String)>,
    sender: Vec<(Option<String>, String)>,
    to: Vec<(Option<String>, String)>,
    cc: Vec<(Option<String>, String)>,
    bcc: Vec<(Option<String>, String)>,
    reply_to: Vec<(Option<String>, String)>,
    sent_ms: Option<i64>,
    has_attachments: bool,
    preview: String,
    conversation_id: String,
    delivery_receipt: bool,
    read_receipt: bool,
    importance: &'static str,
}

fn addresses(address: Option<&Address<'_>>) -> Vec<(Option<String>, String)> {
    address
        .map(|address| {
            address
                .iter()
                .filter_map(|addr| {
                    let email = addr.address()?.to_owned();
                    Some((addr.name().map(str::to_owned), email))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn read_facts(raw: &[u8]) -> Facts {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Facts {
            importance: "normal",
            ..Facts::default()
        };
    };
    let message_id = message.message_id().map(|id| format!("<{id}>"));
    // A conversation is named after the first message it refers to.
    let root = message
        .references()
        .as_text_list()
        .and_then(|ids| ids.first().map(|id| id.to_string()))
        .or_else(|| message.in_reply_to().as_text().map(str::to_owned))
        .or_else(|| message.message_id().map(str::to_owned))
        .unwrap_or_else(|| format!("{:x}", Sha256::digest(raw)));
    let digest = Sha256::digest(root.trim_matches(['<', '>']).as_bytes());
    let importance = match message
        .header_raw("Importance")
        .map(|value| value.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("high") => "high",
        Some("low") => "low",
        _ => match message.header_raw("X-Priority").map(str::trim) {
            Some(p) if p.starts_with('1') || p.starts_with('2') => "high",
            Some(p) if p.starts_with('4') || p.starts_with('5') => "low",
            _ => "normal",
        },
    };
    let from = addresses(message.from());
    let sender = match addresses(message.sender()) {
        sender if sender.is_empty() => from.clone(),
        sender => sender,
    };
    Facts {
        subject: message.subject().map(str::to_owned),
        internet_message_id: message_id,
        sender,
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        bcc: addresses(message.bcc()),
        reply_to: addresses(message.reply_to()),
        sent_ms: message.date().map(|date| date.to_timestamp() * 1000),
        has_attachments: message
            .attachments()
            .any(|part| part.content_disposition().is_none_or(|d| !d.is_inline())),
        preview: message
            .body_preview(PREVIEW_CHARS)
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        conversation_id: format!("AAQkAD{}", URL_SAFE.encode(&digest[..18])),
        delivery_receipt: message.header_raw("Return-Receipt-To").is_some(),
        read_receipt: message.header_raw("Disposition-Notification-To").is_some(),
        importance,
    }
}

fn recipients(list: &[(Option<String>, String)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(name, address)| {
                json!({ "emailAddress": { "name": name.clone().unwrap_or_else(|| address.clone()), "address": address } })
            })
            .collect(),
    )
}

pub(crate) struct Message {
    number: u64,
    generation: u32,
    folder: u32,
    raw: Vec<u8>,
    facts: Facts,
    received_ms: i64,
    created_ms: i64,
    modified_ms: i64,
    is_read: bool,
    flag: FlagStatus,
    is_draft: bool,
    categories: Vec<String>,
    /// The change number of the message's last change.
    changed: u64,
    /// How many times the message has changed, for `changeKey`.
    version: u32,
}

/// A message that left a folder: what delta reports as `@removed`.
struct Departure {
    seq: u64,
    folder: u32,
    number: u64,
    /// The regular id the message had in that folder.
    regular_id: String,
}

pub(crate) struct Mailbox {
    user: User,
    /// The object id of `GET /me`.
    object_id: String,
    salt: [u8; 6],
    folders: BTreeMap<u32, Folder>,
    next_folder: u32,
    messages: BTreeMap<u64, Message>,
    next_message: u64,
    seq: u64,
    departures: Vec<Departure>,
    /// Raised by `expire_delta_tokens`: tokens of an older epoch are gone.
    sync_epoch: u32,
    sent: Vec<Vec<u8>>,
}

/// What a new message starts as.
pub(crate) struct Arrival {
    pub raw: Vec<u8>,
    pub received_ms: i64,
    pub is_read: bool,
    pub is_draft: bool,
    pub now_ms: i64,
}

impl Mailbox {
    pub(crate) fn new(user: User, object_id: String) -> Self {
        let mut mailbox = Mailbox {
            user,
            object_id,
            salt: rand::random(),
            folders: BTreeMap::new(),
            next_folder: ROOT + 1,
            messages: BTreeMap::new(),
            next_message: 1,
            seq: 0,
            departures: Vec::new(),
            sync_epoch: 0,
            sent: Vec::new(),
        };
        for (well_known, name, parent, hidden) in WELL_KNOWN {
            let parent = parent.map_or(ROOT, |parent| {
                mailbox.well_known(parent).expect("parents come first")
            });
            let number = mailbox.create_folder(parent, name, *hidden);
            if let Some(folder) = mailbox.folders.get_mut(&number) {
                folder.well_known = Some(well_known);
            }
        }
        mailbox
    }

    /// `GET /me`.
    pub(crate) fn profile(&self) -> Value {
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": self.object_id,
            "displayName": self.user.display_name,
            "mail": self.user.mail,
            "userPrincipalName": self.user.upn,
        })
    }

    /// Whether `name` is this account's UPN, mail address or object id.
    pub(crate) fn is_named(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.user.upn)
            || self
                .user
                .mail
                .as_deref()
                .is_some_and(|mail| name.eq_ignore_ascii_case(mail))
            || name.eq_ignore_ascii_case(&self.object_id)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    // ----- ids -----

    fn encode(&self, prefix: &str, tail: &[u8]) -> String {
        let mut bytes = self.salt.to_vec();
        bytes.extend_from_slice(tail);
        format!("{prefix}{}", URL_SAFE.encode(bytes))
    }

    /// The bytes after the salt of one of this mailbox's ids: `Ok(None)` for
    /// an id of another mailbox, `Err` for no id at all.
    fn decode(&self, prefix: &str, id: &str, len: usize) -> Result<Option<Vec<u8>>, GraphError> {
        let encoded = id
            .strip_prefix(prefix)
            .ok_or_else(GraphError::malformed_id)?;
        let bytes = URL_SAFE
            .decode(encoded)
            .map_err(|_| GraphError::malformed_id())?;
        if bytes.len() != self.salt.len() + len {
            return Err(GraphError::malformed_id());
        }
        let (salt, tail) = bytes.split_at(self.salt.len());
        Ok((salt == self.salt).then(|| tail.to_vec()))
    }

    fn folder_id_of(&self, number: u32) -> String {
        self.encode(FOLDER_PREFIX, &number.to_be_bytes())
    }

    fn regular_id(&self, message: &Message) -> String {
        let mut tail = message.number.to_be_bytes().to_vec();
        tail.extend_from_slice(&message.generation.to_be_bytes());
        self.encode(REGULAR_PREFIX, &tail)
    }

    fn immutable_id(&self, number: u64) -> String {
        let mut tail = number.to_be_bytes().to_vec();
        tail.push(0x46);
        self.encode(IMMUTABLE_PREFIX, &tail)
    }

    fn id_of(&self, message: &Message, form: IdForm) -> String {
        match form {
            IdForm::Regular => self.regular_id(message),
            IdForm::Immutable => self.immutable_id(message.number),
        }
    }

    /// The message a path id names: its immutable id, or its current
    /// regular id.
    pub(crate) fn resolve_message(&self, id: &str) -> Result<u64, GraphError> {
        let number = if id.starts_with(IMMUTABLE_PREFIX) {
            let Some(tail) = self.decode(IMMUTABLE_PREFIX, id, 9)? else {
                return Err(GraphError::item_not_found());
            };
            u64::from_be_bytes(tail[..8].try_into().expect("eight bytes"))
        } else {
            let Some(tail) = self.decode(REGULAR_PREFIX, id, 12)? else {
                return Err(GraphError::item_not_found());
            };
            let number = u64::from_be_bytes(tail[..8].try_into().expect("eight bytes"));
            let generation = u32::from_be_bytes(tail[8..].try_into().expect("four bytes"));
            if self
                .messages
                .get(&number)
                .is_some_and(|m| m.generation != generation)
            {
                return Err(GraphError::item_not_found());
            }
            number
        };
        if self.messages.contains_key(&number) {
            Ok(number)
        } else {
            Err(GraphError::item_not_found())
        }
    }

    /// The folder a path segment names: a well-known name or a folder id.
    pub(crate) fn resolve_folder(&self, reference: &str) -> Result<u32, GraphError> {
        if let Some(number) = self.well_known(reference) {
            return Ok(number);
        }
        let Some(tail) = self.decode(FOLDER_PREFIX, reference, 4)? else {
            return Err(GraphError::item_not_found());
        };
        let number = u32::from_be_bytes(tail[..4].try_into().expect("four bytes"));
        if number != ROOT && self.folders.contains_key(&number) {
            Ok(number)
        } else {
            Err(GraphError::item_not_found())
        }
    }

    fn well_known(&self, name: &str) -> Option<u32> {
        self.folders
            .iter()
            .find(|(_, folder)| {
                folder
                    .well_known
                    .is_some_and(|known| known.eq_ignore_ascii_case(name))
            })
            .map(|(number, _)| *number)
    }

    /// A well-known folder's number.
    ///
    /// # Panics
    /// When `name` is not a well-known folder of the fake.
    pub(crate) fn well_known_folder(&self, name: &str) -> u32 {
        self.well_known(name)
            .unwrap_or_else(|| panic!("the fake Microsoft has no well-known folder {name}"))
    }

    // ----- folders -----

    fn create_folder(&mut self, parent: u32, name: &str, hidden: bool) -> u32 {
        let number = self.next_folder;
        self.next_folder += 1;
        let id = self.folder_id_of(number);
        self.folders.insert(
            number,
            Folder {
                id,
                name: name.to_owned(),
                parent,
                hidden,
                well_known: None,
            },
        );
        number
    }

    /// A user folder under `parent` (the mail root when `None`), or the one
    /// of that name already there; its id.
    pub(crate) fn add_folder(&mut self, parent: Option<u32>, name: &str, hidden: bool) -> String {
        let parent = parent.unwrap_or_else(|| self.well_known_folder("msgfolderroot"));
        let existing = self
            .folders
            .iter()
            .find(|(_, folder)| folder.parent == parent && folder.name.eq_ignore_ascii_case(name))
            .map(|(number, _)| *number);
        let number = existing.unwrap_or_else(|| self.create_folder(parent, name, hidden));
        self.folder_id_of(number)
    }

    pub(crate) fn folder_id(&self, number: u32) -> String {
        self.folder_id_of(number)
    }

    /// The folders directly under `parent`, by display name; hidden ones
    /// only when asked for.
    pub(crate) fn child_folders(&self, parent: u32, include_hidden: bool) -> Vec<u32> {
        let mut children: Vec<u32> = self
            .folders
            .iter()
            .filter(|(_, folder)| folder.parent == parent && (include_hidden || !folder.hidden))
            .map(|(number, _)| *number)
            .collect();
        children.sort_by_key(|number| self.folders[number].name.to_lowercase());
        children
    }

    /// A mailFolder resource.
    pub(crate) fn folder_json(&self, number: u32) -> Value {
        let folder = &self.folders[&number];
        let (mut total, mut unread, mut size) = (0u64, 0u64, 0u64);
        for message in self.messages.values().filter(|m| m.folder == number) {
            total += 1;
            unread += u64::from(!message.is_read);
            size += message.raw.len() as u64;
        }
        json!({
            "id": folder.id,
            "displayName": folder.name,
            "parentFolderId": self.folder_id_of(folder.parent),
            "childFolderCount": self.folders.values().filter(|f| f.parent == number).count(),
            "unreadItemCount": unread,
            "totalItemCount": total,
            "sizeInBytes": size,
            "isHidden": folder.hidden,
        })
    }

    // ----- messages -----

    /// A new message in `folder`; its number.
    pub(crate) fn insert(&mut self, folder: u32, arrival: Arrival) -> u64 {
        let number = self.next_message;
        self.next_message += 1;
        let changed = self.next_seq();
        let facts = read_facts(&arrival.raw);
        self.messages.insert(
            number,
            Message {
                number,
                generation: 0,
                folder,
                raw: arrival.raw,
                facts,
                received_ms: arrival.received_ms,
                created_ms: arrival.now_ms,
                modified_ms: arrival.now_ms,
                is_read: arrival.is_read,
                flag: FlagStatus::NotFlagged,
                is_draft: arrival.is_draft,
                categories: Vec::new(),
                changed,
                version: 0,
            },
        );
        number
    }

    /// Records a sent message, and files its copy in Sent Items, read.
    pub(crate) fn send(&mut self, raw: Vec<u8>, now_ms: i64) {
        self.sent.push(raw.clone());
        let sent_items = self.well_known_folder("sentitems");
        self.insert(
            sent_items,
            Arrival {
                raw,
                received_ms: now_ms,
                is_read: true,
                is_draft: false,
                now_ms,
            },
        );
    }

    pub(crate) fn sent(&self) -> &[Vec<u8>] {
        &self.sent
    }

    fn touch(&mut self, number: u64, now_ms: i64) {
        let seq = self.next_seq();
        if let Some(message) = self.messages.get_mut(&number) {
            message.changed = seq;
            message.version += 1;
            message.modified_ms = now_ms;
        }
    }

    /// Changes `isRead`, `flag` and `categories`; a change to nothing is no change.
    pub(crate) fn update(
        &mut self,
        number: u64,
        is_read: Option<bool>,
        flag: Option<FlagStatus>,
        categories: Option<Vec<String>>,
        now_ms: i64,
    ) {
        let Some(message) = self.messages.get_mut(&number) else {
            return;
        };
        let mut changed = false;
        if let Some(is_read) = is_read
            && message.is_read != is_read
        {
            message.is_read = is_read;
            changed = true;
        }
        if let Some(flag) = flag
            && message.flag != flag
        {
            message.flag = flag;
            changed = true;
        }
        if let Some(categories) = categories
            && message.categories != categories
        {
            message.categories = categories;
            changed = true;
        }
        if changed {
            self.touch(number, now_ms);
        }
    }

    /// Records that a message leaves its folder, under the regular id it had
    /// there; false when there is no such message.
    fn depart(&mut self, number: u64) -> bool {
        let Some(message) = self.messages.get(&number) else {
            return false;
        };
        let regular_id = self.regular_id(message);
        let folder = message.folder;
        let seq = self.next_seq();
        self.departures.push(Departure {
            seq,
            folder,
            number,
            regular_id,
        });
        true
    }

    /// Moves a message: it leaves a departure record behind and takes a new
    /// regular id.
    pub(crate) fn move_to(&mut self, number: u64, folder: u32, now_ms: i64) {
        if !self.depart(number) {
            return;
        }
        if let Some(message) = self.messages.get_mut(&number) {
            message.folder = folder;
            message.generation += 1;
        }
        self.touch(number, now_ms);
    }

    /// Removes a message for good.
    pub(crate) fn purge(&mut self, number: u64) {
        if self.depart(number) {
            self.messages.remove(&number);
        }
    }

    pub(crate) fn raw(&self, number: u64) -> &[u8] {
        &self.messages[&number].raw
    }

    /// A message resource with the `select`ed properties (all of
    /// [`PROPERTIES`] when `None`); `id` always.
    pub(crate) fn message_json(
        &self,
        number: u64,
        form: IdForm,
        select: Option<&[String]>,
    ) -> Value {
        let message = &self.messages[&number];
        let mut object = Map::new();
        let change_key = format!(
            "CQAAABYAAA{}",
            URL_SAFE.encode(
                [
                    &message.number.to_be_bytes()[..],
                    &message.version.to_be_bytes()[..]
                ]
                .concat(),
            )
        );
        object.insert(
            "@odata.etag".to_owned(),
            json!(format!("W/\"{change_key}\"")),
        );
        object.insert("id".to_owned(), json!(self.id_of(message, form)));
        let names: Vec<&str> = match select {
            Some(select) => select
                .iter()
                .filter_map(|name| canonical_property(name))
                .collect(),
            None => PROPERTIES.to_vec(),
        };
        for name in names {
            if name == "id" || object.contains_key(name) {
                continue;
            }
            let value = self.property(message, name, &change_key);
            object.insert(name.to_owned(), value);
        }
        Value::Object(object)
    }

    fn property(&self, message: &Message, name: &str, change_key: &str) -> Value {
        let facts = &message.facts;
        match name {
            "createdDateTime" => json!(format_date_time(message.created_ms)),
            "lastModifiedDateTime" => json!(format_date_time(message.modified_ms)),
            "changeKey" => json!(change_key),
            "categories" => json!(message.categories),
            "receivedDateTime" => json!(format_date_time(message.received_ms)),
            "sentDateTime" => json!(format_date_time(
                facts.sent_ms.unwrap_or(message.received_ms)
            )),
            "hasAttachments" => json!(facts.has_attachments),
            "internetMessageId" => json!(facts.internet_message_id),
            "subject" => json!(facts.subject),
            "bodyPreview" => json!(facts.preview),
            "importance" => json!(facts.importance),
            "parentFolderId" => json!(self.folder_id_of(message.folder)),
            "conversationId" => json!(facts.conversation_id),
            "isDeliveryReceiptRequested" => json!(facts.delivery_receipt),
            "isReadReceiptRequested" => json!(facts.read_receipt),
            "isRead" => json!(message.is_read),
            "isDraft" => json!(message.is_draft),
            "webLink" => json!(format!(
                "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                self.immutable_id(message.number)
            )),
            "inferenceClassification" => json!("focused"),
            "body" | "uniqueBody" => body(&message.raw),
            "sender" => recipients(&facts.sender)
                .get(0)
                .cloned()
                .unwrap_or(Value::Null),
            "from" => recipients(&facts.from)
                .get(0)
                .cloned()
                .unwrap_or(Value::Null),
            "toRecipients" => recipients(&facts.to),
            "ccRecipients" => recipients(&facts.cc),
            "bccRecipients" => recipients(&facts.bcc),
            "replyTo" => recipients(&facts.reply_to),
            "flag" => json!({ "flagStatus": message.flag.as_str() }),
            "internetMessageHeaders" => headers(&message.raw),
            _ => Value::Null,
        }
    }

    /// The message numbers in `folder`, or in the whole mailbox.
    pub(crate) fn numbers_in(&self, folder: Option<u32>) -> Vec<u64> {
        self.messages
            .values()
            .filter(|m| folder.is_none_or(|f| m.folder == f))
            .map(|m| m.number)
            .collect()
    }

    pub(crate) fn received_ms(&self, number: u64) -> i64 {
        self.messages[&number].received_ms
    }

    pub(crate) fn expire_delta_tokens(&mut self) {
        self.sync_epoch += 1;
    }

    /// The test's view of a message.
    pub(crate) fn stored(&self, number: u64) -> Stored {
        let message = &self.messages[&number];
        Stored {
            id: self.immutable_id(number),
            folder_id: self.folder_id_of(message.folder),
            is_read: message.is_read,
            flagged: message.flag == FlagStatus::Flagged,
            is_draft: message.is_draft,
            received_ms: message.received_ms,
            raw: message.raw.clone(),
            internet_message_id: message.facts.internet_message_id.clone(),
            subject: message.facts.subject.clone(),
        }
    }

    /// Every message, in order of arrival.
    pub(crate) fn all(&self) -> Vec<Stored> {
        self.messages
            .keys()
            .map(|number| self.stored(*number))
            .collect()
    }
}

/// `body`: the HTML part if there is one, else the text.
fn body(raw: &[u8]) -> Value {
    let Some(message) = MessageParser::default().parse(raw) else {
        return json!({ "contentType": "text", "content": String::from_utf8_lossy(raw) });
    };
    if message.html_body_count() > 0
        && message
            .html_part(0)
            .is_some_and(|part| part.is_content_type("text", "html"))
        && let Some(html) = message.body_html(0)
    {
        return json!({ "contentType": "html", "content": html });
    }
    json!({ "contentType": "text", "content": message.body_text(0).unwrap_or_default() })
}

/// `internetMessageHeaders`: every header of the message, as sent.
fn headers(raw: &[u8]) -> Value {
    let Some(message) = MessageParser::default().parse(raw) else {
        return json!([]);
    };
    Value::Array(
        message
            .headers()
            .iter()
            .map(|header| {
                let value = raw
                    .get(header.offset_start() as usize..header.offset_end() as usize)
                    .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
                    .unwrap_or_default();
                json!({ "name": header.name(), "value": value })
            })
            .collect(),
    )
}
