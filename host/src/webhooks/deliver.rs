//! Posting deliveries: each endpoint's pending deliveries go one at a time in event order,
//! each endpoint in a task of its own, so one that keeps failing delays no other.
//!
//! A loop looks for endpoints whose next delivery is due (every [`TICK`], or at once when
//! woken) and starts a task for each; the task posts as long as deliveries are due, on one
//! connection while the endpoint keeps it open, and ends when the next one must wait. Every attempt is recorded before the next is made, so
//! a crash repeats at most the attempt under way (receivers de-duplicate by `webhook-id`).

use super::{secret_key, signature};
use crate::cluster::Cluster;
use crate::config::WebhooksConfig;
use crate::metrics::Metrics;
use crate::net::PlainHttp;
use crate::net::http::{Connection, HttpClient, Origin};
use crate::store::Store;
use crate::store::webhooks::{Attempt, AttemptNext, Delivery, Webhook};
use crate::vault::Vault;
use bytes::Bytes;
use http_body_util::Full;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument;

/// How often the loop looks for due deliveries when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: f64 = 2.0 * 3600.0;
/// How much of an answer's body is read (and a little of it kept as the error).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const ERROR_EXCERPT: usize = 200;

struct Inner {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    client: HttpClient,
    config: WebhooksConfig,
    metrics: Arc<Metrics>,
    /// Delivers only while this node holds the webhooks' lease.
    cluster: Arc<Cluster>,
    /// Endpoints with a task posting.
    busy: Mutex<HashSet<String>>,
    /// Each endpoint's connection between its tasks, while the endpoint keeps it open.
    idle: Mutex<HashMap<String, Connection>>,
    wake: Notify,
    stopping: AtomicBool,
}

