//! A fake Microsoft for Mailroom's end-to-end tests and benchmarks: the
//! Microsoft identity platform's authorization code flow and the mail part
//! of Microsoft Graph v1.0, served over HTTPS on 127.0.0.1 with a
//! self-signed certificate.
//!
//! [`FakeMicrosoft::start`] binds a loopback port and serves until the last
//! handle is dropped (or [`FakeMicrosoft::stop`] is called). The tests drive
//! it from the outside like a person in Outlook would — adding accounts and
//! folders, delivering mail, reading, flagging, moving and deleting it,
//! revoking access, forcing throttling — and read back what the client under
//! test did through [`FakeMicrosoft::stats`], [`FakeMicrosoft::sent`] and
//! [`FakeMicrosoft::messages`]. The identity platform and Graph share one
//! port: [`FakeMicrosoft::login_url`] and [`FakeMicrosoft::api_url`] are the
//! same origin.
//!
//! The behaviour follows Microsoft's public documentation:
//!
//! * The authorization code flow with PKCE, tenants, `offline_access`, the
//!   token endpoint and its errors:
//!   <https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow>,
//!   the AADSTS codes: <https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>
//! * Microsoft Graph's error bodies: <https://learn.microsoft.com/en-us/graph/errors>
//! * Mail folders: <https://learn.microsoft.com/en-us/graph/api/user-list-mailfolders>
//!   (hidden folders only with `includeHiddenFolders=true`, pages of 10),
//!   <https://learn.microsoft.com/en-us/graph/api/mailfolder-list-childfolders>,
//!   <https://learn.microsoft.com/en-us/graph/api/mailfolder-get>, the
//!   well-known names of <https://learn.microsoft.com/en-us/graph/api/resources/mailfolder>
//! * Messages: <https://learn.microsoft.com/en-us/graph/api/resources/message>,
//!   `get` and `$value` (<https://learn.microsoft.com/en-us/graph/api/message-get>,
//!   <https://learn.microsoft.com/en-us/graph/outlook-get-mime-message>),
//!   <https://learn.microsoft.com/en-us/graph/api/message-update>,
//!   <https://learn.microsoft.com/en-us/graph/api/message-move>,
//!   <https://learn.microsoft.com/en-us/graph/api/message-delete>,
//!   <https://learn.microsoft.com/en-us/graph/api/message-permanentdelete>,
//!   creating a message from MIME (always a draft):
//!   <https://learn.microsoft.com/en-us/graph/api/user-post-messages>,
//!   <https://learn.microsoft.com/en-us/graph/api/mailfolder-post-messages>,
//!   and sending MIME (202, a copy saved in Sent Items):
//!   <https://learn.microsoft.com/en-us/graph/api/user-sendmail>
//! * Listing a folder's messages, with `$count=true` for `@odata.count`:
//!   <https://learn.microsoft.com/en-us/graph/api/user-list-messages>,
//!   <https://learn.microsoft.com/en-us/graph/query-parameters#count-parameter>
//! * Delta query: <https://learn.microsoft.com/en-us/graph/api/message-delta>,
//!   <https://learn.microsoft.com/en-us/graph/delta-query-messages>,
//!   <https://learn.microsoft.com/en-us/graph/delta-query-overview>
//!   (`@removed`, 410 with `Location`, `syncStateNotFound`)
//! * Immutable ids: <https://learn.microsoft.com/en-us/graph/outlook-immutable-id>
//! * Throttling: <https://learn.microsoft.com/en-us/graph/throttling> (429 and
//!   `Retry-After`) and the Outlook service limits of
//!   <https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits>
//!   (10,000 requests in ten minutes and 4 at once, per app and mailbox)
//!
//! Where the fake is simpler than Microsoft, on purpose: one app
//! registration, any http(s) redirect URI, and PKCE S256 required; access
//! tokens are opaque, not JWTs, and no `id_token` is issued; scopes are
//! echoed, not enforced per route; `/users/{id}` is served only for the
//! signed-in account; messages are created and sent from MIME only (JSON
//! bodies are refused); `DELETE` moves a message to Recoverable Items'
//! Deletions (outside the folder tree), as a soft delete; `$filter` and
//! `$orderby` are served on `receivedDateTime` only (a list's filter may
//! join comparisons with `and`; the delta function's is one `ge` or `gt`); `$search`, `$batch`, attachments, delta's `changeType` and
//! search folders are not served. A Graph request is in flight, for the
//! concurrency limit and [`Stats::max_in_flight`], from its admission until
//! its answer has been handed to the connection.
//!
//! Modules: `oauth` (the directory, codes and tokens), `mailbox` (folders,
//! messages, ids and the change log; `mailbox::delta` the delta function),
//! `odata` (query options, `Prefer`, dates), `throttle` (the per-mailbox
//! limits), `api` (HTTP routes), `error` (Graph's error bodies), `state`
//! (everything behind the one lock); the HTTPS listener, the PKCE and
//! client-credential checks and the lock itself are `mailroom-fake-https`'s.

