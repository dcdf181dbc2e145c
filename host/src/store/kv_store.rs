//! Every store operation as a transaction of the storage seam, on whichever backend: the
//! domain's modules decide, the backend keeps.

use super::kv::Backend;
use super::mail::{
    Event, FolderCounts, FolderSync, MailStore, MessageQuery, PageOutcome, PageWrite,
};
use super::outbox::{Change, ChangeDone, Duty, OutboxEntry, OutboxStore, Outgoing};
use super::records::RecordStore;
use super::webhooks::{Attempt, Delivery, DeliveryPage, Webhook, WebhookStore};
use super::{
    AccountChange, Remembered, Result, Store, contacts, deliveries, directory, events, filing,
    ingest, leases, limits, mailbox, queue, sign_ins,
};
use crate::account::Account;
use crate::folder::FolderId;
use crate::mail::message::Message;
use crate::mail::parse::Parsed;
use crate::mail::{Fetched, Flags};
use crate::record::{CreatedBy, Record, RecordRef, RecordType};
use crate::user::{Token, TokenHash, TokenOwner, User};
use crate::vault::Sealed;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The store over a backend.
pub struct KvStore<B> {
    pub(super) backend: B,
}

impl<B: Backend> KvStore<B> {
    pub fn new(backend: B) -> Self {
        Self { backend }
    }

    /// The backend alone, for moving its tables (`copy`).
    pub fn into_backend(self) -> B {
        self.backend
    }
}

#[async_trait]
impl<B: Backend> Store for KvStore<B> {
    async fn user_count(&self) -> Result<u64> {
        self.backend.read(directory::user_count).await
    }

