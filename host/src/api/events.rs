//! `GET /v1/events?after=&wait=`: the event log, long-polled, filtered to what the caller
//! may see (mail events only for accounts the caller may open).

use super::accounts::can_see;
use super::auth::Caller;
use super::error::ApiError;
use super::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{App, json};
use serde_json::json;
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
    let user = caller.user()?;
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
    let mut accounts = HashMap::new();
    let mut cursor = after;
    loop {
        let (events, oldest) = app.store.events(cursor, limit).await?;
        if cursor == after && after + 1 < oldest {
            return Err(ApiError::new(
                StatusCode::GONE,
                "cursor_expired",
                format!("events before {oldest} are no longer kept; start again from the newest"),
            ));
        }
        let scanned = events.last().map(|e| e.seq);
        let mut items = Vec::new();
        for event in events {
            let visible = match event.data.get("account_id").and_then(|v| v.as_str()) {
                None => true,
                Some(account_id) => {
                    if !accounts.contains_key(account_id) {
                        let account = app.store.account(account_id).await?;
                        let allowed = account.is_some_and(|a| can_see(user, &a));
                        accounts.insert(account_id.to_owned(), allowed);
                    }
                    accounts[account_id]
                }
            };
            if visible {
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