mod api;
mod error;
mod mailbox;
mod oauth;
mod odata;
mod state;
mod throttle;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mailroom_fake_https::{HttpsServer, now_ms};

use crate::mailbox::{Arrival, FlagStatus};
use crate::state::{Shared, State};

/// How a [`FakeMicrosoft`] behaves; every field has a default.
#[derive(Clone, Debug)]
pub struct Options {
    /// The one app registration's client id.
    pub client_id: String,
    /// That app's client secret.
    pub client_secret: String,
    /// How long an access token works (`expires_in`); the platform's is
    /// about an hour.
    pub access_token_lifetime: Duration,
    /// Whether each refresh retires the refresh token it was given (a new
    /// one comes with every refresh either way).
    pub rotate_refresh_tokens: bool,
    /// The directory's tenant id: work accounts sign in at it, at
    /// `organizations` and at `common`.
    pub tenant_id: String,
    /// Graph requests one mailbox may receive in any ten-minute window;
    /// `None` is unlimited. Outlook's published figure is 10,000.
    pub requests_per_ten_minutes: Option<u32>,
    /// Graph requests one mailbox may have in flight at once; `None` is
    /// unlimited. Outlook's published figure is 4.
    pub concurrent_requests: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_id: "mailroom-test-client".to_owned(),
            client_secret: "mailroom-test-secret".to_owned(),
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            tenant_id: "5f2c8e1a-3b7d-4c9e-a6f0-1d2b3c4e5f60".to_owned(),
            requests_per_ten_minutes: None,
            concurrent_requests: None,
        }
    }
}

/// An account of the directory, with a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The sign-in name (`userPrincipalName`), unique in the fake.
    pub upn: String,
    /// The SMTP address (`mail`); `None` answers `"mail": null`.
    pub mail: Option<String>,
    pub display_name: String,
    /// A personal Microsoft account (Outlook.com); otherwise a work account
    /// of the directory's tenant.
    pub personal: bool,
}

/// What an account answers when asked to consent, since no person clicks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consent {
    /// The account signs in and grants access.
    #[default]
    Grant,
    /// The person declines: the redirect carries `error=access_denied`.
    Deny,
}

/// A message as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The immutable id.
    pub id: String,
    /// The id of the folder it is in.
    pub folder_id: String,
    pub is_read: bool,
    /// `flag.flagStatus` is `flagged`.
    pub flagged: bool,
    pub is_draft: bool,
    /// `receivedDateTime`, in milliseconds since the Unix epoch.
    pub received_ms: i64,
    /// The RFC 5322 message, byte for byte.
    pub raw: Vec<u8>,
    /// `internetMessageId`, with its angle brackets.
    pub internet_message_id: Option<String>,
    pub subject: Option<String>,
}

/// What Graph and the token endpoint were asked, since start or the last
/// [`FakeMicrosoft::reset_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Graph requests received, whatever their answer.
    pub requests: u64,
    /// Graph requests by route, as `"GET /me/mailFolders/{id}/messages/delta"`
    /// (`/users/{id}` is counted as `/me`).
    pub by_route: BTreeMap<String, u64>,
    /// Whole messages served (`GET …/messages/{id}/$value`).
    pub value_downloads: u64,
    /// Requests answered 429, whether by a limit or by [`FakeMicrosoft::fail_next`].
    pub throttled: u64,
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// The distinct `Authorization: Bearer` values Graph saw.
    pub bearer_tokens_seen: BTreeSet<String>,
    /// Graph requests without `Prefer: IdType="ImmutableId"`.
    pub without_immutable_prefer: u64,
    /// The most requests one mailbox had in flight at once (from admission
    /// until the answer has been handed to the connection).
    pub max_in_flight: u32,
}

/// A running fake Microsoft. Clones share one server; it stops serving when
/// the last clone is dropped.
#[derive(Clone)]
pub struct FakeMicrosoft {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    server: HttpsServer,
    tenant_id: String,
}

