//! `/v1/connectors`: the loaded connectors, and the admin's uploads (docs/api.md,
//! "Connectors"; the rules are in [`crate::connectors`]).

use super::auth::Caller;
use super::body::{self, List, Text};
use super::error::ApiError;
use super::paging::PageRequest;
use super::{App, json, json_status, no_content, query_flag};
use crate::connector::{AuthKind, ConnectorInfo};
use crate::connectors::InstallError;
use crate::runtime::LoadError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

/// The media type of an upload.
pub const COMPONENT_MEDIA_TYPE: &str = "application/wasm";

/// `GET /v1/connectors`
pub async fn list(app: &App, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let page = PageRequest::from_query(query)?;
    let connectors: Vec<Value> = app
        .runtime
        .connectors()
        .iter()
        .map(|info| view(app, info))
        .collect();
    Ok(json(&page.page(connectors, |c| {
        c["id"].as_str().unwrap_or_default().to_owned()
    })))
}

/// A connector as the API shows it: an OAuth connector also says whether its provider is
/// configured (without it, its accounts cannot sign in).
fn view(app: &App, info: &ConnectorInfo) -> Value {
    let mut view = serde_json::to_value(info).unwrap_or_default();
    if info.auth == AuthKind::Oauth2 {
        view["configured"] = json!(app.oauth.provider(&info.id).is_some());
    }
    view
}

/// `GET /v1/connectors/{id}`
pub async fn get(app: &App, id: &str) -> Result<Response, ApiError> {
    let connector = app
        .runtime
        .connector(id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    Ok(json(&view(app, &connector.info)))
}

/// `PATCH /v1/connectors/{id}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorChange {
    granted_hosts: Option<List<Text<253>, 16>>,
}

/// `PATCH /v1/connectors/{id}` `{"granted_hosts": [...]}`: the hosts, of those it asks for,
/// that the connector's HTTP requests may go to.
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let change: ConnectorChange = body::parse(body)?;
    let loaded = app
        .runtime
        .connector(id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    let mut info = loaded.info.clone();
    if let Some(hosts) = change.granted_hosts {
        let mut granted = Vec::new();
        for host in hosts.0 {
            let host = host.into_inner().to_ascii_lowercase();
            if !info.hosts.contains(&host) {
                return Err(ApiError::invalid(
                    "granted_hosts",
                    format!("`{host}` is not a host the connector asks for"),
                ));
            }
            if !granted.contains(&host) {
                granted.push(host);
            }
        }
        info = crate::connectors::grant(app.store.as_ref(), &app.runtime, id, granted)
            .await
            .map_err(refused)?;
    }
    Ok(json(&view(app, &info)))
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
    let replace = query_flag(query, "replace")?.unwrap_or(false);
    let installed = crate::connectors::install(
        app.store.as_ref(),
        &app.runtime,
        component.to_vec(),
        replace,
    )
    .await
    .map_err(refused)?;
    let status = if installed.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_status(&installed.info, status))
}

/// `DELETE /v1/connectors/{id}[?force=true]`
pub async fn remove(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let force = query_flag(query, "force")?.unwrap_or(false);
    crate::connectors::remove(app.store.as_ref(), &app.runtime, id, force)
        .await
        .map_err(refused)?;
    Ok(no_content())
}

/// The answer for an install or removal that did not happen.
fn refused(error: InstallError) -> ApiError {
    match error {
        InstallError::Refused(error) => {
            let status = match error {
                LoadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                LoadError::IdTaken(_) | LoadError::Builtin(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, error.code(), error.to_string())
        }
        InstallError::InUse(message) => ApiError::new(StatusCode::CONFLICT, "in_use", message),
        InstallError::NotFound => ApiError::not_found("connector"),
        InstallError::Store(error) => error.into(),
    }
}
