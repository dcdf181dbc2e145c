//! `/v1/accounts`: connection tests, and the accounts themselves.
//!
//! Who may do what (docs/api.md, "Accounts"): a personal account is its owner's alone, for
//! everything; a shared account is read and worked by admins and members with the
//! shared-inbox permission and managed (created, changed, deleted, re-connected) by admins
//! only. Anyone else is told the account does not exist.

use super::auth::Caller;
use super::body::{self, List, Required, Text};
use super::connection;
use super::error::ApiError;
use super::paging::PageRequest;
use super::{App, json};
use crate::account::{Account, AccountFolder, AccountKind, AccountState, ConnectionSpec, SyncFrom};
use crate::connector::ConnectorError;
use crate::folder::Folder;
use crate::id::new_id;
use crate::store::StoreError;
use crate::user::User;
use crate::vault::Sealed;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

/// The fields of a create body besides the connection; a test takes them too (so one body
/// serves both) and checks them without using them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFields {
    kind: Option<Text<16>>,
    sync_from: Option<Text<16>>,
    create_contact: Option<bool>,
    active_folders: Option<List<String, MAX_FOLDERS>>,
    display_name: Option<Text<200>>,
}

/// The fields of a re-connect body besides the connection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconnectFields {
    active_folders: Option<List<String, MAX_FOLDERS>>,
}

/// The body of a re-connect of an OAuth account: nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn body_or_empty(body: &Value) -> Value {
    if body.is_null() {
        json!({})
    } else {
        body.clone()
    }
}

/// `PATCH /v1/accounts/{id}`; `display_name: null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    #[serde(default, deserialize_with = "body::nullable")]
    display_name: Option<Option<Text<200>>>,
    create_contact: Option<bool>,
    active_folders: Option<List<String, MAX_FOLDERS>>,
    enabled: Option<bool>,
}

/// Most folders one request may name active.
const MAX_FOLDERS: usize = 1000;

fn folder_ids(chosen: &Option<List<String, MAX_FOLDERS>>) -> Option<Vec<&str>> {
    chosen
        .as_ref()
        .map(|list| list.0.iter().map(String::as_str).collect())
}

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

/// The connection in `body`, with a password, and the body's other fields read as `T`.
fn parse<'a, T: Deserialize<'a>>(
    app: &App,
    body: &Value,
    rest: &'a mut Value,
) -> Result<(ConnectionSpec, T), ApiError> {
    let (spec, others) = connection::parse(body, |id| {
        app.runtime.connector(id).map(|c| c.info.servers.clone())
    })?;
    if app
        .runtime
        .connector(&spec.connector)
        .is_some_and(|c| c.info.auth == crate::connector::AuthKind::Oauth2)
    {
        return Err(ApiError::invalid(
            "connector",
            format!(
                "`{}` accounts sign in with their provider: POST /v1/oauth/{}/start",
                spec.connector, spec.connector
            ),
        ));
    }
    if spec.password.is_none() {
        return Err(ApiError::invalid("password", "is required"));
    }
    *rest = others;
    Ok((spec, body::parse(rest)?))
}

/// How long a caller who has too many tests running is asked to wait.
const TESTS_RUNNING_RETRY_SECS: u64 = 5;

/// Runs a connection test under the caller's rate and concurrency limits and the overall
/// deadline: a server that accepts and never speaks is a `timeout` within it.
async fn run_test(
    app: &App,
    caller: &Caller,
    spec: &ConnectionSpec,
) -> Result<Result<Vec<Folder>, ConnectorError>, ApiError> {
    let key = caller.key();
    let _running = app
        .tests_running
        .start(&key)
        .ok_or_else(|| ApiError::too_many_requests(TESTS_RUNNING_RETRY_SECS))?;
    app.connection_tests
        .check(app.store.as_ref(), &key)
        .await?
        .map_err(ApiError::too_many_requests)?;
    let deadline = app.connection_test_timeout;
    let outcome = tokio::time::timeout(deadline, app.runtime.test_connection(spec))
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::new(
                crate::connector::ErrorKind::Timeout,
                format!("the servers did not answer within {deadline:?}"),
            ))
        });
    Ok(outcome.map_err(|error| {
        let stage = error
            .server
            .clone()
            .or_else(|| spec.servers.first().map(|s| s.role.clone()))
            .unwrap_or_default();
        ConnectorError {
            server: Some(stage),
            ..error
        }
    }))
}

