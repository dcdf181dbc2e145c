//! What the host knows about connectors, in its own terms: their description and the errors
//! they report. Free of wasmtime types; the runtime converts at its edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How an account of a connector authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Password,
    Oauth2,
}

/// A loaded connector, as `GET /v1/connectors` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectorInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub auth: AuthKind,
    pub servers: Vec<String>,
    /// Hosts the connector asks to reach over HTTPS (0.5.0 on).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Of those, the ones an admin granted: the only ones its requests may go to, besides
    /// the account's servers and its provider's API.
    #[serde(default)]
    pub granted_hosts: Vec<String>,
    /// The provider files what is sent in the Sent folder itself: the host appends no copy.
    #[serde(default)]
    pub files_sent: bool,
    /// Provider ids name a message in the whole mailbox.
    #[serde(default)]
    pub mailbox_wide_ids: bool,
    pub builtin: bool,
    /// `sha256:` and the hex digest of the component's bytes.
    pub digest: String,
}

/// A component's digest as [`ConnectorInfo::digest`] shows it.
pub fn component_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What went wrong in a connector job, in terms the caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AuthFailed,
    Tls,
    Dns,
    Connect,
    Timeout,
    Protocol,
    RateLimited,
    NotFound,
    Unsupported,
    /// The host refused what the connector asked for.
    Denied,
    /// The connector itself failed: it trapped, ran out of memory or CPU, or broke the contract.
    Connector,
    /// Mailroom itself failed to keep or read what the job handled (its storage): neither
    /// the connector's fault nor the server's.
    Internal,
}

/// What an error asks of whoever handles it. Decided here, once, for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// The login was refused: the account waits until its user re-connects it.
    Reconnect,
    /// Refused for good (gone, unsupported, denied): trying again changes nothing.
    GiveUp,
    /// The server could not be reached, or asked to slow down: try again in a later job;
    /// nothing else on that server can be done now.
    Later,
    /// Something failed midway: try again, and say so when it keeps failing.
    Retry,
}

impl ErrorKind {
    /// The API's snake_case code for this kind.
    pub fn code(self) -> &'static str {
        match self {
            Self::AuthFailed => "auth_failed",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::Unsupported => "unsupported",
            Self::Denied => "denied",
            Self::Connector => "connector",
            Self::Internal => "internal",
        }
    }

    pub fn remedy(self) -> Remedy {
        match self {
            Self::AuthFailed => Remedy::Reconnect,
            Self::NotFound | Self::Unsupported | Self::Denied => Remedy::GiveUp,
            Self::Connect | Self::Dns | Self::Tls | Self::Timeout | Self::RateLimited => {
                Remedy::Later
            }
            Self::Protocol | Self::Connector | Self::Internal => Remedy::Retry,
        }
    }

    /// Whether the server surely took nothing: the job failed before it could hand the
    /// server a message (a timeout may come after the server accepted one).
    pub fn surely_undelivered(self) -> bool {
        matches!(
            self,
            Self::AuthFailed | Self::Connect | Self::Dns | Self::Tls | Self::RateLimited
        )
    }
}

/// An error from a connector job: reported by the connector, raised by a host import on its
/// behalf, or the sandbox stopping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
    /// The role of the server concerned (`imap`, `smtp`, ...), when known.
    pub server: Option<String>,
    pub retry_after_secs: Option<u32>,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            server: None,
            retry_after_secs: None,
        }
    }

    /// The failure as a sentence a person can act on: what could not be done, then the
    /// details. `host` names the server concerned, when known.
    pub fn explain(&self, host: Option<&str>) -> String {
        let server = match (self.server.as_deref(), host) {
            (Some(role), Some(host)) => format!("the {role} server {host}"),
            (Some(role), None) => format!("the {role} server"),
            (None, _) => "the server".to_owned(),
        };
        let what = match self.kind {
            ErrorKind::AuthFailed => format!("{server} refused the login"),
            ErrorKind::Tls if self.message.contains("certificate") => {
                format!("the certificate of {server} is not trusted")
            }
            ErrorKind::Tls => format!("the secure connection (TLS) to {server} failed"),
            ErrorKind::Dns => format!("the name of {server} does not resolve"),
            ErrorKind::Connect => format!("{server} cannot be reached"),
            ErrorKind::Timeout => format!("{server} has not answered in time"),
            ErrorKind::Protocol => format!("{server} answered something that cannot be read"),
            ErrorKind::RateLimited => format!("{server} asked to slow down"),
            ErrorKind::NotFound => format!("{server} no longer has what was asked for"),
            ErrorKind::Unsupported => format!("{server} does not support what is needed"),
            ErrorKind::Denied => "the connector asked for something it may not do".to_owned(),
            ErrorKind::Connector => "the account's connector failed".to_owned(),
            ErrorKind::Internal => "Mailroom could not store what it synced".to_owned(),
        };
        let mut sentence = what;
        if let Some(first) = sentence.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        format!("{sentence} ({})", self.message)
    }

    pub fn on_server(mut self, role: impl Into<String>) -> Self {
        if self.server.is_none() {
            self.server = Some(role.into());
        }
        self
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(server) => write!(f, "{} ({server}): {}", self.kind.code(), self.message),
            None => write!(f, "{}: {}", self.kind.code(), self.message),
        }
    }
}

impl std::error::Error for ConnectorError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explanation_is_a_sentence_naming_the_server() {
        let untrusted =
            ConnectorError::new(ErrorKind::Tls, "invalid peer certificate: UnknownIssuer")
                .on_server("imap");
        assert_eq!(
            untrusted.explain(Some("imap.example.com")),
            "The certificate of the imap server imap.example.com is not trusted \
             (invalid peer certificate: UnknownIssuer)"
        );
        let cut = ConnectorError::new(ErrorKind::Tls, "tls handshake eof").on_server("imap");
        assert_eq!(
            cut.explain(Some("imap.example.com")),
            "The secure connection (TLS) to the imap server imap.example.com failed (tls handshake eof)"
        );
        let timeout = ConnectorError::new(ErrorKind::Timeout, "no greeting");
        assert_eq!(
            timeout.explain(None),
            "The server has not answered in time (no greeting)"
        );
    }

    #[test]
    fn each_kind_has_one_remedy_and_only_early_failures_prove_nothing_was_sent() {
        use ErrorKind::*;
        let all = [
            AuthFailed,
            Tls,
            Dns,
            Connect,
            Timeout,
            Protocol,
            RateLimited,
            NotFound,
            Unsupported,
            Denied,
            Connector,
            Internal,
        ];
        let later: Vec<ErrorKind> = all
            .into_iter()
            .filter(|k| k.remedy() == Remedy::Later)
            .collect();
        assert_eq!(later, [Tls, Dns, Connect, Timeout, RateLimited]);
        assert_eq!(AuthFailed.remedy(), Remedy::Reconnect);
        assert_eq!(Internal.remedy(), Remedy::Retry);
        // A timeout may come after the server took the message: a send is not repeated.
        assert!(!Timeout.surely_undelivered() && Connect.surely_undelivered());
        assert!(
            all.iter()
                .all(|k| !k.surely_undelivered() || k.remedy() != Remedy::Retry)
        );
        assert_eq!(Internal.code(), "internal");
    }
}
