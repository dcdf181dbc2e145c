//! Watches what a connector writes before it asks the host to authenticate.
//!
//! The host writes the credentials itself, right after its own command. If the connector
//! could write first, a hostile one could open a message body (`DATA`, `APPEND ... {n}`) or
//! leave half a command on the wire, and the host's credential line would land inside a
//! message the connector can read back. So authentication is allowed only while every byte the
//! connector wrote was a complete, harmless pre-auth command of the protocol.

/// The longest command line the guard will follow; anything longer is not a pre-auth command.
const MAX_LINE: usize = 1024;

#[derive(Debug, Default)]
pub struct PreAuthGuard {
    /// The command line being written, not yet ended by a line feed.
    partial: Vec<u8>,
    /// Why the connection is not in an IMAP pre-auth state, if it is not.
    imap_violation: Option<String>,
    /// Why the connection is not in an SMTP pre-auth state, if it is not.
    smtp_violation: Option<String>,
    /// Why the connection is not in a POP3 pre-auth state, if it is not.
    pop3_violation: Option<String>,
    authenticated: bool,
}

/// The protocols the host authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Smtp,
    Pop3,
}

impl PreAuthGuard {
    /// Records bytes the connector wrote.
    pub fn observe(&mut self, data: &[u8]) {
        if self.authenticated {
            return;
        }
        for &byte in data {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.judge_line(&line);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(byte);
            } else {
                self.violate_all("an over-long command line");
            }
        }
    }

    /// Whether the host may authenticate now, and if not, why.
    pub fn check(&self, protocol: Protocol) -> Result<(), String> {
        if self.authenticated {
            return Err("the connection has already been authenticated".into());
        }
        if !self.partial.is_empty() {
            return Err("the connector left an unfinished command on the connection".into());
        }
        let violation = match protocol {
            Protocol::Imap => &self.imap_violation,
            Protocol::Smtp => &self.smtp_violation,
            Protocol::Pop3 => &self.pop3_violation,
        };
        match violation {
            Some(v) => Err(format!(
                "the connector wrote {v} before authenticating; only pre-auth commands may precede authentication"
            )),
            None => Ok(()),
        }
    }

    /// After an authentication attempt the connection is never pre-auth again.
    pub fn mark_authenticated(&mut self) {
        self.authenticated = true;
        self.partial = Vec::new();
    }

    fn judge_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A server may end a command at a bare CR, or read a tab as a space: any control
        // byte inside the line could hide a second command behind a harmless first one.
        if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
            self.violate_all("a control character inside a command line");
            return;
        }
        let text = String::from_utf8_lossy(line);
        if self.imap_violation.is_none() && !is_imap_preauth(&text) {
            self.imap_violation = Some(describe(&text, 1));
        }
        if self.smtp_violation.is_none() && !is_smtp_preauth(&text) {
            self.smtp_violation = Some(describe(&text, 0));
        }
        if self.pop3_violation.is_none() && !is_pop3_preauth(&text) {
            self.pop3_violation = Some(describe(&text, 0));
        }
    }

    fn violate_all(&mut self, violation: &str) {
        for slot in [
            &mut self.imap_violation,
            &mut self.smtp_violation,
            &mut self.pop3_violation,
        ] {
            slot.get_or_insert_with(|| violation.to_owned());
        }
    }
}

/// `tag CAPABILITY`, `tag STARTTLS`, `tag NOOP`, or `tag ID (...)` without literals.
fn is_imap_preauth(line: &str) -> bool {
    let mut words = line.splitn(3, ' ');
    let tag = words.next().unwrap_or_default();
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let rest = words.next();
    let tag_ok = !tag.is_empty()
        && tag
            .chars()
            .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]+".contains(c));
    tag_ok
        && match command.as_str() {
            "CAPABILITY" | "STARTTLS" | "NOOP" => rest.is_none(),
            "ID" => rest.is_some_and(|r| !r.contains('{')),
            _ => false,
        }
}

/// `EHLO name`, `HELO name`, `STARTTLS`, `RSET`, `NOOP`. (`NOOP` may carry text in SMTP,
/// but text after it could read as a command to a server of another protocol.)
fn is_smtp_preauth(line: &str) -> bool {
    let mut words = line.splitn(2, ' ');
    let verb = words.next().unwrap_or_default().to_ascii_uppercase();
    let rest = words.next();
    match verb.as_str() {
        "EHLO" | "HELO" => rest.is_some_and(|r| !r.trim().is_empty() && !r.contains(' ')),
        "STARTTLS" | "RSET" | "NOOP" => rest.is_none(),
        _ => false,
    }
}