    async fn insert_user(&self, user: User) -> Result<()> {
        self.backend
            .write(move |txn| directory::put_user(txn, &user))
            .await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        self.backend
            .write(move |txn| directory::put_user(txn, &user))
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::user(txn, &id))
            .await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.backend.read(directory::users).await
    }

    async fn insert_token(&self, hash: TokenHash, token: Token) -> Result<()> {
        self.backend
            .write(move |txn| directory::insert_token(txn, &hash, &token))
            .await
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<Token>> {
        let hash = *hash;
        self.backend
            .read(move |txn| directory::token(txn, &hash))
            .await
    }

    async fn token_used(&self, hash: &TokenHash, at: String) -> Result<()> {
        let hash = *hash;
        self.backend
            .write(move |txn| directory::token_used(txn, &hash, at))
            .await
    }

    async fn tokens_of(&self, owner: &TokenOwner) -> Result<Vec<Token>> {
        let owner = owner.clone();
        self.backend
            .read(move |txn| directory::tokens_of(txn, &owner))
            .await
    }

    async fn delete_token(&self, id: &str) -> Result<Option<Token>> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| directory::delete_token(txn, &id))
            .await
    }

    async fn insert_account(&self, account: Account, secret: Option<Sealed>) -> Result<()> {
        self.backend
            .write(move |txn| directory::put_account(txn, &account, secret.as_ref()))
            .await
    }

    async fn update_account(&self, account: Account, secret: Option<Sealed>) -> Result<()> {
        self.backend
            .write(move |txn| directory::update_account(txn, account, secret.as_ref()))
            .await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::account(txn, &id))
            .await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.backend.read(directory::accounts).await
    }

    async fn delete_account(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| {
                let existed = directory::delete_account(txn, &id)?;
                mailbox::delete_account_mail(txn, &id)?;
                queue::delete_account_outbox(txn, &id)?;
                Ok(existed)
            })
            .await
    }

    async fn modify_account(&self, id: &str, change: AccountChange) -> Result<Option<Account>> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| directory::modify_account(txn, &id, change))
            .await
    }

    async fn account_secret(&self, id: &str) -> Result<Option<Sealed>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::secret(txn, &id))
            .await
    }

    async fn replace_account_secret(
        &self,
        id: &str,
        expected: Sealed,
        new: Sealed,
    ) -> Result<bool> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| directory::replace_account_secret(txn, &id, &expected, &new))
            .await
    }

    async fn secrets(&self) -> Result<Vec<(String, Sealed)>> {
        self.backend.read(directory::secrets).await
    }

    async fn replace_secrets(
        &self,
        secrets: Vec<(String, Sealed)>,
        key_check: Sealed,
    ) -> Result<()> {
        self.backend
            .write(move |txn| directory::replace_secrets(txn, &secrets, &key_check))
            .await
    }

    async fn primary(&self, user_id: &str) -> Result<Option<String>> {
        let user_id = user_id.to_owned();
        self.backend
            .read(move |txn| directory::primary(txn, &user_id))
            .await
    }

    async fn set_primary(&self, user_id: &str, account_id: Option<&str>) -> Result<()> {
        let (user_id, account_id) = (user_id.to_owned(), account_id.map(str::to_owned));
        self.backend
            .write(move |txn| directory::set_primary(txn, &user_id, account_id.as_deref()))
            .await
    }

    async fn remembered(&self, key: &str) -> Result<Option<Remembered>> {
        let key = key.to_owned();
        self.backend
            .read(move |txn| directory::remembered(txn, &key))
            .await
    }

    async fn remember(&self, key: &str, response: Remembered) -> Result<()> {
        let key = key.to_owned();
        self.backend
            .write(move |txn| directory::remember(txn, &key, &response))
            .await
    }

    async fn key_check(&self) -> Result<Option<Sealed>> {
        self.backend.read(directory::key_check).await
    }

    async fn set_key_check(&self, sealed: Sealed) -> Result<()> {
        self.backend
            .write(move |txn| directory::set_key_check(txn, &sealed))
            .await
    }

    async fn connector_ids(&self) -> Result<Vec<String>> {
        self.backend.read(directory::connector_ids).await
    }

    async fn connector_component(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::connector(txn, &id))
            .await
    }

    async fn put_connector(&self, id: &str, component: Vec<u8>, digest: &str) -> Result<()> {
        let (id, digest) = (id.to_owned(), digest.to_owned());
        self.backend
            .write(move |txn| directory::put_connector(txn, &id, &component, &digest))
            .await
    }

    async fn connector_digests(&self) -> Result<Vec<(String, String)>> {
        self.backend.read(directory::connector_digests).await
    }

    async fn connector_grants(&self, id: &str) -> Result<Vec<String>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::connector_grants(txn, &id))
            .await
    }

    async fn set_connector_grants(&self, id: &str, hosts: Vec<String>) -> Result<()> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| directory::set_connector_grants(txn, &id, &hosts))
            .await
    }

    async fn delete_connector(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| directory::delete_connector(txn, &id))
            .await
    }

    async fn renew_leases(&self, renewal: leases::Renewal) -> Result<leases::Held> {
        self.backend
            .write(move |txn| leases::renew(txn, &renewal))
            .await
    }

    async fn leave(&self, node: &str) -> Result<()> {
        let node = node.to_owned();
        self.backend
            .write(move |txn| leases::leave(txn, &node))
            .await
    }

    async fn count_request(
        &self,
        key: &str,
        per_window: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<std::result::Result<(), i64>> {
        let key = key.to_owned();
        self.backend
            .write(move |txn| limits::count(txn, &key, per_window, window_ms, now_ms))
            .await
    }

    async fn begin_sign_in(
        &self,
        state: &str,
        pending: sign_ins::PendingSignIn,
        now_ms: i64,
        bounds: sign_ins::Bounds,
    ) -> Result<bool> {
        let state = state.to_owned();
        self.backend
            .write(move |txn| sign_ins::begin(txn, &state, &pending, now_ms, bounds))
            .await
    }

    async fn take_sign_in(&self, state: &str, now_ms: i64) -> Result<Option<Sealed>> {
        let state = state.to_owned();
        self.backend
            .write(move |txn| sign_ins::take(txn, &state, now_ms))
            .await
    }

    async fn request_sync(&self, account_id: &str, request: leases::SyncRequest) -> Result<()> {
        let account_id = account_id.to_owned();
        self.backend
            .write(move |txn| leases::request_sync(txn, &account_id, request))
            .await
    }

    async fn sync_requests(&self) -> Result<Vec<(String, leases::SyncRequest)>> {
        self.backend.read(leases::sync_requests).await
    }

    async fn take_sync_requests(&self, taken: Vec<(String, leases::SyncRequest)>) -> Result<()> {
        self.backend
            .write(move |txn| leases::take_sync_requests(txn, &taken))
            .await
    }
}

