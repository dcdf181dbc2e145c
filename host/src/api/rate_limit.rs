//! A sliding-window limit per caller, for expensive requests such as connection tests, and
//! a bound on each caller's requests under way.

use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct RateLimiter {
    /// What is limited: callers' counts are kept apart per kind.
    kind: &'static str,
    per_window: usize,
    window: Duration,
}

impl RateLimiter {
    pub fn per_minute(kind: &'static str, per_window: u32) -> Self {
        Self {
            kind,
            per_window: per_window as usize,
            window: Duration::from_secs(60),
        }
    }

    /// Counts one request of `caller` (a user, or a service acting as one: never a token,
    /// of which a user may mint many), or says in how many seconds they may try again. The
    /// counts are in the store, so the limit holds across every node.
    pub async fn check(
        &self,
        store: &dyn Store,
        caller: &str,
    ) -> Result<Result<(), u64>, StoreError> {
        let counted = store
            .count_request(
                &format!("{}:{caller}", self.kind),
                self.per_window,
                self.window.as_millis() as i64,
                crate::clock::now_millis(),
            )
            .await?;
        Ok(counted.map_err(|wait_ms| (wait_ms.max(0) as u64).div_ceil(1000).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_applies_per_caller() {
        let store = crate::store::testing::store();
        let limiter = RateLimiter::per_minute("tests", 2);
        assert!(limiter.check(&store, "a").await.unwrap().is_ok());
        assert!(limiter.check(&store, "a").await.unwrap().is_ok());
        let retry = limiter.check(&store, "a").await.unwrap().unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(limiter.check(&store, "b").await.unwrap().is_ok());
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
