//! The HTTP API (docs/api.md): routes, authentication, and the mapping from domain results to
//! JSON responses. Handlers return `Result<Response, ApiError>`; errors become the API's error
//! shape here and in [`error::recover`], nowhere else.
//!
//! Routes match the path before the method, so an unknown path is a 404 and a known path
//! with the wrong method a 405.

mod accounts;
pub mod auth;
mod body;
mod connectors;
pub mod error;
mod events;
mod messages;
mod openapi;
mod outbox;
mod paging;
mod rate_limit;
mod records;
mod users;

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
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

pub use openapi::document as openapi_document;

/// What the handlers share.
pub struct App {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub scheduler: Arc<Scheduler>,
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

impl App {
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        scheduler: Arc<Scheduler>,
        config: &crate::config::ApiConfig,
    ) -> Self {
        Self {
            runtime,
            store,
            vault,
            scheduler,
            connection_tests: RateLimiter::per_minute(config.connection_tests_per_minute),
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

pub fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

pub fn json_status<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A request body, or why it was refused.
type Body = Result<Bytes, ApiError>;

fn parse_json(body: Body) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(&body?)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// The request body, read up to `max` bytes. Size errors are answers of the route itself
/// rather than rejections, which warp would let another route's 405 outrank.
fn body(max: u64) -> impl Filter<Extract = (Body,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, stream| async move {
            Ok::<_, std::convert::Infallible>(read_body(length, stream, max).await)
        })
}

async fn read_body<B: bytes::Buf>(
    length: Option<u64>,
    stream: impl futures::Stream<Item = Result<B, warp::Error>>,
    max: u64,
) -> Body {
    use futures::StreamExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
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

/// What every authenticated route starts from.
#[derive(Clone)]
struct Request {
    app: Arc<App>,
    authorization: Option<String>,
    act_as: Option<String>,
}

impl Request {
    /// Authenticates, then runs `handler`; any error becomes the error shape.
    async fn run<F, Fut>(self, handler: F) -> Response
    where
        F: FnOnce(Arc<App>, auth::Caller) -> Fut,
        Fut: Future<Output = Result<Response, ApiError>>,
    {
        let result = async {
            let caller = auth::authenticate(
                self.app.store.as_ref(),
                self.authorization.as_deref(),
                self.act_as.as_deref(),
            )
            .await?;
            handler(self.app, caller).await
        }
        .await;
        result.unwrap_or_else(Reply::into_response)
    }
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
    let max_body = app.max_body_bytes;
    let max_attachment = app.max_attachment_bytes;
    let request = warp::any()
        .map(move || app.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("x-mailroom-user"))
        .map(|app, authorization, act_as| Request {
            app,
            authorization,
            act_as,
        });
    let query = || warp::query::<HashMap<String, String>>();
    let body = move || body(max_body);
    let idempotency_key = || warp::header::optional::<String>("idempotency-key");

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(&serde_json::json!({"status": "ok"})));
    let openapi = warp::path!("v1" / "openapi.json")
        .and(warp::get())
        .map(|| json(&openapi::document()));

    let connectors = warp::path!("v1" / "connectors")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|r: Request, q: HashMap<String, String>| {
            r.run(move |app, _caller| async move { connectors::list(&app, &q).await })
        });

    // Users and tokens.
    let create_user = warp::path!("v1" / "users")
        .and(warp::post())
        .and(request.clone())
        .and(body())
        .then(|r: Request, b: Body| {
            r.run(move |app, caller| async move {
                    users::create(&app, &caller, &parse_json(b)?).await
                })
        });
    let list_users = warp::path!("v1" / "users")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { users::list(&app, &caller, &q).await })
        });
    let get_user = warp::path!("v1" / "users" / String)
        .and(warp::get())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { users::get(&app, &caller, &id).await })
        });
    let update_user = warp::path!("v1" / "users" / String)
        .and(warp::patch())
        .and(request.clone())
        .and(body())
        .then(|id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                users::update(&app, &caller, &id, &parse_json(b)?).await
            })
        });
    let list_user_tokens = warp::path!("v1" / "users" / String / "tokens")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|id: String, r: Request, q: HashMap<String, String>| {
            r.run(
                move |app, caller| async move { users::list_tokens(&app, &caller, &id, &q).await },
            )
        });
    let revoke_user_token = warp::path!("v1" / "users" / String / "tokens" / String)
        .and(warp::delete())
        .and(request.clone())
        .then(|user: String, id: String, r: Request| {
            r.run(move |app, caller| async move {
                users::revoke_token(&app, &caller, Some(&user), &id).await
            })
        });
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(request.clone())
        .then(|r: Request| r.run(|app, caller| async move { users::me(&app, &caller).await }));
    let update_me = warp::path!("v1" / "me")
        .and(warp::patch())
        .and(request.clone())
        .and(body())
        .then(|r: Request, b: Body| {
            r.run(move |app, caller| async move {
                users::update_me(&app, &caller, &parse_json(b)?).await
            })
        });
    let create_token = warp::path!("v1" / "me" / "tokens")
        .and(warp::post())
        .and(request.clone())
        .and(body())
        .then(|r: Request, b: Body| {
            r.run(move |app, caller| async move {
                users::create_token(&app, &caller, &parse_json(b)?).await
            })
        });
    let revoke_token = warp::path!("v1" / "me" / "tokens" / String)
        .and(warp::delete())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move {
                    users::revoke_token(&app, &caller, None, &id).await
                })
        });

    // Accounts.
    let test_account = warp::path!("v1" / "accounts" / "test")
        .and(warp::post())
        .and(request.clone())
        .and(body())
        .then(|r: Request, b: Body| {
            r.run(move |app, caller| async move {
                accounts::test(&app, &caller, &parse_json(b)?).await
            })
        });
    let create_account = warp::path!("v1" / "accounts")
        .and(warp::post())
        .and(request.clone())
        .and(idempotency_key())
        .and(body())
        .then(|r: Request, key: Option<String>, b: Body| {
            r.run(move |app, caller| async move {
                let body = parse_json(b)?;
                idempotent(&app, &caller, "POST /v1/accounts", key, || {
                    accounts::create(&app, &caller, &body)
                })
                .await
            })
        });
    let list_accounts = warp::path!("v1" / "accounts")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { accounts::list(&app, &caller, &q).await })
        });
    let get_account = warp::path!("v1" / "accounts" / String)
        .and(warp::get())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { accounts::get(&app, &caller, &id).await })
        });
    let update_account = warp::path!("v1" / "accounts" / String)
        .and(warp::patch())
        .and(request.clone())
        .and(body())
        .then(|id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                accounts::update(&app, &caller, &id, &parse_json(b)?).await
            })
        });
    let delete_account = warp::path!("v1" / "accounts" / String)
        .and(warp::delete())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { accounts::delete(&app, &caller, &id).await })
        });
    let set_primary = warp::path!("v1" / "accounts" / String / "primary")
        .and(warp::put())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { accounts::set_primary(&app, &caller, &id).await })
        });
    let unset_primary = warp::path!("v1" / "accounts" / String / "primary")
        .and(warp::delete())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(
                move |app, caller| async move { accounts::unset_primary(&app, &caller, &id).await },
            )
        });
    let reconnect = warp::path!("v1" / "accounts" / String / "reconnect")
        .and(warp::post())
        .and(request.clone())
        .and(body())
        .then(|id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                accounts::reconnect(&app, &caller, &id, &parse_json(b)?).await
            })
        });
    let folders = warp::path!("v1" / "accounts" / String / "folders")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|id: String, r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { accounts::folders(&app, &caller, &id, &q).await })
        });

    let sync = warp::path!("v1" / "accounts" / String / "sync")
        .and(warp::post())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { accounts::sync(&app, &caller, &id).await })
        });

    // Messages and events.
    let list_messages = warp::path!("v1" / "accounts" / String / "messages")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|id: String, r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { messages::list(&app, &caller, &id, &q).await })
        });
    let get_message = warp::path!("v1" / "messages" / String)
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|id: String, r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { messages::get(&app, &caller, &id, &q).await })
        });
    let raw_message = warp::path!("v1" / "messages" / String / "raw")
        .and(warp::get())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { messages::raw(&app, &caller, &id).await })
        });
    let attachment = warp::path!("v1" / "messages" / String / "attachments" / String)
        .and(warp::get())
        .and(request.clone())
        .then(|id: String, attachment: String, r: Request| {
            r.run(move |app, caller| async move {
                messages::attachment(&app, &caller, &id, &attachment).await
            })
        });
    let update_message = warp::path!("v1" / "messages" / String)
        .and(warp::patch())
        .and(request.clone())
        .and(body())
        .then(|id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                messages::update(&app, &caller, &id, &parse_json(b)?).await
            })
        });
    let move_message = warp::path!("v1" / "messages" / String / "move")
        .and(warp::post())
        .and(request.clone())
        .and(body())
        .then(|id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                messages::move_to(&app, &caller, &id, &parse_json(b)?).await
            })
        });
    let delete_message = warp::path!("v1" / "messages" / String)
        .and(warp::delete())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { messages::delete(&app, &caller, &id).await })
        });
    // Attachments come base64-encoded in the body: it may be larger than elsewhere.
    let send_body_limit = max_body + max_attachment * 4 / 3 + 64 * 1024;
    let send = warp::path!("v1" / "accounts" / String / "send")
        .and(warp::post())
        .and(request.clone())
        .and(idempotency_key())
        .and(self::body(send_body_limit))
        .then(|id: String, r: Request, key: Option<String>, b: Body| {
            r.run(move |app, caller| async move {
                let body = parse_json(b)?;
                let endpoint = format!("POST /v1/accounts/{id}/send");
                let key_for_id = key.clone();
                idempotent(&app, &caller, &endpoint, key, || {
                    outbox::send(&app, &caller, &id, &body, key_for_id.as_deref())
                })
                .await
            })
        });
    let outbox_entry = warp::path!("v1" / "outbox" / String)
        .and(warp::get())
        .and(request.clone())
        .then(|id: String, r: Request| {
            r.run(move |app, caller| async move { outbox::get(&app, &caller, &id).await })
        });
    // Records.
    let put_record = warp::path!("v1" / "records" / String / String)
        .and(warp::put())
        .and(request.clone())
        .and(body())
        .then(|kind: String, id: String, r: Request, b: Body| {
            r.run(move |app, caller| async move {
                records::put(&app, &caller, &kind, &id, &parse_json(b)?).await
            })
        });
    let get_record = warp::path!("v1" / "records" / String / String)
        .and(warp::get())
        .and(request.clone())
        .then(|kind: String, id: String, r: Request| {
            r.run(move |app, caller| async move { records::get(&app, &caller, &kind, &id).await })
        });
    let delete_record = warp::path!("v1" / "records" / String / String)
        .and(warp::delete())
        .and(request.clone())
        .then(|kind: String, id: String, r: Request| {
            r.run(
                move |app, caller| async move { records::delete(&app, &caller, &kind, &id).await },
            )
        });
    let list_records = warp::path!("v1" / "records" / String)
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|kind: String, r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move {
                records::list_records(&app, &caller, &kind, &q).await
            })
        });
    let timeline = warp::path!("v1" / "records" / String / String / "messages")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(
            |kind: String, id: String, r: Request, q: HashMap<String, String>| {
                r.run(move |app, caller| async move {
                    records::timeline(&app, &caller, &kind, &id, &q).await
                })
            },
        );
    let timeline_message = warp::path!("v1" / "records" / String / String / "messages" / String)
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(
            |kind: String, id: String, message: String, r: Request, q: HashMap<String, String>| {
                r.run(move |app, caller| async move {
                    records::timeline_message(&app, &caller, &kind, &id, &message, &q).await
                })
            },
        );
    let timeline_attachment = warp::path!(
        "v1" / "records" / String / String / "messages" / String / "attachments" / String
    )
    .and(warp::get())
    .and(request.clone())
    .then(
        |kind: String, id: String, message: String, attachment: String, r: Request| {
            r.run(move |app, caller| async move {
                records::timeline_attachment(&app, &caller, &kind, &id, &message, &attachment).await
            })
        },
    );
    let events = warp::path!("v1" / "events")
        .and(warp::get())
        .and(request.clone())
        .and(query())
        .then(|r: Request, q: HashMap<String, String>| {
            r.run(move |app, caller| async move { events::list(&app, &caller, &q).await })
        });

    let routes: [BoxedFilter<(Response,)>; 41] = [
        healthz.boxed(),
        openapi.boxed(),
        connectors.boxed(),
        create_user.boxed(),
        list_users.boxed(),
        get_user.boxed(),
        update_user.boxed(),
        revoke_user_token.boxed(),
        me.boxed(),
        update_me.boxed(),
        create_token.boxed(),
        revoke_token.boxed(),
        list_user_tokens.boxed(),
        test_account.boxed(),
        create_account.boxed(),
        list_accounts.boxed(),
        get_account.boxed(),
        update_account.boxed(),
        delete_account.boxed(),
        set_primary.boxed(),
        unset_primary.boxed(),
        reconnect.boxed(),
        folders.boxed(),
        sync.boxed(),
        list_messages.boxed(),
        get_message.boxed(),
        raw_message.boxed(),
        attachment.boxed(),
        update_message.boxed(),
        move_message.boxed(),
        delete_message.boxed(),
        send.boxed(),
        outbox_entry.boxed(),
        put_record.boxed(),
        get_record.boxed(),
        delete_record.boxed(),
        list_records.boxed(),
        timeline.boxed(),
        timeline_message.boxed(),
        timeline_attachment.boxed(),
        events.boxed(),
    ];
    routes
        .into_iter()
        .reduce(|all, route| all.or(route).unify().boxed())
        .expect("there are routes")
        .recover(error::recover)
        .unify()
        .with(warp::trace::request())
        .map(Reply::into_response)
        .boxed()
}
