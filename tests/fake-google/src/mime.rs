//! What Gmail derives from a raw RFC 5322 message: the snippet, the
//! `Message-ID` and the ids it replies to (for threading), the `Date` header,
//! and the `payload` (MessagePart tree) of the `metadata` and `full` formats.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

use crate::query::bare_message_id;

const SNIPPET_CHARS: usize = 200;

/// The facts the mailbox keeps about a message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub snippet: String,
    pub message_id: Option<String>,
    /// `In-Reply-To` and `References` ids, without angle brackets.
    pub replies_to: Vec<String>,
    /// The `Date` header, in milliseconds since the epoch.
    pub date_ms: Option<i64>,
}

pub(crate) fn summarize(raw: &[u8]) -> Summary {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Summary::default();
    };
    let snippet = message
        .body_preview(SNIPPET_CHARS)
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut replies_to = Vec::new();
    for value in [message.in_reply_to(), message.references()] {
        for id in value.as_text_list().unwrap_or_default() {
            let id = bare_message_id(id);
            if !id.is_empty() && !replies_to.contains(&id) {
                replies_to.push(id);
            }
        }
    }
    Summary {
        snippet,
        message_id: message
            .message_id()
            .map(bare_message_id)
            .filter(|id| !id.is_empty()),
        replies_to,
        date_ms: message.date().map(|date| date.to_timestamp() * 1000),
    }
}

/// The `payload` of a message: with `full`, the MIME tree with headers,
/// bodies (inline as base64url `data`, attachments included) and parts; without,
/// the top-level headers only, limited to `wanted` when it names any.
pub(crate) fn payload(raw: &[u8], full: bool, wanted: &[String]) -> Value {
    let Some(message) = MessageParser::default().parse(raw) else {
        return json!({ "partId": "", "mimeType": "text/plain", "filename": "", "headers": [] });
    };
    if full {
        return part(&message, raw, 0, String::new());
    }
    let headers: Vec<Value> = headers(&message, raw, 0)
        .into_iter()
        .filter(|header| {
            wanted.is_empty()
                || wanted.iter().any(|name| {
                    header["name"]
                        .as_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(name))
                })
        })
        .collect();
    json!({
        "partId": "",
        "mimeType": mime_type(&message, 0),
        "filename": "",
        "headers": headers,
    })
}

fn mime_type(message: &Message<'_>, index: u32) -> String {
    let Some(part) = message.part(index) else {
        return "text/plain".to_owned();
    };
    match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub).to_ascii_lowercase(),
            None => ct.c_type.to_ascii_lowercase(),
        },
        None if part.is_multipart() => "multipart/mixed".to_owned(),
        None => "text/plain".to_owned(),
    }
}

/// A part's headers as Gmail gives them: names as written, values raw and
/// unfolded.
fn headers(message: &Message<'_>, raw: &[u8], index: u32) -> Vec<Value> {
    let Some(part) = message.part(index) else {
        return Vec::new();
    };
    part.headers()
        .iter()
        .map(|header| {
            let text = |from: u32, to: u32| {
                raw.get(from as usize..to as usize)
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
            };
            let field = text(header.offset_field, header.offset_start);
            let name = field.trim_end().trim_end_matches(':').trim_end();
            let name = if name.is_empty() {
                header.name.as_str()
            } else {
                name
            };
            let value = text(header.offset_start, header.offset_end)
                .replace("\r\n", "")
                .replace('\n', "");
            json!({ "name": name, "value": value.trim() })
        })
        .collect()
}

fn part(message: &Message<'_>, raw: &[u8], index: u32, part_id: String) -> Value {
    let Some(mime_part) = message.part(index) else {
        return json!({});
    };
    let mut value = json!({
        "partId": part_id,
        "mimeType": mime_type(message, index),
        "filename": mime_part.attachment_name().unwrap_or_default(),
        "headers": headers(message, raw, index),
    });
    if let PartType::Multipart(children) = &mime_part.body {
        value["body"] = json!({ "size": 0 });
        value["parts"] = children
            .iter()
            .enumerate()
            .map(|(n, child)| {
                let child_id = if part_id.is_empty() {
                    n.to_string()
                } else {
                    format!("{part_id}.{n}")
                };
                part(message, raw, *child, child_id)
            })
            .collect();
    } else {
        let contents = mime_part.contents();
        value["body"] = json!({ "size": contents.len(), "data": URL_SAFE.encode(contents) });
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: &[u8] = b"From: Bob <bob@example.com>\r\n\
        To: ann@example.com\r\n\
        Subject: Re: lunch\r\n\
        Date: Wed, 01 May 2024 12:34:56 +0000\r\n\
        Message-ID: <reply-1@example.com>\r\n\
        In-Reply-To: <first@example.com>\r\n\
        References: <root@example.com>\r\n <first@example.com>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        \r\n\
        Noon   works\r\nfor me.\r\n\
        --b1\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        \r\n\
        <p>Noon works for me.</p>\r\n\
        --b1--\r\n";

    #[test]
    fn summary_has_snippet_ids_and_date() {
        let summary = summarize(REPLY);
        assert_eq!(summary.snippet, "Noon works for me.");
        assert_eq!(summary.message_id.as_deref(), Some("reply-1@example.com"));
        assert_eq!(
            summary.replies_to,
            vec!["first@example.com", "root@example.com"]
        );
        assert_eq!(summary.date_ms, Some(1_714_566_896_000));
    }

    #[test]
    fn full_payload_is_a_mime_tree() {
        let payload = payload(REPLY, true, &[]);
        assert_eq!(payload["mimeType"], "multipart/alternative");
        assert_eq!(payload["partId"], "");
        let subject = payload["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "Subject")
            .unwrap();
        assert_eq!(subject["value"], "Re: lunch");
        let parts = payload["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["partId"], "0");
        assert_eq!(parts[1]["mimeType"], "text/html");
        let text = URL_SAFE
            .decode(parts[0]["body"]["data"].as_str().unwrap())
            .unwrap();
        assert!(String::from_utf8(text).unwrap().starts_with("Noon   works"));
    }

    #[test]
    fn metadata_payload_keeps_the_wanted_headers() {
        let wanted = vec!["subject".to_owned(), "Message-ID".to_owned()];
        let payload = payload(REPLY, false, &wanted);
        let names: Vec<&str> = payload["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Subject", "Message-ID"]);
        assert!(payload.get("parts").is_none());
        let references = super::payload(REPLY, false, &["References".to_owned()]);
        assert_eq!(
            references["headers"][0]["value"],
            "<root@example.com> <first@example.com>"
        );
    }
}
