//! Keeping under a provider's per-mailbox rate, and what to do when it asks to slow down.
//!
//! Gmail counts quota units a second per user; Microsoft Graph counts requests per mailbox
//! over ten minutes. Both are kept by starting calls evenly spaced, a little under the
//! limit, and only when the provider's window has room for them. An answer that asks to slow down
//! (429, or what the provider's [`crate::Service::classify`] says) is retried after its
//! `Retry-After` or an exponential backoff, and holds every other call too; a server error
//! (5xx) is retried when the call may be repeated. Times are passed in, so this module holds
//! no clock and runs natively in tests.

use std::collections::VecDeque;

const SECOND_NS: u64 = 1_000_000_000;

/// A provider's per-mailbox limit: `units` in any `per_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub units: u32,
    pub per_secs: u32,
}

/// The units spent in the provider's window, to start a call only when the window has room
/// for it. Calls are also spread evenly over the window (a call of `n` units leaves `n` /
/// rate seconds before the next): started in bursts, they would reach the provider with the
/// jitter of their connections, and a burst arriving a little early overlaps the previous
/// one in the provider's window. Spread, the rate holds across a mailbox's jobs too, though
/// each job has a pacer of its own: a window of minutes (Graph's ten) spent at once by one
/// job would leave the next one to meet the provider's refusals.
#[derive(Debug)]
pub struct Pacer {
    /// The window's length (ns).
    window: u64,
    /// Units a window may take: 98% of the provider's limit, because the provider counts a
    /// call when it arrives, not when it leaves. Evenly spaced, a call a little late or
    /// early moves by a fraction of the spacing; the margin takes that.
    budget: u32,
    /// When each recent call started (nanoseconds on a monotonic clock) and its cost.
    spent: VecDeque<(u64, u32)>,
    /// The units of `spent`.
    used: u32,
    /// No call starts before this time (after the provider asked to slow down).
    hold_until: u64,
    /// The next call starts no earlier than this: the spacing of the calls before it.
    next_slot: u64,
}

impl Pacer {
    /// A pacer for a provider that takes `rate`.
    pub fn new(rate: Rate) -> Self {
        Self {
            window: u64::from(rate.per_secs.max(1)) * SECOND_NS,
            budget: (rate.units * 49 / 50).max(1),
            spent: VecDeque::new(),
            used: 0,
            hold_until: 0,
            next_slot: 0,
        }
    }

    /// How long to wait (ns) before a call of `cost` units may start at `now`.
    pub fn wait(&mut self, now: u64, cost: u32) -> u64 {
        while let Some(&(at, units)) = self.spent.front()
            && at + self.window <= now
        {
            self.spent.pop_front();
            self.used -= units;
        }
        let held = self.hold_until.max(self.next_slot).saturating_sub(now);
        let cost = cost.min(self.budget);
        let mut used = self.used;
        if used + cost <= self.budget {
            return held;
        }
        for &(at, units) in &self.spent {
            used -= units;
            if used + cost <= self.budget {
                return held.max(at + self.window - now);
            }
        }
        held
    }

    /// Records a call of `cost` units started at `now`.
    pub fn spend(&mut self, now: u64, cost: u32) {
        self.spent.push_back((now, cost));
        self.used += cost;
        let spacing = u64::from(cost) * self.window / u64::from(self.budget);
        self.next_slot = self.next_slot.max(now) + spacing;
    }

    /// Starts no call before `until` (the provider asked to slow down).
    pub fn hold(&mut self, until: u64) {
        self.hold_until = self.hold_until.max(until);
    }
}

/// How long one call may spend waiting on requests to slow down before it gives up.
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
    /// has had its retries. A `Retry-After` (503) is honoured within the budget.
    pub fn after_server_error(
        &mut self,
        retry_after_secs: Option<u32>,
        jitter: u64,
    ) -> Option<u64> {
        if self.server_errors >= SERVER_RETRIES {
            return None;
        }
        let wait = match retry_after_secs {
            Some(secs) => u64::from(secs.max(1)) * 1000,
            None => backoff_ms(self.server_errors, jitter),
        };
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
    /// The provider asks to slow down.
    RateLimited,
    /// The provider failed (5xx).
    ServerError,
}

/// The sorting every provider shares: 429 asks to slow down, 5xx is the server's failure.
pub fn classify_status(status: u16) -> Class {
    match status {
        429 => Class::RateLimited,
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

    const GMAIL: Rate = Rate {
        units: 250,
        per_secs: 1,
    };

    #[test]
    fn the_pacer_keeps_a_second_under_the_rate() {
        // 250 units a second, paced at 245: calls of 5 go out one every 5/245 s.
        let mut pacer = Pacer::new(GMAIL);
        let start = 10 * SECOND_NS;
        let spacing = 5 * SECOND_NS / 245;
        let mut now = start;
        for _ in 0..49 {
            now += pacer.wait(now, 5);
            pacer.spend(now, 5);
        }
        assert_eq!(now, start + 48 * spacing);
        // 49 of them fill the second: the 50th waits until the first leaves the window.
        let next = now + spacing;
        assert_eq!(pacer.wait(next, 5), start + SECOND_NS - next);
        // A call of 100 units waits until 20 of them have left.
        assert_eq!(
            pacer.wait(next, 100),
            start + 19 * spacing + SECOND_NS - next
        );
        // Later, everything has left.
        assert_eq!(pacer.wait(start + 3 * SECOND_NS, 100), 0);
    }

    #[test]
    fn a_window_of_minutes_spaces_single_calls() {
        // Graph's 10,000 requests in 10 minutes, paced at 9,800: one every 61.2 ms.
        let mut pacer = Pacer::new(Rate {
            units: 10_000,
            per_secs: 600,
        });
        let spacing = 600 * SECOND_NS / 9_800;
        let mut now = 0;
        for _ in 0..100 {
            now += pacer.wait(now, 1);
            pacer.spend(now, 1);
        }
        assert_eq!(now, 99 * spacing);
        assert_eq!(pacer.wait(now, 1), spacing);
    }

    #[test]
    fn a_hold_delays_every_call() {
        let mut pacer = Pacer::new(GMAIL);
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
        assert_eq!(retries.after_server_error(None, 0), Some(1000));
        assert_eq!(retries.after_server_error(Some(3), 0), Some(3000));
        assert_eq!(retries.after_server_error(None, 0), None);
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify_status(429), Class::RateLimited);
        assert_eq!(classify_status(503), Class::ServerError);
        assert_eq!(classify_status(200), Class::Final);
        assert_eq!(classify_status(404), Class::Final);
    }

    #[test]
    fn retry_after_takes_seconds() {
        assert_eq!(parse_retry_after(b" 30 "), Some(30));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
