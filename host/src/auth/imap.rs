//! IMAP login run by the host: `AUTHENTICATE PLAIN` (RFC 4616), `AUTHENTICATE LOGIN`, or the
//! `LOGIN` command when the server offers no SASL mechanism we speak (RFC 9051 §6.2.3).

use super::{
    Credentials, Exchange, MAX_REPLY_LINE, base64_line, has_mechanism, plain_message, reply_text,
};
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::Connection;
use secrecy::zeroize::Zeroizing;
use std::collections::VecDeque;

/// The host's own tag, fresh for every exchange so that a connector cannot pipeline a command
/// under it and have its completion taken for the login's.
fn new_tag() -> String {
    format!(
        "MR{}",
        hex::encode(rand::random::<[u8; 6]>()).to_ascii_uppercase()
    )
}

pub async fn authenticate(
    conn: &mut Connection,
    mechanisms: &[String],
    credentials: &Credentials,
) -> Result<String, ConnectorError> {
    let tag = new_tag();
    let mut exchange = exchange(&tag, mechanisms, credentials);
    conn.write_all(&exchange.first).await?;
    loop {
        let line = conn.read_line(MAX_REPLY_LINE).await?;
        if line.starts_with(b"+") {
            // A challenge: answer it, or cancel the exchange when we have nothing to say.
            match exchange.next_answer() {
                Some(answer) => conn.write_all(&answer).await?,
                None => conn.write_all(b"*\r\n").await?,
            }
        } else if let Some(status) = line.strip_prefix(format!("{tag} ").as_bytes()) {
            return outcome(status, &line);
        } else if line.starts_with(b"* BYE") {
            return Err(ConnectorError::new(
                ErrorKind::Connect,
                "the server closed the session during the login (BYE)",
            ));
        }
        // Untagged data and the completion of the connector's earlier commands are not ours.
    }
}

fn exchange(tag: &str, mechanisms: &[String], credentials: &Credentials) -> Exchange {
    if has_mechanism(mechanisms, "PLAIN") {
        return Exchange {
            first: Zeroizing::new(format!("{tag} AUTHENTICATE PLAIN\r\n").into_bytes()),
            answers: VecDeque::from([base64_line(&plain_message(credentials))]),
        };
    }
    if has_mechanism(mechanisms, "LOGIN") {
        return Exchange {
            first: Zeroizing::new(format!("{tag} AUTHENTICATE LOGIN\r\n").into_bytes()),
            answers: VecDeque::from([
                base64_line(credentials.login.as_bytes()),
                base64_line(credentials.password.expose().as_bytes()),
            ]),
        };
    }
    login_command(tag, credentials)
}

/// `LOGIN user password`, each as a quoted string when it can be one, else as a literal whose
/// bytes are sent once the server asks for them.
fn login_command(tag: &str, credentials: &Credentials) -> Exchange {
    // Each segment is sent after the server's go-ahead for the literal that ends the previous.
    let mut segments = vec![Zeroizing::new(format!("{tag} LOGIN").into_bytes())];
    for value in [
        credentials.login.as_bytes(),
        credentials.password.expose().as_bytes(),
    ] {
        let last = segments.last_mut().expect("never empty");
        last.push(b' ');
        if value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            last.push(b'"');
            for &b in value {
                if b == b'"' || b == b'\\' {
                    last.push(b'\\');
                }
                last.push(b);
            }
            last.push(b'"');
        } else {
            last.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
            segments.push(Zeroizing::new(value.to_vec()));
        }
    }
    segments
        .last_mut()
        .expect("never empty")
        .extend_from_slice(b"\r\n");
    let mut segments = VecDeque::from(segments);
    Exchange {
        first: segments.pop_front().expect("never empty"),
        answers: segments,
    }
}