#[async_trait]
impl<B: Backend> MailStore for KvStore<B> {
    async fn folder_syncs(&self, account_id: &str) -> Result<HashMap<FolderId, FolderSync>> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| mailbox::folder_syncs(txn, &account_id))
            .await
    }

    async fn commit_page(&self, page: PageWrite) -> Result<PageOutcome> {
        self.backend
            .write(move |txn| ingest::commit(txn, page))
            .await
    }

    async fn forget_folder(&self, account_id: &str, folder_id: &FolderId) -> Result<()> {
        let (account, folder) = (account_id.to_owned(), folder_id.clone());
        self.backend
            .write(move |txn| mailbox::forget_folder(txn, &account, &folder))
            .await
    }

    async fn finish_job(&self, account_id: &str) -> Result<usize> {
        // Most jobs leave no orphan: then there is nothing to write (and no fsync to wait for).
        let account = account_id.to_owned();
        let probe = account.clone();
        let orphans = self
            .backend
            .read(move |txn| mailbox::has_orphans(txn, &probe))
            .await?;
        if !orphans {
            return Ok(0);
        }
        self.backend
            .write(move |txn| mailbox::delete_orphans(txn, &account))
            .await
    }

    async fn known(&self, account_id: &str, probes: Vec<(String, u64)>) -> Result<Vec<bool>> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| {
                probes
                    .iter()
                    .map(|(message_id, size)| {
                        mailbox::find_known(txn, &account_id, message_id, *size)
                            .map(|found| found.is_some())
                    })
                    .collect()
            })
            .await
    }

    async fn held_ids(&self, account_id: &str, ids: Vec<String>) -> Result<Vec<bool>> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| {
                let folders = mailbox::synced_folders(txn, &account_id)?;
                ids.iter()
                    .map(|id| {
                        mailbox::held_by_id(txn, &account_id, &folders, id)
                            .map(|found| found.is_some())
                    })
                    .collect()
            })
            .await
    }

    async fn held(&self, account_id: &str, folder_id: &FolderId) -> Result<Vec<(u64, Flags)>> {
        let account_id = account_id.to_owned();
        let folder_id = folder_id.clone();
        self.backend
            .read(move |txn| mailbox::held(txn, &account_id, &folder_id))
            .await
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        let id = id.to_owned();
        self.backend.read(move |txn| mailbox::load(txn, &id)).await
    }

    async fn raw_message(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.backend.read(move |txn| mailbox::raw(txn, &id)).await
    }

    async fn messages(
        &self,
        account_id: &str,
        query: MessageQuery,
    ) -> Result<(Vec<Message>, bool)> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| mailbox::messages(txn, &account_id, &query))
            .await
    }

    async fn folder_counts(&self, account_id: &str) -> Result<FolderCounts> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| mailbox::folder_counts(txn, &account_id))
            .await
    }

    async fn folder_total(&self, account_id: &str, folder_id: &FolderId) -> Result<u64> {
        let account_id = account_id.to_owned();
        let folder_id = folder_id.clone();
        self.backend
            .read(move |txn| mailbox::folder_total(txn, &account_id, &folder_id))
            .await
    }

    async fn push_event(&self, kind: &str, data: Value) -> Result<u64> {
        let kind = kind.to_owned();
        self.backend
            .write(move |txn| events::push(txn, &kind, data))
            .await
    }

    async fn events(&self, after: u64, limit: usize) -> Result<(Vec<Event>, u64)> {
        self.backend
            .read(move |txn| events::after(txn, after, limit))
            .await
    }

    async fn last_event_seq(&self) -> Result<u64> {
        self.backend.read(events::last_seq).await
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for KvStore<B> {
    async fn queue_change(&self, message_id: &str, change: Change) -> Result<Option<Message>> {
        let id = message_id.to_owned();
        self.backend
            .write(move |txn| queue::queue_change(txn, &id, change))
            .await
    }

    async fn queue_send(&self, outgoing: Outgoing, raw: Vec<u8>) -> Result<Outgoing> {
        self.backend
            .write(move |txn| queue::queue_send(txn, outgoing, &raw))
            .await
    }

    async fn next_duty(&self, account_id: &str, after: u64) -> Result<Option<OutboxEntry>> {
        let account_id = account_id.to_owned();
        self.backend
            .read(move |txn| queue::next_duty(txn, &account_id, after))
            .await
    }

    async fn change_done(&self, entry: &OutboxEntry, done: ChangeDone) -> Result<()> {
        let entry = entry.clone();
        self.backend
            .write(move |txn| queue::change_done(txn, &entry, done))
            .await
    }

    async fn save_outgoing(
        &self,
        outgoing: Outgoing,
        entry: Option<&OutboxEntry>,
        then: Vec<Duty>,
    ) -> Result<()> {
        let entry = entry.cloned();
        self.backend
            .write(move |txn| queue::save_outgoing(txn, &outgoing, entry.as_ref(), &then))
            .await
    }

    async fn outgoing(&self, id: &str) -> Result<Option<Outgoing>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| queue::outgoing(txn, &id))
            .await
    }

    async fn outgoing_raw(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| queue::outgoing_raw(txn, &id))
            .await
    }

    async fn file_sent_copy(
        &self,
        entry: &OutboxEntry,
        folder: FolderId,
        fetched: Fetched,
        parsed: Parsed,
    ) -> Result<String> {
        let entry = entry.clone();
        self.backend
            .write(move |txn| queue::file_sent_copy(txn, &entry, folder, fetched, parsed))
            .await
    }

    async fn drop_duty(&self, entry: &OutboxEntry) -> Result<()> {
        let entry = entry.clone();
        self.backend
            .write(move |txn| queue::drop_duty(txn, &entry))
            .await
    }

    async fn defer_duty(&self, entry: &OutboxEntry) -> Result<()> {
        let entry = entry.clone();
        self.backend
            .write(move |txn| queue::defer_duty(txn, &entry))
            .await
    }

    async fn find_message_id(&self, account_id: &str, message_id: &str) -> Result<Option<String>> {
        let account_id = account_id.to_owned();
        let message_id = message_id.to_owned();
        self.backend
            .read(move |txn| mailbox::find_by_message_id(txn, &account_id, &message_id))
            .await
    }

    async fn queued_duties(&self) -> Result<u64> {
        self.backend.read(queue::queued_count).await
    }
}

