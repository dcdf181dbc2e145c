//! Everything the fake knows, behind one lock: the directory and its tokens,
//! the mailboxes, the throttle, injected failures and the request counters.

use std::collections::HashMap;

use mailroom_fake_https::state::Failures;

use crate::mailbox::Mailbox;
use crate::oauth::Identity;
use crate::throttle::Throttle;
use crate::{Options, Stats, User};

/// The state shared by the server's connections and the test's handles.
pub(crate) type Shared = mailroom_fake_https::state::Shared<State>;

pub(crate) struct State {
    pub identity: Identity,
    /// Mailboxes by lowercased UPN.
    mailboxes: HashMap<String, Mailbox>,
    pub throttle: Throttle,
    pub stats: Stats,
    /// Requests still to be answered with an injected error.
    pub failures: Failures,
    /// `https://127.0.0.1:PORT`, for the absolute links of answers.
    pub base_url: String,
}

impl State {
    pub(crate) fn new(options: &Options) -> Self {
        State {
            identity: Identity::new(options),
            mailboxes: HashMap::new(),
            throttle: Throttle::new(
                options.requests_per_ten_minutes,
                options.concurrent_requests,
            ),
            stats: Stats::default(),
            failures: Failures::default(),
            base_url: String::new(),
        }
    }

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
}
