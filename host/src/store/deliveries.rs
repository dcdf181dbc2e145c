//! Webhooks as kept: the endpoints, and per endpoint its deliveries in event order.
//!
//! Tables: `webhooks` id → endpoint; `deliveries` (webhook, seq) → delivery;
//! `deliveries_pending` (webhook, seq) → (), the pending ones, so the next to go is one
//! lookup however many were delivered; `delivery_ids` delivery id → (webhook, seq).
//! Deliveries are created by [`fan_out`], inside the transaction that writes their event.

use super::kv::{Json, Key, KeyReader, Reader, Table, Unit, Writer};
use super::mail::Event;
use super::webhooks::{Attempt, AttemptNext, Delivery, DeliveryPage, DeliveryState, Webhook};
use super::{Result, StoreError, directory};
use crate::vault::Sealed;
use serde_json::json;
use std::ops::Bound;

const WEBHOOKS: Table<Json<Webhook>> = Table::new("webhooks");
const DELIVERIES: Table<Json<Delivery>> = Table::new("deliveries");
const PENDING: Table<Unit> = Table::new("deliveries_pending");
const DELIVERY_IDS: Table<Json<(String, u64)>> = Table::new("delivery_ids");

/// How many finished deliveries an endpoint keeps for its history; older ones are trimmed
/// as new ones arrive. Pending ones are always kept.
const FINISHED_KEPT: u64 = 100_000;

fn id_key(id: &str) -> Key {
    Key::new().str(id)
}

fn delivery_key(webhook: &str, seq: u64) -> Key {
    Key::new().str(webhook).u64(seq)
}

/// Creates a pending delivery of `event` for every endpoint that wants its type.
pub fn fan_out(txn: &mut dyn Writer, event: &Event) -> Result<()> {
    let webhooks = WEBHOOKS.values(txn)?;
    for webhook in webhooks.iter().filter(|w| w.wants(&event.kind)) {
        let id = crate::id::new_id("msg");
        let body = json!({
            "id": id, "seq": event.seq, "type": event.kind, "at": event.at, "data": event.data,
        });
        let delivery = Delivery {
            id: id.clone(),
            webhook_id: webhook.id.clone(),
            event_seq: event.seq,
            kind: event.kind.clone(),
            body: body.to_string(),
            state: DeliveryState::Pending,
            attempts: 0,
            first_attempt_ms: None,
            next_attempt_ms: crate::clock::now_millis(),
            last_status: None,
            last_error: None,
        };
        let key = delivery_key(&webhook.id, event.seq);
        DELIVERIES.put(txn, &key, &delivery)?;
        PENDING.put(txn, &key, &())?;
        DELIVERY_IDS.put(txn, &id_key(&id), &(webhook.id.clone(), event.seq))?;
        if event.seq > FINISHED_KEPT && event.seq.is_multiple_of(1024) {
            trim(txn, &webhook.id, event.seq - FINISHED_KEPT)?;
        }
    }
    Ok(())
}

/// Removes the endpoint's finished deliveries of events before `horizon`.
fn trim(txn: &mut dyn Writer, webhook: &str, horizon: u64) -> Result<()> {
    let mut old = Vec::new();
    DELIVERIES.scan_between(
        txn,
        &id_key(webhook),
        Bound::Unbounded,
        Bound::Excluded(&delivery_key(webhook, horizon)),
        false,
        |_, delivery| {
            if delivery.state != DeliveryState::Pending {
                old.push((delivery.event_seq, delivery.id));
            }
            Ok(true)
        },
    )?;
    for (seq, id) in old {
        DELIVERIES.remove(txn, &delivery_key(webhook, seq))?;
        DELIVERY_IDS.remove(txn, &id_key(&id))?;
    }
    Ok(())
}

pub fn insert(txn: &mut dyn Writer, webhook: &Webhook, secret: &Sealed) -> Result<()> {
    WEBHOOKS.put(txn, &id_key(&webhook.id), webhook)?;
    directory::put_secret(txn, &webhook.id, secret)
}

pub fn all(txn: &dyn Reader) -> Result<Vec<Webhook>> {
    WEBHOOKS.values(txn)
}

pub fn get(txn: &dyn Reader, id: &str) -> Result<Option<Webhook>> {
    WEBHOOKS.get(txn, &id_key(id))
}

pub fn update(txn: &mut dyn Writer, webhook: &Webhook) -> Result<()> {
    if !WEBHOOKS.contains(txn, &id_key(&webhook.id))? {
        return Err(StoreError::NotFound("webhook"));
    }
    WEBHOOKS.put(txn, &id_key(&webhook.id), webhook)
}

pub fn delete(txn: &mut dyn Writer, id: &str) -> Result<bool> {
    if !WEBHOOKS.delete(txn, &id_key(id))? {
        return Ok(false);
    }
    directory::delete_secret(txn, id)?;
    let prefix = id_key(id);
    let ids = DELIVERIES.prefixed(txn, &prefix)?;
    for (_, delivery) in ids {
        DELIVERY_IDS.remove(txn, &id_key(&delivery.id))?;
    }
    DELIVERIES.delete_prefix(txn, &prefix)?;
    PENDING.delete_prefix(txn, &prefix)?;
    Ok(true)
}

