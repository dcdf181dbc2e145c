//! `/v1/connectors`: the loaded connectors, and the admin's uploads (docs/api.md,
//! "Connectors").
//!
//! An upload is compiled and checked before anything changes; then, one change at a time, it
//! is kept in the store (so it loads again at start) and registered. A replaced or removed
//! connector's running jobs finish on its old code, which they hold.

use super::accounts::announce_state;
use super::auth::Caller;
use super::error::ApiError;
use super::paging::PageRequest;
use super::{App, json, json_status, no_content};
use crate::account::{Account, AccountState};
use crate::connector::ConnectorInfo;
use crate::runtime::LoadError;
use crate::store::StoreError;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

/// The media type of an upload.
pub const COMPONENT_MEDIA_TYPE: &str = "application/wasm";

/// `GET /v1/connectors`
pub async fn list(app: &App, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let page = PageRequest::from_query(query)?;
    let connectors = app.runtime.connectors();
    Ok(json(&page.page(connectors, |c| c.id.clone())))
}

/// `GET /v1/connectors/{id}`
pub async fn get(app: &App, id: &str) -> Result<Response, ApiError> {
    let connector = app
        .runtime
        .connector(id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    Ok(json(&connector.info))
}

/// `POST /v1/connectors[?replace=true]` with the component's bytes.
pub async fn upload(
    app: &App,
    caller: &Caller,
    query: &HashMap<String, String>,
    content_type: Option<&str>,
    component: bytes::Bytes,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let media_type = content_type
        .and_then(|t| t.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case(COMPONENT_MEDIA_TYPE)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a connector is uploaded as `Content-Type: {COMPONENT_MEDIA_TYPE}`"),
        ));
    }
    let replace = flag(query, "replace")?;
    let prepared = app
        .runtime
        .prepare(component.to_vec(), false)
        .await
        .map_err(refused)?;
    let id = prepared.info.id.clone();
    let _one_at_a_time = app.connector_changes.lock().await;
    let replacing = match app.runtime.connector(&id) {
        None => false,
        Some(loaded) if loaded.info.builtin => return Err(refused(LoadError::Builtin(id))),
        Some(_) if !replace => return Err(refused(LoadError::IdTaken(id))),
        Some(_) => {
            let accounts = accounts_of(app, &id).await?;
            if let Some((account, role)) = dropped_role(&accounts, &prepared.info) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "in_use",
                    format!(
                        "version {} of `{id}` has no `{role}` server, which account {} uses",
                        prepared.info.version, account.id
                    ),
                ));
            }
            true
        }
    };
    app.store.put_connector(&id, component.to_vec()).await?;
    let info = app.runtime.register(prepared, replacing).map_err(refused)?;
    tracing::info!(connector = %info.id, version = %info.version, digest = %info.digest, replacing, "connector uploaded");
    let status = if replacing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_status(&info, status))
}

/// `DELETE /v1/connectors/{id}[?force=true]`
pub async fn remove(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let force = flag(query, "force")?;
    let _one_at_a_time = app.connector_changes.lock().await;
    let loaded = app
        .runtime
        .connector(id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    if loaded.info.builtin {
        return Err(refused(LoadError::Builtin(id.to_owned())));
    }
    let accounts = accounts_of(app, id).await?;
    if !accounts.is_empty() && !force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_use",
            format!(
                "{} account(s) use `{id}`; delete them first, or remove it with force=true to disable them",
                accounts.len()
            ),
        ));
    }
    let reason = format!("its connector `{id}` was removed by an admin");
    for account in accounts {
        disable(app, account, &reason).await?;
    }
    app.store.delete_connector(id).await?;
    app.runtime.unregister(id).map_err(refused)?;
    tracing::info!(connector = %id, "connector removed");
    Ok(no_content())
}

async fn accounts_of(app: &App, connector: &str) -> Result<Vec<Account>, ApiError> {
    Ok(app
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.connector == connector)
        .collect())
}

/// An account that names a server role the new version no longer declares, and that role.
fn dropped_role<'a>(
    accounts: &'a [Account],
    info: &ConnectorInfo,
) -> Option<(&'a Account, &'a str)> {
    accounts.iter().find_map(|account| {
        account
            .servers
            .iter()
            .find(|server| !info.servers.contains(&server.role))
            .map(|server| (account, server.role.as_str()))
    })
}

/// Disables an account whose connector is going away, with the reason it shows.
async fn disable(app: &App, mut account: Account, reason: &str) -> Result<(), ApiError> {
    for _ in 0..3 {
        let before = account.state;
        account.enabled = false;
        account.set_state(AccountState::Disabled, Some(reason.to_owned()));
        match app.store.update_account(account.clone(), None).await {
            Ok(()) => {
                announce_state(app, before, &account).await;
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => match app.store.account(&account.id).await? {
                Some(current) => account = current,
                None => return Ok(()),
            },
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "the account kept changing while it was being disabled; try again",
    ))
}

/// `true`/`false` in the query, absent meaning `false`.
fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(name, "must be true or false")),
    }
}

/// The answer for a component the runtime refused.
fn refused(error: LoadError) -> ApiError {
    let status = match error {
        LoadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        LoadError::IdTaken(_) | LoadError::Builtin(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, error.code(), error.to_string())
}
