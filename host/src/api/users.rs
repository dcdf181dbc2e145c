//! `/v1/users`, `/v1/me` and tokens.
//!
//! Admins create and manage users and may revoke any token, but never mint one for someone
//! else: a token opens its owner's personal mailboxes. Service identities come only from the
//! operator (`MAILROOM_SERVICE_TOKEN`, `mailroom token create --service`), never from here.

use super::auth::Caller;
use super::body::{self, Email, Required, Text};
use super::error::ApiError;
use super::paging::PageRequest;
use super::{App, json, json_status};
use crate::account::AccountKind;
use crate::clock::now_rfc3339;
use crate::id::new_id;
use crate::signature;
use crate::user::{
    Invalid, MAX_EXTERNAL_ID_CHARS, MAX_NAME_CHARS, Role, Token, TokenHash, TokenOwner, User,
    check_external_id, new_token,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

/// A user as admins see them.
pub fn view(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "shared_inbox": user.shared_inbox,
        "external_id": user.external_id,
        "disabled": user.disabled,
        "created_at": user.created_at,
    })
}

/// `POST /v1/users`, and `PATCH /v1/users/{id}` with `disabled`; absent fields stay as they
/// are on a change, and `external_id: null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: Option<Text<MAX_NAME_CHARS>>,
    email: Option<Email>,
    role: Option<Role>,
    shared_inbox: Option<bool>,
    #[serde(default, deserialize_with = "body::nullable")]
    external_id: Option<Option<Text<MAX_EXTERNAL_ID_CHARS>>>,
    #[serde(default)]
    disabled: Option<bool>,
}

impl UserBody {
    fn external_id(&self) -> Result<Option<Option<String>>, ApiError> {
        let Some(id) = &self.external_id else {
            return Ok(None);
        };
        if let Some(id) = id {
            check_external_id(id.as_str()).map_err(invalid)?;
        }
        Ok(Some(id.as_ref().map(|id| id.as_str().to_owned())))
    }
}

fn invalid(invalid: Invalid) -> ApiError {
    ApiError::invalid(invalid.field, invalid.message)
}

/// `POST /v1/users`
pub async fn create(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    caller.admin()?;
    let fields: UserBody = body::parse(body)?;
    if fields.disabled.is_some() {
        return Err(ApiError::invalid("disabled", "is not a known field"));
    }
    let external_id = fields.external_id()?.flatten();
    let user = User::new(
        fields.name.required("name")?.into_inner(),
        fields.email.required("email")?.0,
        fields.role.required("role")?,
        fields.shared_inbox.unwrap_or(false),
        external_id,
    )
    .map_err(invalid)?;
    app.store.insert_user(user.clone()).await?;
    Ok(json_status(&view(&user), StatusCode::CREATED))
}

/// `GET /v1/users`
pub async fn list(
    app: &App,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let page = PageRequest::from_query(query)?;
    let users: Vec<Value> = app.store.users().await?.iter().map(view).collect();
    Ok(json(&page.page(users, |u| {
        u["id"].as_str().unwrap_or_default().to_owned()
    })))
}

/// `GET /v1/users/{id}`
pub async fn get(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    caller.admin()?;
    let user = app
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(json(&view(&user)))
}

/// `PATCH /v1/users/{id}`
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let fields: UserBody = body::parse(body)?;
    let external_id = fields.external_id()?;
    let _one_at_a_time = app.user_changes.lock().await;
    let mut user = app
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if let Some(name) = fields.name {
        user.name = name.into_inner();
    }
    if let Some(email) = fields.email {
        user.email = email.0;
    }
    if let Some(role) = fields.role {
        // The server is never left without an admin: only an admin can create users.
        if user.role == Role::Admin && role != Role::Admin {
            let admins = app
                .store
                .users()
                .await?
                .iter()
                .filter(|u| u.is_admin())
                .count();
            if admins <= 1 {
                return Err(ApiError::conflict(
                    "the last admin cannot stop being an admin",
                ));
            }
        }
        user.role = role;
    }
    if let Some(shared_inbox) = fields.shared_inbox {
        user.shared_inbox = shared_inbox;
    }
    if let Some(external_id) = external_id {
        user.external_id = external_id;
    }
    let disabling = fields.disabled == Some(true) && !user.disabled;
    if let Some(disabled) = fields.disabled {
        user.disabled = disabled;
    }
    // The server is never left without an admin who can sign in.
    if user.is_admin() && user.disabled {
        let others = app
            .store
            .users()
            .await?
            .iter()
            .filter(|u| u.is_admin() && !u.disabled && u.id != user.id)
            .count();
        if others == 0 {
            return Err(ApiError::conflict("the last admin cannot be disabled"));
        }
    }
    app.store.update_user(user.clone()).await?;
    if disabling {
        for token in app
            .store
            .tokens_of(&TokenOwner::User(user.id.clone()))
            .await?
        {
            app.store.delete_token(&token.id).await?;
        }
        tracing::info!(user = %user.id, "disabled the user and revoked their tokens");
    }
    // A user who may no longer work shared accounts loses a shared primary.
    if !user.works_shared_accounts()
        && let Some(primary) = app.store.primary(&user.id).await?
        && let Some(account) = app.store.account(&primary).await?
        && account.kind == AccountKind::Shared
    {
        app.store.set_primary(&user.id, None).await?;
    }
    Ok(json(&view(&user)))
}

