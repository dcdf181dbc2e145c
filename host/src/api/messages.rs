//! Messages: `GET /v1/accounts/{id}/messages`, `GET /v1/messages/{id}` (with `/raw` and
//! `/attachments/{id}`), and the changes a user makes: `PATCH`, `POST …/move`, `DELETE`.
//! A message is visible to whoever may see its account, and changed by them; 404 otherwise.
//! Changes show at once and reach the server through the outbox.

use super::accounts::{can_see, visible};
use super::auth::Caller;
use super::body::{self, Required, Text};
use super::error::ApiError;
use super::paging::{PageRequest, cursor};
use super::records::Viewer;
use super::{App, json, query_flag};
use crate::folder::FolderRole;
use crate::mail::FlagUpdate;
use crate::mail::message::Message;
use crate::mail::render;
use crate::store::mail::MessageQuery;
use crate::store::outbox::Change;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::{StatusCode, header};
use warp::reply::Response;

/// The message, if the caller may see its account.
pub async fn readable(app: &App, caller: &Caller, id: &str) -> Result<Message, ApiError> {
    let user = caller.user()?;
    let message = app
        .store
        .message(id)
        .await?
        .filter(|m| !m.is_removed())
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
    let after = after_key(&page)?;
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
    let unread = query_flag(query, "unread")?;
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
    message_page(app, caller, &messages, more).await
}

/// Where a page of a message list continues: after the `(received_at, id)` its cursor names.
pub fn after_key(page: &PageRequest) -> Result<Option<(i64, String)>, ApiError> {
    match page.after.as_deref() {
        None => Ok(None),
        Some(key) => parse_key(key)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this server issued")),
    }
}

/// A page of a message list, newest first, each with its records.
pub async fn message_page(
    app: &App,
    caller: &Caller,
    messages: &[Message],
    more: bool,
) -> Result<Response, ApiError> {
    let next_cursor = more
        .then(|| {
            messages
                .last()
                .map(|m| cursor(&format!("{} {}", m.received_at, m.id)))
        })
        .flatten();
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let filed = app.store.message_records(&ids).await?;
    let records = Viewer::new(caller).known(app, filed).await?;
    let items: Vec<Value> = messages
        .iter()
        .zip(records)
        .map(|(m, records)| render::item(m, json!(records)))
        .collect();
    Ok(json(&json!({"items": items, "next_cursor": next_cursor})))
}

/// A message list's sort key: `received_at` and id.
fn parse_key(key: &str) -> Option<(i64, String)> {
    let (at, id) = key.split_once(' ')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// `GET /v1/messages/{id}` (`?html=raw` for the original HTML, `?remote=allow` to keep
/// remote images).
pub async fn get(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    let mode = html_mode(query)?;
    let records = records_of(app, caller, &message.id).await?;
    let attachments_url = format!("/v1/messages/{}/attachments", message.id);
    full_view(app, message, records, mode, attachments_url).await
}

/// How a single-message view shows its HTML, from `?html=` and `?remote=`.
pub fn html_mode(query: &HashMap<String, String>) -> Result<render::Html, ApiError> {
    let raw = match query.get("html").map(String::as_str) {
        None | Some("") | Some("sanitized") => false,
        Some("raw") => true,
        Some(_) => return Err(ApiError::invalid("html", "must be `raw` when given")),
    };
    let remote = match query.get("remote").map(String::as_str) {
        None | Some("") | Some("block") => false,
        Some("allow") => true,
        Some(_) => return Err(ApiError::invalid("remote", "must be `allow` when given")),
    };
    Ok(match (raw, remote) {
        (true, _) => render::Html::Raw,
        (false, true) => render::Html::RemoteAllowed,
        (false, false) => render::Html::Sanitized,
    })
}

/// The full view of a message the caller may read, parsed and sanitized off the request
/// threads.
pub async fn full_view(
    app: &App,
    message: Message,
    records: Value,
    mode: render::Html,
    attachments_url: String,
) -> Result<Response, ApiError> {
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .unwrap_or_default();
    let view = off_thread(app, move || {
        render::full(&message, &raw, records, mode, &attachments_url)
    })
    .await?;
    Ok(json(&view))
}

/// Runs MIME parsing or sanitizing of a whole message on the blocking pool, a bounded number
/// at once, so a large message never stalls the threads serving other requests.
async fn off_thread<T: Send + 'static>(
    app: &App,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = app
        .renders
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the server is stopping"))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("rendering the message failed: {e}")))
}

/// The records a message is filed under that the caller may know of, as the message views
/// show them.
pub async fn records_of(app: &App, caller: &Caller, message_id: &str) -> Result<Value, ApiError> {
    let filed = app
        .store
        .message_records(std::slice::from_ref(&message_id.to_owned()))
        .await?;
    let records = Viewer::new(caller).known(app, filed).await?;
    Ok(json!(records.into_iter().next().unwrap_or_default()))
}

