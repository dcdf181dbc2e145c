//! Everything the fake knows, behind one lock: accounts and their mailboxes,
//! the OAuth server's codes and tokens, quota windows, injected failures and
//! the request counters.

use std::collections::HashMap;
use std::time::Instant;

use mailroom_fake_https::request::Params;
use mailroom_fake_https::state::Failures;

use crate::gmail::Mailbox;
use crate::oauth::{Authorization, OAuth};
use crate::quota::Quota;
use crate::{Options, Stats};

/// The state shared by the server's connections and the test's handle.
pub(crate) type Shared = mailroom_fake_https::state::Shared<State>;

pub(crate) struct State {
    pub oauth: OAuth,
    /// Mailboxes by lowercased address.
    mailboxes: HashMap<String, Mailbox>,
    /// The account that consents when the test never said who does.
    pub first_user: Option<String>,
    pub quota: Quota,
    pub stats: Stats,
    /// Calls still to be answered with an injected error.
    pub failures: Failures,
}

impl State {
    pub(crate) fn new(options: &Options) -> Self {
        State {
            oauth: OAuth::new(options),
            mailboxes: HashMap::new(),
            first_user: None,
            quota: Quota::new(options.quota_units_per_second),
            stats: Stats::default(),
            failures: Failures::default(),
        }
    }

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
}
