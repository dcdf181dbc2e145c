//! The HTTPS listener: one tokio task accepts on 127.0.0.1, and each
//! connection gets a task of its own running TLS and hyper's HTTP/1.1 with
//! keep-alive. Everything stops when the stop signal is raised or its sender
//! (held by the last `FakeGoogle` handle) is dropped.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::state::Shared;

/// Binds a free loopback port, starts accepting, and returns the address.
pub(crate) async fn spawn(
    shared: Arc<Shared>,
    tls: Arc<ServerConfig>,
    stop: watch::Receiver<bool>,
) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind the fake Google to 127.0.0.1");
    let addr = listener.local_addr().expect("the listener's address");
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(accept_loop(listener, acceptor, shared, stop));
    addr
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let connection_stop = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(
                        tcp,
                        acceptor.clone(),
                        shared.clone(),
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

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let serve = async move {
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let service = service_fn(move |request| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(api::handle(&shared, request).await) }
        });
        // A client that goes away mid-request is no concern of the fake's.
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
