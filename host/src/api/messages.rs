//! Messages: `GET /v1/accounts/{id}/messages`, `GET /v1/messages/{id}` (with `/raw` and
//! `/attachments/{id}`). A message is visible to whoever may see its account; 404 otherwise.

use super::accounts::{can_see, visible};
use super::auth::Caller;
use super::error::ApiError;
use super::paging::{PageRequest, cursor};
use super::{App, json};
use crate::mail::message::Message;
use crate::mail::render;
use crate::store::mail::MessageQuery;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::{StatusCode, header};
use warp::reply::Response;

/// The message, if the caller may see its account.
async fn readable(app: &App, caller: &Caller, id: &str) -> Result<Message, ApiError> {
    let user = caller.user()?;
    let message = app
        .store
        .message(id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let account = app.store.account(&message.account_id).await?;
    match account {
        Some(account) if can_see(user, &account) => Ok(message),
        _ => Err(ApiError::not_found("message")),
    }
}

/// `GET /v1/accounts/{id}/messages?folder=&unread=&q=`
pub async fn list(
    app: &App,
    caller: &Caller,
    account_id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, account_id).await?;
    let page = PageRequest::from_query(query)?;
    let after = match page.after.as_deref() {
        None => None,
        Some(key) => Some(
            parse_key(key)
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this server issued"))?,
        ),
    };
    let folder = match query.get("folder").filter(|f| !f.is_empty()) {
        None => None,
        Some(id) => {
            let folder = account
                .folders
                .iter()
                .find(|f| f.id.as_str() == id)
                .ok_or_else(|| ApiError::invalid("folder", "is not a folder of this account"))?;
            Some(folder.id.clone())
        }
    };
    let unread = match query.get("unread").map(String::as_str) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid("unread", "must be true or false")),
    };
    let words = query
        .get("q")
        .map(|q| q.split_whitespace().map(str::to_lowercase).collect())
        .unwrap_or_default();
    let (messages, more) = app
        .store
        .messages(
            &account.id,
            MessageQuery {
                folder,
                unread,
                words,
                after,
                limit: page.limit,
            },
        )
        .await?;
    let next_cursor = more
        .then(|| {
            messages
                .last()
                .map(|m| cursor(&format!("{} {}", m.received_at, m.id)))
        })
        .flatten();
    let items: Vec<Value> = messages
        .iter()
        .map(|m| render::item(m, json!([])))
        .collect();
    Ok(json(&json!({"items": items, "next_cursor": next_cursor})))
}

/// A message list's sort key: `received_at` and id.
fn parse_key(key: &str) -> Option<(i64, String)> {
    let (at, id) = key.split_once(' ')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// `GET /v1/messages/{id}` (`?html=raw` for the original HTML).
pub async fn get(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    let raw_html = match query.get("html").map(String::as_str) {
        None | Some("") | Some("sanitized") => false,
        Some("raw") => true,
        Some(_) => return Err(ApiError::invalid("html", "must be `raw` when given")),
    };
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .unwrap_or_default();
    Ok(json(&render::full(&message, &raw, json!([]), raw_html)))
}

/// `GET /v1/messages/{id}/raw`: the bytes exactly as fetched.
pub async fn raw(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    bytes_response(raw, "message/rfc822", None)
}

/// `GET /v1/messages/{id}/attachments/{attachment_id}`
pub async fn attachment(
    app: &App,
    caller: &Caller,
    id: &str,
    attachment_id: &str,
) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .unwrap_or_default();
    let meta = message
        .attachments
        .iter()
        .find(|a| a.id == attachment_id)
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let contents = render::attachment(&message, &raw, attachment_id)
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    bytes_response(contents, &meta.content_type, meta.filename.as_deref())
}

fn bytes_response(
    bytes: Vec<u8>,
    content_type: &str,
    filename: Option<&str>,
) -> Result<Response, ApiError> {
    let mut response = warp::http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(name) = filename {
        // Only the safe characters of the name go into the header.
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';') || *c == ' ')
            .collect();
        response = response.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{safe}\""),
        );
    }
    response
        .body(bytes.into())
        .map_err(|e| ApiError::bad_request(format!("cannot build the response: {e}")))
}
