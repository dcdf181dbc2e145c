//! A CRM's webhook endpoint for the tests: plain HTTP on loopback, answering with the status
//! the test sets, keeping every request it was sent, and checking each with the Standard
//! Webhooks library the way a receiver would; and an endpoint's deliveries as the API lists
//! them.

use crate::mailroom::Api;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// One request as the endpoint received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The status the endpoint answered.
    pub answered: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The `webhook-id` header.
    pub fn id(&self) -> String {
        header(&self.headers, "webhook-id")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a delivery's body is JSON")
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

struct State {
    status: AtomicU16,
    received: Mutex<Vec<Received>>,
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// The tasks serving them.
    serving: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A listening endpoint; dropping it stops it.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on a free loopback port, answering `status` until told otherwise.
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(State {
            status: AtomicU16::new(status),
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            serving: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let state = serving.clone();
                let task = tokio::spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
                serving.serving.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, state, task }
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.addr.port())
    }

    /// Registers this endpoint with Mailroom for `events`; the webhook's id.
    pub async fn subscribe(&self, api: &Api, events: &[&str]) -> String {
        let registered = api
            .post(
                "/v1/webhooks",
                serde_json::json!({"url": self.url(), "events": events}),
            )
            .await;
        assert_eq!(registered.status.as_u16(), 201, "{}", registered.body);
        registered.body["id"].as_str().expect("an id").to_owned()
    }

    /// The status every request is answered with from now on.
    pub fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// How many connections the endpoint has taken.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Closes every open connection, as a server does with idle ones.
    pub fn drop_connections(&self) {
        for task in self.state.serving.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Every request so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The deliveries the endpoint accepted (answered 2xx), each once: de-duplicated by
    /// `webhook-id` as a receiver does, in the order they were accepted.
    pub fn accepted(&self) -> Vec<Received> {
        let mut seen = HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered) && seen.insert(r.id()))
            .collect()
    }

    /// Waits until `done` holds for the accepted deliveries; returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; accepted {} of {} requests",
                accepted.len(),
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let status = state.status.load(Ordering::SeqCst);
    state.received.lock().unwrap().push(Received {
        headers: parts.headers,
        body,
        answered: status,
        at: Instant::now(),
    });
    let reply = if (200..300).contains(&status) {
        ""
    } else {
        "receiver unavailable"
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(reply.as_bytes())))
        .expect("a response"))
}

/// Checks a delivery's signature with the Standard Webhooks library under `secret`.
pub fn verify(secret: &str, delivery: &Received) -> Result<(), String> {
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
    webhook
        .verify(&delivery.body, &delivery.headers)
        .map_err(|e| e.to_string())
}

/// Every delivery of the endpoint `webhook`, newest first (all pages), as the admin sees them.
pub async fn deliveries(api: &Api, webhook: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!(
                "/v1/webhooks/{webhook}/deliveries?limit=500&cursor={cursor}"
            ))
            .await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{}", page.body);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return items,
        }
    }
}