/// `CAPA` or `STLS` (RFC 2449, RFC 2595), alone on their line.
fn is_pop3_preauth(line: &str) -> bool {
    ["CAPA", "STLS"]
        .iter()
        .any(|verb| line.eq_ignore_ascii_case(verb))
}

/// Names the offending command (the word at `index`) without echoing the whole line.
fn describe(line: &str, index: usize) -> String {
    let word: String = line
        .split(' ')
        .nth(index)
        .unwrap_or(line)
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(24)
        .collect();
    if word.is_empty() {
        "an empty or malformed line".to_owned()
    } else {
        format!("`{word}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(written: &[&str]) -> PreAuthGuard {
        let mut guard = PreAuthGuard::default();
        for chunk in written {
            guard.observe(chunk.as_bytes());
        }
        guard
    }

    #[test]
    fn imap_pre_auth_commands_allow_authentication() {
        let g = guard(&[
            "a1 CAPABILITY\r\n",
            "a2 STARTTLS\r\n",
            "a3 ID (\"name\" \"x\")\r\n",
        ]);
        assert_eq!(g.check(Protocol::Imap), Ok(()));
    }

    #[test]
    fn smtp_pre_auth_commands_allow_authentication() {
        let g = guard(&[
            "EHLO client.example\r\n",
            "STARTTLS\r\n",
            "EHLO client.example\r\n",
        ]);
        assert_eq!(g.check(Protocol::Smtp), Ok(()));
        assert!(g.check(Protocol::Imap).is_err());
    }

    #[test]
    fn a_message_body_opened_first_is_refused() {
        let g = guard(&["EHLO x\r\n", "MAIL FROM:<a@b>\r\n", "DATA\r\n"]);
        let reason = g.check(Protocol::Smtp).unwrap_err();
        assert!(reason.contains("`MAIL`"), "{reason}");
        let g = guard(&["a1 APPEND INBOX {300}\r\n"]);
        assert!(g.check(Protocol::Imap).unwrap_err().contains("`APPEND`"));
        let g = guard(&["a1 ID {5}\r\n"]);
        assert!(g.check(Protocol::Imap).is_err());
    }

    #[test]
    fn pop3_allows_capa_and_stls_only() {
        let g = guard(&["CAPA\r\n", "STLS\r\n", "CAPA\r\n"]);
        assert_eq!(g.check(Protocol::Pop3), Ok(()));
        for first in ["USER alice\r\n", "RETR 1\r\n", "CAPA x\r\n", "NOOP\r\n"] {
            let g = guard(&[first]);
            assert!(g.check(Protocol::Pop3).is_err(), "{first}");
        }
    }

    #[test]
    fn smtp_noop_carries_nothing() {
        let g = guard(&["NOOP APPEND INBOX {200+}\r\n"]);
        assert!(g.check(Protocol::Smtp).is_err());
    }

    #[test]
    fn a_command_hidden_behind_a_control_byte_is_refused() {
        // A bare CR ends the first command for some servers; the second is a login.
        let g = guard(&["a1 ID NIL\ra2 LOGIN attacker secret\r\n"]);
        assert!(
            g.check(Protocol::Imap)
                .unwrap_err()
                .contains("control character")
        );
        // A tab reads as a space: `MAIL FROM`.
        let g = guard(&["EHLO a\r\n", "MAIL\tFROM:<x@y>\r\n"]);
        assert!(g.check(Protocol::Smtp).is_err());
        let g = guard(&["EHLO a\x00b\r\n"]);
        assert!(g.check(Protocol::Smtp).is_err());
        let g = guard(&["EHLO a\r\r\n"]);
        assert!(g.check(Protocol::Smtp).is_err());
    }

    #[test]
    fn an_unfinished_line_is_refused() {
        let g = guard(&["a1 NOOP"]);
        assert!(g.check(Protocol::Imap).unwrap_err().contains("unfinished"));
    }

    #[test]
    fn authentication_happens_once() {
        let mut g = guard(&[]);
        assert!(g.check(Protocol::Imap).is_ok());
        g.mark_authenticated();
        g.observe(b"a9 SELECT INBOX\r\n");
        assert!(g.check(Protocol::Imap).unwrap_err().contains("already"));
    }
}
