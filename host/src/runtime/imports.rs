//! The host side of the connector world's imports: `net`, `auth` and `log`.
//!
//! These functions are the whole surface a connector can reach. Each one checks the job's
//! account before acting; none of them ever returns a secret.

use super::bindings::v0_1_0::mailroom::connector::{auth, log, net, types};
use super::bindings::v0_2_0::mailroom::connector0_2_0::mail;
use super::sandbox::JobState;
use super::sink::BodySink;
use crate::account::Encryption;
use crate::auth::preauth::Protocol;
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::Connection;
use std::time::Instant;
use wasmtime::component::Resource;

/// How many connections one job may hold open at once.
const MAX_CONNECTIONS: usize = 16;
/// How many messages one `known` call may ask about.
const MAX_PROBES: usize = 10_000;
/// The longest header line (RFC 5322), which bounds a Message-ID.
const MAX_LINE_BYTES: usize = 998;

/// A trap by which the host refuses what a connector did, with the reason the account shows.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

impl types::Host for JobState {}

impl net::Host for JobState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        encryption: types::Encryption,
    ) -> Wit<Resource<Connection>> {
        match self.open_connection(&host, port, encryption).await {
            Ok(connection) => {
                self.open_connections += 1;
                Ok(Ok(self.table.push(connection)?))
            }
            Err(error) => Ok(Err(error.into())),
        }
    }
}

impl JobState {
    async fn open_connection(
        &mut self,
        host: &str,
        port: u16,
        encryption: types::Encryption,
    ) -> Result<Connection, ConnectorError> {
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Denied, "this job serves no account"))?;
        let server = account.allow.server(host, port).cloned().ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Denied,
                format!("{host}:{port} is not one of this account's servers"),
            )
        })?;
        if self.open_connections >= MAX_CONNECTIONS {
            return Err(ConnectorError::new(
                ErrorKind::Denied,
                format!("a job may hold at most {MAX_CONNECTIONS} connections"),
            ));
        }
        let role = server.role.clone();
        self.last_server = Some(role.clone());
        let tls_config = self.tls.client_config(account.allow_insecure_certificate);
        let implicit_tls = matches!(encryption, types::Encryption::Ssl);
        Connection::open(server, implicit_tls, tls_config, &self.net)
            .await
            .map_err(|e| e.on_server(role))
    }

    fn connection(
        &mut self,
        connection: &Resource<Connection>,
    ) -> wasmtime::Result<&mut Connection> {
        Ok(self.table.get_mut(connection)?)
    }
}

