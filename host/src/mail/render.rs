//! A message as the API shows it: the list item, and the full view with text, sanitized
//! HTML and attachments, derived from the raw bytes.

use super::message::{Address, BodyRange, Message, TransferEncoding};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn address(a: &Address) -> Value {
    json!({"name": a.name, "email": a.email})
}

fn addresses(list: &[Address]) -> Value {
    Value::Array(list.iter().map(address).collect())
}

/// The message object of docs/api.md, without bodies.
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
        "received_at": crate::clock::rfc3339_unix(message.received_at),
        "snippet": message.snippet,
        "seen": message.flags.seen,
        "flagged": message.flags.flagged,
        "answered": message.flags.answered,
        "has_attachments": !message.attachments.is_empty(),
        "size": message.size,
        "records": records,
    })
}

/// How the single-message view shows its HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Html {
    /// Sanitized, remote images removed.
    Sanitized,
    /// Sanitized, remote images kept (the reader asked for them: `?remote=allow`).
    RemoteAllowed,
    /// The original, for a reader that renders it in a sandbox of its own (`?html=raw`).
    Raw,
}

/// The single-message view: the item plus `text`, `html` and `attachments`, and
/// `remote_content` when sanitizing removed remote images. `cid:` references point at
/// `{attachments_url}/{attachment id}`, where the reader downloads them.
pub fn full(
    message: &Message,
    raw: &[u8],
    records: Value,
    html_mode: Html,
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
    let mut remote_content = false;
    let html = html.map(|html| match html_mode {
        Html::Raw => html,
        Html::Sanitized | Html::RemoteAllowed => {
            let (clean, removed) = sanitize(
                &html,
                message,
                attachments_url,
                html_mode == Html::RemoteAllowed,
            );
            remote_content = removed;
            clean
        }
    });
    view["text"] = json!(text);
    view["html"] = json!(html);
    view["remote_content"] = json!(remote_content);
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

/// Sanitizes a message's HTML for display on the CRM's origin: no scripts, handlers, forms,
/// frames or styles (ammonia's defaults); `cid:` references rewritten to the message's own
/// attachment URLs, the only relative URLs kept (any other would place a request on the
/// reader's origin); remote images removed unless `allow_remote`. Returns the HTML and
/// whether a remote image was removed.
fn sanitize(
    html: &str,
    message: &Message,
    attachments_url: &str,
    allow_remote: bool,
) -> (String, bool) {
    let mut html = html.to_owned();
    for attachment in &message.attachments {
        if let Some(cid) = &attachment.content_id {
            let url = format!("{attachments_url}/{}", attachment.id);
            html = html.replace(&format!("cid:{cid}"), &url);
        }
    }
    let removed = Arc::new(AtomicBool::new(false));
    let flag = removed.clone();
    let clean = ammonia::Builder::default()
        .url_relative(ammonia::UrlRelative::Custom(Box::new(OwnAttachments {
            prefix: format!("{attachments_url}/"),
        })))
        .attribute_filter(move |element, attribute, value| {
            // An image loads by itself when the message is shown; a link only when followed.
            let loads = matches!((element, attribute), ("img", "src" | "srcset"));
            if loads && !allow_remote && is_absolute(value) {
                flag.store(true, Ordering::Relaxed);
                return None;
            }
            Some(value.into())
        })
        .clean(&html)
        .to_string();
    (clean, removed.load(Ordering::Relaxed))
}

/// Keeps the relative URLs of the message's own attachments (`{prefix}att_N`) and drops
/// every other.
struct OwnAttachments {
    prefix: String,
}

impl<'a> ammonia::UrlRelativeEvaluate<'a> for OwnAttachments {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        let id = url.strip_prefix(self.prefix.as_str())?;
        let own = id
            .strip_prefix("att_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        own.then_some(Cow::Borrowed(url))
    }
}

/// Whether `url` names a scheme or a host (`https:…`, `//host/…`), so would load from
/// wherever it points rather than from the page's own origin.
fn is_absolute(url: &str) -> bool {
    let url = url.trim();
    url.starts_with("//")
        || url
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'))
}

/// Image types a browser shows without running anything: served `inline`.
const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Types served as they are (as a download); anything else, HTML and SVG included, goes out
/// as `application/octet-stream`, so a browser never renders a sender's part as a page on
/// the API's origin.
const DOWNLOAD_TYPES: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/plain",
    "text/csv",
    "text/calendar",
    "message/rfc822",
    "audio/mpeg",
    "video/mp4",
];

/// How an attachment with the sender's `content_type` is served: the type sent and whether
/// it is shown inline.
pub fn served_as(content_type: &str) -> (&'static str, bool) {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if let Some(inline) = INLINE_TYPES.iter().find(|t| **t == essence) {
        return (inline, true);
    }
    match DOWNLOAD_TYPES.iter().find(|t| **t == essence) {
        Some(known) => (known, false),
        None => ("application/octet-stream", false),
    }
}

