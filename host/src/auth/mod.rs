//! Authentication, done by the host on a connector's connection.
//!
//! # How the password stays out of the guest
//!
//! The WIT world has no function that returns a credential. When a connector asks to log in
//! (`auth.authenticate`), the host:
//!
//! 1. checks that the connection is in a fresh pre-auth state ([`crate::net::preauth::PreAuthGuard`]) and
//!    protected by TLS unless the account chose no encryption;
//! 2. writes its own command and the encoded credentials straight from host memory to the
//!    socket (the buffers are zeroized afterwards);
//! 3. reads every reply of the exchange itself, up to and including the final one, so nothing
//!    the server says about the credentials (some servers echo a bad line) is left for the
//!    connector to read;
//! 4. returns only the final status line, with the password redacted should a server echo it.
//!
//! The connector sees the connection before and after, never during, the exchange.

pub mod imap;
pub mod pop3;
pub mod smtp;

use crate::connector::{ConnectorError, ErrorKind};
use crate::net::Connection;
use crate::net::connection::LoggedIn;
use crate::net::preauth::Protocol;
use crate::secret::Secret;
use secrecy::zeroize::Zeroizing;

/// What the host logs in with. Lives only in the host.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub login: String,
    pub password: Secret,
}

impl Credentials {
    /// A digest that tells these credentials from others without holding them.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.login.as_bytes());
        hash.update([0]);
        hash.update(self.password.expose().as_bytes());
        hash.finalize().into()
    }
}

/// Where an OAuth account's access tokens come from: the host adds them to a connector's
/// HTTP requests for the provider's API, so the connector never holds one.
#[async_trait::async_trait]
pub trait BearerSource: Send + Sync {
    /// A current access token, refreshed first when it is about to expire. An error means
    /// none can be had (the grant was revoked): the account must be re-connected.
    async fn token(&self) -> Result<Secret, ConnectorError>;
    /// The provider answered 401 to `token`: a new token to try once (refreshed, unless
    /// another request refreshed meanwhile), or `None` when there is none to try. An error
    /// means the provider refused the grant itself.
    async fn refused(&self, token: &Secret) -> Result<Option<Secret>, ConnectorError>;
}

/// A shared [`BearerSource`].
#[derive(Clone)]
pub struct Bearer(pub std::sync::Arc<dyn BearerSource>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer")
    }
}

/// The longest reply line the host reads during an exchange.
const MAX_REPLY_LINE: usize = 64 * 1024;

/// The protocol a server role speaks, as far as the host runs logins for it. The connector
/// names a protocol too, but the host never takes its word: judging an IMAP connection by
/// SMTP's rules would let a connector smuggle an IMAP `APPEND` in front of the credentials.
pub fn protocol_of_role(role: &str) -> Option<Protocol> {
    match role {
        "imap" => Some(Protocol::Imap),
        "smtp" => Some(Protocol::Smtp),
        "pop3" => Some(Protocol::Pop3),
        _ => None,
    }
}

/// Logs in on `conn` for the connector, after checking the connection may carry credentials.
pub async fn authenticate(
    conn: &mut Connection,
    protocol: Protocol,
    mechanisms: &[String],
    credentials: &Credentials,
) -> Result<String, ConnectorError> {
    if protocol_of_role(&conn.server.role) != Some(protocol) {
        return Err(ConnectorError::new(
            ErrorKind::Denied,
            format!(
                "a {protocol:?} login was asked for on the connection to the account's {} server",
                conn.server.role
            ),
        ));
    }
    conn.guard
        .check(protocol)
        .map_err(|reason| ConnectorError::new(ErrorKind::Denied, reason))?;
    if !conn.may_carry_credentials() {
        return Err(ConnectorError::new(
            ErrorKind::Denied,
            "credentials are sent only over TLS on a server configured with encryption",
        ));
    }
    conn.guard.mark_authenticated();
    let result = match protocol {
        Protocol::Imap => imap::authenticate(conn, mechanisms, credentials).await,
        Protocol::Smtp => smtp::authenticate(conn, mechanisms, credentials).await,
        Protocol::Pop3 => pop3::authenticate(conn, mechanisms, credentials).await,
    };
    if result.is_ok() {
        conn.logged_in = Some(LoggedIn {
            protocol,
            credentials: credentials.digest(),
        });
    }
    result
        .map(|line| redact(&line, credentials))
        .map_err(|mut error| {
            error.message = redact(&error.message, credentials);
            error
        })
}

/// The steps of a SASL exchange: a first command line, then one answer per server challenge.
struct Exchange {
    first: Zeroizing<Vec<u8>>,
    answers: std::collections::VecDeque<Zeroizing<Vec<u8>>>,
}

impl Exchange {
    fn next_answer(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.answers.pop_front()
    }
}

fn has_mechanism(mechanisms: &[String], wanted: &str) -> bool {
    mechanisms.iter().any(|m| m.eq_ignore_ascii_case(wanted))
}

fn base64_line(data: &[u8]) -> Zeroizing<Vec<u8>> {
    use base64::Engine;
    let mut line = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .into_bytes(),
    );
    line.extend_from_slice(b"\r\n");
    line
}

/// SASL PLAIN's message (RFC 4616): authzid (empty), authcid, password.
fn plain_message(credentials: &Credentials) -> Zeroizing<Vec<u8>> {
    let mut message = Zeroizing::new(Vec::new());
    message.push(0);
    message.extend_from_slice(credentials.login.as_bytes());
    message.push(0);
    message.extend_from_slice(credentials.password.expose().as_bytes());
    message
}

/// A reply line as text, without its line ending.
fn reply_text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).trim_end().to_owned()
}

/// Removes the password (and its base64 forms) from text that goes to the connector or a log.
fn redact(text: &str, credentials: &Credentials) -> String {
    use base64::Engine;
    let password = credentials.password.expose();
    if password.is_empty() {
        return text.to_owned();
    }
    let encoded = base64::engine::general_purpose::STANDARD;
    let mut redacted = text.replace(password, "[redacted]");
    for form in [
        encoded.encode(plain_message(credentials).as_slice()),
        encoded.encode(password),
    ] {
        redacted = redacted.replace(&form, "[redacted]");
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_password_in_every_form() {
        let credentials = Credentials {
            login: "alice".into(),
            password: Secret::new("s3cret"),
        };
        let plain = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b"\0alice\0s3cret")
        };
        let text = format!("a BAD s3cret {plain}");
        let redacted = redact(&text, &credentials);
        assert!(
            !redacted.contains("s3cret") && !redacted.contains(&plain),
            "{redacted}"
        );
    }
}
