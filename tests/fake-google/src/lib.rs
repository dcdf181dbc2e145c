//! A fake Google for Mailroom's end-to-end tests and benchmarks: an OAuth 2.0
//! authorization server and the Gmail API v1, served over HTTPS on 127.0.0.1
//! with a self-signed certificate.
//!
//! [`FakeGoogle::start`] binds a loopback port and serves until the last handle
//! is dropped (or [`FakeGoogle::stop`] is called). The tests drive it from the
//! outside like a person at Gmail would — adding accounts and labels, delivering
//! mail, moving it around, revoking access, forcing rate limits — and read back
//! what the client under test did through [`FakeGoogle::stats`],
//! [`FakeGoogle::sent`] and [`FakeGoogle::messages`].
//!
//! The behaviour follows Google's public documentation:
//!
//! * OAuth 2.0 for web server applications (authorization endpoint, PKCE,
//!   offline access, the token endpoint and its errors, revocation):
//!   <https://developers.google.com/identity/protocols/oauth2/web-server>
//! * Gmail API v1 reference (<https://developers.google.com/gmail/api/reference/rest>):
//!   - `users.getProfile`: <https://developers.google.com/gmail/api/reference/rest/v1/users/getProfile>
//!   - `users.labels.list`: <https://developers.google.com/gmail/api/reference/rest/v1/users.labels/list>
//!   - the Message resource: <https://developers.google.com/gmail/api/reference/rest/v1/users.messages>
//!   - `users.messages.list`, `get`, `modify`, `trash`, `untrash`, `delete`,
//!     `send`, `insert`: `…/v1/users.messages/list`, `…/get`, `…/modify`,
//!     `…/trash`, `…/untrash`, `…/delete`, `…/send`, `…/insert` under the
//!     reference above
//!   - `users.history.list` and the History resource:
//!     <https://developers.google.com/gmail/api/reference/rest/v1/users.history/list>
//! * Usage limits and the quota units of each method:
//!   <https://developers.google.com/gmail/api/reference/quota>
//! * The shape of error answers (401 `authError`, 403/429 rate limits):
//!   <https://developers.google.com/gmail/api/guides/handle-errors>
//!
//! Where the fake is simpler than Google, on purpose: one OAuth client and
//! any redirect URI; PKCE S256 is required; history ids grow by one per
//! change (Gmail's have gaps); the quota is a one-second sliding window (the
//! usage-limits page has put the per-user limit both as 250 units per second
//! and as 15,000 per minute); partial responses (`fields`), threads, drafts,
//! attachments by id and batch HTTP requests are not served.
//!
//! Modules: `oauth` (codes, tokens, grants), `gmail` (the mailbox model:
//! messages, labels, threads, history), `query` (the `q` search terms),
//! `mime` (what Gmail derives from a raw message), `quota` (per-user units
//! per second), `api` (HTTP routes), `error` (Google's error bodies),
//! `state` (everything behind the one lock); the HTTPS listener, the PKCE
//! and client-credential checks and the lock itself are
//! `mailroom-fake-https`'s.

mod api;
mod error;
mod gmail;
mod mime;
mod oauth;
mod query;
mod quota;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mailroom_fake_https::HttpsServer;

use crate::state::{Shared, State};

/// How a [`FakeGoogle`] behaves; every field has a default.
#[derive(Clone, Debug)]
pub struct Options {
    /// The one OAuth client the fake knows.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// How long an access token works (`expires_in`); Google's is an hour.
    pub access_token_lifetime: Duration,
    /// Whether a refresh answers with a new refresh token, retiring the old one.
    pub rotate_refresh_tokens: bool,
    /// Gmail API quota units each user may spend in any one-second window;
    /// `None` is unlimited. Gmail's published per-user figure is 250.
    pub quota_units_per_second: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_id: "mailroom-test-client".to_owned(),
            client_secret: "mailroom-test-secret".to_owned(),
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: false,
            quota_units_per_second: None,
        }
    }
}