/// `GET /v1/messages/{id}/raw`: the bytes exactly as fetched.
pub async fn raw(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    let raw = app
        .store
        .raw_message(&message.id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    bytes_response(raw, "message/rfc822", Disposition::Attachment, None)
}

/// `GET /v1/messages/{id}/attachments/{attachment_id}`
pub async fn attachment(
    app: &App,
    caller: &Caller,
    id: &str,
    attachment_id: &str,
) -> Result<Response, ApiError> {
    let message = readable(app, caller, id).await?;
    attachment_of(app, &message, attachment_id).await
}

/// An attachment of a message the caller may read, as a download.
pub async fn attachment_of(
    app: &App,
    message: &Message,
    attachment_id: &str,
) -> Result<Response, ApiError> {
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
    let index = meta.id.clone();
    let message = message.clone();
    let contents = off_thread(app, move || render::attachment(&message, &raw, &index))
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let (content_type, inline) = render::served_as(&meta.content_type);
    let disposition = if inline {
        Disposition::Inline
    } else {
        Disposition::Attachment
    };
    bytes_response(
        contents,
        content_type,
        disposition,
        meta.filename.as_deref(),
    )
}

/// Applies a change to a message the caller may see and has its account's job push it.
async fn change(
    app: &App,
    caller: &Caller,
    id: &str,
    change: impl FnOnce(&Message, &crate::account::Account) -> Result<Change, ApiError>,
) -> Result<Message, ApiError> {
    let message = readable(app, caller, id).await?;
    let account = app
        .store
        .account(&message.account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let change = change(&message, &account)?;
    let changed = app
        .store
        .queue_change(&message.id, change)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    app.scheduler.request(&account.id);
    Ok(changed)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagsBody {
    seen: Option<bool>,
    flagged: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    folder_id: Option<Text<512>>,
}

/// `PATCH /v1/messages/{id}` `{"seen"?, "flagged"?}`
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let fields: FlagsBody = body::parse(body)?;
    let update = FlagUpdate {
        seen: fields.seen,
        flagged: fields.flagged,
        answered: None,
    };
    if update.seen.is_none() && update.flagged.is_none() {
        return Err(ApiError::invalid("seen", "or flagged must be given"));
    }
    let message = change(app, caller, id, |_, _| Ok(Change::Flags(update))).await?;
    let records = records_of(app, caller, &message.id).await?;
    Ok(json(&render::item(&message, records)))
}

/// `POST /v1/messages/{id}/move` `{"folder_id"}`
pub async fn move_to(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let fields: MoveBody = body::parse(body)?;
    let folder_id = fields.folder_id.required("folder_id")?;
    let folder_id = folder_id.as_str();
    let message = change(app, caller, id, |_, account| {
        let folder = account
            .folders
            .iter()
            .find(|f| f.id.as_str() == folder_id && f.selectable)
            .ok_or_else(|| ApiError::invalid("folder_id", "is not a folder of this account"))?;
        Ok(Change::Move {
            to: folder.id.clone(),
        })
    })
    .await?;
    let records = records_of(app, caller, &message.id).await?;
    Ok(json(&render::item(&message, records)))
}

/// `DELETE /v1/messages/{id}`: to the trash; for good when already there or when the
/// account has no trash folder.
pub async fn delete(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    change(app, caller, id, |message, account| {
        let trash = account
            .folders
            .iter()
            .find(|f| f.role == Some(FolderRole::Trash) && f.selectable);
        Ok(match trash {
            Some(trash) if !message.in_folder(&trash.id) => Change::Move {
                to: trash.id.clone(),
            },
            _ => Change::Expunge,
        })
    })
    .await?;
    Ok(super::no_content())
}

/// Whether a browser shows a response or saves it.
#[derive(Clone, Copy)]
enum Disposition {
    Inline,
    Attachment,
}

/// Mail bytes as a response that no browser runs on the API's origin: never sniffed,
/// sandboxed with nothing allowed, and saved rather than shown unless `Inline`.
fn bytes_response(
    bytes: Vec<u8>,
    content_type: &str,
    disposition: Disposition,
    filename: Option<&str>,
) -> Result<Response, ApiError> {
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    // Only the safe characters of the name go into the header.
    let disposition = match filename {
        Some(name) => {
            let safe: String = name
                .chars()
                .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';') || *c == ' ')
                .collect();
            format!("{kind}; filename=\"{safe}\"")
        }
        None => kind.to_owned(),
    };
    warp::http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        )
        .header(header::CONTENT_DISPOSITION, disposition)
        .body(bytes.into())
        .map_err(|e| ApiError::bad_request(format!("cannot build the response: {e}")))
}
