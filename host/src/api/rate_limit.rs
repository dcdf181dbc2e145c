//! A sliding-window limit per caller, for expensive requests such as connection tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_window: usize,
    window: Duration,
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn per_minute(per_window: u32) -> Self {
        Self {
            per_window: per_window as usize,
            window: Duration::from_secs(60),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `caller` (a user, or a service acting as one: never a token,
    /// of which a user may mint many), or says in how many seconds they may try again.
    pub fn check(&self, caller: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut recent = self.recent.lock().expect("rate limiter poisoned");
        // Forget callers whose window has passed, so the map does not grow without bound.
        recent.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
        let times = recent.entry(caller.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.per_window {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_caller() {
        let limiter = RateLimiter::per_minute(2);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let retry = limiter.check("a").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(limiter.check("b").is_ok());
    }
}

/// Bounds how many requests of one kind each caller has under way at once.
#[derive(Default)]
pub struct ConcurrencyLimiter {
    max: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running request; the caller's count goes down when it is dropped.
pub struct Running {
    caller: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConcurrencyLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            running: Arc::default(),
        }
    }

    /// Counts one more request of `caller`, or refuses it while `max` are under way.
    pub fn start(&self, caller: &str) -> Option<Running> {
        let mut running = self.running.lock().expect("limiter poisoned");
        let count = running.entry(caller.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Running {
            caller: caller.to_owned(),
            running: self.running.clone(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock().expect("limiter poisoned");
        if let Some(count) = running.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.caller);
            }
        }
    }
}
