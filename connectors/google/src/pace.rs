//! Keeping under Gmail's quota, and what to do when Gmail asks to slow down.
//!
//! Follows the Gmail API pages "Usage limits" (a per-user limit of 250 quota units per
//! second, moving average; each method's cost in units) and "Resolve errors" (429 Too Many
//! Requests, and 403 with reason `rateLimitExceeded` or `userRateLimitExceeded`: retry with
//! exponential backoff; 5xx: retry with backoff). Times are passed in, so this module holds
//! no clock and runs natively in tests.

use crate::gmail::ApiError;
use std::collections::VecDeque;

/// Gmail's per-user rate: quota units a second.
pub const UNITS_PER_SECOND: u32 = 250;

/// The rate calls are started at: a little under Gmail's, because Gmail counts a call when
/// it arrives, not when it leaves. Evenly spaced, a call a little late or early moves by a
/// fraction of the spacing; the margin (2%) takes that, and a call refused for quota would
/// cost a second's wait.
pub const PACED_UNITS_PER_SECOND: u32 = UNITS_PER_SECOND * 49 / 50;

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

const SECOND_NS: u64 = 1_000_000_000;

/// The units spent in the last second, to start a call only when the quota has room for it.
/// Calls are also spread evenly over the second (a call of `n` units leaves `n` / rate
/// seconds before the next): started in bursts, they would reach Gmail with the jitter of
/// their connections, and a burst arriving a little early overlaps the previous one in
/// Gmail's window.
#[derive(Debug, Default)]
pub struct Pacer {
    /// When each recent call started (nanoseconds on a monotonic clock) and its cost.
    spent: VecDeque<(u64, u32)>,
    /// No call starts before this time (after Gmail asked to slow down).
    hold_until: u64,
    /// The next call starts no earlier than this: the spacing of the calls before it.
    next_slot: u64,
}

impl Pacer {
    /// How long to wait (ns) before a call of `cost` units may start at `now`.
    pub fn wait(&mut self, now: u64, cost: u32) -> u64 {
        while self
            .spent
            .front()
            .is_some_and(|&(at, _)| at + SECOND_NS <= now)
        {
            self.spent.pop_front();
        }
        let held = self.hold_until.max(self.next_slot).saturating_sub(now);
        let cost = cost.min(PACED_UNITS_PER_SECOND);
        let mut used: u32 = self.spent.iter().map(|&(_, units)| units).sum();
        if used + cost <= PACED_UNITS_PER_SECOND {
            return held;
        }
        for &(at, units) in &self.spent {
            used -= units;
            if used + cost <= PACED_UNITS_PER_SECOND {
                return held.max(at + SECOND_NS - now);
            }
        }
        held
    }

    /// Records a call of `cost` units started at `now`.
    pub fn spend(&mut self, now: u64, cost: u32) {
        self.spent.push_back((now, cost));
        let spacing = u64::from(cost) * SECOND_NS / u64::from(PACED_UNITS_PER_SECOND);
        self.next_slot = self.next_slot.max(now) + spacing;
    }

    /// Starts no call before `until` (Gmail asked to slow down).
    pub fn hold(&mut self, until: u64) {
        self.hold_until = self.hold_until.max(until);
    }
}

/// How long one call may spend waiting on Gmail's requests to slow down before it gives up.
pub const WAIT_BUDGET_MS: u64 = 20_000;

/// How often a server error (5xx) is retried.
pub const SERVER_RETRIES: u32 = 2;

/// The retries of one call.
#[derive(Debug, Default, Clone)]
pub struct Retries {
    waited_ms: u64,
    rate_limits: u32,
    server_errors: u32,
}

impl Retries {
    /// After a rate-limit answer: the wait before the next attempt (ms), or, when the call's
    /// waits would pass [`WAIT_BUDGET_MS`], the seconds after which to try again later.
    pub fn after_rate_limit(
        &mut self,
        retry_after_secs: Option<u32>,
        jitter: u64,
    ) -> Result<u64, u32> {
        let wait = match retry_after_secs {
            Some(secs) => u64::from(secs.max(1)) * 1000,
            None => backoff_ms(self.rate_limits, jitter),
        };
        self.rate_limits += 1;
        if self.waited_ms + wait > WAIT_BUDGET_MS {
            return Err(wait.div_ceil(1000).clamp(1, u64::from(u32::MAX)) as u32);
        }
        self.waited_ms += wait;
        Ok(wait)
    }

