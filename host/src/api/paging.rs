//! Paging of top-level collections: `?limit=` (default 50, at most 500) and an opaque
//! `?cursor=`, answered as `{"items": [...], "next_cursor": ... | null}`.

use super::error::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::collections::HashMap;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
}

impl PageRequest {
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = match query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        ApiError::invalid("cursor", "is not a cursor this server issued")
                    })?,
            ),
        };
        Ok(Self { limit, after })
    }

    /// One page of `items`, which are sorted by `key`.
    pub fn page<T: Serialize>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let mut items: Vec<T> = match &self.after {
            Some(after) => items
                .into_iter()
                .filter(|i| key(i).as_str() > after.as_str())
                .collect(),
            None => items,
        };
        let next_cursor = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|last| cursor(&key(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// The cursor that continues after the item whose sort key is `key`.
pub fn cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
