//! One connection to an account's server, opened by the host for a connector.
//!
//! The connector reads and writes raw bytes through it; the host reads and writes on the same
//! connection when it authenticates (see [`crate::auth`]). Bytes the host reads ahead stay in
//! the connection's buffer and reach the connector next, in order.

use super::policy::{NetPolicy, resolve};
use crate::connector::{ConnectorError, ErrorKind};
use crate::endpoint::{Encryption, ServerSpec};
use crate::net::preauth::{PreAuthGuard, Protocol};
use bytes::BufMut;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The most a single read hands to the connector.
const MAX_READ: usize = 256 * 1024;
/// What a wait for the server reads at most: one TLS record.
const WAIT_READ: usize = 16 * 1024;

/// A connection to a server, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Resolves `host` under the policy and connects to the first address that answers.
pub async fn dial(host: &str, port: u16, policy: &NetPolicy) -> Result<TcpStream, ConnectorError> {
    let addrs = resolve(host, port, policy).await?;
    let mut last_error = None;
    for addr in addrs {
        match tokio::time::timeout(policy.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last_error = Some(ConnectorError::new(
                    ErrorKind::Connect,
                    format!("cannot connect to {host}:{port}: {e}"),
                ));
            }
            Err(_) => {
                last_error = Some(ConnectorError::new(
                    ErrorKind::Timeout,
                    format!(
                        "connecting to {host}:{port} timed out after {:?}",
                        policy.connect_timeout
                    ),
                ));
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| ConnectorError::new(ErrorKind::Connect, "no address to connect to")))
}

/// The TLS handshake with `host` (a name, or an address literal) over `tcp`.
pub async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, ConnectorError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let name = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => ServerName::try_from(host.to_owned()).map_err(|_| {
            ConnectorError::new(
                ErrorKind::Tls,
                format!("{host} is not a valid TLS server name"),
            )
        })?,
    };
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(ConnectorError::new(
            ErrorKind::Tls,
            format!(
                "TLS handshake with {host}:{port} failed: {}",
                describe_tls_error(&e)
            ),
        )),
        Err(_) => Err(ConnectorError::new(
            ErrorKind::Timeout,
            format!("TLS handshake with {host}:{port} timed out"),
        )),
    }
}

pub struct Connection {
    /// `None` only while a STARTTLS handshake is under way (or after it failed).
    stream: Option<Stream>,
    /// Bytes read from the server that nobody has consumed yet.
    buffer: Vec<u8>,
    /// The account's server this connection goes to.
    pub server: ServerSpec,
    tls_config: Arc<ClientConfig>,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// What the connector has written, as far as authentication needs to know.
    pub guard: PreAuthGuard,
    /// Who the host logged in as on this connection, once a login succeeded.
    pub logged_in: Option<LoggedIn>,
}

/// A login the host ran on a connection: the protocol, and a digest of the credentials
/// (never the credentials), so that a kept connection goes only to jobs logging in alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub protocol: Protocol,
    pub credentials: [u8; 32],
}

impl Connection {
    /// Connects to `server` (already checked against the job's allow-list), doing the TLS
    /// handshake first when `implicit_tls` is set.
    pub async fn open(
        server: ServerSpec,
        implicit_tls: bool,
        tls_config: Arc<ClientConfig>,
        policy: &NetPolicy,
    ) -> Result<Self, ConnectorError> {
        let tcp = dial(&server.host, server.port, policy).await?;
        let mut connection = Self {
            stream: Some(Stream::Plain(tcp)),
            buffer: Vec::new(),
            server,
            tls_config,
            connect_timeout: policy.connect_timeout,
            io_timeout: policy.io_timeout,
            guard: PreAuthGuard::default(),
            logged_in: None,
        };
        if implicit_tls {
            connection.start_tls().await?;
        }
        Ok(connection)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// Whether a credential may be sent on this connection: over TLS, or in plaintext only
    /// when the account chose no encryption for this server.
    pub fn may_carry_credentials(&self) -> bool {
        self.is_tls() || self.server.encryption == Encryption::None
    }

    /// Upgrades to TLS. Anything buffered before the handshake is discarded: a server (or a
    /// man in the middle) must not be able to inject responses that appear to come after it.
    pub async fn start_tls(&mut self) -> Result<(), ConnectorError> {
        let tcp = match self.stream.take() {
            Some(Stream::Plain(tcp)) => tcp,
            Some(tls @ Stream::Tls(_)) => {
                self.stream = Some(tls);
                return Err(ConnectorError::new(
                    ErrorKind::Tls,
                    "the connection is already protected by TLS",
                ));
            }
            None => return Err(self.closed()),
        };
        self.buffer.clear();
        let tls = handshake(
            self.tls_config.clone(),
            &self.server.host,
            self.server.port,
            tcp,
            self.connect_timeout,
        )
        .await?;
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }

    /// At most `max` bytes (at least one), or none when the server closed the connection.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, ConnectorError> {
        let max = max.clamp(1, MAX_READ);
        if self.buffer.is_empty() {
            self.fill(max).await?;
            return Ok(std::mem::take(&mut self.buffer));
        }
        let n = max.min(self.buffer.len());
        Ok(self.buffer.drain(..n).collect())
    }

