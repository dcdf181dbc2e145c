//! `/v1/webhooks`: the CRM's endpoints for events and their deliveries (docs/api.md,
//! "Webhooks"). Admins and the CRM's service manage them; they carry every account's events.

use super::auth::Caller;
use super::body::{self, List, Required, Text};
use super::error::ApiError;
use super::paging::{PageRequest, cursor};
use super::{App, json, json_status, no_content};
use crate::secret::Secret;
use crate::store::mail::EVENT_TYPES;
use crate::store::webhooks::{Delivery, DeliveryState, Webhook};
use crate::webhooks::{MAX_URL_LEN, new_secret, secret_key, url_refusal};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

const WHO: &str = "webhooks are managed by";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: Option<Text<MAX_URL_LEN>>,
    events: Option<List<Text<64>, 32>>,
    secret: Option<Text<128>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookChange {
    url: Option<Text<MAX_URL_LEN>>,
    events: Option<List<Text<64>, 32>>,
    enabled: Option<bool>,
}

/// `POST /v1/webhooks`
pub async fn create(app: &App, caller: &Caller, body: &Value) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    let new: NewWebhook = body::parse(body)?;
    let url = checked_url(app, new.url.required("url")?)?;
    let events = checked_events(new.events.required("events")?)?;
    let secret = match new.secret {
        Some(given) => {
            let given = given.into_inner();
            secret_key(&given).map_err(|why| ApiError::invalid("secret", why))?;
            given
        }
        None => new_secret(),
    };
    let webhook = Webhook {
        id: crate::id::new_id("whk"),
        url,
        events,
        enabled: true,
        disabled_reason: None,
        created_at: crate::clock::now_rfc3339(),
    };
    let sealed = app.vault.seal(&webhook.id, &Secret::new(secret.clone()));
    app.store.insert_webhook(webhook.clone(), sealed).await?;
    tracing::info!(webhook = %webhook.id, url = %webhook.url, "webhook created");
    let mut answer = view(&webhook);
    answer["secret"] = json!(secret);
    Ok(json_status(&answer, StatusCode::CREATED))
}

/// `GET /v1/webhooks`
pub async fn list(
    app: &App,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    let page = PageRequest::from_query(query)?;
    let webhooks: Vec<Value> = app.store.webhooks().await?.iter().map(view).collect();
    Ok(json(&page.page(webhooks, |w| {
        w["id"].as_str().unwrap_or_default().to_owned()
    })))
}

/// `GET /v1/webhooks/{id}`
pub async fn get(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    Ok(json(&view(&find(app, id).await?)))
}

/// `PATCH /v1/webhooks/{id}`: enabling an endpoint clears the reason Mailroom disabled it
/// for, and its pending deliveries go again at once.
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    let change: WebhookChange = body::parse(body)?;
    let mut webhook = find(app, id).await?;
    if let Some(url) = change.url {
        webhook.url = checked_url(app, url)?;
    }
    if let Some(events) = change.events {
        webhook.events = checked_events(events)?;
    }
    if let Some(enabled) = change.enabled {
        webhook.enabled = enabled;
        if enabled {
            webhook.disabled_reason = None;
        }
    }
    app.store.update_webhook(webhook.clone()).await?;
    app.deliverer.wake();
    Ok(json(&view(&webhook)))
}

/// `DELETE /v1/webhooks/{id}`
pub async fn remove(app: &App, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    if !app.store.delete_webhook(id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(no_content())
}

/// `GET /v1/webhooks/{id}/deliveries`, newest first; the cursor is the last event's
/// sequence number.
pub async fn deliveries(
    app: &App,
    caller: &Caller,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    let page = PageRequest::from_query(query)?;
    find(app, id).await?;
    let before = match &page.after {
        None => None,
        Some(after) => Some(
            after
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor this server issued"))?,
        ),
    };
    let found = app.store.deliveries(id, before, page.limit).await?;
    let next_cursor = match (found.more, found.items.last()) {
        (true, Some(last)) => Some(cursor(&last.event_seq.to_string())),
        _ => None,
    };
    let items: Vec<Value> = found.items.iter().map(delivery_view).collect();
    Ok(json(&json!({"items": items, "next_cursor": next_cursor})))
}

/// `POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry`: the delivery goes again, before
/// the endpoint's later ones, with a new round of retries.
pub async fn retry(
    app: &App,
    caller: &Caller,
    id: &str,
    delivery_id: &str,
) -> Result<Response, ApiError> {
    caller.admin_or_service(WHO)?;
    find(app, id).await?;
    let delivery = app
        .store
        .retry_delivery(id, delivery_id, crate::clock::now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    app.deliverer.wake();
    Ok(json_status(&delivery_view(&delivery), StatusCode::ACCEPTED))
}

async fn find(app: &App, id: &str) -> Result<Webhook, ApiError> {
    app.store
        .webhook(id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

fn checked_url(app: &App, url: Text<MAX_URL_LEN>) -> Result<String, ApiError> {
    let url = url.into_inner();
    match url_refusal(&url, &app.webhooks) {
        Some(why) => Err(ApiError::invalid("url", why)),
        None => Ok(url),
    }
}

/// `["*"]`, or known event types without repeats.
fn checked_events(events: List<Text<64>, 32>) -> Result<Vec<String>, ApiError> {
    let mut checked: Vec<String> = Vec::new();
    for (i, event) in events.0.into_iter().enumerate() {
        let event = event.into_inner();
        if event != "*" && !EVENT_TYPES.contains(&event.as_str()) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!(
                    "is not an event type: use `*` or one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !checked.contains(&event) {
            checked.push(event);
        }
    }
    if checked.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "must name at least one event type, or `*`",
        ));
    }
    if checked.len() > 1 && checked.iter().any(|e| e == "*") {
        checked = vec!["*".into()];
    }
    Ok(checked)
}

/// An endpoint as the API shows it; its secret never.
fn view(webhook: &Webhook) -> Value {
    json!({
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "created_at": webhook.created_at,
    })
}

fn delivery_view(delivery: &Delivery) -> Value {
    let next_attempt_at = (delivery.state == DeliveryState::Pending)
        .then(|| crate::clock::rfc3339_millis(delivery.next_attempt_ms.max(0)));
    json!({
        "id": delivery.id,
        "event_seq": delivery.event_seq,
        "type": delivery.kind,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": next_attempt_at,
    })
}
