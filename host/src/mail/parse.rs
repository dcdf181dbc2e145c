//! From raw RFC 5322 bytes to a [`Message`]'s metadata, with mail-parser. A message the
//! parser cannot make sense of is still kept: it gets what could be read and its raw bytes.

use super::Fetched;
use super::message::{Address, Attachment, BodyRange, Message, TransferEncoding};
use crate::folder::FolderId;
use mail_parser::{Encoding, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// How long a snippet is, in characters.
const SNIPPET_CHARS: usize = 200;

/// A fetched message's metadata, before it has an id.
pub struct Parsed {
    pub message_id: Option<String>,
    pub identity: String,
    /// The first message of the thread, by References / In-Reply-To.
    pub thread_root: String,
    pub subject: Option<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub date: Option<String>,
    pub snippet: String,
    pub attachments: Vec<Attachment>,
    /// Why a machine, not a person, sent it (a bounce, an automatic reply, list traffic).
    pub automated: Option<&'static str>,
}

pub fn parse(raw: &[u8]) -> Parsed {
    let Some(message) = MessageParser::default().parse(raw) else {
        let identity = identity(None, raw.len(), &[]);
        return Parsed {
            message_id: None,
            thread_root: identity.clone(),
            identity,
            subject: None,
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            date: None,
            snippet: String::new(),
            attachments: Vec::new(),
            automated: None,
        };
    };
    let message_id = message.message_id().map(clean_id);
    let subject = message.subject().map(str::to_owned);
    let date = message.date().map(|d| d.to_rfc3339());
    let from = message
        .from()
        .and_then(|a| addresses(Some(a)).into_iter().next());
    let key_headers = [
        date.as_deref().unwrap_or_default(),
        from.as_ref().map(|a| a.email.as_str()).unwrap_or_default(),
        subject.as_deref().unwrap_or_default(),
    ];
    let identity = identity(message_id.as_deref(), raw.len(), &key_headers);
    let references = ids(message.references());
    let in_reply_to = ids(message.in_reply_to());
    let thread_root = references
        .first()
        .or(in_reply_to.first())
        .cloned()
        .or_else(|| message_id.clone())
        .unwrap_or_else(|| identity.clone());
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(index, part)| Attachment {
            id: format!("att_{index}"),
            filename: part.attachment_name().map(str::to_owned),
            content_type: part
                .content_type()
                .map(|t| match t.subtype() {
                    Some(sub) => format!("{}/{}", t.ctype(), sub),
                    None => t.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned())
                .to_ascii_lowercase(),
            size: part.contents().len() as u64,
            inline: part.content_disposition().is_some_and(|d| d.is_inline()),
            content_id: part.content_id().map(clean_id),
            body: body_range(part),
        })
        .collect();
    Parsed {
        message_id,
        identity,
        thread_root,
        subject,
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        bcc: addresses(message.bcc()),
        reply_to: addresses(message.reply_to()),
        date,
        snippet: message
            .body_preview(SNIPPET_CHARS)
            .map(|s| collapse_whitespace(&s))
            .unwrap_or_default(),
        attachments,
        automated: automated(&message),
    }
}

/// The range of a binary part's encoded body. Text parts are left out: their contents are
/// converted to UTF-8, which a range cannot reproduce, and nested messages have offsets of
/// their own.
fn body_range(part: &MessagePart) -> Option<BodyRange> {
    if !matches!(part.body, PartType::Binary(_) | PartType::InlineBinary(_)) {
        return None;
    }
    Some(BodyRange {
        start: part.offset_body,
        end: part.offset_end,
        encoding: match part.encoding {
            Encoding::None => TransferEncoding::Identity,
            Encoding::Base64 => TransferEncoding::Base64,
            Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
        },
    })
}

/// Why the message looks sent by a machine (RFC 3464 reports, RFC 3834 Auto-Submitted,
/// RFC 2919 List-Id, `Precedence: bulk`, a null Return-Path), if it does.
fn automated(message: &mail_parser::Message<'_>) -> Option<&'static str> {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if header("Return-Path").is_some_and(|v| v == "<>") {
        return Some("a bounce");
    }
    let sender = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|a| a.split('@').next())
        .map(str::to_ascii_lowercase);
    if sender.is_some_and(|s| s == "mailer-daemon" || s == "postmaster") {
        return Some("a bounce");
    }
    let report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if report {
        return Some("a delivery report");
    }
    if header("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return Some("an automatic reply");
    }
    if header("List-Id").is_some() || header("List-Unsubscribe").is_some() {
        return Some("mailing-list traffic");
    }
    if header("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk")) {
        return Some("bulk mail");
    }
    None
}

