//! Everything the fake knows, behind one lock: accounts and their mailboxes,
//! the OAuth server's codes and tokens, quota windows, injected failures and
//! the request counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::gmail::Mailbox;
use crate::oauth::{Authorization, OAuth, Params};
use crate::quota::Quota;
use crate::{Options, Stats};

/// The state shared by the server's connections and the test's handle.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(options: &Options) -> Self {
        Shared {
            state: Mutex::new(State {
                oauth: OAuth::new(options),
                mailboxes: HashMap::new(),
                first_user: None,
                quota: Quota::new(options.quota_units_per_second),
                stats: Stats::default(),
                failure: None,
            }),
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Calls still to be answered with an injected error.
pub(crate) struct Failure {
    pub remaining: u32,
    pub status: u16,
    pub retry_after: Option<u32>,
}

pub(crate) struct State {
    pub oauth: OAuth,
    /// Mailboxes by lowercased address.
    mailboxes: HashMap<String, Mailbox>,
    /// The account that consents when the test never said who does.
    pub first_user: Option<String>,
    pub quota: Quota,
    pub stats: Stats,
    pub failure: Option<Failure>,
}

impl State {
    pub(crate) fn add_user(&mut self, email: &str) {
        let key = email.to_ascii_lowercase();
        if self.mailboxes.contains_key(&key) {
            return;
        }
        self.mailboxes.insert(key, Mailbox::new(email));
        self.first_user.get_or_insert_with(|| email.to_owned());
    }

    pub(crate) fn mailbox(&self, email: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&email.to_ascii_lowercase())
    }

    /// The account's mailbox, for the control methods.
    ///
    /// # Panics
    /// When the fake has no such account: a mistake in the test.
    pub(crate) fn mailbox_mut(&mut self, email: &str) -> &mut Mailbox {
        self.mailboxes
            .get_mut(&email.to_ascii_lowercase())
            .unwrap_or_else(|| {
                panic!("the fake Google has no account {email}; call add_user first")
            })
    }

    pub(crate) fn try_mailbox_mut(&mut self, email: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&email.to_ascii_lowercase())
    }

    /// The authorization endpoint, which needs to know the accounts.
    pub(crate) fn authorize(&mut self, params: &Params, now: Instant) -> Authorization {
        let mailboxes = &self.mailboxes;
        self.oauth.authorize(
            params,
            self.first_user.as_deref(),
            |user| mailboxes.contains_key(&user.to_ascii_lowercase()),
            now,
        )
    }

    /// The failure to answer the current call with, if one is pending.
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
