//! SMTP login run by the host: `AUTH PLAIN` with an initial response or `AUTH LOGIN`
//! (RFC 4954).

use super::{
    Credentials, Exchange, MAX_REPLY_LINE, base64_line, has_mechanism, plain_message, reply_text,
};
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
    conn.write_all(&exchange.first).await?;
    loop {
        let (code, text) = read_reply(conn).await?;
        match code {
            // Replies to what the connector sent before (greeting, EHLO, NOOP, RSET) that it
            // left unread; AUTH itself never answers 220 or 250.
            220 | 250 => {}
            334 => match exchange.next_answer() {
                Some(answer) => conn.write_all(&answer).await?,
                None => conn.write_all(b"*\r\n").await?,
            },
            235 => return Ok(text),
            // A failure names the reply code and its enhanced status (RFC 3463), never the
            // server's text, which may echo what was sent.
            454 | 421 => {
                return Err(ConnectorError::new(
                    ErrorKind::Connect,
                    format!("the server cannot log in now ({})", reply_code(code, &text)),
                ));
            }
            534 | 535 | 530 => {
                return Err(ConnectorError::new(
                    ErrorKind::AuthFailed,
                    format!("the server refused the login ({})", reply_code(code, &text)),
                ));
            }
            _ => {
                return Err(ConnectorError::new(
                    ErrorKind::Protocol,
                    format!("unexpected reply to AUTH ({})", reply_code(code, &text)),
                ));
            }
        }
    }
}

fn exchange(mechanisms: &[String], credentials: &Credentials) -> Result<Exchange, ConnectorError> {
    if has_mechanism(mechanisms, "PLAIN") {
        let mut first = Zeroizing::new(b"AUTH PLAIN ".to_vec());
        first.extend_from_slice(&base64_line(&plain_message(credentials)));
        return Ok(Exchange {
            first,
            answers: VecDeque::new(),
        });
    }
    if has_mechanism(mechanisms, "LOGIN") {
        return Ok(Exchange {
            first: Zeroizing::new(b"AUTH LOGIN\r\n".to_vec()),
            answers: VecDeque::from([
                base64_line(credentials.login.as_bytes()),
                base64_line(credentials.password.expose().as_bytes()),
            ]),
        });
    }
    Err(ConnectorError::new(
        ErrorKind::Unsupported,
        "the server offers no login mechanism Mailroom supports (PLAIN, LOGIN)",
    ))
}

/// A whole (possibly multi-line) reply: its code and its text.
async fn read_reply(conn: &mut Connection) -> Result<(u16, String), ConnectorError> {
    let mut text = String::new();
    loop {
        let line = conn.read_line(MAX_REPLY_LINE).await?;
        let line = reply_text(&line);
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                ConnectorError::new(ErrorKind::Protocol, format!("malformed SMTP reply: {line}"))
            })?;
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
    }
}

/// A reply's code with its enhanced status code when the text starts with one, e.g.
/// `535 5.7.8`.
fn reply_code(code: u16, text: &str) -> String {
    let enhanced = text.split_whitespace().next().filter(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match enhanced {
        Some(enhanced) => format!("{code} {enhanced}"),
        None => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_login_reports_its_code_and_never_the_servers_text() {
        assert_eq!(reply_code(535, "5.7.8 hunter2x rejected"), "535 5.7.8");
        assert_eq!(reply_code(535, "hunter2x rejected"), "535");
        assert_eq!(reply_code(454, "4.7.0 5.5"), "454 4.7.0");
    }
    use crate::secret::Secret;

    #[test]
    fn plain_sends_an_initial_response() {
        let credentials = Credentials {
            login: "bob".into(),
            password: Secret::new("pw"),
        };
        let e = exchange(&["LOGIN".into(), "PLAIN".into()], &credentials).unwrap();
        assert_eq!(e.first.as_slice(), b"AUTH PLAIN AGJvYgBwdw==\r\n");
        let e = exchange(&["LOGIN".into()], &credentials).unwrap();
        assert_eq!(e.answers.len(), 2);
        assert!(exchange(&["CRAM-MD5".into()], &credentials).is_err());
    }
}
