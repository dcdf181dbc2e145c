//! What the fakes' own tests use to reach them: TLS connections to
//! 127.0.0.1 that trust only a fake's certificate, the port of a fake's URL,
//! the query of a redirect, the token request that redeems a code, and the
//! check that a dropped fake stops listening.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Owned parameters from borrowed pairs.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// The token request that redeems `code` (RFC 6749 section 4.1.3, with
/// RFC 7636's `code_verifier`) for the client both fakes' `Options` default
/// to, its secret in the form.
pub fn code_redemption<'a>(
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
) -> [(&'a str, &'a str); 6] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("client_id", "mailroom-test-client"),
        ("client_secret", "mailroom-test-secret"),
    ]
}

/// The query parameters of a URL (none when it has no query).
///
/// # Panics
/// When the query does not parse.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(url.split_once('?').map_or("", |(_, query)| query))
        .expect("a well-formed query")
}

/// The port of a fake's `https://127.0.0.1:PORT` URL.
///
/// # Panics
/// When the URL does not end in a port.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port at the end of {url}"))
}

/// Opens TLS connections to a fake on 127.0.0.1, trusting only its
/// certificate (ring, TLS 1.2 and 1.3, server name 127.0.0.1).
#[derive(Clone)]
pub struct Dialer {
    port: u16,
    connector: TlsConnector,
}

impl Dialer {
    /// A dialer for the fake at 127.0.0.1:`port` presenting `cert_pem`.
    ///
    /// # Panics
    /// When `cert_pem` holds no certificate.
    pub fn new(port: u16, cert_pem: &str) -> Dialer {
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .expect("the fake's certificate in PEM");
        roots.add(cert).expect("a certificate rustls accepts");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Dialer {
            port,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// The fake's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new connection, its handshake done.
    ///
    /// # Panics
    /// When the fake does not accept it or the handshake fails.
    pub async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .await
            .expect("connect to the fake");
        let name = ServerName::try_from("127.0.0.1").expect("an IP address is a server name");
        self.connector
            .connect(name, tcp)
            .await
            .expect("a TLS handshake with the fake")
    }
}

/// Waits up to a second for 127.0.0.1:`port` to refuse connections.
///
/// # Panics
/// When it still accepts them: the fake serves after its last handle was
/// dropped.
pub async fn assert_stops_listening(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake still accepts connections after its last handle was dropped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_port_and_query() {
        assert_eq!(port_of("https://127.0.0.1:8443"), 8443);
        assert_eq!(
            query_of("http://127.0.0.1:9/cb?code=a+b&state=x"),
            pairs(&[("code", "a b"), ("state", "x")])
        );
        assert!(query_of("http://127.0.0.1:9/cb").is_empty());
    }
}