impl Parsed {
    /// The stored message for this metadata, as first seen in `folder`.
    pub fn into_message(
        self,
        id: String,
        account_id: &str,
        folder: &FolderId,
        fetched: &Fetched,
    ) -> Message {
        Message {
            id,
            account_id: account_id.to_owned(),
            folders: vec![super::message::Membership {
                folder_id: folder.clone(),
                provider_id: fetched.provider_id.clone(),
            }],
            message_id: self.message_id,
            thread_id: thread_id(account_id, &self.thread_root),
            identity: self.identity,
            subject: self.subject,
            from: self.from,
            to: self.to,
            cc: self.cc,
            bcc: self.bcc,
            reply_to: self.reply_to,
            date: self.date,
            received_at: fetched.received_at,
            snippet: self.snippet,
            flags: fetched.flags,
            size: fetched.raw.len() as u64,
            attachments: self.attachments,
            pending: None,
        }
    }
}

/// The same thread root gives the same id whichever message of the thread arrives first.
fn thread_id(account_id: &str, root: &str) -> String {
    let digest = Sha256::new()
        .chain_update(account_id.as_bytes())
        .chain_update([0])
        .chain_update(root.as_bytes())
        .finalize();
    format!("thr_{}", hex::encode(&digest[..12]))
}

/// Message-ID (or, without one, a stand-in) plus a digest of the size and key headers, so
/// that resends and list copies sharing a Message-ID stay apart.
fn identity(message_id: Option<&str>, size: usize, key_headers: &[&str]) -> String {
    let mut digest = Sha256::new().chain_update(size.to_le_bytes());
    for header in key_headers {
        digest.update(header.as_bytes());
        digest.update([0]);
    }
    let digest = hex::encode(&digest.finalize()[..12]);
    match message_id {
        Some(id) => format!("{id} {digest}"),
        None => format!("(none) {digest}"),
    }
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// What a reply to this message puts before its Message-ID in References (RFC 5322
/// 3.6.4): the message's References, or else its single In-Reply-To.
pub fn references_for_reply(raw: &[u8]) -> Vec<String> {
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    let references = ids(message.references());
    if !references.is_empty() {
        return references;
    }
    let in_reply_to = ids(message.in_reply_to());
    if in_reply_to.len() == 1 {
        in_reply_to
    } else {
        Vec::new()
    }
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![clean_id(id)],
        HeaderValue::TextList(list) => list.iter().map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    }
}

fn addresses(address: Option<&mail_parser::Address<'_>>) -> Vec<Address> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .filter_map(|a| {
            let email = a.address()?.trim();
            (!email.is_empty()).then(|| Address {
                name: a
                    .name()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                email: email.to_owned(),
            })
        })
        .collect()
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_encoded_words_charsets_and_threads() {
        let raw = b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.test>\r\n\
To: a@example.test, \"B\" <b@example.test>\r\n\
Subject: =?UTF-8?B?w4ljaGFuZ2U=?= r\xe9sum\xe9\r\n\
Message-ID: <m2@example.test>\r\n\
In-Reply-To: <m1@example.test>\r\n\
References: <m0@example.test> <m1@example.test>\r\n\
Date: Tue, 3 Feb 2026 10:00:00 +0100\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
\r\n\
Caf\xe9   au lait\r\n";
        let parsed = parse(raw);
        assert_eq!(parsed.from.as_ref().unwrap().name.as_deref(), Some("André"));
        assert_eq!(parsed.to.len(), 2);
        assert!(parsed.subject.as_deref().unwrap().starts_with("Échange"));
        assert_eq!(parsed.message_id.as_deref(), Some("m2@example.test"));
        assert_eq!(parsed.thread_root, "m0@example.test");
        assert_eq!(parsed.snippet, "Café au lait");
        assert_eq!(parsed.date.as_deref(), Some("2026-02-03T10:00:00+01:00"));
    }

    #[test]
    fn garbage_still_gets_an_identity() {
        let parsed = parse(b"\x00\x01 not mail");
        assert!(parsed.identity.starts_with("(none) "));
        assert!(parsed.subject.is_none());
    }

    #[test]
    fn same_message_id_different_content_stays_apart() {
        let a = parse(b"Message-ID: <x@y>\r\nSubject: one\r\n\r\nbody\r\n");
        let b = parse(b"Message-ID: <x@y>\r\nSubject: two\r\n\r\nbody\r\n");
        assert_ne!(a.identity, b.identity);
        let again = parse(b"Message-ID: <x@y>\r\nSubject: one\r\n\r\nbody\r\n");
        assert_eq!(a.identity, again.identity);
    }
}