impl net::HostConnection for JobState {
    async fn read(&mut self, connection: Resource<Connection>, max: u32) -> Wit<Vec<u8>> {
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        Ok(connection
            .read(max as usize)
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn write(&mut self, connection: Resource<Connection>, data: Vec<u8>) -> Wit<()> {
        let connection = self.connection(&connection)?;
        connection.guard.observe(&data);
        let role = connection.server.role.clone();
        Ok(connection
            .write_all(&data)
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn start_tls(&mut self, connection: Resource<Connection>) -> Wit<()> {
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        Ok(connection
            .start_tls()
            .await
            .map_err(|e| e.on_server(role).into()))
    }

    async fn is_tls(&mut self, connection: Resource<Connection>) -> wasmtime::Result<bool> {
        Ok(self.connection(&connection)?.is_tls())
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open_connections -= 1;
        Ok(())
    }
}

impl auth::Host for JobState {
    async fn authenticate(
        &mut self,
        connection: Resource<Connection>,
        protocol: auth::Protocol,
        mechanisms: Vec<String>,
    ) -> Wit<String> {
        let credentials = self.account.as_ref().and_then(|a| a.credentials.clone());
        let connection = self.connection(&connection)?;
        let role = connection.server.role.clone();
        let Some(credentials) = credentials else {
            return Ok(Err(ConnectorError::new(
                ErrorKind::Denied,
                "this account has no password to log in with",
            )
            .on_server(role)
            .into()));
        };
        let protocol = match protocol {
            auth::Protocol::Imap => Protocol::Imap,
            auth::Protocol::Smtp => Protocol::Smtp,
        };
        Ok(
            crate::auth::authenticate(connection, protocol, &mechanisms, &credentials)
                .await
                .map_err(|e| e.on_server(role).into()),
        )
    }
}

impl mail::Host for JobState {
    async fn held(&mut self, folder: String) -> wasmtime::Result<Vec<mail::HeldRange>> {
        let started = Instant::now();
        let lookup = self.account.as_ref().and_then(|a| a.held.clone());
        let held = match lookup {
            Some(lookup) => lookup(folder).await,
            None => Vec::new(),
        };
        self.charge_since(started)?;
        Ok(held
            .into_iter()
            .map(|range| mail::HeldRange {
                first: range.first,
                last: range.last,
                flags: super::sync::flags_to_wit(range.flags),
            })
            .collect())
    }

    async fn known(&mut self, probes: Vec<mail::MessageProbe>) -> wasmtime::Result<Vec<bool>> {
        if probes.len() > MAX_PROBES {
            return Err(wasmtime::Error::msg(format!(
                "a connector asked about {} messages at once; at most {MAX_PROBES} are answered",
                probes.len()
            )));
        }
        let started = Instant::now();
        // A Message-ID longer than a header line can hold is no message's.
        let probes: Vec<(String, u64)> = probes
            .into_iter()
            .map(|p| (truncate(p.message_id, MAX_LINE_BYTES), p.size))
            .collect();
        let lookup = self.account.as_ref().and_then(|a| a.known.clone());
        let known = match lookup {
            Some(lookup) => lookup(probes).await,
            None => vec![false; probes.len()],
        };
        self.charge_since(started)?;
        Ok(known)
    }
}

impl mail::HostBodySink for JobState {
    async fn new(&mut self, size: u64) -> wasmtime::Result<Resource<BodySink>> {
        let sink = BodySink::new(
            self.sinks.clone(),
            self.live_sinks.clone(),
            size,
            self.sink_memory_share,
        );
        match sink {
            Ok(sink) => Ok(self.table.push(sink)?),
            // A sink the host refuses ends the job with a clear reason rather than an error
            // value the connector might ignore.
            Err(reason) => Err(wasmtime::Error::new(Denied(reason))),
        }
    }

    async fn write(&mut self, sink: Resource<BodySink>, data: Vec<u8>) -> Wit<()> {
        let started = Instant::now();
        let written = self.table.get_mut(&sink)?.write(&data);
        self.charge_since(started)?;
        Ok(written.map_err(|message| ConnectorError::new(ErrorKind::Denied, message).into()))
    }

    async fn drop(&mut self, sink: Resource<BodySink>) -> wasmtime::Result<()> {
        self.table.delete(sink)?;
        Ok(())
    }
}

impl log::Host for JobState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.log_budget == 0 {
            return Ok(());
        }
        // One call is one log line: a newline or escape sequence in it cannot forge others.
        let mut message = escape_controls(&message);
        if message.len() > self.log_budget {
            let mut end = self.log_budget;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [log budget used up]");
        }
        self.log_budget = self.log_budget.saturating_sub(message.len());
        let connector = self.connector_id.as_str();
        match level {
            log::Level::Debug => {
                tracing::debug!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "mailroom::connector", connector, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "mailroom::connector", connector, "{message}")
            }
        }
        Ok(())
    }
}

impl From<ConnectorError> for types::Error {
    fn from(error: ConnectorError) -> Self {
        use types::ErrorKind as W;
        let kind = match error.kind {
            ErrorKind::AuthFailed => W::AuthFailed,
            ErrorKind::Tls => W::Tls,
            ErrorKind::Dns => W::Dns,
            ErrorKind::Connect => W::Connect,
            ErrorKind::Timeout => W::Timeout,
            ErrorKind::Protocol => W::Protocol,
            ErrorKind::RateLimited => W::RateLimited,
            ErrorKind::NotFound => W::NotFound,
            ErrorKind::Unsupported => W::Unsupported,
            ErrorKind::Denied | ErrorKind::Connector | ErrorKind::Internal => W::Denied,
        };
        types::Error {
            kind,
            message: error.message,
            server: error.server,
            retry_after_secs: error.retry_after_secs,
        }
    }
}

impl From<types::Error> for ConnectorError {
    fn from(error: types::Error) -> Self {
        use types::ErrorKind as W;
        let kind = match error.kind {
            W::AuthFailed => ErrorKind::AuthFailed,
            W::Tls => ErrorKind::Tls,
            W::Dns => ErrorKind::Dns,
            W::Connect => ErrorKind::Connect,
            W::Timeout => ErrorKind::Timeout,
            W::Protocol => ErrorKind::Protocol,
            W::RateLimited => ErrorKind::RateLimited,
            W::NotFound => ErrorKind::NotFound,
            W::Unsupported => ErrorKind::Unsupported,
            W::Denied => ErrorKind::Denied,
        };
        ConnectorError {
            kind,
            message: truncate(error.message, 2000),
            server: error.server.map(|s| truncate(s, 64)),
            retry_after_secs: error.retry_after_secs,
        }
    }
}

impl From<Encryption> for types::Encryption {
    fn from(encryption: Encryption) -> Self {
        match encryption {
            Encryption::Ssl => Self::Ssl,
            Encryption::Starttls => Self::Starttls,
            Encryption::None => Self::None,
        }
    }
}

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