/// An attachment's decoded contents, by its id: a binary part is decoded from its range of
/// the raw message; anything else, or a range that does not give the size seen at ingest,
/// parses the message again.
pub fn attachment(message: &Message, raw: &[u8], attachment_id: &str) -> Option<Vec<u8>> {
    let index: usize = attachment_id.strip_prefix("att_")?.parse().ok()?;
    let meta = message.attachments.get(index)?;
    if let Some(contents) = meta
        .body
        .and_then(|range| decode_range(raw, range))
        .filter(|contents| contents.len() as u64 == meta.size)
    {
        return Some(contents);
    }
    let parsed = MessageParser::default().parse(raw)?;
    parsed
        .attachments()
        .nth(index)
        .map(|part| part.contents().to_vec())
}

fn decode_range(raw: &[u8], range: BodyRange) -> Option<Vec<u8>> {
    let encoded = raw.get(range.start as usize..range.end as usize)?;
    match range.encoding {
        TransferEncoding::Identity => Some(encoded.to_vec()),
        TransferEncoding::Base64 => base64_decode(encoded),
        TransferEncoding::QuotedPrintable => quoted_printable_decode(encoded),
    }
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
    fn binary_attachments_are_served_from_their_range_as_a_full_parse_gives_them() {
        let raw = b"From: a@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHi\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJeLjz9MK\r\nAAECAwQFBgcICQ==\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nab=3Dc=\r\nd=00e\r\nline two\r\n\
--b\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\n\x89PNG\r\n\x1a\n\x00\r\n\
--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=t.csv\r\n\r\na,b\r\n\
--b--\r\n";
        let message = stored(raw);
        let parsed = MessageParser::default().parse(&raw[..]).unwrap();
        let expected: Vec<Vec<u8>> = parsed
            .attachments()
            .map(|p| p.contents().to_vec())
            .collect();
        assert_eq!(message.attachments.len(), 4);
        let ranged: Vec<bool> = message
            .attachments
            .iter()
            .map(|a| a.body.is_some())
            .collect();
        assert_eq!(ranged, [true, true, true, false], "text parts parse again");
        for (meta, contents) in message.attachments.iter().zip(&expected) {
            if let Some(range) = meta.body {
                assert_eq!(
                    decode_range(raw, range).as_ref(),
                    Some(contents),
                    "{}",
                    meta.id
                );
            }
            assert_eq!(attachment(&message, raw, &meta.id).as_ref(), Some(contents));
        }
    }

    #[test]
    fn a_range_that_does_not_match_falls_back_to_parsing() {
        let raw = b"From: a@example.test\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";
        let mut message = stored(raw);
        let range = message.attachments[0].body.as_mut().unwrap();
        range.start += 4;
        assert_eq!(attachment(&message, raw, "att_0").unwrap(), b"%PDF-1.4\n");
        message.attachments[0].body.as_mut().unwrap().end = u32::MAX;
        assert_eq!(attachment(&message, raw, "att_0").unwrap(), b"%PDF-1.4\n");
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
            Html::Sanitized,
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
            Html::Raw,
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

    fn html_message(html: &str) -> (Message, Vec<u8>) {
        let raw = format!(
            "From: a@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html\r\n\r\n{html}\r\n"
        )
        .into_bytes();
        (stored(&raw), raw)
    }

    fn shown(html: &str, mode: Html) -> (String, bool) {
        let (message, raw) = html_message(html);
        let view = full(
            &message,
            &raw,
            json!([]),
            mode,
            "/v1/messages/msg_1/attachments",
        );
        (
            view["html"].as_str().unwrap().to_owned(),
            view["remote_content"].as_bool().unwrap(),
        )
    }

    #[test]
    fn a_tracking_pixel_is_removed_unless_remote_content_is_allowed() {
        let pixel =
            r#"<p>Hi</p><img src="https://tracker.test/p.gif?u=1"><img src="//cdn.test/x.png">"#;
        let (html, removed) = shown(pixel, Html::Sanitized);
        assert!(removed);
        assert!(
            !html.contains("tracker.test") && !html.contains("cdn.test"),
            "{html}"
        );
        assert!(html.contains("<p>Hi</p>"));
        let (html, removed) = shown(pixel, Html::RemoteAllowed);
        assert!(!removed);
        assert!(html.contains("https://tracker.test/p.gif?u=1"), "{html}");
        let (_, removed) = shown("<p>plain</p>", Html::Sanitized);
        assert!(!removed);
    }

    #[test]
    fn a_relative_url_cannot_place_a_request_on_the_readers_origin() {
        let (html, _) = shown(
            r#"<img src="/v1/accounts/acc_1/sync"><img src="../../v1/me"><a href="/v1/users">x</a><img src="/v1/messages/msg_1/attachments/att_0/../../raw">"#,
            Html::RemoteAllowed,
        );
        assert!(!html.contains("/v1/"), "{html}");
        // Links to other sites stay: they load nothing by themselves.
        let (html, removed) = shown(
            r#"<a href="https://crm.test/deal">deal</a>"#,
            Html::Sanitized,
        );
        assert!(html.contains("https://crm.test/deal") && !removed, "{html}");
    }

    #[test]
    fn only_raster_images_are_served_inline_and_active_types_never_as_themselves() {
        assert_eq!(served_as("image/PNG; name=a.png"), ("image/png", true));
        assert_eq!(served_as("application/pdf"), ("application/pdf", false));
        for active in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "x/unknown",
            "",
        ] {
            assert_eq!(
                served_as(active),
                ("application/octet-stream", false),
                "{active}"
            );
        }
    }
}
