//! Outlook's per-mailbox limits for one app, as the throttling page lists
//! them (<https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits>):
//! at most 10,000 requests in any ten-minute window and at most 4 at once.
//! Both are options of the fake; a refused request counts against neither.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(600);

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The window is full; room in this many seconds.
    Rate(u32),
    /// Too many requests in flight.
    Concurrency,
}

#[derive(Default)]
struct Mailbox {
    admitted: VecDeque<Instant>,
    in_flight: u32,
}

pub(crate) struct Throttle {
    per_window: Option<u32>,
    concurrent: Option<u32>,
    mailboxes: HashMap<String, Mailbox>,
}

impl Throttle {
    pub(crate) fn new(per_window: Option<u32>, concurrent: Option<u32>) -> Self {
        Throttle {
            per_window,
            concurrent,
            mailboxes: HashMap::new(),
        }
    }

    /// Admits a request for `mailbox` at `now` and counts it in flight until
    /// [`Throttle::leave`], returning how many the mailbox now has in flight.
    pub(crate) fn enter(&mut self, mailbox: &str, now: Instant) -> Result<u32, Refusal> {
        let state = self.mailboxes.entry(mailbox.to_owned()).or_default();
        if let Some(limit) = self.concurrent
            && state.in_flight >= limit
        {
            return Err(Refusal::Concurrency);
        }
        if let Some(limit) = self.per_window {
            while state
                .admitted
                .front()
                .is_some_and(|at| now.duration_since(*at) >= WINDOW)
            {
                state.admitted.pop_front();
            }
            if state.admitted.len() >= limit as usize {
                // Room comes when the oldest admitted request leaves the window.
                let oldest = state.admitted.front().copied().unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(Refusal::Rate(
                    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX),
                ));
            }
            state.admitted.push_back(now);
        }
        state.in_flight += 1;
        Ok(state.in_flight)
    }

    /// A request admitted by [`Throttle::enter`] has been answered.
    pub(crate) fn leave(&mut self, mailbox: &str) {
        if let Some(state) = self.mailboxes.get_mut(mailbox) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_admits_everything() {
        let mut throttle = Throttle::new(None, None);
        let now = Instant::now();
        for n in 1..=100 {
            assert_eq!(throttle.enter("a", now), Ok(n));
        }
    }

    #[test]
    fn the_window_slides_and_says_when_there_is_room() {
        let mut throttle = Throttle::new(Some(3), None);
        let t0 = Instant::now();
        throttle.enter("a", t0).unwrap();
        throttle.enter("a", t0 + Duration::from_secs(100)).unwrap();
        throttle.enter("a", t0 + Duration::from_secs(200)).unwrap();
        assert_eq!(
            throttle.enter("a", t0 + Duration::from_millis(300_500)),
            Err(Refusal::Rate(300))
        );
        assert!(throttle.enter("b", t0).is_ok());
        assert!(throttle.enter("a", t0 + WINDOW).is_ok());
        assert_eq!(throttle.enter("a", t0 + WINDOW), Err(Refusal::Rate(100)));
    }

    #[test]
    fn concurrency_counts_until_leave() {
        let mut throttle = Throttle::new(None, Some(2));
        let now = Instant::now();
        assert_eq!(throttle.enter("a", now), Ok(1));
        assert_eq!(throttle.enter("a", now), Ok(2));
        assert_eq!(throttle.enter("a", now), Err(Refusal::Concurrency));
        assert_eq!(throttle.enter("b", now), Ok(1));
        throttle.leave("a");
        assert_eq!(throttle.enter("a", now), Ok(2));
    }
}
