//! `/v1/oauth`: accounts that sign in with their provider (docs/api.md, "OAuth2"); the flow
//! itself is [`crate::oauth`].
//!
//! The callback is where the provider sends the user's browser, without the API's token: the
//! sign-in's `state` says who started it and what for. A browser is sent on to the CRM's page
//! (`oauth.return_url`) with `?account_id=` or `?error=`, or shown a small page when no page
//! is configured; a caller that asks for JSON gets the account, or the error, as JSON.

use super::accounts::{self, account_kind, check_owner_limit, managed, respond, sync_from};
use super::auth::Caller;
use super::body::{self, Required, Text};
use super::error::ApiError;
use super::{App, json, json_status};
use crate::account::{Account, ConnectionSpec};
use crate::connector::AuthKind;
use crate::id::new_id;
use crate::oauth::{Granted, OauthError, SignIn};
use crate::user::User;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

/// `POST /v1/oauth/{connector}/start`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartFields {
    kind: Option<Text<16>>,
    sync_from: Option<Text<16>>,
    create_contact: Option<bool>,
    account_id: Option<Text<64>>,
}

/// `POST /v1/oauth/{connector}/start`: the provider's authorization URL for a new account,
/// or, with `account_id`, for re-connecting that one.
pub async fn start(
    app: &App,
    caller: &Caller,
    connector: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let fields: StartFields = body::parse(body)?;
    let loaded = app
        .runtime
        .connector(connector)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    if loaded.info.auth != AuthKind::Oauth2 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_oauth",
            format!("`{connector}` accounts sign in with a password: POST /v1/accounts"),
        ));
    }
    let sign_in = match fields.account_id {
        Some(id) => {
            let account = managed(app, user, id.as_str()).await?;
            if account.connector != connector {
                return Err(ApiError::invalid(
                    "account_id",
                    format!("is an account of `{}`", account.connector),
                ));
            }
            again(user, account)
        }
        None => {
            let kind = account_kind(user, fields.kind.required("kind")?.as_str())?;
            if kind == crate::account::AccountKind::Personal {
                check_owner_limit(app, user).await?;
            }
            SignIn {
                connector: connector.to_owned(),
                user_id: user.id.clone(),
                kind,
                sync_from: sync_from(fields.sync_from.required("sync_from")?.as_str())?,
                create_contact: fields.create_contact.unwrap_or(false),
                account_id: None,
                login_hint: None,
            }
        }
    };
    let url = app.oauth.start(sign_in).await.map_err(oauth_error)?;
    Ok(json(&json!({"authorize_url": url})))
}

/// `POST /v1/accounts/{id}/reconnect` on an OAuth account: a sign-in that re-connects it,
/// keeping its kind, date and contact choice.
pub async fn start_again(app: &App, user: &User, account: Account) -> Result<Response, ApiError> {
    let url = app
        .oauth
        .start(again(user, account))
        .await
        .map_err(oauth_error)?;
    Ok(json(&json!({"authorize_url": url})))
}

fn again(user: &User, account: Account) -> SignIn {
    SignIn {
        connector: account.connector,
        user_id: user.id.clone(),
        kind: account.kind,
        sync_from: account.sync_from,
        create_contact: account.create_contact,
        login_hint: Some(account.email),
        account_id: Some(account.id),
    }
}

/// `GET /v1/oauth/callback?code=&state=` (or `?error=&state=`).
pub async fn callback(app: &App, query: &HashMap<String, String>, wants_json: bool) -> Response {
    let outcome = finish(app, query).await;
    if wants_json {
        return match outcome {
            Ok((view, created)) => {
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                json_status(&view, status)
            }
            Err(error) => warp::reply::Reply::into_response(error),
        };
    }
    let (account_id, error) = match &outcome {
        Ok((view, _)) => (view["id"].as_str().map(str::to_owned), None),
        Err(error) => (None, Some(error)),
    };
    match app.oauth.return_url() {
        Some(page) => {
            let (name, value) = match (&account_id, error) {
                (Some(id), _) => ("account_id", id.clone()),
                (None, Some(error)) => ("error", error.code.to_owned()),
                (None, None) => ("error", "oauth_failed".to_owned()),
            };
            let separator = if page.contains('?') { '&' } else { '?' };
            let encoded: String = serde_urlencoded::to_string([(name, value)]).unwrap_or_default();
            let location = format!("{page}{separator}{encoded}");
            let mut response = Response::new(Vec::new().into());
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(location) = warp::http::HeaderValue::from_str(&location) {
                response
                    .headers_mut()
                    .insert(warp::http::header::LOCATION, location);
            }
            response
        }
        None => page(match error {
            None => (
                StatusCode::OK,
                "Account connected",
                "The mailbox is connected. You can close this page.".to_owned(),
            ),
            Some(error) => (error.status, "Not connected", error.message.clone()),
        }),
    }
}

