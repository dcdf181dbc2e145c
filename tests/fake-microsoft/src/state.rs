//! Everything the fake knows, behind one lock: the directory and its tokens,
//! the mailboxes, the throttle, injected failures and the request counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::mailbox::Mailbox;
use crate::oauth::Identity;
use crate::throttle::Throttle;
use crate::{Options, Stats, User};

/// The state shared by the server's connections and the test's handles.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(options: &Options) -> Self {
        Shared {
            state: Mutex::new(State {
                identity: Identity::new(options),
                mailboxes: HashMap::new(),
                throttle: Throttle::new(
                    options.requests_per_ten_minutes,
                    options.concurrent_requests,
                ),
                stats: Stats::default(),
                failure: None,
                base_url: String::new(),
            }),
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Requests still to be answered with an injected error.
pub(crate) struct Failure {
    pub remaining: u32,
    pub status: u16,
    pub retry_after: Option<u32>,
}

pub(crate) struct State {
    pub identity: Identity,
    /// Mailboxes by lowercased UPN.
    mailboxes: HashMap<String, Mailbox>,
    pub throttle: Throttle,
    pub stats: Stats,
    pub failure: Option<Failure>,
    /// `https://127.0.0.1:PORT`, for the absolute links of answers.
    pub base_url: String,
}

impl State {
    /// Adds an account and its mailbox; adding a UPN again does nothing.
    pub(crate) fn add_user(&mut self, user: User) {
        if !self.identity.add_account(&user) {
            return;
        }
        let object_id = if user.personal {
            format!("{:016x}", rand::random::<u64>())
        } else {
            crate::guid()
        };
        self.mailboxes
            .insert(user.upn.to_ascii_lowercase(), Mailbox::new(user, object_id));
    }

    pub(crate) fn mailbox(&self, upn: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&upn.to_ascii_lowercase())
    }

    pub(crate) fn try_mailbox_mut(&mut self, upn: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&upn.to_ascii_lowercase())
    }

    /// The account's mailbox, for the test's control methods.
    ///
    /// # Panics
    /// When the fake has no such account: a mistake in the test.
    pub(crate) fn mailbox_mut(&mut self, upn: &str) -> &mut Mailbox {
        self.try_mailbox_mut(upn).unwrap_or_else(|| {
            panic!("the fake Microsoft has no account {upn}; call add_user first")
        })
    }

    /// The failure to answer the current request with, if one is pending.
    pub(crate) fn take_failure(&mut self) -> Option<(u16, Option<u32>)> {
        let failure = self.failure.as_mut()?;
        let answer = (failure.status, failure.retry_after);
        failure.remaining -= 1;
        if failure.remaining == 0 {
            self.failure = None;
        }
        Some(answer)
    }
}