    /// Waits at most `limit` for the server to send something or close the connection;
    /// whether it did. What arrives is buffered for the next `read`. Waiting without a
    /// command in flight (IMAP IDLE) is not a stalled server, so the I/O timeout does not
    /// apply.
    pub async fn readable(&mut self, limit: Duration) -> Result<bool, ConnectorError> {
        if !self.buffer.is_empty() {
            return Ok(true);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.closed());
        };
        // One TLS record; a watched connection hears little, and thousands of them wait.
        self.buffer.reserve(WAIT_READ);
        let mut spare = (&mut self.buffer).limit(WAIT_READ);
        match tokio::time::timeout(limit, stream.read_buf(&mut spare)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(error)) => Err(self.io_error("reading from", error)),
            Err(_) => Ok(false),
        }
    }

    /// One line from the server, with its line ending; for the host's own exchanges.
    pub async fn read_line(&mut self, max_len: usize) -> Result<Vec<u8>, ConnectorError> {
        let mut searched = 0;
        loop {
            if let Some(end) = self.buffer[searched..].iter().position(|&b| b == b'\n') {
                return Ok(self.buffer.drain(..=searched + end).collect());
            }
            searched = self.buffer.len();
            if self.buffer.len() > max_len {
                return Err(ConnectorError::new(
                    ErrorKind::Protocol,
                    "the server sent an over-long line",
                ));
            }
            if self.fill(16 * 1024).await? == 0 {
                return Err(ConnectorError::new(
                    ErrorKind::Connect,
                    format!(
                        "{}:{} closed the connection",
                        self.server.host, self.server.port
                    ),
                ));
            }
        }
    }

    /// Reads and throws away `n` bytes (an IMAP literal the host does not need).
    pub async fn skip(&mut self, mut n: usize) -> Result<(), ConnectorError> {
        loop {
            let buffered = n.min(self.buffer.len());
            self.buffer.drain(..buffered);
            n -= buffered;
            if n == 0 {
                return Ok(());
            }
            if self.fill(n.min(64 * 1024)).await? == 0 {
                return Err(self.closed());
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectorError> {
        let io_timeout = self.io_timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.closed());
        };
        let result = timed(io_timeout, async {
            stream.write_all(data).await?;
            stream.flush().await
        })
        .await;
        result.map_err(|e| self.io_error("writing to", e))
    }

    /// Reads at most `max` more bytes onto the end of the buffer, into its spare capacity
    /// (a buffer zeroed first would be written twice); 0 when the server closed the
    /// connection.
    async fn fill(&mut self, max: usize) -> Result<usize, ConnectorError> {
        let io_timeout = self.io_timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.closed());
        };
        self.buffer.reserve(max);
        let mut spare = (&mut self.buffer).limit(max);
        let result = timed(io_timeout, stream.read_buf(&mut spare)).await;
        result.map_err(|e| self.io_error("reading from", e))
    }

    fn io_error(&self, doing: &str, error: io::Error) -> ConnectorError {
        let server = format!("{}:{}", self.server.host, self.server.port);
        if error.kind() == io::ErrorKind::TimedOut {
            ConnectorError::new(
                ErrorKind::Timeout,
                format!("{server} did not answer within {:?}", self.io_timeout),
            )
        } else {
            ConnectorError::new(
                ErrorKind::Connect,
                format!("{doing} {server} failed: {error}"),
            )
        }
    }

    fn closed(&self) -> ConnectorError {
        ConnectorError::new(ErrorKind::Connect, "the connection is closed")
    }
}

async fn timed<T>(
    limit: Duration,
    operation: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// The interesting part of a handshake error: rustls' own error, not the io wrapper.
fn describe_tls_error(error: &io::Error) -> String {
    match error.get_ref() {
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    }
}