/// A failed re-test, as docs/api.md describes the 422: the test's code, the failing server
/// as field.
fn failed_test(error: ConnectorError) -> ApiError {
    ApiError {
        field: error.server.clone(),
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.kind.code(),
            format!("the connection test failed: {}", error.message),
        )
    }
}

/// `POST /v1/accounts/test`
pub async fn test(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    let mut rest = Value::Null;
    let (spec, _): (_, CreateFields) = parse(app, body, &mut rest)?;
    let outcome = match run_test(app, caller, &spec).await? {
        Ok(folders) => TestOutcome::Passed { ok: true, folders },
        Err(error) => TestOutcome::Failed {
            ok: false,
            stage: error.server.unwrap_or_default(),
            error: TestError {
                code: error.kind.code(),
                message: error.message,
            },
        },
    };
    Ok(json(&outcome))
}

pub fn can_see(user: &User, account: &Account) -> bool {
    match account.kind {
        AccountKind::Personal => account.owner_id == user.id,
        AccountKind::Shared => user.works_shared_accounts(),
    }
}

fn can_manage(user: &User, account: &Account) -> bool {
    match account.kind {
        AccountKind::Personal => account.owner_id == user.id,
        AccountKind::Shared => user.is_admin(),
    }
}

/// The account, if the caller may see it; 404 otherwise.
pub async fn visible(app: &App, user: &User, id: &str) -> Result<Account, ApiError> {
    app.store
        .account(id)
        .await?
        .filter(|account| can_see(user, account))
        .ok_or_else(|| ApiError::not_found("account"))
}

/// The account, if the caller may manage it; 404 when they may not see it, 403 when they may
/// see but not manage it.
pub(super) async fn managed(app: &App, user: &User, id: &str) -> Result<Account, ApiError> {
    let account = visible(app, user, id).await?;
    if !can_manage(user, &account) {
        return Err(ApiError::forbidden(
            "only an admin may manage a shared account",
        ));
    }
    Ok(account)
}

pub fn view(app: &App, account: &Account, primary: bool) -> Value {
    let mut body = json!({
        "id": account.id,
        "kind": account.kind,
        "owner_id": account.owner_id,
        "connector": account.connector,
        "email": account.email,
        "display_name": account.display_name,
        "username": account.username,
        "sync_from": account.sync_from,
        "sync_from_date": account.sync_from_date,
        "create_contact": account.create_contact,
        "primary": primary,
        "enabled": account.enabled,
        "state": account.state,
        "state_reason": account.state_reason,
        "state_since": account.state_since,
        "next_retry_at": account.next_retry_at,
        "last_sync_at": account.last_sync_at,
        "last_sync_duration_ms": account.last_sync_duration_ms,
        "allow_insecure_certificate": account.allow_insecure_certificate,
        "settings": account
            .settings
            .iter()
            .map(|(key, value)| (key.clone(), json!(value)))
            .collect::<serde_json::Map<String, Value>>(),
        "folders": account.folders.iter().map(|f| json!({
            "id": f.id,
            "name": f.name,
            "role": f.role,
            "selectable": f.selectable,
            "active": f.active,
        })).collect::<Vec<_>>(),
        "created_at": account.created_at,
        "push": app.scheduler.push(account),
    });
    for server in &account.servers {
        body[server.role.as_str()] = json!({
            "host": server.host,
            "port": server.port,
            "encryption": server.encryption,
        });
    }
    body
}

/// Every chosen folder id must name a selectable folder of the mailbox.
fn check_selectable(chosen: &[&str], selectable: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    match chosen.iter().find(|id| !selectable(id)) {
        Some(id) => Err(ApiError::invalid(
            "active_folders",
            format!("names `{id}`, which is not a selectable folder of this mailbox"),
        )),
        None => Ok(()),
    }
}

