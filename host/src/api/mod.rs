//! The HTTP API (docs/api.md): dispatch over the declared routes ([`routes::ROUTES`]),
//! authentication, and the mapping from domain results to JSON responses. Handlers return
//! `Result<Response, ApiError>`; errors become the API's error shape here and in
//! [`error::recover`], nowhere else.
//!
//! A request is matched on its path first: an unknown path is a 404, a known path with
//! another method a 405 that says in `Allow` which methods it has.

mod accounts;
pub mod auth;
mod body;
mod connection;
mod connectors;
pub mod error;
mod events;
mod messages;
mod oauth;
mod openapi;
mod outbox;
mod paging;
mod rate_limit;
mod records;
mod routes;
mod users;
mod webhooks;

use crate::runtime::Runtime;
use crate::store::{Remembered, Store};
use crate::sync::Scheduler;
use crate::vault::Vault;
use bytes::Bytes;
use error::ApiError;
use rate_limit::{ConcurrencyLimiter, RateLimiter};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tracing::Instrument;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::filters::path::FullPath;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::{Reply, Response};

pub use openapi::document as openapi_document;

/// What the handlers share: the server's parts ([`Services`], reached through the app)
/// and the API's own settings and limits.
pub struct App {
    services: Services,
    /// The rules webhook URLs follow.
    pub webhooks: crate::config::WebhooksConfig,
    /// Whether `/metrics` is open to anyone (`metrics.public`).
    pub metrics_public: bool,
    pub connection_tests: RateLimiter,
    pub tests_running: ConcurrencyLimiter,
    pub connection_test_timeout: std::time::Duration,
    pub max_accounts_per_owner: usize,
    pub max_body_bytes: u64,
    pub max_attachment_bytes: u64,
    /// One lock per `Idempotency-Key` in use, so a retry racing the first attempt waits for
    /// its result (and nothing else waits).
    idempotency: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Held while a user is changed, so two demotions cannot both see another admin left.
    pub user_changes: tokio::sync::Mutex<()>,

    /// Parsing and sanitizing whole messages runs off the request threads, this many at once.
    pub renders: Arc<tokio::sync::Semaphore>,
}

/// The parts of a running server the API drives.
pub struct Services {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub scheduler: Arc<Scheduler>,
    pub oauth: Arc<crate::oauth::Oauth>,
    pub deliverer: Arc<crate::webhooks::Deliverer>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::ops::Deref for App {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl App {
    pub fn new(services: Services, config: &crate::config::Config) -> Self {
        let webhooks = config.webhooks.clone();
        let metrics_public = config.metrics.public;
        let config = &config.api;
        Self {
            services,
            webhooks,
            metrics_public,
            connection_tests: RateLimiter::per_minute(
                "connection_tests",
                config.connection_tests_per_minute,
            ),
            tests_running: ConcurrencyLimiter::new(config.max_concurrent_tests_per_caller),
            connection_test_timeout: std::time::Duration::from_secs(
                config.connection_test_timeout_secs.max(1),
            ),
            max_accounts_per_owner: config.max_accounts_per_owner,
            max_body_bytes: config.max_body_bytes,
            max_attachment_bytes: config.max_attachment_bytes,
            renders: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            idempotency: std::sync::Mutex::new(HashMap::new()),
            user_changes: tokio::sync::Mutex::new(()),
        }
    }
}

/// `GET /metrics`: the Prometheus text format, for an admin or a service (anyone when
/// `metrics.public`).
async fn scrape(app: &App, caller: Option<&auth::Caller>) -> Result<Response, ApiError> {
    if !app.metrics_public {
        caller
            .ok_or_else(ApiError::unauthorized)?
            .admin_or_service("metrics are read by")?;
    }
    let text = app.metrics.render(app.store.as_ref()).await?;
    Ok(
        warp::reply::with_header(text, "content-type", crate::metrics::CONTENT_TYPE)
            .into_response(),
    )
}

pub fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

pub fn json_status<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// A `true`/`false` query parameter; absent or empty is `None`.
pub fn query_flag(query: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid(name, "must be true or false")),
    }
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A request body, or why it was refused.
type Body = Result<Bytes, ApiError>;

/// Reads a body of at most `max` bytes; a larger one is a 413 with `too_large_code`.
async fn read_body<B: bytes::Buf>(
    length: Option<u64>,
    stream: impl futures::Stream<Item = Result<B, warp::Error>>,
    max: u64,
    too_large_code: &'static str,
) -> Body {
    use futures::StreamExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large_code,
            format!("the request body is larger than the {max} bytes this server accepts"),
        )
    };
    match length {
        None => {
            return Err(ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "the request needs a Content-Length header (chunked bodies are not accepted)",
            ));
        }
        Some(length) if length > max => return Err(too_large()),
        Some(_) => {}
    }
    let mut body = bytes::BytesMut::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
        if (body.len() + chunk.remaining()) as u64 > max {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Runs a creating request once per `Idempotency-Key` (per caller and endpoint, 24 hours):
/// a retry gets the first success again and does nothing twice.
async fn idempotent<F, Fut>(
    app: &App,
    caller: &auth::Caller,
    endpoint: &str,
    key: Option<String>,
    handler: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let Some(key) = key else {
        let (status, body) = handler().await?;
        return Ok(json_status(&body, status));
    };
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1-255 characters",
        ));
    }
    let stored_key = format!("{endpoint}\n{}\n{key}", caller.key());
    let lock = {
        let mut locks = app.idempotency.lock().expect("idempotency locks poisoned");
        locks.retain(|_, lock| lock.strong_count() > 0);
        match locks.get(&stored_key).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                locks.insert(stored_key.clone(), Arc::downgrade(&lock));
                lock
            }
        }
    };
    let _one_at_a_time = lock.lock().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Some(first) = app.store.remembered(&stored_key).await?
        && now - first.at_unix < 24 * 3600
    {
        let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
        return Ok(json_status(&first.body, status));
    }
    let (status, body) = handler().await?;
    app.store
        .remember(
            &stored_key,
            Remembered {
                at_unix: now,
                status: status.as_u16(),
                body: body.clone(),
            },
        )
        .await?;
    Ok(json_status(&body, status))
}

