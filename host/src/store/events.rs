//! The event log: what happened, numbered in order, written in the transaction that made it
//! happen, so an event is never announced for a change that was not kept, together with its
//! deliveries to the webhooks that want it.

use super::kv::{Json, Key, KeyReader, Reader, Table, Writer};
use super::mail::Event;
use super::{Result, deliveries};
use serde_json::Value;
use std::ops::Bound;

/// Events by sequence number.
const EVENTS: Table<Json<Event>> = Table::new("events");

/// How many events the log keeps; older ones are trimmed as new ones arrive.
const EVENTS_KEPT: u64 = 100_000;

fn seq_key(seq: u64) -> Key {
    Key::new().u64(seq)
}

fn seq_of(key: &[u8]) -> Result<u64> {
    KeyReader::new(key).u64()
}

/// The newest event's number; 0 before the first.
pub fn last_seq(txn: &dyn Reader) -> Result<u64> {
    match EVENTS.first_key(txn, &Key::new(), true)? {
        Some(key) => seq_of(&key),
        None => Ok(0),
    }
}

/// Appends an event.
pub fn push(txn: &mut dyn Writer, kind: &str, data: Value) -> Result<u64> {
    let seq = last_seq(txn)? + 1;
    let event = Event {
        seq,
        kind: kind.to_owned(),
        at: crate::clock::now_rfc3339(),
        data,
    };
    EVENTS.put(txn, &seq_key(seq), &event)?;
    deliveries::fan_out(txn, &event)?;
    if seq > EVENTS_KEPT && seq % 1024 == 0 {
        let horizon = seq_key(seq - EVENTS_KEPT);
        let mut old = Vec::new();
        EVENTS.scan_between(
            txn,
            &Key::new(),
            Bound::Unbounded,
            Bound::Excluded(&horizon),
            false,
            |mut key, _| {
                old.push(key.u64()?);
                Ok(true)
            },
        )?;
        for seq in old {
            EVENTS.remove(txn, &seq_key(seq))?;
        }
    }
    Ok(seq)
}

/// Up to `limit` events after `after`, and the oldest number the log still holds.
pub fn after(txn: &dyn Reader, after: u64, limit: usize) -> Result<(Vec<Event>, u64)> {
    let oldest = match EVENTS.first_key(txn, &Key::new(), false)? {
        Some(key) => seq_of(&key)?,
        None => 1,
    };
    let mut events = Vec::new();
    if limit > 0 {
        let start = seq_key(after);
        EVENTS.scan_between(
            txn,
            &Key::new(),
            Bound::Excluded(&start),
            Bound::Unbounded,
            false,
            |_, event| {
                events.push(event);
                Ok(events.len() < limit)
            },
        )?;
    }
    Ok((events, oldest))
}