    /// After a server error: the wait before the next attempt (ms), or none when the call
    /// has had its retries.
    pub fn after_server_error(&mut self, jitter: u64) -> Option<u64> {
        if self.server_errors >= SERVER_RETRIES {
            return None;
        }
        let wait = backoff_ms(self.server_errors, jitter);
        self.server_errors += 1;
        if self.waited_ms + wait > WAIT_BUDGET_MS {
            return None;
        }
        self.waited_ms += wait;
        Some(wait)
    }
}

/// Exponential backoff: 1, 2, 4, 8 s … for attempts 0, 1, 2, 3 …, plus up to a quarter
/// second of jitter so that calls that failed together do not return together.
pub fn backoff_ms(attempt: u32, jitter: u64) -> u64 {
    (1000u64 << attempt.min(16)) + jitter % 250
}

/// What an answer means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Anything the caller handles (a success, or an error retrying cannot mend).
    Final,
    /// Gmail asks to slow down.
    RateLimited,
    /// Gmail failed (5xx).
    ServerError,
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

/// A `Retry-After` header in delay-seconds. (The HTTP-date form is left to the backoff.)
pub fn parse_retry_after(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_keeps_a_second_under_the_quota() {
        let mut pacer = Pacer::default();
        let start = 10 * SECOND_NS;
        // Gets of 5 units go out evenly, one every 5/245 s (245 of Gmail's 250 units).
        let spacing = 5 * SECOND_NS / 245;
        let mut now = start;
        for _ in 0..49 {
            now += pacer.wait(now, cost::MESSAGES_GET);
            pacer.spend(now, cost::MESSAGES_GET);
        }
        assert_eq!(now, start + 48 * spacing);
        // 49 of them fill the second: the 50th waits until the first leaves the window.
        let next = now + spacing;
        assert_eq!(
            pacer.wait(next, cost::MESSAGES_GET),
            start + SECOND_NS - next
        );
        // A send (100 units) waits until 20 of the gets have left.
        assert_eq!(
            pacer.wait(next, cost::MESSAGES_SEND),
            start + 19 * spacing + SECOND_NS - next
        );
        // Later, everything has left.
        assert_eq!(pacer.wait(start + 3 * SECOND_NS, cost::MESSAGES_SEND), 0);
    }

    #[test]
    fn a_hold_delays_every_call() {
        let mut pacer = Pacer::default();
        pacer.hold(5 * SECOND_NS);
        assert_eq!(pacer.wait(4 * SECOND_NS, 1), SECOND_NS);
        assert_eq!(pacer.wait(5 * SECOND_NS, 1), 0);
    }

    #[test]
    fn rate_limits_back_off_exponentially_then_give_up() {
        let mut retries = Retries::default();
        assert_eq!(retries.after_rate_limit(None, 0), Ok(1000));
        assert_eq!(retries.after_rate_limit(None, 0), Ok(2000));
        assert_eq!(retries.after_rate_limit(None, 0), Ok(4000));
        assert_eq!(retries.after_rate_limit(None, 0), Ok(8000));
        // 15 s waited: the next 16 s would pass the budget.
        assert_eq!(retries.after_rate_limit(None, 0), Err(16));
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget() {
        let mut retries = Retries::default();
        assert_eq!(retries.after_rate_limit(Some(3), 77), Ok(3000));
        assert_eq!(retries.after_rate_limit(Some(0), 77), Ok(1000));
        assert_eq!(retries.after_rate_limit(Some(120), 77), Err(120));
        let mut retries = Retries::default();
        assert_eq!(retries.after_rate_limit(Some(21), 0), Err(21));
    }

    #[test]
    fn jitter_stays_small() {
        assert_eq!(backoff_ms(0, 0), 1000);
        assert_eq!(backoff_ms(0, 249), 1249);
        assert_eq!(backoff_ms(0, 250), 1000);
        assert_eq!(backoff_ms(3, 1), 8001);
    }

    #[test]
    fn server_errors_are_retried_twice() {
        let mut retries = Retries::default();
        assert_eq!(retries.after_server_error(0), Some(1000));
        assert_eq!(retries.after_server_error(0), Some(2000));
        assert_eq!(retries.after_server_error(0), None);
    }

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

    #[test]
    fn retry_after_takes_seconds() {
        assert_eq!(parse_retry_after(b" 30 "), Some(30));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