/// Every route of the API, with rejections turned into JSON errors.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method, path: FullPath, query: String, headers: HeaderMap, body| {
                let app = app.clone();
                async move {
                    let started = std::time::Instant::now();
                    let id = crate::id::new_id("req");
                    let span = tracing::info_span!("request", id = %id, method = %method, path = path.as_str());
                    let (route, mut response) =
                        dispatch(app.clone(), &method, path, query, headers, body)
                            .instrument(span.clone())
                            .await;
                    let status = response.status().as_u16();
                    let took = started.elapsed();
                    app.metrics.api_request(method.as_str(), route, status, took);
                    span.in_scope(|| {
                        tracing::info!(route, status, ms = took.as_millis() as u64, "answered");
                    });
                    if let Ok(value) = warp::http::HeaderValue::from_str(&id) {
                        response.headers_mut().insert("x-request-id", value);
                    }
                    response
                }
            },
        )
        .recover(error::recover)
        .unify()
        .map(Reply::into_response)
        .boxed()
}

/// A header as text, or a 400 naming it.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request(format!("the {name} header is malformed")))
        })
        .transpose()
}

/// What the metrics call a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Finds the route of a request, authenticates, reads what the route needs and runs it;
/// returns the route's path template (for the metrics) with the answer.
async fn dispatch<B: bytes::Buf>(
    app: Arc<App>,
    method: &Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    body: impl futures::Stream<Item = Result<B, warp::Error>>,
) -> (&'static str, Response) {
    let path = path.as_str();
    let mut candidates: Vec<(&routes::Route, Vec<String>, usize)> = routes::ROUTES
        .iter()
        .filter_map(|route| {
            route
                .matches(path)
                .map(|(params, literal)| (route, params, literal))
        })
        .collect();
    if candidates.is_empty() {
        return (UNMATCHED, ApiError::no_endpoint().into_response());
    }
    // The most literal match wins: `/v1/accounts/test` is not an account's path.
    let most_literal = candidates.iter().map(|(_, _, literal)| *literal).max();
    candidates.retain(|(_, _, literal)| Some(*literal) == most_literal);
    let wanted = method.as_str().to_ascii_lowercase();
    let Some(index) = candidates
        .iter()
        .position(|(route, _, _)| route.method == wanted)
    else {
        let mut allowed: Vec<String> = candidates
            .iter()
            .map(|(route, _, _)| route.method.to_ascii_uppercase())
            .collect();
        allowed.sort();
        allowed.dedup();
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method",
        )
        .into_response();
        if let Ok(allow) = warp::http::HeaderValue::from_str(&allowed.join(", ")) {
            response
                .headers_mut()
                .insert(warp::http::header::ALLOW, allow);
        }
        return (UNMATCHED, response);
    };
    let (route, params, _) = candidates.swap_remove(index);
    let call = async {
        let query = if route.reads_query() {
            serde_urlencoded::from_str::<HashMap<String, String>>(&query)
                .map_err(|_| ApiError::bad_request("the query string is malformed"))?
        } else {
            HashMap::new()
        };
        let anonymous = route.token_optional && !headers.contains_key("authorization");
        let caller = if route.auth && !anonymous {
            let authorization = header(&headers, "authorization")?;
            let act_as = header(&headers, "x-mailroom-user")?;
            Some(
                auth::authenticate(
                    app.store.as_ref(),
                    authorization.as_deref(),
                    act_as.as_deref(),
                )
                .await?,
            )
        } else {
            None
        };
        let idempotency_key = if route.idempotent {
            header(&headers, "idempotency-key")?
        } else {
            None
        };
        let body = match route.body {
            Some(_) => {
                let length = header(&headers, "content-length")?
                    .map(|v| v.trim().parse::<u64>())
                    .transpose()
                    .map_err(|_| ApiError::bad_request("the content-length header is malformed"))?;
                let max = match route.body_limit {
                    routes::BodyLimit::Standard => app.max_body_bytes,
                    // Attachments come base64-encoded in the body.
                    routes::BodyLimit::WithAttachments => {
                        app.max_body_bytes + app.max_attachment_bytes * 4 / 3 + 64 * 1024
                    }
                    routes::BodyLimit::Component => app.runtime.max_component_bytes() as u64,
                };
                read_body(length, body, max, route.body_limit.too_large_code()).await?
            }
            None => Bytes::new(),
        };
        let content_type = match route.body {
            Some(_) => header(&headers, "content-type")?,
            None => None,
        };
        let accept = header(&headers, "accept")?;
        (route.handler)(routes::Call {
            app: app.clone(),
            caller,
            params,
            query,
            body,
            content_type,
            accept,
            idempotency_key,
        })
        .await
    };
    (route.path, call.await.unwrap_or_else(Reply::into_response))
}
