//! Gmail's quota, as the shared client ([`mailroom_wasi_http::pace`]) keeps it.
//!
//! Follows the Gmail API pages "Usage limits" (a per-user limit of 250 quota units per
//! second, moving average; each method's cost in units) and "Resolve errors" (429 Too Many
//! Requests, and 403 with reason `rateLimitExceeded` or `userRateLimitExceeded`: retry with
//! exponential backoff; 5xx: retry with backoff).

use crate::gmail::ApiError;
use mailroom_wasi_http::{Class, Rate, Service};

/// Gmail's per-user rate: quota units a second.
pub const RATE: Rate = Rate {
    units: 250,
    per_secs: 1,
};

/// Calls in flight at once (Gmail also limits a user's concurrent requests).
const IN_FLIGHT: usize = 16;

/// Gmail, for the shared client.
pub fn service() -> Service {
    Service {
        name: "Gmail",
        in_flight: IN_FLIGHT,
        rate: RATE,
        classify,
        headers: Vec::new(),
    }
}

/// The quota cost of each method used ("Usage limits").
pub mod cost {
    pub const GET_PROFILE: u32 = 1;
    pub const LABELS_LIST: u32 = 1;
    pub const HISTORY_LIST: u32 = 2;
    pub const MESSAGES_LIST: u32 = 5;
    pub const MESSAGES_GET: u32 = 5;
    pub const MESSAGES_MODIFY: u32 = 5;
    pub const MESSAGES_TRASH: u32 = 5;
    pub const MESSAGES_UNTRASH: u32 = 5;
    pub const MESSAGES_DELETE: u32 = 10;
    pub const MESSAGES_INSERT: u32 = 25;
    pub const MESSAGES_SEND: u32 = 100;
}

/// Sorts an answer: 429 always, 403 only with a rate-limit reason.
pub fn classify(status: u16, body: &[u8]) -> Class {
    match status {
        429 => Class::RateLimited,
        403 if ApiError::parse(body).is_some_and(|e| e.is_rate_limit()) => Class::RateLimited,
        500..=599 => Class::ServerError,
        _ => Class::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let user_rate = br#"{"error":{"code":403,"message":"User Rate Limit Exceeded",
            "errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"x"}]}}"#;
        let project_rate = br#"{"error":{"code":403,"message":"Rate Limit Exceeded",
            "errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}"#;
        let forbidden = br#"{"error":{"code":403,"message":"Delegation denied",
            "errors":[{"domain":"global","reason":"forbidden"}]}}"#;
        assert_eq!(classify(429, b""), Class::RateLimited);
        assert_eq!(classify(403, user_rate), Class::RateLimited);
        assert_eq!(classify(403, project_rate), Class::RateLimited);
        assert_eq!(classify(403, forbidden), Class::Final);
        assert_eq!(classify(403, b"not json"), Class::Final);
        assert_eq!(classify(503, b""), Class::ServerError);
        assert_eq!(classify(200, b"{}"), Class::Final);
        assert_eq!(classify(404, b""), Class::Final);
    }
}