/// The end of the exchange. A failure names the status and its response code, never the
/// server's text, which may echo what was sent (the password among it).
fn outcome(status: &[u8], line: &[u8]) -> Result<String, ConnectorError> {
    let status = String::from_utf8_lossy(status).to_ascii_uppercase();
    if status.starts_with("OK") {
        return Ok(reply_text(line));
    }
    let code = status_code(&status);
    Err(if status.starts_with("NO [UNAVAILABLE]") {
        ConnectorError::new(
            ErrorKind::Connect,
            format!("the server cannot log in now ({code})"),
        )
    } else if status.starts_with("NO") {
        ConnectorError::new(
            ErrorKind::AuthFailed,
            format!("the server refused the login ({code})"),
        )
    } else {
        ConnectorError::new(
            ErrorKind::Protocol,
            format!("the server rejected the login command ({code})"),
        )
    })
}

/// `NO`, `BAD`, … with the response code in brackets when there is one (RFC 5530), e.g.
/// `NO [AUTHENTICATIONFAILED]`.
fn status_code(status: &str) -> String {
    let word: String = status
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(8)
        .collect();
    let code = status[word.len()..]
        .trim_start()
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .map(|code| {
            code.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .take(32)
                .collect::<String>()
        })
        .filter(|code| !code.is_empty());
    match code {
        Some(code) => format!("{word} [{code}]"),
        None => word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_login_reports_its_code_and_never_the_servers_text() {
        let line = b"a1 NO [AUTHENTICATIONFAILED] wrong password hunter2x for alice\r\n";
        let error = outcome(&line[3..], line).unwrap_err();
        assert_eq!(error.kind, ErrorKind::AuthFailed);
        assert_eq!(
            error.message,
            "the server refused the login (NO [AUTHENTICATIONFAILED])"
        );
        let line = b"a1 BAD hunter2x is not base64\r\n";
        let error = outcome(&line[3..], line).unwrap_err();
        assert_eq!(error.message, "the server rejected the login command (BAD)");
        let line = b"a1 NO [UNAVAILABLE] try later, hunter2x\r\n";
        assert!(
            !outcome(&line[3..], line)
                .unwrap_err()
                .message
                .contains("hunter2x")
        );
    }
    use crate::secret::Secret;

    fn credentials(password: &str) -> Credentials {
        Credentials {
            login: "alice".into(),
            password: Secret::new(password),
        }
    }

    #[test]
    fn plain_is_preferred() {
        let e = exchange("T1", &["LOGIN".into(), "plain".into()], &credentials("pw"));
        assert_eq!(e.first.as_slice(), b"T1 AUTHENTICATE PLAIN\r\n");
        assert_eq!(e.answers[0].as_slice(), b"AGFsaWNlAHB3\r\n");
    }

    #[test]
    fn login_command_quotes_or_uses_literals() {
        let e = exchange("T1", &[], &credentials("p\"w"));
        assert_eq!(e.first.as_slice(), b"T1 LOGIN \"alice\" \"p\\\"w\"\r\n");
        assert!(e.answers.is_empty());
        let e = exchange("T1", &[], &credentials("pässword"));
        assert_eq!(e.first.as_slice(), b"T1 LOGIN \"alice\" {9}\r\n");
        assert_eq!(e.answers[0].as_slice(), "pässword\r\n".as_bytes());
    }

    #[test]
    fn outcomes_are_classified() {
        assert!(outcome(b"OK done", b"T1 OK done").is_ok());
        assert_ne!(new_tag(), new_tag());
        let no = outcome(b"NO [AUTHENTICATIONFAILED] x", b"").unwrap_err();
        assert_eq!(no.kind, ErrorKind::AuthFailed);
        let busy = outcome(b"NO [UNAVAILABLE] x", b"").unwrap_err();
        assert_eq!(busy.kind, ErrorKind::Connect);
        assert_eq!(
            outcome(b"BAD x", b"").unwrap_err().kind,
            ErrorKind::Protocol
        );
    }
}