/// Delivers the store's pending deliveries.
pub struct Deliverer {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Deliverer {
    /// Starts delivering; `client` is the host's, whose network policy the webhooks' own
    /// settings narrow or widen.
    pub fn start(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        mut client: HttpClient,
        config: WebhooksConfig,
        metrics: Arc<Metrics>,
        cluster: Arc<Cluster>,
    ) -> Self {
        client.net.allow_private_networks = config.allow_private_networks;
        client.plain = if config.allow_http {
            PlainHttp::Anywhere
        } else {
            PlainHttp::Never
        };
        client.max_response_bytes = MAX_ANSWER_BYTES;
        let inner = Arc::new(Inner {
            store,
            vault,
            client,
            config,
            metrics,
            cluster,
            busy: Mutex::new(HashSet::new()),
            idle: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(inner.clone()));
        Self {
            inner,
            task: Mutex::new(Some(task)),
        }
    }

    /// Looks for due deliveries now (an endpoint was enabled, a delivery retried).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops starting attempts; an attempt under way is left to finish or be repeated.
    pub async fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let task = self.task.lock().expect("deliverer poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(inner: Arc<Inner>) {
    while !inner.stopping.load(Ordering::SeqCst) {
        if let Err(e) = start_due(&inner).await {
            tracing::warn!("looking for webhook deliveries failed: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = inner.wake.notified() => {}
        }
    }
}

/// Starts a task for every enabled endpoint whose next delivery is due and has none.
async fn start_due(inner: &Arc<Inner>) -> anyhow::Result<()> {
    // One node delivers at a time, so each endpoint's deliveries keep their order.
    if !inner.cluster.delivers_webhooks() {
        return Ok(());
    }
    let now = crate::clock::now_millis();
    let webhooks = inner.store.webhooks().await?;
    inner
        .idle
        .lock()
        .expect("deliverer poisoned")
        .retain(|id, connection| {
            !connection.is_closed() && webhooks.iter().any(|w| &w.id == id && w.enabled)
        });
    for webhook in webhooks {
        if !webhook.enabled
            || inner
                .busy
                .lock()
                .expect("deliverer poisoned")
                .contains(&webhook.id)
        {
            continue;
        }
        let due = inner
            .store
            .next_delivery(&webhook.id)
            .await?
            .is_some_and(|d| d.next_attempt_ms <= now);
        if due {
            inner
                .busy
                .lock()
                .expect("deliverer poisoned")
                .insert(webhook.id.clone());
            let inner = inner.clone();
            let span = tracing::info_span!("webhook", webhook = %webhook.id);
            tokio::spawn(
                async move {
                    let id = webhook.id.clone();
                    if let Err(e) = post_due(&inner, webhook).await {
                        tracing::warn!("delivering failed: {e}");
                    }
                    inner.busy.lock().expect("deliverer poisoned").remove(&id);
                }
                .instrument(span),
            );
        }
    }
    Ok(())
}

/// Posts the endpoint's deliveries in order while they are due.
async fn post_due(inner: &Inner, mut webhook: Webhook) -> anyhow::Result<()> {
    let Some(sealed) = inner.store.webhook_secret(&webhook.id).await? else {
        return Ok(());
    };
    let secret = inner.vault.open(&webhook.id, &sealed)?;
    let mut poster = Poster {
        key: secret_key(secret.expose()).map_err(|e| anyhow::anyhow!("its secret {e}"))?,
        connection: inner
            .idle
            .lock()
            .expect("deliverer poisoned")
            .remove(&webhook.id),
    };
    let posted = post_in_order(inner, &mut webhook, &mut poster).await;
    if let Some(connection) = poster.connection.filter(|c| !c.is_closed()) {
        inner
            .idle
            .lock()
            .expect("deliverer poisoned")
            .insert(webhook.id.clone(), connection);
    }
    posted
}

/// Posts the endpoint's due deliveries one after another.
async fn post_in_order(
    inner: &Inner,
    webhook: &mut Webhook,
    poster: &mut Poster,
) -> anyhow::Result<()> {
    while !inner.stopping.load(Ordering::SeqCst) {
        // The endpoint as it is now: changed, disabled or deleted since the last attempt.
        match inner.store.webhook(&webhook.id).await? {
            Some(now) if now.enabled => *webhook = now,
            _ => return Ok(()),
        }
        let Some(delivery) = inner.store.next_delivery(&webhook.id).await? else {
            return Ok(());
        };
        if delivery.next_attempt_ms > crate::clock::now_millis() {
            return Ok(());
        }
        let attempt = attempt(inner, webhook, poster, &delivery).await;
        inner.metrics.webhook_delivery(match attempt.next {
            AttemptNext::Delivered => "delivered",
            AttemptNext::RetryAt(_) => "retry",
            AttemptNext::Failed => "failed",
            AttemptNext::Gone(_) => "gone",
        });
        let delivered = attempt.next == AttemptNext::Delivered;
        if !delivered {
            tracing::info!(
                delivery = %delivery.id, seq = delivery.event_seq,
                "delivery attempt {} failed: {}", delivery.attempts + 1,
                attempt.error.as_deref().unwrap_or_default()
            );
        }
        inner
            .store
            .finish_attempt(&webhook.id, delivery.event_seq, attempt)
            .await?;
    }
    Ok(())
}

/// What an endpoint's task keeps from one delivery to the next: the signing key, and the
/// connection while the endpoint keeps it open.
struct Poster {
    key: Vec<u8>,
    connection: Option<Connection>,
}

/// Posts one delivery and says what comes next.
async fn attempt(
    inner: &Inner,
    webhook: &Webhook,
    poster: &mut Poster,
    delivery: &Delivery,
) -> Attempt {
    let at_ms = crate::clock::now_millis();
    let (status, error) = match post(inner, webhook, poster, delivery).await {
        Ok((status, _)) if (200..300).contains(&status) => (Some(status), None),
        Ok((status, excerpt)) if excerpt.is_empty() => (
            Some(status),
            Some(format!("the endpoint answered {status}")),
        ),
        Ok((status, excerpt)) => (
            Some(status),
            Some(format!("the endpoint answered {status}: {excerpt}")),
        ),
        Err(error) => (None, Some(error)),
    };
    let next = if error.is_none() {
        AttemptNext::Delivered
    } else if status == Some(410) {
        AttemptNext::Gone(format!(
            "the endpoint answered 410 Gone to delivery {}",
            delivery.id
        ))
    } else {
        retry_or_fail(&inner.config, delivery, at_ms)
    };
    Attempt {
        at_ms,
        status,
        error,
        next,
    }
}

/// When a failed delivery is tried again: the first retry after `first_retry_secs`, each
/// next one twice as late (at most two hours), give or take a fifth; none once
/// `max_retry_hours` have passed since the round's first attempt.
fn retry_or_fail(config: &WebhooksConfig, delivery: &Delivery, now_ms: i64) -> AttemptNext {
    let first = delivery.first_attempt_ms.unwrap_or(now_ms);
    let give_up = first + (config.max_retry_hours.max(0.0) * 3_600_000.0) as i64;
    if now_ms >= give_up {
        return AttemptNext::Failed;
    }
    let wait = crate::clock::backoff(
        config.first_retry_secs.max(0.01),
        MAX_BACKOFF_SECS,
        delivery.attempts + 1,
    );
    let next = now_ms + wait.as_millis() as i64;
    // The last retry comes at the end of the window, not past it.
    AttemptNext::RetryAt(next.min(give_up))
}

/// The delivery as posted, signed now.
fn request(
    webhook: &Webhook,
    key: &[u8],
    delivery: &Delivery,
) -> Result<http::Request<Full<Bytes>>, String> {
    let timestamp = crate::clock::now_millis() / 1000;
    http::Request::post(&webhook.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("Mailroom/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &delivery.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(key, &delivery.id, timestamp, &delivery.body),
        )
        .body(Full::new(Bytes::from(delivery.body.clone())))
        .map_err(|e| format!("the request could not be built: {e}"))
}

/// Posts the delivery signed, on the endpoint's open connection when it has one; the
/// status code and, for a failure, the start of the answer's body; or why there is no
/// answer.
async fn post(
    inner: &Inner,
    webhook: &Webhook,
    poster: &mut Poster,
    delivery: &Delivery,
) -> Result<(u16, String), String> {
    let origin = Origin::parse(&webhook.url)
        .ok_or_else(|| format!("`{}` is not an absolute http(s) URL", webhook.url))?;
    let deadline = Duration::from_secs(inner.config.timeout_secs.max(1));
    let private = inner.config.allow_private_networks;
    let response = loop {
        let reused = poster
            .connection
            .as_ref()
            .is_some_and(|c| c.origin() == &origin && !c.is_closed());
        if !reused {
            poster.connection = None;
            let opened = inner.client.open(&origin, private, deadline).await;
            poster.connection = Some(opened.map_err(|e| e.message)?);
        }
        let connection = poster.connection.as_mut().expect("open");
        match connection
            .send(request(webhook, &poster.key, delivery)?, deadline)
            .await
        {
            Ok(response) => break response,
            Err(error) => {
                poster.connection = None;
                // A kept connection the endpoint closed meanwhile: once more on a new one.
                if !reused {
                    return Err(error.message);
                }
            }
        }
    };
    let status = response.status().as_u16();
    // The answer's body is read (up to the cap) so the connection can take the next
    // request; a failure keeps its start as part of the reason.
    let body = match crate::net::http::read_body(response.into_body(), deadline).await {
        Ok(body) => body,
        Err(_) => {
            poster.connection = None;
            Bytes::new()
        }
    };
    if (200..300).contains(&status) {
        return Ok((status, String::new()));
    }
    let excerpt = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(ERROR_EXCERPT)
        .collect::<String>();
    Ok((status, excerpt.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::webhooks::DeliveryState;

    fn delivery(attempts: u32, first: Option<i64>) -> Delivery {
        Delivery {
            id: "msg_1".into(),
            webhook_id: "whk_1".into(),
            event_seq: 1,
            kind: "message.created".into(),
            body: "{}".into(),
            state: DeliveryState::Pending,
            attempts,
            first_attempt_ms: first,
            next_attempt_ms: 0,
            last_status: None,
            last_error: None,
        }
    }

    #[test]
    fn retries_double_with_jitter_until_the_window_closes() {
        let config = WebhooksConfig::default();
        let now = 1_000_000;
        for (attempts, secs) in [(0u32, 5.0), (1, 10.0), (4, 80.0), (20, MAX_BACKOFF_SECS)] {
            let AttemptNext::RetryAt(at) =
                retry_or_fail(&config, &delivery(attempts, Some(now)), now)
            else {
                panic!("attempt {attempts} is retried");
            };
            let wait = (at - now) as f64 / 1000.0;
            assert!(
                wait >= secs * 0.8 && wait <= secs * 1.2,
                "{attempts}: {wait}"
            );
        }
        let day = 24 * 3_600_000;
        let late = retry_or_fail(&config, &delivery(5, Some(now)), now + day - 1000);
        assert_eq!(
            late,
            AttemptNext::RetryAt(now + day),
            "the last retry at the window's end"
        );
        assert_eq!(
            retry_or_fail(&config, &delivery(30, Some(now)), now + day),
            AttemptNext::Failed
        );
    }
}
