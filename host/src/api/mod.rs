//! The HTTP API (API.md): routes, authentication, and the mapping from domain results to
//! JSON responses. Handlers return `Result<Response, ApiError>`; errors become the API's error
//! shape here and in [`error::recover`], nowhere else.
//!
//! Routes match the path before the method, so an unknown path is a 404 and a known path
//! with the wrong method a 405.

mod accounts;
pub mod auth;
mod connectors;
pub mod error;
mod paging;
mod rate_limit;

use crate::runtime::Runtime;
use auth::Authenticator;
use bytes::Bytes;
use error::ApiError;
use rate_limit::RateLimiter;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

/// What the handlers share.
pub struct App {
    pub runtime: Arc<Runtime>,
    pub auth: Authenticator,
    pub connection_tests: RateLimiter,
    pub max_body_bytes: u64,
}

impl App {
    pub fn new(
        runtime: Arc<Runtime>,
        admin_token: &str,
        config: &crate::config::ApiConfig,
    ) -> Self {
        Self {
            runtime,
            auth: Authenticator::new(admin_token),
            connection_tests: RateLimiter::per_minute(config.connection_tests_per_minute),
            max_body_bytes: config.max_body_bytes,
        }
    }
}

pub fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

fn parse_json(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// Every route of the API, with rejections turned into JSON errors.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let authorization = warp::header::optional::<String>("authorization");
    let query = warp::query::<HashMap<String, String>>();
    let body = warp::body::content_length_limit(app.max_body_bytes).and(warp::body::bytes());

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(&serde_json::json!({"status": "ok"})));

    let list_connectors = warp::path!("v1" / "connectors")
        .and(warp::get())
        .and(with_app.clone())
        .and(authorization)
        .and(query)
        .then(
            |app: Arc<App>, authorization: Option<String>, query: HashMap<String, String>| async move {
                respond(
                    async {
                        app.auth.authenticate(authorization.as_deref())?;
                        connectors::list(&app, &query).await
                    }
                    .await,
                )
            },
        );

    let test_account = warp::path!("v1" / "accounts" / "test")
        .and(warp::post())
        .and(with_app.clone())
        .and(authorization)
        .and(body)
        .then(
            |app: Arc<App>, authorization: Option<String>, body: Bytes| async move {
                respond(
                    async {
                        let caller = app.auth.authenticate(authorization.as_deref())?;
                        let body = parse_json(&body)?;
                        accounts::test(&app, &caller, &body).await
                    }
                    .await,
                )
            },
        );

    healthz
        .or(list_connectors)
        .unify()
        .or(test_account)
        .unify()
        .recover(error::recover)
        .unify()
        .with(warp::trace::request())
        .map(Reply::into_response)
        .boxed()
}
