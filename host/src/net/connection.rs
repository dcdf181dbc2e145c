//! One connection to an account's server, opened by the host for a connector.
//!
//! The connector reads and writes raw bytes through it; the host reads and writes on the same
//! connection when it authenticates (see [`crate::auth`]). Bytes the host reads ahead stay in
//! the connection's buffer and reach the connector next, in order.

use super::policy::{NetPolicy, resolve};
use crate::connector::{ConnectorError, ErrorKind};
use crate::endpoint::{Encryption, ServerSpec};
use crate::net::preauth::PreAuthGuard;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The most a single read hands to the connector.
const MAX_READ: usize = 256 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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
        let addrs = resolve(&server.host, server.port, policy).await?;
        let mut last_error = None;
        let mut tcp = None;
        for addr in addrs {
            match tokio::time::timeout(policy.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => {
                    let kind = ErrorKind::Connect;
                    last_error = Some(ConnectorError::new(
                        kind,
                        format!("cannot connect to {}:{}: {e}", server.host, server.port),
                    ));
                }
                Err(_) => {
                    last_error = Some(ConnectorError::new(
                        ErrorKind::Timeout,
                        format!(
                            "connecting to {}:{} timed out after {:?}",
                            server.host, server.port, policy.connect_timeout
                        ),
                    ));
                }
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_error.unwrap_or_else(|| {
                ConnectorError::new(ErrorKind::Connect, "no address to connect to")
            }));
        };
        let _ = tcp.set_nodelay(true);
        let mut connection = Self {
            stream: Some(Stream::Plain(tcp)),
            buffer: Vec::new(),
            server,
            tls_config,
            connect_timeout: policy.connect_timeout,
            io_timeout: policy.io_timeout,
            guard: PreAuthGuard::default(),
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
        let name = ServerName::try_from(self.server.host.clone()).map_err(|_| {
            ConnectorError::new(
                ErrorKind::Tls,
                format!("{} is not a valid TLS server name", self.server.host),
            )
        })?;
        let connector = TlsConnector::from(self.tls_config.clone());
        match tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Some(Stream::Tls(Box::new(tls)));
                Ok(())
            }
            Ok(Err(e)) => Err(ConnectorError::new(
                ErrorKind::Tls,
                format!(
                    "TLS handshake with {}:{} failed: {}",
                    self.server.host,
                    self.server.port,
                    describe_tls_error(&e)
                ),
            )),
            Err(_) => Err(ConnectorError::new(
                ErrorKind::Timeout,
                format!(
                    "TLS handshake with {}:{} timed out",
                    self.server.host, self.server.port
                ),
            )),
        }
    }

    /// At most `max` bytes (at least one), or none when the server closed the connection.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, ConnectorError> {
        let max = max.clamp(1, MAX_READ);
        if !self.buffer.is_empty() {
            let n = max.min(self.buffer.len());
            return Ok(self.buffer.drain(..n).collect());
        }
        let mut chunk = vec![0; max];
        let n = self.read_some(&mut chunk).await?;
        chunk.truncate(n);
        Ok(chunk)
    }

    /// One line from the server, with its line ending; for the host's own exchanges.
    pub async fn read_line(&mut self, max_len: usize) -> Result<Vec<u8>, ConnectorError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                return Ok(self.buffer.drain(..=end).collect());
            }
            if self.buffer.len() > max_len {
                return Err(ConnectorError::new(
                    ErrorKind::Protocol,
                    "the server sent an over-long line",
                ));
            }
            let mut chunk = vec![0; 16 * 1024];
            let n = self.read_some(&mut chunk).await?;
            if n == 0 {
                return Err(ConnectorError::new(
                    ErrorKind::Connect,
                    format!(
                        "{}:{} closed the connection",
                        self.server.host, self.server.port
                    ),
                ));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectorError> {
        let io_timeout = self.io_timeout;
        let result = match self.stream.as_mut() {
            Some(Stream::Plain(s)) => {
                timed(io_timeout, async {
                    s.write_all(data).await?;
                    s.flush().await
                })
                .await
            }
            Some(Stream::Tls(s)) => {
                timed(io_timeout, async {
                    s.write_all(data).await?;
                    s.flush().await
                })
                .await
            }
            None => return Err(self.closed()),
        };
        result.map_err(|e| self.io_error("writing to", e))
    }

    async fn read_some(&mut self, chunk: &mut [u8]) -> Result<usize, ConnectorError> {
        let io_timeout = self.io_timeout;
        let result = match self.stream.as_mut() {
            Some(Stream::Plain(s)) => timed(io_timeout, s.read(chunk)).await,
            Some(Stream::Tls(s)) => timed(io_timeout, s.read(chunk)).await,
            None => return Err(self.closed()),
        };
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
