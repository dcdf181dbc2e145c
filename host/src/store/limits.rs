//! Rate limits that hold across the nodes: each caller's recent requests of one kind, kept
//! with the data, counted in a sliding window.

use super::Result;
use super::kv::{Json, Key, Table, Writer};

const RECENT: Table<Json<Vec<i64>>> = Table::new("rate_limits");

/// Counts one request under `key` if fewer than `per_window` were made in the `window_ms`
/// before `now_ms`; otherwise says in how many milliseconds the next one may be made.
pub fn count(
    txn: &mut dyn Writer,
    key: &str,
    per_window: usize,
    window_ms: i64,
    now_ms: i64,
) -> Result<std::result::Result<(), i64>> {
    let stored = Key::new().str(key);
    let mut recent = RECENT.get(txn, &stored)?.unwrap_or_default();
    recent.retain(|at| now_ms - at < window_ms);
    if recent.len() >= per_window {
        let oldest = recent.iter().min().copied().unwrap_or(now_ms);
        return Ok(Err(window_ms - (now_ms - oldest)));
    }
    recent.push(now_ms);
    RECENT.put(txn, &stored, &recent)?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Backend;
    use crate::store::kv::memory::MemoryBackend;

    #[tokio::test]
    async fn the_window_slides() {
        let backend = MemoryBackend::new();
        let at = |now_ms: i64, key: &'static str| {
            backend.write(move |txn| count(txn, key, 2, 60_000, now_ms))
        };
        assert_eq!(at(0, "a").await.unwrap(), Ok(()));
        assert_eq!(at(10_000, "a").await.unwrap(), Ok(()));
        assert_eq!(at(20_000, "a").await.unwrap(), Err(40_000));
        assert_eq!(at(20_000, "b").await.unwrap(), Ok(()));
        assert_eq!(at(60_000, "a").await.unwrap(), Ok(()));
    }
}
