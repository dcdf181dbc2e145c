//! A message as the API shows it: the list item, and the full view with text, sanitized
//! HTML and attachments, derived from the raw bytes.

use super::message::{Address, Message};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

fn address(a: &Address) -> Value {
    json!({"name": a.name, "email": a.email})
}

fn addresses(list: &[Address]) -> Value {
    Value::Array(list.iter().map(address).collect())
}

/// The message object of API.md, without bodies.
pub fn item(message: &Message, records: Value) -> Value {
    json!({
        "id": message.id,
        "account_id": message.account_id,
        "folder_ids": message.folder_ids().iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "message_id": message.message_id,
        "thread_id": message.thread_id,
        "subject": message.subject,
        "from": message.from.as_ref().map(address),
        "to": addresses(&message.to),
        "cc": addresses(&message.cc),
        "bcc": addresses(&message.bcc),
        "reply_to": addresses(&message.reply_to),
        "date": message.date,
        "received_at": crate::user::rfc3339_unix(message.received_at),
        "snippet": message.snippet,
        "seen": message.flags.seen,
        "flagged": message.flags.flagged,
        "answered": message.flags.answered,
        "has_attachments": !message.attachments.is_empty(),
        "size": message.size,
        "records": records,
    })
}

/// The single-message view: the item plus `text`, `html` (sanitized unless `raw_html`) and
/// `attachments`. `cid:` references point at `{attachments_url}/{attachment id}`, where the
/// reader downloads them.
pub fn full(
    message: &Message,
    raw: &[u8],
    records: Value,
    raw_html: bool,
    attachments_url: &str,
) -> Value {
    let mut view = item(message, records);
    let parsed = MessageParser::default().parse(raw);
    let text = parsed
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|t| t.into_owned());
    let html = parsed.as_ref().and_then(|m| {
        // Only a real HTML part; mail-parser would otherwise render the text part as HTML.
        m.html_bodies()
            .next()
            .filter(|part| part.is_content_type("text", "html"))
            .and_then(|_| m.body_html(0))
            .map(|h| h.into_owned())
    });
    let html = html.map(|html| {
        if raw_html {
            return html;
        }
        let mut html = html;
        for attachment in &message.attachments {
            if let Some(cid) = &attachment.content_id {
                let url = format!("{attachments_url}/{}", attachment.id);
                html = html.replace(&format!("cid:{cid}"), &url);
            }
        }
        ammonia::clean(&html)
    });
    view["text"] = json!(text);
    view["html"] = json!(html);
    view["attachments"] = Value::Array(
        message
            .attachments
            .iter()
            .map(|a| {
                json!({"id": a.id, "filename": a.filename, "content_type": a.content_type,
                       "size": a.size, "inline": a.inline, "content_id": a.content_id})
            })
            .collect(),
    );
    view
}

/// An attachment's decoded contents, by its id.
pub fn attachment(message: &Message, raw: &[u8], attachment_id: &str) -> Option<Vec<u8>> {
    let index: usize = attachment_id.strip_prefix("att_")?.parse().ok()?;
    message.attachments.get(index)?;
    let parsed = MessageParser::default().parse(raw)?;
    parsed
        .attachments()
        .nth(index)
        .map(|part| part.contents().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Fetched, Flags, parse::parse};

    fn stored(raw: &[u8]) -> Message {
        let fetched = Fetched {
            provider_id: "1".into(),
            flags: Flags::default(),
            received_at: 0,
            raw: raw.to_vec(),
            known: None,
        };
        parse(raw).into_message(
            "msg_1".into(),
            "acc_1",
            &crate::folder::FolderId::for_path("INBOX"),
            &fetched,
        )
    }

    #[test]
    fn html_is_sanitized_and_cid_rewritten() {
        let raw = b"From: a@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<p onclick=\"x()\">Hi<script>alert(1)</script><img src=\"cid:logo@x\"></p><form><input></form>\r\n\
--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Disposition: inline\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n";
        let message = stored(raw);
        let view = full(
            &message,
            raw,
            json!([]),
            false,
            "/v1/messages/msg_1/attachments",
        );
        let html = view["html"].as_str().unwrap();
        assert!(!html.contains("script") && !html.contains("onclick") && !html.contains("form"));
        assert!(
            html.contains("/v1/messages/msg_1/attachments/att_0"),
            "{html}"
        );
        let original = full(
            &message,
            raw,
            json!([]),
            true,
            "/v1/messages/msg_1/attachments",
        );
        assert!(original["html"].as_str().unwrap().contains("<script>"));
        assert_eq!(
            attachment(&message, raw, "att_0").unwrap(),
            b"\x89PNG\r\n\x1a\n"
        );
        assert!(attachment(&message, raw, "att_1").is_none());
        assert_eq!(view["attachments"][0]["inline"], true);
    }
}
