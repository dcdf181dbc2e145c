//! What the host functions of every contract version share: the trap by which the host
//! refuses what a connector did, and the bounds on text a connector hands the host.

/// A trap by which the host refuses what a connector did, with the reason the account shows.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Connector-supplied text for a log line: control characters (newlines, carriage returns,
/// terminal escapes) written as escapes, so the text stays one line and says what it says.
pub(super) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Connector-supplied text is bounded before it reaches an API response or a log.
pub(super) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn a_connector_cannot_forge_log_lines() {
        let forged = "done\n2026-12-06T10:00:00Z  INFO mailroom: admin token reset\r\x1b[2K";
        let line = escape_controls(forged);
        assert!(!line.chars().any(char::is_control), "{line}");
        assert!(line.contains("done\\n2026"), "{line}");
        assert_eq!(
            escape_controls("plain text, ünïcode"),
            "plain text, ünïcode"
        );
    }
}
