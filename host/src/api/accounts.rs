//! `/v1/accounts`: connection tests (and, with the store, the accounts themselves).

use super::auth::Caller;
use super::error::ApiError;
use super::{App, json};
use crate::account::parse_connection;
use crate::connector::ConnectorError;
use crate::folder::Folder;
use serde::Serialize;
use serde_json::Value;
use warp::reply::Response;

/// Fields of the create and re-connect bodies that a test accepts and ignores, so a client
/// can test with the very body it will create with.
const ACCOUNT_FIELDS: &[&str] = &[
    "kind",
    "sync_from",
    "create_contact",
    "active_folders",
    "display_name",
];

#[derive(Serialize)]
#[serde(untagged)]
enum TestOutcome {
    Passed {
        ok: bool,
        folders: Vec<Folder>,
    },
    Failed {
        ok: bool,
        stage: String,
        error: TestError,
    },
}

#[derive(Serialize)]
struct TestError {
    code: &'static str,
    message: String,
}

/// `POST /v1/accounts/test`.
pub async fn test(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    let spec = parse_connection(
        body,
        |id| app.runtime.connector(id).map(|c| c.info.servers.clone()),
        ACCOUNT_FIELDS,
    )?;
    if spec.password.is_none() {
        return Err(ApiError::invalid("password", "is required"));
    }
    app.connection_tests
        .check(caller.token)
        .map_err(ApiError::too_many_requests)?;
    let first_role = spec
        .servers
        .first()
        .map(|s| s.role.clone())
        .unwrap_or_default();
    let outcome = match app.runtime.test_connection(&spec).await {
        Ok(folders) => TestOutcome::Passed { ok: true, folders },
        Err(ConnectorError {
            kind,
            message,
            server,
            ..
        }) => TestOutcome::Failed {
            ok: false,
            stage: server.unwrap_or(first_role),
            error: TestError {
                code: kind.code(),
                message,
            },
        },
    };
    Ok(json(&outcome))
}
