//! Sending: `POST /v1/accounts/{id}/send` builds the message and queues it; the account's
//! next job hands it to the server. `GET /v1/outbox/{id}` tells how it went.

use super::accounts::{can_see, visible};
use super::auth::Caller;
use super::body::{self, List, Long, Text};
use super::error::ApiError;
use super::messages::readable;
use super::{App, json};
use crate::mail::compose::{self, Attached, Draft, Original, Signature};
use crate::mail::message::Address;
use crate::store::outbox::{Outgoing, SendState};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::reply::Response;

/// Recipients one message may have, To, Cc and Bcc together.
const MAX_RECIPIENTS: usize = 100;
/// The largest text or HTML body, in bytes.
const MAX_BODY_TEXT: usize = 4 * 1024 * 1024;

/// The body of a send (docs/api.md, "Sending").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody<'a> {
    to: Option<List<Recipient, MAX_RECIPIENTS>>,
    cc: Option<List<Recipient, MAX_RECIPIENTS>>,
    bcc: Option<List<Recipient, MAX_RECIPIENTS>>,
    subject: Option<Text<998>>,
    text: Option<Long<MAX_BODY_TEXT>>,
    html: Option<Long<MAX_BODY_TEXT>>,
    #[serde(borrow)]
    attachments: Option<List<Attachment<'a>, 100>>,
    in_reply_to: Option<Text<128>>,
    signature: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attachment<'a> {
    filename: Option<Text<255>>,
    content_type: Option<Text<255>>,
    /// Borrowed from the request: attachments are the bulk of a send.
    #[serde(borrow)]
    content_base64: Option<&'a str>,
}

/// The addresses of `To`, `Cc` or `Bcc` (`list`), each one a header can carry safely.
fn recipients(
    list: Option<List<Recipient, MAX_RECIPIENTS>>,
    name: &'static str,
) -> Result<Vec<Address>, ApiError> {
    list.map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let email = item
                .email
                .as_deref()
                .and_then(Text::<320>::check)
                .ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        "needs an email of 1-320 characters without control characters",
                    )
                })?;
            let display = match item.name.as_deref() {
                None => None,
                Some(display) => Some(Text::<200>::check(display).ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        "names must be 1-200 characters without control characters",
                    )
                })?),
            };
            let address = Address {
                email: email.to_owned(),
                name: display.map(str::to_owned),
            };
            compose::mailbox(name, &address).map_err(|e| ApiError::invalid(name, e.message))?;
            Ok(address)
        })
        .collect()
}

/// The attachments decoded, at most `max_bytes` in all.
fn attachments(
    list: Option<List<Attachment<'_>, 100>>,
    max_bytes: u64,
) -> Result<Vec<Attached>, ApiError> {
    let mut total = 0u64;
    list.map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let encoded = item
                .content_base64
                .ok_or_else(|| ApiError::invalid("attachments", "need content_base64"))?;
            let compact: String = encoded.split_ascii_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| ApiError::invalid("attachments", "content_base64 is not base64"))?;
            total += bytes.len() as u64;
            if total > max_bytes {
                return Err(ApiError {
                    field: Some("attachments".into()),
                    ..ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "attachment_too_large",
                        format!("attachments may hold at most {max_bytes} bytes in all"),
                    )
                });
            }
            Ok(Attached {
                filename: item
                    .filename
                    .ok_or_else(|| ApiError::invalid("attachments", "need a filename"))?
                    .into_inner(),
                content_type: item
                    .content_type
                    .map(Text::into_inner)
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                bytes,
            })
        })
        .collect()
}