/// Marks the folders the caller chose active; without a choice, the default ones.
fn choose_folders(
    listing: Vec<Folder>,
    chosen: Option<Vec<&str>>,
) -> Result<Vec<AccountFolder>, ApiError> {
    if let Some(chosen) = &chosen {
        check_selectable(chosen, |id| {
            listing.iter().any(|f| f.id.as_str() == id && f.selectable)
        })?;
    }
    Ok(listing
        .into_iter()
        .map(|folder| {
            let active = match &chosen {
                Some(chosen) => chosen.contains(&folder.id.as_str()),
                None => folder.default_active,
            };
            AccountFolder::from_listing(folder, active)
        })
        .collect())
}

/// The kind a body names; only an admin connects a shared account.
pub(super) fn account_kind(user: &User, kind: &str) -> Result<AccountKind, ApiError> {
    let kind = match kind {
        "shared" => AccountKind::Shared,
        "personal" => AccountKind::Personal,
        _ => return Err(ApiError::invalid("kind", "must be `shared` or `personal`")),
    };
    if kind == AccountKind::Shared && !user.is_admin() {
        return Err(ApiError::forbidden(
            "only an admin may connect a shared account",
        ));
    }
    Ok(kind)
}

pub(super) fn sync_from(value: &str) -> Result<SyncFrom, ApiError> {
    SyncFrom::parse(value).ok_or_else(|| {
        ApiError::invalid(
            "sync_from",
            "must be one of `now`, `1_month`, `3_months`, `6_months`",
        )
    })
}

/// Refuses a personal account past `api.max_accounts_per_owner`.
pub(super) async fn check_owner_limit(app: &App, user: &User) -> Result<(), ApiError> {
    let owned = app
        .store
        .accounts()
        .await?
        .iter()
        .filter(|a| a.kind == AccountKind::Personal && a.owner_id == user.id)
        .count();
    if owned >= app.max_accounts_per_owner {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "account_limit",
            format!(
                "a user may connect at most {} personal accounts",
                app.max_accounts_per_owner
            ),
        ));
    }
    Ok(())
}

/// Re-connects an account: `change` applied to it as stored, enabled, `connecting`, and the
/// new secret when given. A sync job may write the account meanwhile: the change is applied
/// again to the account as it is then.
pub(super) async fn reenable(
    app: &App,
    user: &User,
    mut account: Account,
    secret: Option<Sealed>,
    change: impl Fn(&mut Account) -> Result<(), ApiError>,
) -> Result<Account, ApiError> {
    let mut attempts = 0;
    loop {
        change(&mut account)?;
        account.enabled = true;
        account.set_state(AccountState::Connecting, None);
        match app
            .store
            .update_account(account.clone(), secret.clone())
            .await
        {
            Err(StoreError::Conflict(_)) if attempts < 3 => {
                attempts += 1;
                account = managed(app, user, &account.id).await?;
            }
            Err(error) => return Err(error.into()),
            Ok(()) => return Ok(account),
        }
    }
}

/// `POST /v1/accounts`
pub async fn create(
    app: &App,
    caller: &Caller,
    body: &Value,
) -> Result<(StatusCode, Value), ApiError> {
    let user = caller.user()?;
    let mut rest = Value::Null;
    let (spec, fields): (_, CreateFields) = parse(app, body, &mut rest)?;
    let kind = account_kind(user, fields.kind.required("kind")?.as_str())?;
    let sync_from = sync_from(fields.sync_from.required("sync_from")?.as_str())?;
    let create_contact = fields.create_contact.unwrap_or(false);
    let display_name = fields.display_name.map(Text::into_inner);
    let chosen = folder_ids(&fields.active_folders);
    if kind == AccountKind::Personal {
        check_owner_limit(app, user).await?;
    }

    let folders = run_test(app, caller, &spec).await?.map_err(failed_test)?;
    let folders = choose_folders(folders, chosen)?;
    let id = new_id("acc");
    let secret = spec
        .password
        .as_ref()
        .map(|password| app.vault.seal(&id, password));
    let now = time::OffsetDateTime::now_utc();
    let mut account = Account::new(id, kind, &user.id, &spec, sync_from, create_contact, now);
    account.display_name = display_name;
    account.folders = folders;
    app.store.insert_account(account.clone(), secret).await?;
    // The first sync starts now, not at the scheduler's next look.
    app.scheduler.added(&account.id);
    Ok((StatusCode::CREATED, view(app, &account, false)))
}