/// `GET /v1/me`
pub async fn me(app: &App, caller: &Caller) -> Result<Response, ApiError> {
    let user = caller.user()?;
    Ok(json(&me_view(app, user).await?))
}

async fn me_view(app: &App, user: &User) -> Result<Value, ApiError> {
    let mut body = view(user);
    body["signature"] = json!(user.signature);
    body["signature_text"] = json!(user.signature.as_deref().map(signature::to_text));
    body["primary_account_id"] = json!(app.store.primary(&user.id).await?);
    Ok(body)
}

/// `PATCH /v1/me`: the signature is HTML, or null for none.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeBody {
    #[serde(default, deserialize_with = "body::nullable")]
    signature: Option<Option<String>>,
}

/// `POST /v1/me/tokens`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: Option<Text<100>>,
}

/// `PATCH /v1/me`
pub async fn update_me(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    let mut user = caller.user()?.clone();
    let fields: MeBody = body::parse(body)?;
    match fields.signature {
        None => {}
        Some(None) => user.signature = None,
        Some(Some(html)) => {
            user.signature =
                signature::sanitize(&html).map_err(|m| ApiError::invalid("signature", m))?;
        }
    }
    app.store.update_user(user.clone()).await?;
    Ok(json(&me_view(app, &user).await?))
}

/// `POST /v1/me/tokens`
pub async fn create_token(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let fields: TokenBody = body::parse(body)?;
    let token = Token {
        id: new_id("tok"),
        owner: TokenOwner::User(user.id.clone()),
        name: fields.name.required("name")?.into_inner(),
        created_at: now_rfc3339(),
        last_used_at: None,
    };
    let secret = new_token();
    app.store
        .insert_token(TokenHash::of(&secret), token.clone())
        .await?;
    Ok(json_status(
        &json!({"id": token.id, "token": secret, "name": token.name, "created_at": token.created_at}),
        StatusCode::CREATED,
    ))
}

/// `GET /v1/users/{id}/tokens` (admin): names, ids and times, never a secret.
pub async fn list_tokens(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let page = PageRequest::from_query(query)?;
    app.store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let tokens = app
        .store
        .tokens_of(&TokenOwner::User(id.to_owned()))
        .await?;
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"id": t.id, "name": t.name, "created_at": t.created_at,
                   "last_used_at": t.last_used_at})
        })
        .collect();
    Ok(json(&page.page(items, |t| {
        t["id"].as_str().unwrap_or_default().to_owned()
    })))
}

/// `DELETE /v1/me/tokens/{id}` and, for admins, `DELETE /v1/users/{user}/tokens/{id}`.
pub async fn revoke_token(
    app: &App,
    caller: &Caller,
    owner: Option<&str>,
    id: &str,
) -> Result<Response, ApiError> {
    let owner = match owner {
        Some(owner) => {
            caller.admin()?;
            owner.to_owned()
        }
        None => caller.user()?.id.clone(),
    };
    // Look before removing, so that nobody can revoke a token that is not theirs.
    let belongs = app
        .store
        .tokens_of(&TokenOwner::User(owner))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !belongs {
        return Err(ApiError::not_found("token"));
    }
    app.store.delete_token(id).await?;
    Ok(super::no_content())
}