/// A random GUID (version 4), as the platform writes ids.
pub(crate) fn guid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl FakeMicrosoft {
    /// Binds 127.0.0.1 on a free port and starts serving HTTPS on the current
    /// tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound or the certificate cannot be made.
    pub async fn start(options: Options) -> FakeMicrosoft {
        let shared = Arc::new(Shared::new(State::new(&options)));
        let serving = shared.clone();
        let server = HttpsServer::start(move |request| api::handle(serving.clone(), request)).await;
        shared.lock().base_url = server.base_url();
        FakeMicrosoft {
            inner: Arc::new(Inner {
                shared,
                server,
                tenant_id: options.tenant_id,
            }),
        }
    }

    /// Stops accepting connections and closes the open ones.
    pub fn stop(&self) {
        self.inner.server.stop();
    }

    /// The identity platform's origin, `https://127.0.0.1:PORT`: its
    /// endpoints are `{login_url}/{tenant}/oauth2/v2.0/authorize` and
    /// `…/token`.
    pub fn login_url(&self) -> String {
        self.inner.server.base_url()
    }

    /// Graph's origin, `https://127.0.0.1:PORT`: its paths start with `/v1.0/`.
    pub fn api_url(&self) -> String {
        self.login_url()
    }

    /// The server's self-signed certificate in PEM, for a client's trust store.
    /// Its subject alternative names are IP 127.0.0.1 and DNS `localhost`.
    pub fn cert_pem(&self) -> String {
        self.inner.server.cert_pem().to_owned()
    }

    /// The directory's tenant id.
    pub fn tenant_id(&self) -> String {
        self.inner.tenant_id.clone()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Adds an account with a mailbox holding only the well-known folders;
    /// adding a UPN again does nothing.
    pub fn add_user(&self, user: User) {
        self.shared().lock().add_user(user);
    }

    /// Decides what the account answers when asked to consent (at first,
    /// [`Consent::Grant`]).
    ///
    /// # Panics
    /// When `upn` is not an account of the fake.
    pub fn set_consent(&self, upn: &str, consent: Consent) {
        self.shared().lock().identity.set_consent(upn, consent);
    }

    /// The id of a well-known folder: `inbox`, `sentitems`, `drafts`,
    /// `deleteditems`, `junkemail`, `archive`, `outbox`, `syncissues`,
    /// `conflicts`, `localfailures`, `serverfailures`, `conversationhistory`,
    /// `msgfolderroot` or `recoverableitemsdeletions`.
    ///
    /// # Panics
    /// When the account or the name is unknown.
    pub fn folder_id(&self, upn: &str, well_known: &str) -> String {
        let mut state = self.shared().lock();
        let mailbox = state.mailbox_mut(upn);
        let number = mailbox.well_known_folder(well_known);
        mailbox.folder_id(number)
    }

    /// Creates a folder under `parent_id` (a folder id or well-known name;
    /// `None` is the top level, under `msgfolderroot`), or finds the one of
    /// that name there, and returns its id.
    ///
    /// # Panics
    /// When the account or the parent is unknown.
    pub fn add_folder(
        &self,
        upn: &str,
        parent_id: Option<&str>,
        name: &str,
        hidden: bool,
    ) -> String {
        let mut state = self.shared().lock();
        let mailbox = state.mailbox_mut(upn);
        let parent = parent_id.map(|id| {
            mailbox
                .resolve_folder(id)
                .unwrap_or_else(|e| panic!("no folder {id} in {upn}: {}", e.message))
        });
        mailbox.add_folder(parent, name, hidden)
    }

    /// Delivers a message into a folder (an id or a well-known name) as if it
    /// arrived, and returns its immutable id.
    ///
    /// # Panics
    /// When the account or the folder is unknown.
    pub fn insert(
        &self,
        upn: &str,
        folder_id: &str,
        raw: &[u8],
        received_ms: i64,
        is_read: bool,
    ) -> String {
        let mut state = self.shared().lock();
        let mailbox = state.mailbox_mut(upn);
        let folder = mailbox
            .resolve_folder(folder_id)
            .unwrap_or_else(|e| panic!("no folder {folder_id} in {upn}: {}", e.message));
        let number = mailbox.insert(
            folder,
            Arrival {
                raw: raw.to_vec(),
                received_ms,
                is_read,
                is_draft: false,
                now_ms: now_ms(),
            },
        );
        mailbox.stored(number).id
    }

    /// Runs `change` on the message `id` (immutable or current regular id).
    fn change(&self, upn: &str, id: &str, change: impl FnOnce(&mut mailbox::Mailbox, u64)) {
        let mut state = self.shared().lock();
        let mailbox = state.mailbox_mut(upn);
        let number = mailbox
            .resolve_message(id)
            .unwrap_or_else(|e| panic!("no message {id} in {upn}: {}", e.message));
        change(mailbox, number);
    }

    /// Marks a message read or unread, as another client would.
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn set_read(&self, upn: &str, id: &str, read: bool) {
        self.change(upn, id, |mailbox, number| {
            mailbox.update(number, Some(read), None, None, now_ms());
        });
    }

    /// Flags a message for follow-up, or clears the flag.
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn set_flagged(&self, upn: &str, id: &str, flagged: bool) {
        let status = if flagged {
            FlagStatus::Flagged
        } else {
            FlagStatus::NotFlagged
        };
        self.change(upn, id, |mailbox, number| {
            mailbox.update(number, None, Some(status), None, now_ms());
        });
    }

    /// Moves a message to a folder (an id or a well-known name) as Outlook
    /// would: its regular id changes, its immutable id stays.
    ///
    /// # Panics
    /// When the account, the message or the folder is unknown.
    pub fn move_to(&self, upn: &str, id: &str, folder_id: &str) {
        self.change(upn, id, |mailbox, number| {
            let folder = mailbox
                .resolve_folder(folder_id)
                .unwrap_or_else(|e| panic!("no folder {folder_id} in {upn}: {}", e.message));
            mailbox.move_to(number, folder, now_ms());
        });
    }

    /// Deletes a message as a person in Outlook does: a move to Deleted Items.
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn delete(&self, upn: &str, id: &str) {
        self.change(upn, id, |mailbox, number| {
            let deleted_items = mailbox.well_known_folder("deleteditems");
            mailbox.move_to(number, deleted_items, now_ms());
        });
    }

    /// Removes a message for good.
    ///
    /// # Panics
    /// When the account or the message is unknown.
    pub fn purge(&self, upn: &str, id: &str) {
        self.change(upn, id, |mailbox, number| mailbox.purge(number));
    }

    /// The message with that id (immutable or current regular), if the
    /// account has it.
    pub fn message(&self, upn: &str, id: &str) -> Option<Stored> {
        let state = self.shared().lock();
        let mailbox = state.mailbox(upn)?;
        let number = mailbox.resolve_message(id).ok()?;
        Some(mailbox.stored(number))
    }

    /// Every message of the account, in order of arrival.
    pub fn messages(&self, upn: &str) -> Vec<Stored> {
        let state = self.shared().lock();
        state.mailbox(upn).map(|m| m.all()).unwrap_or_default()
    }

    /// The MIME of every message the account sent through `sendMail`, in order.
    pub fn sent(&self, upn: &str) -> Vec<Vec<u8>> {
        let state = self.shared().lock();
        state
            .mailbox(upn)
            .map(|m| m.sent().to_vec())
            .unwrap_or_default()
    }

    /// Every access token issued so far stops working (401).
    pub fn expire_access_tokens(&self) {
        self.shared().lock().identity.expire_access_tokens();
    }

    /// Revokes the account's grants: its refresh tokens answer
    /// `invalid_grant` (AADSTS50173). Access tokens already issued work until
    /// they expire, as the platform's do.
    ///
    /// # Panics
    /// When `upn` is not an account of the fake.
    pub fn revoke_grants(&self, upn: &str) {
        self.shared().lock().identity.revoke(upn);
    }

    /// Every delta token (`$skiptoken` and `$deltatoken`) issued so far for
    /// the account answers 410 `syncStateNotFound`.
    ///
    /// # Panics
    /// When `upn` is not an account of the fake.
    pub fn expire_delta_tokens(&self, upn: &str) {
        self.shared().lock().mailbox_mut(upn).expire_delta_tokens();
    }

    /// The next `count` Graph requests with valid credentials answer `status`
    /// with a Graph error body — with a `Retry-After` header when given and
    /// the status is 429 or 503.
    pub fn fail_next(&self, count: u32, status: u16, retry_after: Option<u32>) {
        self.shared()
            .lock()
            .failures
            .set(count, status, retry_after);
    }

    /// What Graph and the token endpoint were asked so far.
    pub fn stats(&self) -> Stats {
        self.shared().lock().stats.clone()
    }

    /// Starts the counters of [`FakeMicrosoft::stats`] afresh.
    pub fn reset_stats(&self) {
        self.shared().lock().stats = Stats::default();
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared().lock().identity.access_tokens_issued()
    }
}
