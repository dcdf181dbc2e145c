//! What every backend of the seam must do, as a check any backend can run against itself:
//! the embedded ones in their unit tests, PostgreSQL in the end-to-end tests (which start a
//! database), and a new backend wherever it is written.

use super::{Backend, Bytes, Json, Key, Table, Unit};
use crate::store::StoreError;

/// Checks `backend` (empty at the start) keeps ordered tables in transactions as the seam
/// promises; panics where it does not.
pub async fn a_backend_keeps_ordered_tables_in_transactions(backend: impl Backend) {
    const T: Table<Json<u32>> = Table::new("numbers");
    const OTHER: Table<Unit> = Table::new("other");
    let key = |s: &str| Key::new().str("p").str(s);
    backend
        .write(move |txn| {
            for (i, name) in ["b", "a", "c", "d"].iter().enumerate() {
                T.put(txn, &key(name), &(i as u32))?;
            }
            T.put(txn, &Key::new().str("q"), &9)?;
            OTHER.put(txn, &key("a"), &())?;
            // Reads inside see the transaction's own writes.
            assert_eq!(T.get(txn, &key("c"))?, Some(2));
            Ok(())
        })
        .await
        .unwrap();
    let names = |reverse| {
        backend.read(move |txn| {
            let mut seen = Vec::new();
            T.scan_prefix(txn, &Key::new().str("p"), reverse, |mut rest, value| {
                seen.push((rest.str()?, value));
                Ok(seen.len() < 3)
            })?;
            Ok(seen)
        })
    };
    assert_eq!(
        names(false).await.unwrap(),
        [
            ("a".to_owned(), 1),
            ("b".to_owned(), 0),
            ("c".to_owned(), 2)
        ]
    );
    assert_eq!(names(true).await.unwrap()[0], ("d".to_owned(), 3));

    // A failed transaction leaves nothing behind.
    let failed = backend
        .write(move |txn| {
            T.put(txn, &key("e"), &5)?;
            T.delete(txn, &key("a"))?;
            Err::<(), _>(StoreError::Conflict("no".into()))
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Conflict(_))));
    backend
        .read(move |txn| {
            assert_eq!(T.get(txn, &key("e"))?, None);
            assert_eq!(T.get(txn, &key("a"))?, Some(1));
            assert!(OTHER.contains(txn, &key("a"))?);
            assert!(!OTHER.contains(txn, &key("b"))?);
            Ok(())
        })
        .await
        .unwrap();

    // Deletes, takes and prefix deletes.
    let removed = backend
        .write(move |txn| {
            assert_eq!(T.take(txn, &key("b"))?, Some(0));
            assert!(!T.delete(txn, &key("b"))?);
            T.delete_prefix(txn, &Key::new().str("p"))
        })
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let left = backend.read(move |txn| T.values(txn)).await.unwrap();
    assert_eq!(left, [9]);
    // A removal, of a key there or not, needs no answer; the key is gone at once.
    backend
        .write(move |txn| {
            T.put(txn, &key("r"), &7)?;
            T.remove(txn, &key("r"))?;
            T.remove(txn, &key("never"))?;
            T.remove(txn, &Key::new().str("q"))?;
            assert_eq!(T.get(txn, &Key::new().str("q"))?, None);
            Ok(())
        })
        .await
        .unwrap();
    let left = backend.read(move |txn| T.values(txn)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let empty = backend
        .read(move |txn| Table::<Bytes>::new("never written").values(txn))
        .await
        .unwrap();
    assert!(empty.is_empty());

    many_keys_scan_in_order_with_the_transactions_own_changes(&backend).await;
}

/// Scans longer than any backend's batch, of stored keys and a transaction's changes
/// mixed, both ways, inside the transaction and after it.
async fn many_keys_scan_in_order_with_the_transactions_own_changes(backend: &impl Backend) {
    const T: Table<Json<u64>> = Table::new("many");
    let key = |n: u64| Key::new().str("m").u64(n);
    backend
        .write(move |txn| {
            for n in (0..3000).step_by(2) {
                T.put(txn, &key(n), &n)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // Odd keys added, every third even one removed, some even ones changed.
    let mut expected = std::collections::BTreeMap::new();
    for n in 0..3000u64 {
        let value = match (n % 2, n % 3, n % 7) {
            (1, _, _) => Some(n + 1_000_000),
            (0, 0, _) => None,
            (0, _, 0) => Some(n * 10),
            _ => Some(n),
        };
        if let Some(value) = value {
            expected.insert(n, value);
        }
    }
    // Keys read together: changed, added, removed, untouched and never written ones, out of
    // order and one twice.
    let asked = [2998u64, 1, 3, 0, 14, 5000, 4, 3, 7];
    let many_keys = move || asked.map(key).to_vec();
    let many_values = asked.map(|n| expected.get(&n).copied()).to_vec();
    let scan = |txn: &dyn super::Reader, reverse: bool| -> crate::store::Result<Vec<(u64, u64)>> {
        let mut seen = Vec::new();
        T.scan_prefix(txn, &Key::new().str("m"), reverse, |mut rest, value| {
            seen.push((rest.u64()?, value));
            Ok(true)
        })?;
        Ok(seen)
    };
    let forward: Vec<(u64, u64)> = expected.iter().map(|(k, v)| (*k, *v)).collect();
    let backward: Vec<(u64, u64)> = forward.iter().rev().copied().collect();
    let (inside_forward, inside_backward, inside_together) = backend
        .write(move |txn| {
            for n in 0..3000u64 {
                match (n % 2, n % 3, n % 7) {
                    (1, _, _) => T.put(txn, &key(n), &(n + 1_000_000))?,
                    (0, 0, _) => assert!(T.delete(txn, &key(n))?, "{n} was stored"),
                    (0, _, 0) => T.put(txn, &key(n), &(n * 10))?,
                    _ => {}
                }
            }
            // A removed key is gone, and removing it again says so.
            assert!(!T.delete(txn, &key(0))?);
            assert_eq!(T.get(txn, &key(3))?, Some(1_000_003));
            Ok((
                scan(txn, false)?,
                scan(txn, true)?,
                T.get_many(txn, &many_keys())?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        inside_forward, forward,
        "a forward scan inside the transaction"
    );
    assert_eq!(
        inside_backward, backward,
        "a reverse scan inside the transaction"
    );
    assert_eq!(
        inside_together, many_values,
        "keys read together inside the transaction"
    );
    let (after_forward, after_backward) = backend
        .read(move |txn| Ok((scan(txn, false)?, scan(txn, true)?)))
        .await
        .unwrap();
    assert_eq!(after_forward, forward, "a forward scan after the commit");
    assert_eq!(after_backward, backward, "a reverse scan after the commit");
    let together = backend
        .read(move |txn| T.get_many(txn, &many_keys()))
        .await
        .unwrap();
    assert_eq!(together, many_values, "keys read together after the commit");
    // A scan that stops early, from the middle.
    let middle = backend
        .read(move |txn| {
            let mut seen = Vec::new();
            T.scan_between(
                txn,
                &Key::new().str("m"),
                std::ops::Bound::Excluded(&key(1500)),
                std::ops::Bound::Unbounded,
                false,
                |mut rest, _| {
                    seen.push(rest.u64()?);
                    Ok(seen.len() < 3)
                },
            )?;
            Ok(seen)
        })
        .await
        .unwrap();
    assert_eq!(middle, [1501, 1502, 1503]);
}