/// `POST /v1/accounts/{id}/send`. With an `Idempotency-Key` the outbox id is derived from
/// it, so even a retry after a crash between queueing and answering queues nothing twice.
pub async fn send(
    app: &App,
    caller: &Caller,
    account_id: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Result<(StatusCode, Value), ApiError> {
    let user = caller.user()?;
    let account = visible(app, user, account_id).await?;
    if !account.enabled {
        return Err(ApiError::conflict(
            "the account is disabled; enable it before sending",
        ));
    }
    let fields: SendBody = body::parse(body)?;
    let (to, cc, bcc) = (
        recipients(fields.to, "to")?,
        recipients(fields.cc, "cc")?,
        recipients(fields.bcc, "bcc")?,
    );
    let count = to.len() + cc.len() + bcc.len();
    if count == 0 {
        return Err(ApiError::invalid("to", "needs at least one recipient"));
    }
    if count > MAX_RECIPIENTS {
        return Err(ApiError::invalid(
            "to",
            format!("with cc and bcc may hold at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    let original = match &fields.in_reply_to {
        None => None,
        Some(id) => {
            let message = readable(app, caller, id.as_str())
                .await
                .map_err(|_| ApiError::invalid("in_reply_to", "is not a message you can see"))?;
            let raw = app
                .store
                .raw_message(&message.id)
                .await?
                .unwrap_or_default();
            let references = crate::mail::parse::references_for_reply(&raw);
            Some((message, references))
        }
    };
    let subject = match (fields.subject, &original) {
        (Some(subject), _) => subject.into_inner(),
        (None, Some((original, _))) => compose::reply_subject(original.subject.as_deref()),
        (None, None) => {
            return Err(ApiError::invalid(
                "subject",
                "is required unless in_reply_to is given",
            ));
        }
    };
    let text = fields.text.map(|t| t.0);
    let html = fields.html.map(|h| h.0);
    if text.is_none() && html.is_none() {
        return Err(ApiError::invalid("text", "or html must be given"));
    }
    let signature = match fields.signature.unwrap_or(true) {
        true => user.signature.as_ref().map(|html| Signature {
            text: crate::signature::to_text(html),
            html: html.clone(),
        }),
        false => None,
    };
    let domain = account
        .email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("mailroom");
    let message_id = format!(
        "{}@{domain}",
        crate::id::new_id("mr").trim_start_matches("mr_")
    );
    let envelope_to = {
        let mut seen = std::collections::HashSet::new();
        to.iter()
            .chain(&cc)
            .chain(&bcc)
            .map(|a| a.email.clone())
            .filter(|e| seen.insert(e.to_ascii_lowercase()))
            .collect()
    };
    let draft = Draft {
        from: Address {
            name: account.display_name.clone(),
            email: account.email.clone(),
        },
        to,
        cc,
        bcc,
        subject,
        text,
        html,
        attachments: attachments(fields.attachments, app.max_attachment_bytes)?,
        message_id: message_id.clone(),
        date: std::time::SystemTime::now(),
        reply_to: original.as_ref().map(|(o, references)| Original {
            message_id: o.message_id.clone(),
            references: references.clone(),
        }),
        signature,
    };
    let raw = compose::build(draft).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let id = match idempotency_key {
        Some(key) => {
            let digest = Sha256::digest(format!("{}\n{account_id}\n{key}", caller.key()));
            format!("out_{}", hex::encode(&digest[..16]))
        }
        None => crate::id::new_id("out"),
    };
    let outgoing = Outgoing {
        id,
        account_id: account.id.clone(),
        message_id,
        state: SendState::Queued,
        error: None,
        envelope_from: account.email.clone(),
        envelope_to,
        recipients: Vec::new(),
        in_reply_to: original.map(|(o, _)| o.id),
        sent_message_id: None,
        created_at: crate::clock::now_rfc3339(),
        attempts: 0,
    };
    let queued = app.store.queue_send(outgoing, raw).await?;
    app.scheduler.request(&account.id);
    Ok((
        StatusCode::ACCEPTED,
        json!({"outbox_id": queued.id, "message_id": queued.message_id}),
    ))
}

/// The outbox record as the API shows it.
pub fn view(outgoing: &Outgoing) -> Value {
    json!({
        "id": outgoing.id,
        "kind": "send",
        "account_id": outgoing.account_id,
        "state": outgoing.state,
        "error": outgoing.error,
        "message_id": outgoing.message_id,
        "sent_message_id": outgoing.sent_message_id,
        "recipients": outgoing.recipients.iter().map(|r| json!({
            "email": r.email, "accepted": r.accepted, "reply": r.reply,
        })).collect::<Vec<_>>(),
        "created_at": outgoing.created_at,
    })
}

/// `GET /v1/outbox/{id}`
pub async fn get(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let outgoing = app
        .store
        .outgoing(id)
        .await?
        .ok_or_else(|| ApiError::not_found("outbox entry"))?;
    match app.store.account(&outgoing.account_id).await? {
        Some(account) if can_see(user, &account) => Ok(json(&view(&outgoing))),
        _ => Err(ApiError::not_found("outbox entry")),
    }
}
