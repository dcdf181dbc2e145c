//! POP3 login run by the host: `AUTH PLAIN` with an initial response (RFC 5034) when the
//! server offers SASL PLAIN, else `USER` and `PASS` (RFC 1939).
//!
//! The connector must have read every reply it asked for (the greeting, `CAPA`'s list, `STLS`)
//! before asking to log in: POP3 replies carry no tag, so the host takes the next reply as the
//! answer to its own command.

use super::{Credentials, Exchange, MAX_REPLY_LINE, base64_line, has_mechanism, plain_message};
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::Connection;
use secrecy::zeroize::Zeroizing;
use std::collections::VecDeque;

pub async fn authenticate(
    conn: &mut Connection,
    mechanisms: &[String],
    credentials: &Credentials,
) -> Result<String, ConnectorError> {
    let mut exchange = exchange(mechanisms, credentials)?;
    conn.write_all(&exchange.steps.first).await?;
    loop {
        let line = conn.read_line(MAX_REPLY_LINE).await?;
        match Reply::parse(&line) {
            Reply::Ok(text) => match exchange.steps.next_answer() {
                // `USER` accepted: `PASS` follows.
                Some(answer) if exchange.plain_text => conn.write_all(&answer).await?,
                _ => return Ok(text),
            },
            Reply::Continue => match exchange.steps.next_answer() {
                Some(answer) if !exchange.plain_text => conn.write_all(&answer).await?,
                // PLAIN was sent with the command; a second challenge is cancelled.
                _ => conn.write_all(b"*\r\n").await?,
            },
            Reply::Err(code) => return Err(refused(code)),
            Reply::Malformed => {
                return Err(ConnectorError::new(
                    ErrorKind::Protocol,
                    "the server answered the login with a line that is not a POP3 reply",
                ));
            }
        }
    }
}

/// A login's steps, and whether they are `USER`/`PASS` (whose answers follow `+OK`, not `+`).
struct Pop3Exchange {
    steps: Exchange,
    plain_text: bool,
}

fn exchange(
    mechanisms: &[String],
    credentials: &Credentials,
) -> Result<Pop3Exchange, ConnectorError> {
    if has_mechanism(mechanisms, "PLAIN") {
        let mut first = Zeroizing::new(b"AUTH PLAIN ".to_vec());
        first.extend_from_slice(&base64_line(&plain_message(credentials)));
        return Ok(Pop3Exchange {
            steps: Exchange {
                first,
                answers: VecDeque::new(),
            },
            plain_text: false,
        });
    }
    let password = credentials.password.expose();
    let unsafe_text = |text: &str| text.is_empty() || text.chars().any(|c| c.is_control());
    if unsafe_text(&credentials.login) || credentials.login.contains(' ') {
        return Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "the login name cannot be sent with USER (it is empty or holds spaces or control characters), and the server offers no SASL PLAIN",
        ));
    }
    if unsafe_text(password) {
        return Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "the password cannot be sent with PASS (it is empty or holds control characters), and the server offers no SASL PLAIN",
        ));
    }
    let line = |verb: &str, text: &str| {
        let mut line = Zeroizing::new(Vec::with_capacity(verb.len() + text.len() + 3));
        line.extend_from_slice(verb.as_bytes());
        line.push(b' ');
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice(b"\r\n");
        line
    };
    Ok(Pop3Exchange {
        steps: Exchange {
            first: line("USER", &credentials.login),
            answers: VecDeque::from([line("PASS", password)]),
        },
        plain_text: true,
    })
}

enum Reply {
    /// `+OK` and the rest of the line.
    Ok(String),
    /// `+ `: a SASL challenge.
    Continue,
    /// `-ERR`, with the response code of RFC 2449 when the server gave one (`AUTH`,
    /// `SYS/TEMP`, `IN-USE`, ...).
    Err(Option<String>),
    Malformed,
}

impl Reply {
    fn parse(line: &[u8]) -> Self {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        if line == "+OK" || line.starts_with("+OK ") {
            Self::Ok(line.to_owned())
        } else if line == "+" || line.starts_with("+ ") {
            Self::Continue
        } else if line == "-ERR" || line.starts_with("-ERR ") {
            let code = line
                .get(5..)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.split_once(']'))
                .map(|(code, _)| code.to_owned())
                .filter(|code| {
                    code.len() <= 32
                        && code
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/-".contains(c))
                });
            Self::Err(code)
        } else {
            Self::Malformed
        }
    }
}

/// A refused login, named by its response code and never by the server's text, which may
/// echo what was sent.
fn refused(code: Option<String>) -> ConnectorError {
    match code.as_deref() {
        Some(code @ ("SYS/TEMP" | "IN-USE" | "LOGIN-DELAY")) => ConnectorError::new(
            ErrorKind::Connect,
            format!("the server cannot log in now (-ERR [{code}])"),
        ),
        Some(code) => ConnectorError::new(
            ErrorKind::AuthFailed,
            format!("the server refused the login (-ERR [{code}])"),
        ),
        None => ConnectorError::new(ErrorKind::AuthFailed, "the server refused the login (-ERR)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn credentials(login: &str, password: &str) -> Credentials {
        Credentials {
            login: login.into(),
            password: Secret::new(password),
        }
    }

    #[test]
    fn plain_is_preferred_and_user_pass_is_the_fallback() {
        let e = exchange(&["PLAIN".into()], &credentials("bob", "pw")).unwrap();
        assert_eq!(e.steps.first.as_slice(), b"AUTH PLAIN AGJvYgBwdw==\r\n");
        assert!(!e.plain_text);
        let mut e = exchange(&[], &credentials("bob", "pw")).unwrap();
        assert_eq!(e.steps.first.as_slice(), b"USER bob\r\n");
        assert_eq!(e.steps.next_answer().unwrap().as_slice(), b"PASS pw\r\n");
    }

    #[test]
    fn a_line_break_in_a_password_never_reaches_the_wire() {
        assert!(exchange(&[], &credentials("bob", "pw\r\nDELE 1")).is_err());
        assert!(exchange(&[], &credentials("bob x", "pw")).is_err());
        // SASL carries any bytes safely, in base64.
        assert!(exchange(&["PLAIN".into()], &credentials("bob", "pw\r\nDELE 1")).is_ok());
    }

    #[test]
    fn replies_are_read_by_their_status_and_code_only() {
        assert!(matches!(Reply::parse(b"+OK Logged in.\r\n"), Reply::Ok(_)));
        assert!(matches!(Reply::parse(b"+ \r\n"), Reply::Continue));
        assert!(
            matches!(Reply::parse(b"-ERR [AUTH] Authentication failed.\r\n"),
            Reply::Err(Some(code)) if code == "AUTH")
        );
        assert!(matches!(
            Reply::parse(b"-ERR hunter2\r\n"),
            Reply::Err(None)
        ));
        assert!(matches!(Reply::parse(b"* OK IMAP\r\n"), Reply::Malformed));
        let error = refused(Some("AUTH".into()));
        assert_eq!(error.kind, ErrorKind::AuthFailed);
        assert_eq!(refused(Some("IN-USE".into())).kind, ErrorKind::Connect);
    }
}
