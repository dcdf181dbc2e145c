//! HTTP requests the host sends: a connector's `wasi:http` requests once the runtime's policy
//! allowed them, and the OAuth token requests.
//!
//! Each request gets a connection of its own, dialled as a mail connection is (the name
//! resolved and every address checked by the policy), TLS done with the host's [`TlsPolicy`] (the operator's
//! CA file included), and plain HTTP is used only where the caller allowed it. The response
//! body is capped; reading past the cap fails the body.

use super::connection::{Stream, dial, handshake};
use super::policy::NetPolicy;
use super::tls::TlsPolicy;
use crate::connector::{ConnectorError, ErrorKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::net::IpAddr;

/// A response whose body is read as it arrives, at most the client's cap.
pub type Response = http::Response<Limited<hyper::body::Incoming>>;

/// Sends requests under the host's network and TLS policy.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pub net: NetPolicy,
    pub tls: TlsPolicy,
    /// The most a response body may hold, in bytes.
    pub max_response_bytes: usize,
    /// Where plain HTTP may go; anything else is HTTPS.
    pub plain: PlainHttp,
}

/// Where a client may send plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    Never,
    /// To loopback addresses (`net.http_plain_loopback`, for tests against local fakes).
    Loopback,
    /// Anywhere (webhooks, while `webhooks.allow_http`).
    Anywhere,
}

/// Where a request goes: its scheme, host (lower case, IPv6 without brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URI.
    pub fn of(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Self { https, host, port })
    }

    /// The origin of a URL string, when it is an absolute `http` or `https` URL.
    pub fn parse(url: &str) -> Option<Self> {
        Self::of(&url.parse().ok()?)
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl HttpClient {
    /// Whether a request may go to `origin` at all: HTTPS, or plain HTTP where
    /// [`HttpClient::plain`] allows it.
    pub fn scheme_allowed(&self, origin: &Origin) -> bool {
        origin.https
            || match self.plain {
                PlainHttp::Never => false,
                PlainHttp::Loopback => origin.is_loopback(),
                PlainHttp::Anywhere => true,
            }
    }

    /// Sends `request` (an absolute URI) on a connection of its own and waits for the
    /// response's head, connecting included, at most `deadline`. The body is read by the
    /// caller, capped. Refuses what [`HttpClient::open`] refuses.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        private_allowed: bool,
        deadline: std::time::Duration,
    ) -> Result<Response, ConnectorError> {
        let origin = Origin::of(request.uri()).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Denied,
                format!("`{}` is not an absolute http(s) URL", request.uri()),
            )
        })?;
        let started = std::time::Instant::now();
        let mut connection = self.open(&origin, private_allowed, deadline).await?;
        connection
            .send(request, deadline.saturating_sub(started.elapsed()))
            .await
    }

    /// Opens an HTTP/1.1 connection to `origin` within `deadline`, for requests one after
    /// another. Refuses plain HTTP but where [`HttpClient::scheme_allowed`] allows it, and
    /// private and loopback addresses unless `private_allowed` (and the operator's
    /// `net.allow_private_networks`).
    pub async fn open(
        &self,
        origin: &Origin,
        private_allowed: bool,
        deadline: std::time::Duration,
    ) -> Result<Connection, ConnectorError> {
        if !self.scheme_allowed(origin) {
            return Err(ConnectorError::new(
                ErrorKind::Denied,
                format!("plain HTTP to {} is not allowed: use HTTPS", origin.host),
            ));
        }
        let opening = async {
            let stream = self.connect(origin, private_allowed).await?;
            let (sender, connection) = hyper::client::conn::http1::handshake(stream)
                .await
                .map_err(|e| transport(origin, e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(Connection {
                origin: origin.clone(),
                sender,
                max_response_bytes: self.max_response_bytes,
            })
        };
        tokio::time::timeout(deadline, opening)
            .await
            .map_err(|_| late(origin))?
    }

    /// Sends `request` and reads its whole answer, each within `deadline`.
    pub async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
        private_allowed: bool,
        deadline: std::time::Duration,
    ) -> Result<http::Response<Bytes>, ConnectorError> {
        let response = self.send(request, private_allowed, deadline).await?;
        let (parts, body) = response.into_parts();
        let body = read_body(body, deadline).await?;
        Ok(http::Response::from_parts(parts, body))
    }

    async fn connect(
        &self,
        origin: &Origin,
        private_allowed: bool,
    ) -> Result<TokioIo<Stream>, ConnectorError> {
        let mut net = self.net.clone();
        net.allow_private_networks &= private_allowed;
        let tcp = dial(&origin.host, origin.port, &net).await?;
        if !origin.https {
            return Ok(TokioIo::new(Stream::Plain(tcp)));
        }
        let config = self.tls.client_config(false);
        let timeout = self.net.connect_timeout;
        let tls = handshake(config, &origin.host, origin.port, tcp, timeout).await?;
        Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
    }
}