/// `GET /v1/accounts`: what the caller may see, the caller's primary first.
pub async fn list(
    app: &App,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let page = PageRequest::from_query(query)?;
    let primary = app.store.primary(&user.id).await?;
    let accounts: Vec<(String, Value)> = app
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| can_see(user, a))
        .map(|a| {
            let is_primary = primary.as_deref() == Some(a.id.as_str());
            let key = format!("{}{}", if is_primary { 0 } else { 1 }, a.id);
            (key, view(app, &a, is_primary))
        })
        .collect();
    let mut accounts = accounts;
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    let paged = page.page(accounts, |(key, _)| key.clone());
    Ok(json(&json!({
        "items": paged.items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next_cursor": paged.next_cursor,
    })))
}

pub(super) async fn respond(app: &App, user: &User, account: &Account) -> Result<Value, ApiError> {
    let primary = app.store.primary(&user.id).await?;
    Ok(view(
        app,
        account,
        primary.as_deref() == Some(account.id.as_str()),
    ))
}

/// `GET /v1/accounts/{id}`
pub async fn get(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, id).await?;
    Ok(json(&respond(app, user, &account).await?))
}

/// `PATCH /v1/accounts/{id}`
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let fields: AccountChange = body::parse(body)?;
    let display_name = fields.display_name.map(|name| name.map(Text::into_inner));
    let create_contact = fields.create_contact;
    let chosen = folder_ids(&fields.active_folders);
    let enabled = fields.enabled;
    // A sync job may change the account's state meanwhile; the change applies to the
    // account as it is then.
    let mut attempts = 0;
    let (before, account) = loop {
        let mut account = managed(app, user, id).await?;
        let before = account.state;
        if let Some(display_name) = &display_name {
            account.display_name = display_name.clone();
        }
        if let Some(create_contact) = create_contact {
            account.create_contact = create_contact;
        }
        if let Some(chosen) = &chosen {
            check_selectable(chosen, |id| {
                account
                    .folders
                    .iter()
                    .any(|f| f.id.as_str() == id && f.selectable)
            })?;
            for folder in &mut account.folders {
                folder.active = chosen.contains(&folder.id.as_str());
            }
        }
        if let Some(enabled) = enabled {
            account.enabled = enabled;
            if !enabled {
                account.set_state(AccountState::Disabled, Some("disabled by a user".into()));
            } else if account.state == AccountState::Disabled {
                account.set_state(AccountState::Connecting, None);
            }
        }
        match app.store.update_account(account.clone(), None).await {
            Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
            Err(error) => return Err(error.into()),
            Ok(()) => break (before, account),
        }
    };
    announce_state(app, before, &account).await;
    if chosen.is_some() && account.enabled {
        // Newly active folders start syncing at once.
        app.scheduler.request(&account.id);
    }
    Ok(json(&respond(app, user, &account).await?))
}

/// Records `account.state_changed` when a request moved the account's state.
pub(super) async fn announce_state(app: &App, before: AccountState, account: &Account) {
    if before != account.state {
        let (kind, data) = account.state_changed_event();
        if let Err(error) = app.store.push_event(kind, data).await {
            tracing::error!("cannot record an event: {error}");
        }
    }
}

/// `DELETE /v1/accounts/{id}`
pub async fn delete(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = managed(app, user, id).await?;
    app.store.delete_account(&account.id).await?;
    app.oauth.forget(&account.id);
    app.runtime.kept().forget(&account.id);
    Ok(super::no_content())
}

/// `PUT /v1/accounts/{id}/primary`
pub async fn set_primary(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, id).await?;
    app.store.set_primary(&user.id, Some(&account.id)).await?;
    Ok(json(&view(app, &account, true)))
}