/// What the next authorization request does, since no person clicks "Allow".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consent {
    /// The named account signs in and grants access.
    Grant(String),
    /// The person declines: the redirect carries `error=access_denied`.
    Deny,
}

/// A message as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Gmail's message id (16 lowercase hex digits).
    pub id: String,
    /// The thread it belongs to.
    pub thread_id: String,
    /// Its label ids, in the order they were applied.
    pub labels: Vec<String>,
    /// The RFC 5322 message, byte for byte.
    pub raw: Vec<u8>,
    /// `internalDate`, in milliseconds since the Unix epoch.
    pub internal_date_ms: i64,
}

/// What the Gmail API was asked, since start or the last [`FakeGoogle::reset_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gmail API requests received, whatever their answer.
    pub requests: u64,
    /// Gmail API requests by method name (`"messages.get"`, `"history.list"`, ...).
    pub by_method: BTreeMap<String, u64>,
    /// Quota units of the requests that were served (not refused for
    /// credentials or rate).
    pub units: u64,
    /// Requests answered with a rate-limit error (429 or 403), whether from
    /// the quota or from [`FakeGoogle::fail_next`].
    pub rate_limited: u64,
    /// The distinct `Authorization: Bearer` values seen, in order of first use.
    pub bearer_tokens_seen: Vec<String>,
    /// Requests to the OAuth endpoints (authorization, token, revocation).
    pub oauth_requests: u64,
    /// Whole messages served (`messages.get` with `format=raw`).
    pub raw_downloads: u64,
}

/// A running fake Google. Clones share one server; it stops serving when the
/// last clone is dropped.
#[derive(Clone)]
pub struct FakeGoogle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    server: HttpsServer,
}

impl FakeGoogle {
    /// Binds 127.0.0.1 on a free port and starts serving HTTPS on the current
    /// tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound or the certificate cannot be made.
    pub async fn start(options: Options) -> FakeGoogle {
        let shared = Arc::new(Shared::new(State::new(&options)));
        let serving = shared.clone();
        let server = HttpsServer::start(move |request| {
            let shared = serving.clone();
            async move { api::handle(&shared, request).await }
        })
        .await;
        FakeGoogle {
            inner: Arc::new(Inner { shared, server }),
        }
    }

    /// Stops accepting connections and closes the open ones.
    pub fn stop(&self) {
        self.inner.server.stop();
    }

