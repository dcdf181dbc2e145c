//! The header fields of a message to send that name the message it replies to.
//!
//! Gmail files a sent reply in its conversation when `messages.send` is given the thread id
//! (the "Sending email" guide: threadId, plus `In-Reply-To` and `References` per RFC 2822);
//! the connector finds that thread from the parent's Message-ID, which RFC 5322 section 3.6.4
//! puts first in `In-Reply-To` and last in `References`.

/// The Message-ID (without angle brackets) of the message `raw` replies to: the first one of
/// `In-Reply-To`, else the last one of `References`.
pub fn reply_parent(raw: &[u8]) -> Option<String> {
    let fields = header_fields(raw);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if let Some(id) = field("In-Reply-To").and_then(|v| message_ids(v).into_iter().next()) {
        return Some(id);
    }
    field("References").and_then(|v| message_ids(v).pop())
}

/// The header section's fields, unfolded, as (name, value).
fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    fields
}

/// The msg-ids of a field value, in order: each `<…>`, or the bare words when there are no
/// angle brackets at all.
fn message_ids(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let id = after[..close].trim();
        if !id.is_empty() {
            ids.push(id.to_owned());
        }
        rest = &after[close + 1..];
    }
    if ids.is_empty() && !value.contains('<') {
        ids.extend(
            value
                .split_whitespace()
                .filter(|w| w.contains('@'))
                .map(str::to_owned),
        );
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_reply_to_comes_first() {
        let raw = b"From: a@b.c\r\nReferences: <root@x> <mid@x>\r\nIn-Reply-To: <parent@x>\r\nSubject: Re: hi\r\n\r\nIn-Reply-To: <body@x>\r\n";
        assert_eq!(reply_parent(raw).as_deref(), Some("parent@x"));
    }

    #[test]
    fn references_give_their_last_id() {
        let raw = b"Subject: Re: hi\r\nreferences: <root@x>\r\n <mid@x>\r\n\t<last@x>\r\n\r\nbody";
        assert_eq!(reply_parent(raw).as_deref(), Some("last@x"));
    }

    #[test]
    fn folded_and_bare_ids_are_found() {
        let raw = b"in-reply-to:\n <p@x> (the parent)\n\nbody";
        assert_eq!(reply_parent(raw).as_deref(), Some("p@x"));
        let raw = b"In-Reply-To: p@x\r\n\r\n";
        assert_eq!(reply_parent(raw).as_deref(), Some("p@x"));
    }

    #[test]
    fn a_new_message_has_no_parent() {
        assert_eq!(reply_parent(b"Subject: hi\r\n\r\nIn-Reply-To: <x@y>"), None);
        assert_eq!(reply_parent(b"In-Reply-To: <>\r\n\r\n"), None);
        assert_eq!(reply_parent(b""), None);
    }
}
