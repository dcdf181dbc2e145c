//! Outgoing mail: a message built from what the CRM asked to send, with the sender's
//! signature, reply headers, a fresh Message-ID and a fixed Date.
//!
//! The bytes built here are the copy kept in Sent, Bcc header included; what goes to the
//! SMTP server is the same message without it ([`without_bcc`]).

use super::message::Address;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use std::time::SystemTime;

/// A file to attach.
pub struct Attached {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The sender's signature, in both forms.
pub struct Signature {
    pub html: String,
    pub text: String,
}

/// The message a thread is answered in.
pub struct Original {
    /// Its Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Its References, without angle brackets, oldest first.
    pub references: Vec<String>,
}

pub struct Draft {
    pub from: Address,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attached>,
    /// Without angle brackets.
    pub message_id: String,
    pub date: SystemTime,
    pub reply_to: Option<Original>,
    pub signature: Option<Signature>,
}

/// Why a draft cannot be built, naming the request field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ComposeError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ComposeError {
    ComposeError {
        field,
        message: message.into(),
    }
}

/// A checked address, for a header and the envelope.
pub fn mailbox(field: &'static str, address: &Address) -> Result<Mailbox, ComposeError> {
    let email = address.email.parse::<lettre::Address>().map_err(|e| {
        invalid(
            field,
            format!("`{}` is not a valid address: {e}", address.email),
        )
    })?;
    let name = address
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.replace(['\r', '\n'], " "));
    Ok(Mailbox::new(name, email))
}

/// The subject of a reply: "Re: " and the original's, never "Re: Re:".
pub fn reply_subject(original: Option<&str>) -> String {
    let mut rest = original.unwrap_or_default().trim();
    loop {
        let lower = rest.get(..3).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re:") => rest = rest[3..].trim_start(),
            _ => break,
        }
    }
    format!("Re: {rest}")
}

/// Builds the message; returns its bytes with the Bcc header kept.
pub fn build(draft: Draft) -> Result<Vec<u8>, ComposeError> {
    let mut builder = lettre::Message::builder()
        .from(mailbox("from", &draft.from)?)
        .subject(draft.subject.replace(['\r', '\n'], " "))
        .message_id(Some(format!("<{}>", draft.message_id)))
        .date(draft.date)
        .keep_bcc();
    for (field, list) in [("to", &draft.to), ("cc", &draft.cc), ("bcc", &draft.bcc)] {
        for address in list {
            let mbox = mailbox(field, address)?;
            builder = match field {
                "to" => builder.to(mbox),
                "cc" => builder.cc(mbox),
                _ => builder.bcc(mbox),
            };
        }
    }
    let mut reply = false;
    if let Some(original) = &draft.reply_to
        && let Some(parent) = &original.message_id
    {
        reply = true;
        let references: Vec<String> = original
            .references
            .iter()
            .chain(std::iter::once(parent))
            .map(|id| format!("<{id}>"))
            .collect();
        builder = builder
            .in_reply_to(format!("<{parent}>"))
            .references(references.join(" "));
    }

    let signature = draft.signature.as_ref();
    let text = draft
        .text
        .map(|text| match signature {
            Some(s) => sign_text(&text, &s.text, reply),
            None => text,
        })
        .map(crlf);
    let html = draft.html.map(|html| match signature {
        Some(s) => sign_html(&html, &s.html, reply),
        None => html,
    });
    let body = match (text, html) {
        (Some(text), Some(html)) => Body::Multi(MultiPart::alternative_plain_html(text, html)),
        (Some(text), None) => Body::Single(SinglePart::plain(text)),
        (None, Some(html)) => Body::Single(SinglePart::html(html)),
        (None, None) => return Err(invalid("text", "give `text`, `html` or both")),
    };
    let message = if draft.attachments.is_empty() {
        match body {
            Body::Multi(part) => builder.multipart(part),
            Body::Single(part) => builder.singlepart(part),
        }
    } else {
        let mut mixed = match body {
            Body::Multi(part) => MultiPart::mixed().multipart(part),
            Body::Single(part) => MultiPart::mixed().singlepart(part),
        };
        for attached in draft.attachments {
            let content_type = ContentType::parse(&attached.content_type).map_err(|_| {
                invalid(
                    "attachments",
                    format!("`{}` is not a content type", attached.content_type),
                )
            })?;
            let filename = attached.filename.replace(['\r', '\n', '"'], "_");
            mixed = mixed.singlepart(Attachment::new(filename).body(attached.bytes, content_type));
        }
        builder.multipart(mixed)
    };
    let message = message.map_err(|e| invalid("to", format!("cannot build the message: {e}")))?;
    Ok(message.formatted())
}

enum Body {
    Multi(MultiPart),
    Single(SinglePart),
}