/// The built-in page a browser lands on when the CRM named none.
fn page((status, title, text): (StatusCode, &str, String)) -> Response {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
        escape(&text)
    );
    let mut response = Response::new(html.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "content-security-policy",
        warp::http::HeaderValue::from_static("default-src 'none'"),
    );
    response
}

/// Completes a sign-in: the account's view, and whether it was created (else re-connected).
async fn finish(app: &App, query: &HashMap<String, String>) -> Result<(Value, bool), ApiError> {
    let state = query.get("state").map(String::as_str).unwrap_or_default();
    let granted = app
        .oauth
        .finish(
            state,
            query.get("code").map(String::as_str),
            query.get("error").map(String::as_str),
        )
        .await
        .map_err(oauth_error)?;
    let user = app
        .store
        .user(&granted.sign_in.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| oauth_error(OauthError::State))?;
    let (account, created) = match granted.sign_in.account_id.clone() {
        Some(id) => (reconnect(app, &user, &id, &granted).await?, false),
        None => (create(app, &user, &granted).await?, true),
    };
    // The first sync (or the resumed one) starts now.
    if created {
        app.scheduler.added(&account.id);
    } else {
        app.scheduler.request(&account.id);
    }
    Ok((respond(app, &user, &account).await?, created))
}

async fn create(app: &App, user: &User, granted: &Granted) -> Result<Account, ApiError> {
    let sign_in = &granted.sign_in;
    if sign_in.kind == crate::account::AccountKind::Personal {
        check_owner_limit(app, user).await?;
    }
    let spec = ConnectionSpec {
        connector: sign_in.connector.clone(),
        email: granted.email.clone(),
        username: None,
        password: None,
        servers: Vec::new(),
        allow_insecure_certificate: false,
        settings: Vec::new(),
        bearer: None,
        api_url: None,
    };
    let id = new_id("acc");
    let secret = app.oauth.seal(&id, granted);
    let account = Account::new(
        id,
        sign_in.kind,
        &user.id,
        &spec,
        sign_in.sync_from,
        sign_in.create_contact,
        time::OffsetDateTime::now_utc(),
    );
    // Its folders come with the first sync, active as a new account's would be.
    app.store
        .insert_account(account.clone(), Some(secret))
        .await?;
    Ok(account)
}

/// A new grant for an account; its id, mail, records and folder states stay.
async fn reconnect(
    app: &App,
    user: &User,
    id: &str,
    granted: &Granted,
) -> Result<Account, ApiError> {
    let account = managed(app, user, id).await?;
    if !account.email.eq_ignore_ascii_case(&granted.email) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "account_mismatch",
            format!(
                "the provider signed in {}, but the account is {}: sign in as {}",
                granted.email, account.email, account.email
            ),
        ));
    }
    let secret = app.oauth.seal(&account.id, granted);
    let before = account.state;
    let account = accounts::reenable(app, user, account, Some(secret), |_| Ok(())).await?;
    accounts::announce_state(app, before, &account).await;
    Ok(account)
}

fn oauth_error(error: OauthError) -> ApiError {
    let status = match error {
        OauthError::NotConfigured(_) => StatusCode::CONFLICT,
        OauthError::Denied(_) | OauthError::State => StatusCode::BAD_REQUEST,
        OauthError::Failed(_) => StatusCode::BAD_GATEWAY,
        OauthError::TooMany => StatusCode::TOO_MANY_REQUESTS,
    };
    ApiError::new(status, error.code(), error.to_string())
}