pub fn page(
    txn: &dyn Reader,
    webhook: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<DeliveryPage> {
    let mut page = DeliveryPage::default();
    let bound = before.map(|seq| delivery_key(webhook, seq));
    let before = bound.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
    DELIVERIES.scan_between(
        txn,
        &id_key(webhook),
        Bound::Unbounded,
        before,
        true,
        |_, delivery| {
            if page.items.len() == limit {
                page.more = true;
                return Ok(false);
            }
            page.items.push(delivery);
            Ok(true)
        },
    )?;
    Ok(page)
}

pub fn next(txn: &dyn Reader, webhook: &str) -> Result<Option<Delivery>> {
    let Some(rest) = PENDING.first_key(txn, &id_key(webhook), false)? else {
        return Ok(None);
    };
    let seq = KeyReader::new(&rest).u64()?;
    DELIVERIES.get(txn, &delivery_key(webhook, seq))
}

pub fn finish_attempt(
    txn: &mut dyn Writer,
    webhook: &str,
    seq: u64,
    attempt: Attempt,
) -> Result<()> {
    let key = delivery_key(webhook, seq);
    let Some(mut delivery) = DELIVERIES.get(txn, &key)? else {
        return Ok(());
    };
    if delivery.state != DeliveryState::Pending {
        return Ok(());
    }
    delivery.attempts += 1;
    delivery.first_attempt_ms.get_or_insert(attempt.at_ms);
    delivery.last_status = attempt.status;
    delivery.last_error = attempt.error;
    match attempt.next {
        AttemptNext::Delivered => delivery.state = DeliveryState::Delivered,
        AttemptNext::RetryAt(at) => delivery.next_attempt_ms = at,
        AttemptNext::Failed => delivery.state = DeliveryState::Failed,
        AttemptNext::Gone(reason) => {
            delivery.state = DeliveryState::Failed;
            if let Some(mut endpoint) = WEBHOOKS.get(txn, &id_key(webhook))? {
                endpoint.enabled = false;
                endpoint.disabled_reason = Some(reason);
                WEBHOOKS.put(txn, &id_key(webhook), &endpoint)?;
            }
        }
    }
    if delivery.state != DeliveryState::Pending {
        PENDING.remove(txn, &key)?;
    }
    DELIVERIES.put(txn, &key, &delivery)
}

pub fn retry(
    txn: &mut dyn Writer,
    webhook: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Result<Option<Delivery>> {
    let Some((owner, seq)) = DELIVERY_IDS.get(txn, &id_key(delivery_id))? else {
        return Ok(None);
    };
    if owner != webhook {
        return Ok(None);
    }
    let key = delivery_key(webhook, seq);
    let Some(mut delivery) = DELIVERIES.get(txn, &key)? else {
        return Ok(None);
    };
    delivery.state = DeliveryState::Pending;
    delivery.first_attempt_ms = None;
    delivery.next_attempt_ms = now_ms;
    DELIVERIES.put(txn, &key, &delivery)?;
    PENDING.put(txn, &key, &())?;
    Ok(Some(delivery))
}

pub fn pending_count(txn: &dyn Reader) -> Result<u64> {
    PENDING.count(txn, &Key::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Backend;
    use crate::store::kv::memory::MemoryBackend as Memory;

    fn webhook(id: &str, events: &[&str]) -> Webhook {
        Webhook {
            id: id.into(),
            url: "https://crm.example.test/hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            enabled: true,
            disabled_reason: None,
            created_at: "2026-12-07T00:00:00Z".into(),
        }
    }

    fn event(seq: u64, kind: &str) -> Event {
        Event {
            seq,
            kind: kind.into(),
            at: "2026-12-07T00:00:00Z".into(),
            data: json!({"account_id": "acc_1"}),
        }
    }

    fn sealed() -> Sealed {
        serde_json::from_value(json!({"key_id": "k", "nonce": "", "ciphertext": ""})).unwrap()
    }

    async fn setup() -> Memory {
        let store = Memory::default();
        store
            .write(|txn| {
                insert(txn, &webhook("whk_all", &["*"]), &sealed())?;
                insert(txn, &webhook("whk_sent", &["message.sent"]), &sealed())?;
                for (seq, kind) in [
                    (1, "message.created"),
                    (2, "message.sent"),
                    (3, "message.created"),
                ] {
                    fan_out(txn, &event(seq, kind))?;
                }
                Ok(())
            })
            .await
            .unwrap();
        store
    }

    fn attempt(next: AttemptNext) -> Attempt {
        Attempt {
            at_ms: 1_000,
            status: Some(500),
            error: Some("the endpoint answered 500".into()),
            next,
        }
    }

    #[tokio::test]
    async fn each_endpoint_gets_the_events_it_asked_for_in_order() {
        let store = setup().await;
        let all = store
            .read(move |txn| page(txn, "whk_all", None, 10))
            .await
            .unwrap();
        let seqs: Vec<u64> = all.items.iter().map(|d| d.event_seq).collect();
        assert_eq!(seqs, [3, 2, 1], "newest first");
        let sent = store
            .read(move |txn| page(txn, "whk_sent", None, 10))
            .await
            .unwrap();
        assert_eq!(sent.items.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&sent.items[0].body).unwrap();
        assert_eq!(body["id"], sent.items[0].id.as_str());
        assert_eq!(body["seq"], 2);
        assert_eq!(body["type"], "message.sent");
        assert_eq!(body["data"]["account_id"], "acc_1");
        let first = store
            .read(move |txn| page(txn, "whk_all", None, 2))
            .await
            .unwrap();
        assert!(first.more);
        let rest = store
            .read(move |txn| page(txn, "whk_all", Some(2), 2))
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(!rest.more);
    }

    #[tokio::test]
    async fn the_next_delivery_waits_for_the_one_before() {
        let store = setup().await;
        let next_seq = || store.read(|txn| Ok(next(txn, "whk_all")?.map(|d| d.event_seq)));
        assert_eq!(next_seq().await.unwrap(), Some(1));
        store
            .write(|txn| finish_attempt(txn, "whk_all", 1, attempt(AttemptNext::RetryAt(5_000))))
            .await
            .unwrap();
        let retried = store
            .read(move |txn| next(txn, "whk_all"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (retried.event_seq, retried.attempts, retried.next_attempt_ms),
            (1, 1, 5_000)
        );
        assert_eq!(retried.first_attempt_ms, Some(1_000));
        store
            .write(|txn| finish_attempt(txn, "whk_all", 1, attempt(AttemptNext::Failed)))
            .await
            .unwrap();
        assert_eq!(next_seq().await.unwrap(), Some(2));
        store
            .write(|txn| finish_attempt(txn, "whk_all", 2, attempt(AttemptNext::Delivered)))
            .await
            .unwrap();
        assert_eq!(next_seq().await.unwrap(), Some(3));
        assert_eq!(
            store.read(pending_count).await.unwrap(),
            2,
            "3 here, 2 for whk_sent"
        );
    }

    #[tokio::test]
    async fn a_retry_puts_a_finished_delivery_first_again() {
        let store = setup().await;
        store
            .write(|txn| finish_attempt(txn, "whk_sent", 2, attempt(AttemptNext::Failed)))
            .await
            .unwrap();
        let failed = store
            .read(move |txn| page(txn, "whk_sent", None, 1))
            .await
            .unwrap()
            .items[0]
            .clone();
        assert_eq!(failed.state, DeliveryState::Failed);
        let id = failed.id.clone();
        let other = store
            .write(move |txn| retry(txn, "whk_all", &id, 9_000))
            .await
            .unwrap();
        assert!(
            other.is_none(),
            "a delivery of another endpoint is not found"
        );
        let id = failed.id.clone();
        let again = store
            .write(move |txn| retry(txn, "whk_sent", &id, 9_000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.state, again.next_attempt_ms, again.first_attempt_ms),
            (DeliveryState::Pending, 9_000, None)
        );
        assert_eq!(
            store
                .read(move |txn| next(txn, "whk_sent"))
                .await
                .unwrap()
                .unwrap()
                .id,
            failed.id
        );
    }

    #[tokio::test]
    async fn gone_disables_the_endpoint_and_disabled_endpoints_get_nothing_new() {
        let store = setup().await;
        store
            .write(|txn| {
                finish_attempt(
                    txn,
                    "whk_sent",
                    2,
                    attempt(AttemptNext::Gone("the endpoint answered 410 Gone".into())),
                )?;
                fan_out(txn, &event(4, "message.sent"))
            })
            .await
            .unwrap();
        let endpoint = store
            .read(move |txn| get(txn, "whk_sent"))
            .await
            .unwrap()
            .unwrap();
        assert!(!endpoint.enabled);
        assert_eq!(
            endpoint.disabled_reason.as_deref(),
            Some("the endpoint answered 410 Gone")
        );
        assert_eq!(
            store
                .read(move |txn| page(txn, "whk_sent", None, 10))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        assert_eq!(
            store
                .read(move |txn| page(txn, "whk_all", None, 10))
                .await
                .unwrap()
                .items
                .len(),
            4
        );
    }

    #[tokio::test]
    async fn deleting_an_endpoint_takes_its_deliveries_and_secret() {
        let store = setup().await;
        let id = store
            .read(move |txn| page(txn, "whk_all", None, 1))
            .await
            .unwrap()
            .items[0]
            .id
            .clone();
        assert!(store.write(|txn| delete(txn, "whk_all")).await.unwrap());
        assert!(
            store
                .read(move |txn| get(txn, "whk_all"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read(move |txn| directory::secret(txn, "whk_all"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read(move |txn| next(txn, "whk_all"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read(move |txn| DELIVERY_IDS.get(txn, &id_key(&id)))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read(move |txn| directory::secret(txn, "whk_sent"))
                .await
                .unwrap()
                .is_some()
        );
    }
}
