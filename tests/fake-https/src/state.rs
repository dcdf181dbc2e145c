//! A fake keeps everything it knows in one state value behind one lock,
//! shared by the server's connections and the test's handles; among it, the
//! failures the test asked for with `fail_next`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A fake's state, shared by the server's connections and the test's handles.
pub struct Shared<T> {
    state: Mutex<T>,
}

impl<T> Shared<T> {
    /// `state`, behind a lock of its own.
    pub fn new(state: T) -> Self {
        Shared {
            state: Mutex::new(state),
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Requests still to be answered with an injected error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pending: Option<Failure>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Failure {
    remaining: u32,
    status: u16,
    retry_after: Option<u32>,
}

impl Failures {
    /// The next `count` requests answer `status`, with `retry_after` seconds
    /// when given; a count of zero clears what was pending.
    pub fn set(&mut self, count: u32, status: u16, retry_after: Option<u32>) {
        self.pending = (count > 0).then_some(Failure {
            remaining: count,
            status,
            retry_after,
        });
    }

    /// The status and `Retry-After` seconds to answer the current request
    /// with, if a failure is pending.
    pub fn take(&mut self) -> Option<(u16, Option<u32>)> {
        let failure = self.pending.as_mut()?;
        let answer = (failure.status, failure.retry_after);
        failure.remaining -= 1;
        if failure.remaining == 0 {
            self.pending = None;
        }
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_answer_as_many_requests_as_asked() {
        let mut failures = Failures::default();
        assert_eq!(failures.take(), None);
        failures.set(2, 429, Some(3));
        assert_eq!(failures.take(), Some((429, Some(3))));
        assert_eq!(failures.take(), Some((429, Some(3))));
        assert_eq!(failures.take(), None);
        failures.set(5, 503, None);
        failures.set(0, 500, None);
        assert_eq!(failures.take(), None);
    }

    #[test]
    fn a_panic_while_locked_does_not_poison_the_state() {
        let shared = std::sync::Arc::new(Shared::new(1));
        let held = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock();
            panic!("a panic while the state is held");
        })
        .join();
        *shared.lock() += 1;
        assert_eq!(*shared.lock(), 2);
    }
}