/// Line endings as mail wants them.
fn crlf(text: String) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The text signature after a `-- ` line: at the end of new mail, above the quoted original
/// (its first `>` line, with the attribution line before it) in a reply.
fn sign_text(text: &str, signature: &str, reply: bool) -> String {
    let block = format!("-- \n{}\n", signature.trim_end());
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let quote = reply
        .then(|| lines.iter().position(|l| l.starts_with('>')))
        .flatten();
    match quote {
        Some(mut at) => {
            if at > 0 && lines[at - 1].trim_end().ends_with(':') {
                at -= 1;
            }
            let (body, quoted) = lines.split_at(at);
            let mut signed = body.concat();
            if !signed.is_empty() && !signed.ends_with('\n') {
                signed.push('\n');
            }
            signed.push_str(&block);
            signed.push('\n');
            signed.push_str(&quoted.concat());
            signed
        }
        None => {
            let mut signed = text.trim_end().to_owned();
            signed.push_str("\n\n");
            signed.push_str(&block);
            signed
        }
    }
}

/// The HTML signature before `</body>` (or at the end), or in a reply before the first
/// `<blockquote`, the quoted original.
fn sign_html(html: &str, signature: &str, reply: bool) -> String {
    let block = format!("<div class=\"signature\">-- <br>{signature}</div>");
    let lower = html.to_ascii_lowercase();
    let at = reply
        .then(|| lower.find("<blockquote"))
        .flatten()
        .or_else(|| lower.rfind("</body>"))
        .unwrap_or(html.len());
    format!("{}{block}{}", &html[..at], &html[at..])
}

/// The message without its Bcc header (and the header's continuation lines): what the
/// recipients get.
pub fn without_bcc(raw: &[u8]) -> Vec<u8> {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 2)
        .unwrap_or(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in raw[..header_end].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(email: &str) -> Address {
        Address {
            name: None,
            email: email.into(),
        }
    }

    fn draft() -> Draft {
        Draft {
            from: Address {
                name: Some("Alice Example".into()),
                email: "alice@example.com".into(),
            },
            to: vec![address("bob@example.com")],
            cc: Vec::new(),
            bcc: vec![address("carol@example.com")],
            subject: "Quote".into(),
            text: Some("Hello Bob".into()),
            html: None,
            attachments: Vec::new(),
            message_id: "m1@mailroom".into(),
            date: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            reply_to: None,
            signature: Some(Signature {
                html: "<b>Alice</b>".into(),
                text: "Alice".into(),
            }),
        }
    }

    #[test]
    fn the_sent_copy_keeps_bcc_and_the_delivered_one_does_not() {
        let raw = build(draft()).unwrap();
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.contains("Bcc: carol@example.com\r\n"), "{text}");
        assert!(text.contains("Message-ID: <m1@mailroom>\r\n"));
        assert!(text.contains("Hello Bob\r\n\r\n-- \r\nAlice\r\n"), "{text}");
        let delivered = String::from_utf8(without_bcc(&raw)).unwrap();
        assert!(
            !delivered.to_ascii_lowercase().contains("carol"),
            "{delivered}"
        );
        assert_eq!(
            delivered.len(),
            text.len() - "Bcc: carol@example.com\r\n".len()
        );
    }

    #[test]
    fn a_folded_bcc_header_goes_whole() {
        let raw = b"From: a@x\r\nBcc: b@x,\r\n c@x\r\nTo: d@x\r\n\r\nBcc: body\r\n";
        assert_eq!(
            without_bcc(raw),
            b"From: a@x\r\nTo: d@x\r\n\r\nBcc: body\r\n".to_vec()
        );
    }

    #[test]
    fn reply_subjects_never_stack() {
        assert_eq!(reply_subject(Some("Quote")), "Re: Quote");
        assert_eq!(reply_subject(Some("Re: Quote")), "Re: Quote");
        assert_eq!(reply_subject(Some("RE: re:Quote")), "Re: Quote");
        assert_eq!(reply_subject(None), "Re: ");
    }

    #[test]
    fn a_reply_is_signed_above_the_quote() {
        let text = "Thanks!\nOn Monday Bob wrote:\n> the quote\n";
        assert_eq!(
            sign_text(text, "Alice", true),
            "Thanks!\n-- \nAlice\n\nOn Monday Bob wrote:\n> the quote\n"
        );
        let html = "<p>Thanks!</p><blockquote>the quote</blockquote>";
        assert_eq!(
            sign_html(html, "<b>A</b>", true),
            "<p>Thanks!</p><div class=\"signature\">-- <br><b>A</b></div><blockquote>the quote</blockquote>"
        );
        assert_eq!(
            sign_html("<html><body><p>Hi</p></body></html>", "A", false),
            "<html><body><p>Hi</p><div class=\"signature\">-- <br>A</div></body></html>"
        );
    }

    #[test]
    fn reply_headers_carry_the_thread() {
        let mut d = draft();
        d.reply_to = Some(Original {
            message_id: Some("parent@x".into()),
            references: vec!["root@x".into()],
        });
        let text = String::from_utf8(build(d).unwrap()).unwrap();
        assert!(text.contains("In-Reply-To: <parent@x>\r\n"), "{text}");
        assert!(
            text.contains("References: <root@x> <parent@x>\r\n"),
            "{text}"
        );
    }

    #[test]
    fn bad_addresses_name_their_field() {
        let mut d = draft();
        d.to = vec![address("not an address")];
        assert_eq!(build(d).unwrap_err().field, "to");
    }
}