/// `DELETE /v1/accounts/{id}/primary`
pub async fn unset_primary(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, id).await?;
    if app.store.primary(&user.id).await?.as_deref() == Some(account.id.as_str()) {
        app.store.set_primary(&user.id, None).await?;
    }
    Ok(super::no_content())
}

/// `POST /v1/accounts/{id}/reconnect`: re-tests with the new settings and re-enables the same
/// account, keeping its id and everything Mailroom holds for it.
pub async fn reconnect(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = managed(app, user, id).await?;
    if app
        .runtime
        .connector(&account.connector)
        .is_some_and(|c| c.info.auth == crate::connector::AuthKind::Oauth2)
    {
        let _: Empty = body::parse(&body_or_empty(body))?;
        return super::oauth::start_again(app, user, account).await;
    }
    let mut rest = Value::Null;
    let (spec, fields): (_, ReconnectFields) = parse(app, body, &mut rest)?;
    if spec.connector != account.connector {
        return Err(ApiError::invalid(
            "connector",
            format!("must stay `{}` for this account", account.connector),
        ));
    }
    let chosen = folder_ids(&fields.active_folders);
    let listing = run_test(app, caller, &spec).await?.map_err(failed_test)?;
    let secret = spec
        .password
        .as_ref()
        .map(|p| app.vault.seal(&account.id, p));
    // A sync job may change the account while the test runs: the new settings apply to the
    // account as it is when they are written.
    let before = account.state;
    let account = reenable(app, user, account, secret, |account| {
        // Without a new choice, the folders active before stay active where they still exist.
        let previous: Vec<&str> = account
            .folders
            .iter()
            .filter(|f| f.active && listing.iter().any(|l| l.id == f.id))
            .map(|f| f.id.as_str())
            .collect();
        let folders = choose_folders(listing.clone(), Some(chosen.clone().unwrap_or(previous)))?;
        account.email = spec.email.clone();
        account.username = spec.username.clone();
        account.servers = spec.servers.clone();
        account.allow_insecure_certificate = spec.allow_insecure_certificate;
        account.settings = spec.settings.clone();
        account.folders = folders;
        Ok(())
    })
    .await?;
    announce_state(app, before, &account).await;
    // Connections kept under the old settings are not used again, nor is the watch.
    app.runtime.kept().forget(&account.id);
    app.scheduler.reconnected(&account.id);
    // It resumes from the folder states it had: nothing is fetched twice.
    app.scheduler.request(&account.id);
    Ok(json(&respond(app, user, &account).await?))
}

/// `GET /v1/accounts/{id}/folders`
pub async fn folders(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, id).await?;
    let page = PageRequest::from_query(query)?;
    let counts = app.store.folder_counts(&account.id).await?;
    let mut folders: Vec<_> = account.folders.iter().collect();
    folders.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let items: Vec<Value> = folders
        .into_iter()
        .map(|f| {
            let (unread, total) = counts.get(&f.id).copied().unwrap_or_default();
            json!({"id": f.id, "name": f.name, "role": f.role, "active": f.active, "unread": unread, "total": total, "server_total": f.server_total})
        })
        .collect();
    Ok(json(&page.page(items, |f| {
        f["id"].as_str().unwrap_or_default().to_owned()
    })))
}

/// `POST /v1/accounts/{id}/sync`: queues a sync; the client waits for
/// `last_sync_at >= requested_at`.
pub async fn sync(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, id).await?;
    let refused = match account.state {
        AccountState::AuthRequired => Some("auth_required"),
        AccountState::Disabled => Some("disabled"),
        _ if !account.enabled => Some("disabled"),
        _ => None,
    };
    if let Some(code) = refused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code,
            match code {
                "auth_required" => "the account needs to be re-connected before it can sync",
                _ => "the account is disabled",
            },
        ));
    }
    let requested_at = app.scheduler.request(&account.id);
    Ok(super::json_status(
        &json!({"requested_at": requested_at}),
        StatusCode::ACCEPTED,
    ))
}