    /// `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.server.base_url()
    }

    /// The authorization endpoint.
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The Gmail API root; its paths start with `/gmail/v1/`.
    pub fn api_url(&self) -> String {
        self.base_url()
    }

    /// The server's self-signed certificate in PEM, for a client's trust store.
    /// Its subject alternative names are IP 127.0.0.1 and DNS `localhost`.
    pub fn cert_pem(&self) -> String {
        self.inner.server.cert_pem().to_owned()
    }

    /// Adds a Google account with an empty mailbox; adding it again does nothing.
    pub fn add_user(&self, email: &str) {
        self.inner.shared.lock().add_user(email);
    }

    /// Decides what the next authorization requests answer. Until this is
    /// called, the first account added grants access.
    pub fn set_consent(&self, consent: Consent) {
        self.inner.shared.lock().oauth.set_consent(consent);
    }

    /// Creates a user label (or finds the one of that name) and returns its id.
    ///
    /// # Panics
    /// When `email` is not an account of the fake.
    pub fn add_label(&self, email: &str, name: &str) -> String {
        self.inner.shared.lock().mailbox_mut(email).add_label(name)
    }

    /// Delivers a message into the mailbox as if it arrived in Gmail, recording
    /// a `messagesAdded` history record. `labels` are label ids or user label
    /// names. A message whose `In-Reply-To` or `References` names a message
    /// already in the mailbox joins that message's thread.
    ///
    /// # Panics
    /// When `email` is not an account or a label is unknown.
    pub fn insert(
        &self,
        email: &str,
        raw: &[u8],
        labels: &[&str],
        internal_date_ms: i64,
    ) -> String {
        let mut state = self.inner.shared.lock();
        let mailbox = state.mailbox_mut(email);
        let labels = mailbox.resolve_labels(labels);
        let id = mailbox.insert(
            raw.to_vec(),
            labels,
            internal_date_ms,
            gmail::Threading::Headers,
        );
        gmail::hex(id)
    }

    /// Changes a message's labels as a person in Gmail would, recording
    /// `labelsAdded`/`labelsRemoved` history.
    ///
    /// # Panics
    /// When the account, the message or a label is unknown.
    pub fn modify(&self, email: &str, id: &str, add: &[&str], remove: &[&str]) {
        let mut state = self.inner.shared.lock();
        let mailbox = state.mailbox_mut(email);
        let add = mailbox.resolve_labels(add);
        let remove = mailbox.resolve_labels(remove);
        mailbox
            .modify(id, &add, &remove)
            .unwrap_or_else(|e| panic!("modify {id} in {email}: {}", e.message));
    }

    /// Moves a message to the trash (adds TRASH, removes INBOX).
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn trash(&self, email: &str, id: &str) {
        let mut state = self.inner.shared.lock();
        state
            .mailbox_mut(email)
            .trash(id)
            .unwrap_or_else(|e| panic!("trash {id} in {email}: {}", e.message));
    }

    /// Deletes a message for good, recording `messagesDeleted` history.
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn delete(&self, email: &str, id: &str) {
        let mut state = self.inner.shared.lock();
        state
            .mailbox_mut(email)
            .delete(id)
            .unwrap_or_else(|e| panic!("delete {id} in {email}: {}", e.message));
    }

    /// The message with that id, if the account has it.
    pub fn message(&self, email: &str, id: &str) -> Option<Stored> {
        let state = self.inner.shared.lock();
        state.mailbox(email)?.stored(id)
    }

    /// Every message of the account, oldest id first.
    pub fn messages(&self, email: &str) -> Vec<Stored> {
        let state = self.inner.shared.lock();
        state.mailbox(email).map(|m| m.all()).unwrap_or_default()
    }

    /// What the account sent through `messages.send`, in order, as it was
    /// when sent.
    pub fn sent(&self, email: &str) -> Vec<Stored> {
        let state = self.inner.shared.lock();
        state
            .mailbox(email)
            .map(|m| m.sent().to_vec())
            .unwrap_or_default()
    }

    /// Every access token issued so far stops working (401).
    pub fn expire_access_tokens(&self) {
        self.inner.shared.lock().oauth.expire_access_tokens();
    }

    /// Revokes the account's grant: its refresh tokens answer `invalid_grant`
    /// and its access tokens 401. The next authorization is a first consent.
    pub fn revoke_grants(&self, email: &str) {
        self.inner.shared.lock().oauth.revoke_user(email);
    }

    /// Drops the account's history up to its current historyId: `history.list`
    /// from an older `startHistoryId` answers 404.
    ///
    /// # Panics
    /// When `email` is not an account of the fake.
    pub fn forget_history(&self, email: &str) {
        self.inner.shared.lock().mailbox_mut(email).forget_history();
    }

    /// The next `count` Gmail API calls (with valid credentials) answer
    /// `status` — 429 `rateLimitExceeded`, 403 `userRateLimitExceeded`, or
    /// any other status with a matching Google error body — with a
    /// `Retry-After` header when given.
    pub fn fail_next(&self, count: u32, status: u16, retry_after_secs: Option<u32>) {
        self.inner
            .shared
            .lock()
            .failures
            .set(count, status, retry_after_secs);
    }

    /// What the Gmail API was asked so far.
    pub fn stats(&self) -> Stats {
        self.inner.shared.lock().stats.clone()
    }

    /// Every access and refresh token ever issued, in order.
    pub fn tokens_issued(&self) -> Vec<String> {
        self.inner.shared.lock().oauth.issued().to_vec()
    }

    /// Starts the counters of [`FakeGoogle::stats`] afresh.
    pub fn reset_stats(&self) {
        self.inner.shared.lock().stats = Stats::default();
    }
}