#[async_trait]
impl<B: Backend> RecordStore for KvStore<B> {
    async fn put_record(&self, record: Record) -> Result<bool> {
        self.backend
            .write(move |txn| contacts::put_record(txn, &record))
            .await
    }

    async fn record(&self, reference: &RecordRef) -> Result<Option<Record>> {
        let reference = reference.clone();
        self.backend
            .read(move |txn| filing::record(txn, &reference))
            .await
    }

    async fn delete_record(&self, reference: &RecordRef) -> Result<bool> {
        let reference = reference.clone();
        self.backend
            .write(move |txn| Ok(filing::replace_record(txn, &reference, None)?.is_some()))
            .await
    }

    async fn records(
        &self,
        kind: RecordType,
        created_by: Option<CreatedBy>,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Record>, bool)> {
        self.backend
            .read(move |txn| filing::records(txn, kind, created_by, after.as_deref(), limit))
            .await
    }

    async fn timeline(
        &self,
        reference: &RecordRef,
        accounts: Option<&HashSet<String>>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let reference = reference.clone();
        let accounts = accounts.cloned();
        self.backend
            .read(move |txn| {
                let after = after.as_ref().map(|(at, id)| (*at, id.as_str()));
                filing::timeline(txn, &reference, accounts.as_ref(), after, limit)
            })
            .await
    }

    async fn on_timeline(&self, reference: &RecordRef, message_id: &str) -> Result<bool> {
        let reference = reference.clone();
        let message_id = message_id.to_owned();
        self.backend
            .read(move |txn| filing::on_timeline(txn, &reference, &message_id))
            .await
    }

    async fn message_records(&self, message_ids: &[String]) -> Result<Vec<Vec<RecordRef>>> {
        let message_ids = message_ids.to_vec();
        self.backend
            .read(move |txn| {
                message_ids
                    .iter()
                    .map(|id| filing::filed_as(txn, id))
                    .collect()
            })
            .await
    }
}

#[async_trait]
impl<B: Backend> WebhookStore for KvStore<B> {
    async fn insert_webhook(&self, webhook: Webhook, secret: Sealed) -> Result<()> {
        self.backend
            .write(move |txn| deliveries::insert(txn, &webhook, &secret))
            .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.backend.read(deliveries::all).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| deliveries::get(txn, &id))
            .await
    }

    async fn update_webhook(&self, webhook: Webhook) -> Result<()> {
        self.backend
            .write(move |txn| deliveries::update(txn, &webhook))
            .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.backend
            .write(move |txn| deliveries::delete(txn, &id))
            .await
    }

    async fn webhook_secret(&self, id: &str) -> Result<Option<Sealed>> {
        let id = id.to_owned();
        self.backend
            .read(move |txn| directory::secret(txn, &id))
            .await
    }

    async fn deliveries(
        &self,
        webhook_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage> {
        let webhook_id = webhook_id.to_owned();
        self.backend
            .read(move |txn| deliveries::page(txn, &webhook_id, before, limit))
            .await
    }

    async fn next_delivery(&self, webhook_id: &str) -> Result<Option<Delivery>> {
        let webhook_id = webhook_id.to_owned();
        self.backend
            .read(move |txn| deliveries::next(txn, &webhook_id))
            .await
    }

    async fn finish_attempt(&self, webhook_id: &str, seq: u64, attempt: Attempt) -> Result<()> {
        let webhook_id = webhook_id.to_owned();
        self.backend
            .write(move |txn| deliveries::finish_attempt(txn, &webhook_id, seq, attempt))
            .await
    }

    async fn retry_delivery(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now_ms: i64,
    ) -> Result<Option<Delivery>> {
        let (webhook_id, delivery_id) = (webhook_id.to_owned(), delivery_id.to_owned());
        self.backend
            .write(move |txn| deliveries::retry(txn, &webhook_id, &delivery_id, now_ms))
            .await
    }

    async fn pending_deliveries(&self) -> Result<u64> {
        self.backend.read(deliveries::pending_count).await
    }
}
