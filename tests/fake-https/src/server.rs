//! The HTTPS listener: a fresh self-signed certificate for 127.0.0.1 and
//! `localhost`, made with rcgen, presented by rustls, and hyper's HTTP/1.1
//! with keep-alive on tokio.
//!
//! [`HttpsServer::start`] binds a free loopback port; one task accepts and
//! each connection gets a task of its own. Everything stops when
//! [`HttpsServer::stop`] is called or the server is dropped.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A listening HTTPS server on 127.0.0.1. Dropping it stops it.
pub struct HttpsServer {
    addr: SocketAddr,
    cert_pem: String,
    stop: watch::Sender<bool>,
}

impl HttpsServer {
    /// Makes a certificate, binds 127.0.0.1 on a free port and serves every
    /// request with `handler` on the current tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound or the certificate cannot be made.
    pub async fn start<H, F, B>(handler: H) -> HttpsServer
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn Error + Send + Sync>>,
    {
        let identity = Identity::generate();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a fake provider to 127.0.0.1");
        let addr = listener.local_addr().expect("the listener's address");
        let acceptor = TlsAcceptor::from(identity.server_config());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, acceptor, handler, stopped));
        HttpsServer {
            addr,
            cert_pem: identity.cert_pem,
            stop,
        }
    }

    /// The bound address (127.0.0.1 and the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The self-signed certificate in PEM, for a client's trust store. Its
    /// subject alternative names are IP 127.0.0.1 and DNS `localhost`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Stops accepting connections and closes the open ones.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// The server's key pair and certificate.
struct Identity {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    /// A new key pair and certificate, valid from 1975 to 4096 (rcgen's
    /// defaults), with SANs IP 127.0.0.1 and DNS `localhost`.
    fn generate() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        Identity {
            cert_pem: certified.cert.pem(),
            cert_der: certified.cert.der().clone(),
            key_der: certified.key_pair.serialize_der(),
        }
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3,
    /// HTTP/1.1 by ALPN) presenting this certificate.
    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("rustls accepts rcgen's certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

async fn accept_loop<H, F, B>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let connection_stop = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(
                        tcp,
                        acceptor.clone(),
                        handler.clone(),
                        connection_stop.clone(),
                    ));
                }
                // Out of descriptors and the like: wait a little and go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = stopped(&mut stop) => return,
        }
    }
}

async fn serve_connection<H, F, B>(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    handler: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let _ = tcp.set_nodelay(true);
    let serve = async move {
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let service = service_fn(move |request| {
            let answer = handler(request);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        // A client that goes away mid-request is no concern of a fake's.
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(tls), service)
            .await;
    };
    tokio::select! {
        () = serve => {}
        () = stopped(&mut stop) => {}
    }
}

/// Resolves once the stop flag is raised or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