/// An open HTTP/1.1 connection to one origin ([`HttpClient::open`]).
pub struct Connection {
    origin: Origin,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    max_response_bytes: usize,
}

impl Connection {
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the other side closed it (or it failed): no request can go on it.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends `request`, whose URI is absolute and on this connection's origin, and waits
    /// for the response's head at most `deadline`. The body is read by the caller, capped;
    /// the next request goes once it is read.
    pub async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
        deadline: std::time::Duration,
    ) -> Result<Response, ConnectorError> {
        let origin = &self.origin;
        if Origin::of(request.uri()).as_ref() != Some(origin) {
            return Err(ConnectorError::new(
                ErrorKind::Denied,
                format!("`{}` is not on {}", request.uri(), origin.host),
            ));
        }
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut request = http::Request::from_parts(parts, body);
        *request.uri_mut() = path
            .parse()
            .map_err(|_| ConnectorError::new(ErrorKind::Protocol, "the request URI is invalid"))?;
        if !request.headers().contains_key(http::header::HOST) {
            let host = match (origin.https, origin.port) {
                (true, 443) | (false, 80) => bracketed(&origin.host),
                (_, port) => format!("{}:{port}", bracketed(&origin.host)),
            };
            if let Ok(value) = http::HeaderValue::from_str(&host) {
                request.headers_mut().insert(http::header::HOST, value);
            }
        }
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await.map_err(|e| transport(origin, e))?;
            sender
                .send_request(request)
                .await
                .map_err(|e| transport(origin, e))
        };
        let response = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| late(origin))??;
        let cap = self.max_response_bytes;
        Ok(response.map(|body| Limited::new(body, cap)))
    }
}

fn late(origin: &Origin) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Timeout,
        format!("{} did not answer in time", origin.host),
    )
}

/// Reads a whole capped body, for at most `deadline`.
pub async fn read_body(
    body: Limited<hyper::body::Incoming>,
    deadline: std::time::Duration,
) -> Result<Bytes, ConnectorError> {
    tokio::time::timeout(deadline, body.collect())
        .await
        .map_err(|_| {
            ConnectorError::new(ErrorKind::Timeout, "the response did not arrive in time")
        })?
        .map(|collected| collected.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ConnectorError::new(ErrorKind::Protocol, "the response is larger than allowed")
            } else {
                ConnectorError::new(
                    ErrorKind::Connect,
                    format!("reading the response failed: {e}"),
                )
            }
        })
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn transport(origin: &Origin, error: hyper::Error) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Connect,
        format!("HTTP exchange with {} failed: {error}", origin.host),
    )
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn origins_carry_scheme_host_and_default_port() {
        let origin = Origin::parse("https://Gmail.GoogleAPIs.com/gmail/v1").unwrap();
        assert_eq!(
            origin,
            Origin {
                https: true,
                host: "gmail.googleapis.com".into(),
                port: 443
            }
        );
        let loopback = Origin::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((loopback.https, loopback.port), (false, 8080));
        assert!(loopback.is_loopback());
        assert!(Origin::parse("ftp://example.com/").is_none());
        assert!(Origin::parse("/relative").is_none());
    }
}
