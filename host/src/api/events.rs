//! `GET /v1/events?after=&wait=`: the event log, long-polled, filtered to what the caller
//! may see: events naming an account only to those who may open it, events naming a record
//! only to those who may see the record; the CRM's bare service token sees every event.

use super::auth::Caller;
use super::error::ApiError;
use super::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use super::records::Viewer;
use super::{App, json};
use crate::record::RecordRef;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use warp::http::StatusCode;
use warp::reply::Response;

/// The longest a request waits for new events.
const MAX_WAIT_SECS: u64 = 60;
/// How often a waiting request looks for new events.
const POLL: Duration = Duration::from_millis(200);

pub async fn list(
    app: &App,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let number = |name: &str, max: u64| -> Result<Option<u64>, ApiError> {
        match query.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid(name, format!("must be a whole number up to {max}"))
                }),
        }
    };
    let after = match number("after", u64::MAX)? {
        Some(after) => after,
        None => number("cursor", u64::MAX)?.unwrap_or(0),
    };
    let wait = Duration::from_secs(number("wait", MAX_WAIT_SECS)?.unwrap_or(0));
    let limit = number("limit", MAX_LIMIT as u64)?
        .map(|n| n.max(1) as usize)
        .unwrap_or(DEFAULT_LIMIT);
    let deadline = Instant::now() + wait;
    let mut viewer = Viewer::new(caller);
    let mut cursor = after;
    if cursor == u64::MAX {
        // Nothing can follow the last sequence number.
        return Ok(json(
            &json!({"items": [], "next_cursor": cursor.to_string()}),
        ));
    }
    loop {
        let (events, oldest) = app.store.events(cursor, limit).await?;
        if cursor == after && after.saturating_add(1) < oldest {
            return Err(ApiError::new(
                StatusCode::GONE,
                "cursor_expired",
                format!("events before {oldest} are no longer kept; start again from the newest"),
            ));
        }
        let scanned = events.last().map(|e| e.seq);
        viewer.refresh();
        let mut items = Vec::new();
        for event in events {
            if sees(app, &mut viewer, &event.kind, &event.data).await? {
                items.push(event);
            }
        }
        if let Some(seq) = scanned {
            cursor = seq;
        }
        if !items.is_empty() || Instant::now() >= deadline {
            return Ok(json(
                &json!({"items": items, "next_cursor": cursor.to_string()}),
            ));
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Whether the viewer may see an event: the account it names must be one they may open, and
/// the record it names one they may see (a created contact's `contact.created` goes to those
/// who may open the creating account).
async fn sees(
    app: &App,
    viewer: &mut Viewer<'_>,
    kind: &str,
    data: &Value,
) -> Result<bool, ApiError> {
    let Some(accounts) = viewer.accounts(app).await? else {
        return Ok(true);
    };
    if let Some(account_id) = data.get("account_id").and_then(Value::as_str) {
        if !accounts.contains(account_id) {
            return Ok(false);
        }
        if kind == "contact.created" {
            return Ok(true);
        }
    }
    let named = data.get("into").or_else(|| data.get("record"));
    let Some(reference) = named.and_then(|r| serde_json::from_value::<RecordRef>(r.clone()).ok())
    else {
        return Ok(true);
    };
    Ok(match app.store.record(&reference).await? {
        Some(record) => viewer.sight(app, &record).await?.is_some(),
        None => false,
    })
}
