//! Webhooks: the CRM's endpoints and the deliveries of events to them (docs/api.md,
//! "Webhooks"). A delivery is written in the transaction that writes its event, so an event
//! kept is an event delivered; each endpoint's deliveries go one at a time, in event order.

use super::Result;
use crate::vault::Sealed;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// An endpoint events are posted to. Its signing secret is kept sealed apart, under the
/// webhook's id, like an account's password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Event types, or `["*"]` for every type.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why Mailroom disabled the endpoint itself (it answered 410 Gone); none otherwise.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at: String,
}

impl Webhook {
    /// Whether events of type `kind` are posted to this endpoint now.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && self.events.iter().any(|e| e == "*" || e == kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The message id the receiver de-duplicates by (`webhook-id`), the same on every
    /// attempt.
    pub id: String,
    pub webhook_id: String,
    pub event_seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    /// The body posted, as posted on every attempt.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the current round of attempts began (ms since the epoch): retries end
    /// `max_retry_hours` after it. None before the first attempt.
    pub first_attempt_ms: Option<i64>,
    /// When the next attempt is due (ms since the epoch), while pending.
    pub next_attempt_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at_ms: i64,
    /// The endpoint's status code, when it answered.
    pub status: Option<u16>,
    /// What went wrong; none for a 2xx.
    pub error: Option<String>,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    /// Tried again at this time (ms since the epoch).
    RetryAt(i64),
    /// No more attempts.
    Failed,
    /// The endpoint said it is gone (410): the delivery fails and the endpoint is disabled
    /// with this reason.
    Gone(String),
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub more: bool,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Keeps a new endpoint with its sealed signing secret.
    async fn insert_webhook(&self, webhook: Webhook, secret: Sealed) -> Result<()>;
    /// Every endpoint, by id.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>>;
    /// Replaces an endpoint's settings; `NotFound` when it was deleted.
    async fn update_webhook(&self, webhook: Webhook) -> Result<()>;
    /// Removes an endpoint, its secret and its deliveries.
    async fn delete_webhook(&self, id: &str) -> Result<bool>;
    async fn webhook_secret(&self, id: &str) -> Result<Option<Sealed>>;
    /// An endpoint's deliveries, newest first, those of events before `before` only.
    async fn deliveries(
        &self,
        webhook_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage>;
    /// The endpoint's oldest pending delivery: the only one that may go.
    async fn next_delivery(&self, webhook_id: &str) -> Result<Option<Delivery>>;
    /// Records an attempt at the pending delivery of event `seq`.
    async fn finish_attempt(&self, webhook_id: &str, seq: u64, attempt: Attempt) -> Result<()>;
    /// Makes a delivery pending again, due now, with a new round of attempts; none when the
    /// endpoint has no such delivery.
    async fn retry_delivery(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now_ms: i64,
    ) -> Result<Option<Delivery>>;
    /// Deliveries still pending, all endpoints together.
    async fn pending_deliveries(&self) -> Result<u64>;
}
