//! Per-user quota: each Gmail API method costs the units Google's usage-limits
//! page lists (<https://developers.google.com/gmail/api/reference/quota>), and
//! a user may spend at most the configured number of units in any one-second
//! window. A call that does not fit is refused and spends nothing.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// The quota units of a Gmail API method, by its reference name.
pub(crate) fn cost(method: &str) -> u32 {
    match method {
        "getProfile" | "labels.list" | "labels.get" => 1,
        "history.list" => 2,
        "messages.list" | "messages.get" | "messages.modify" | "messages.trash"
        | "messages.untrash" | "labels.create" => 5,
        "messages.delete" => 10,
        "messages.insert" => 25,
        "messages.batchModify" | "messages.batchDelete" => 50,
        "messages.send" => 100,
        _ => 5,
    }
}

/// Units spent per user in the last second.
pub(crate) struct Quota {
    limit: Option<u32>,
    spent: HashMap<String, VecDeque<(Instant, u32)>>,
}

impl Quota {
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Quota {
            limit,
            spent: HashMap::new(),
        }
    }

    /// Spends `units` for `user` at `now`, or says how long until they would fit.
    ///
    /// A call that costs more than the whole limit is let through when the
    /// window is empty, so that no method is refused for ever.
    pub(crate) fn try_spend(
        &mut self,
        user: &str,
        units: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let window = self.spent.entry(user.to_ascii_lowercase()).or_default();
        while window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW)
        {
            window.pop_front();
        }
        let used: u32 = window.iter().map(|(_, units)| units).sum();
        if window.is_empty() || used + units <= limit {
            window.push_back((now, units));
            return Ok(());
        }
        // Find when enough of the oldest spending leaves the window.
        let mut freed = 0;
        for (at, spent) in window.iter() {
            freed += spent;
            if used - freed + units <= limit {
                return Err(WINDOW.saturating_sub(now.duration_since(*at)));
            }
        }
        Err(WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_usage_limits_page() {
        assert_eq!(cost("getProfile"), 1);
        assert_eq!(cost("labels.list"), 1);
        assert_eq!(cost("history.list"), 2);
        assert_eq!(cost("messages.list"), 5);
        assert_eq!(cost("messages.get"), 5);
        assert_eq!(cost("messages.delete"), 10);
        assert_eq!(cost("messages.insert"), 25);
        assert_eq!(cost("messages.send"), 100);
    }

    #[test]
    fn unlimited_never_refuses() {
        let mut quota = Quota::new(None);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(quota.try_spend("a@example.com", 100, now).is_ok());
        }
    }

    #[test]
    fn a_second_window_slides() {
        let mut quota = Quota::new(Some(250));
        let t0 = Instant::now();
        // 50 gets of 5 units fill the second.
        for _ in 0..50 {
            quota.try_spend("a@example.com", 5, t0).unwrap();
        }
        let wait = quota
            .try_spend("a@example.com", 5, t0 + Duration::from_millis(400))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(600));
        // Another user has a window of their own.
        assert!(quota.try_spend("b@example.com", 5, t0).is_ok());
        // Once the first spending is a second old, it no longer counts.
        assert!(quota.try_spend("a@example.com", 5, t0 + WINDOW).is_ok());
    }

    #[test]
    fn wait_counts_only_what_must_leave() {
        let mut quota = Quota::new(Some(10));
        let t0 = Instant::now();
        quota.try_spend("u", 5, t0).unwrap();
        quota
            .try_spend("u", 5, t0 + Duration::from_millis(300))
            .unwrap();
        let wait = quota
            .try_spend("u", 5, t0 + Duration::from_millis(500))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
    }

    #[test]
    fn an_oversized_call_fits_an_empty_window() {
        let mut quota = Quota::new(Some(50));
        let t0 = Instant::now();
        assert!(quota.try_spend("u", 100, t0).is_ok());
        assert!(quota.try_spend("u", 1, t0).is_err());
        assert!(quota.try_spend("u", 100, t0 + WINDOW).is_ok());
    }
}
