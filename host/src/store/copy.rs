//! Moving a deployment between backends (`mailroom store copy`): every table of the seam,
//! entry by entry, then both sides counted and checksummed table by table.
//!
//! Entries move as the bytes they are, sealed secrets too: the nodes on the other side need
//! the same secret key. The source must not be in use (the embedded file refuses a second
//! opener; the nodes of a shared database must be stopped), and the destination must hold
//! nothing yet.

use super::kv::{Backend, Bytes, Key, Reader, Table, Visit};
use super::{META_TABLE, Result, StoreError};
use sha2::{Digest, Sha256};
use std::ops::Bound;

/// About this many bytes of keys and values go in one write transaction.
const BATCH_BYTES: usize = 16 << 20;
/// And at most this many entries.
const BATCH_ENTRIES: usize = 10_000;

/// What one table held, as both sides counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub table: String,
    pub entries: u64,
    /// SHA-256 of every key and value, each length-prefixed, in key order (hex).
    pub sha256: String,
}

/// Copies every table of `from` into `to` (which must be empty) and checks that both now
/// hold the same entries; returns what each table held.
pub async fn copy(from: &impl Backend, to: &impl Backend) -> Result<Vec<TableSum>> {
    for table in data_tables(to).await? {
        let holds_any = to
            .read(move |txn| Table::<Bytes>::new(table).first_key(txn, &Key::new(), false))
            .await?
            .is_some();
        if holds_any {
            return Err(StoreError::Conflict(format!(
                "the destination already holds data (table {table}); copy into an empty one"
            )));
        }
    }
    let tables = data_tables(from).await?;
    for &table in &tables {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let start = after.clone();
            let batch = from
                .read(move |txn| batch(txn, table, start.as_deref()))
                .await?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            after = Some(last.clone());
            to.write(move |txn| {
                for (key, value) in &batch {
                    txn.put(table, key, value)?;
                }
                Ok(())
            })
            .await?;
        }
    }
    let mut sums = Vec::new();
    for &table in &tables {
        let (source, copied) = (table_sum(from, table).await?, table_sum(to, table).await?);
        if source != copied {
            return Err(StoreError::Backend(format!(
                "table {table} differs after the copy: {} entries ({}) at the source, {} ({}) \
                 at the destination",
                source.entries, source.sha256, copied.entries, copied.sha256
            )));
        }
        sums.push(source);
    }
    Ok(sums)
}

/// The tables of a backend that hold data (not its own layout version), by name.
async fn data_tables(backend: &impl Backend) -> Result<Vec<&'static str>> {
    let mut names: Vec<String> = backend
        .tables()
        .await?
        .into_iter()
        .filter(|t| t != META_TABLE)
        .collect();
    names.sort();
    // The seam names tables with `&'static str`; a copy meets a few dozen names, once.
    Ok(names
        .into_iter()
        .map(|name| &*Box::leak(name.into_boxed_str()))
        .collect())
}

/// The entries after `after`, up to a batch's worth.
fn batch(
    txn: &dyn Reader,
    table: &'static str,
    after: Option<&[u8]>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    let mut bytes = 0;
    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
    txn.scan(table, from, Bound::Unbounded, false, &mut |key, value| {
        bytes += key.len() + value.len();
        entries.push((key.to_vec(), value.to_vec()));
        Ok(bytes < BATCH_BYTES && entries.len() < BATCH_ENTRIES)
    })?;
    Ok(entries)
}

/// Counts and checksums one table.
pub async fn table_sum(backend: &impl Backend, name: &'static str) -> Result<TableSum> {
    backend
        .read(move |txn| {
            let mut hash = Sha256::new();
            let mut entries = 0;
            let visit: &mut Visit<'_> = &mut |key, value| {
                for part in [key, value] {
                    hash.update((part.len() as u64).to_be_bytes());
                    hash.update(part);
                }
                entries += 1;
                Ok(true)
            };
            txn.scan(name, Bound::Unbounded, Bound::Unbounded, false, visit)?;
            Ok(TableSum {
                table: name.to_owned(),
                entries,
                sha256: hex::encode(hash.finalize()),
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::memory::MemoryBackend;
    use crate::store::kv::redb::RedbBackend;

    #[tokio::test]
    async fn a_copy_holds_every_entry_and_says_so() {
        let from = MemoryBackend::new();
        from.write(|txn| {
            for n in 0u32..25_000 {
                txn.put("many", &n.to_be_bytes(), &[n as u8; 3])?;
            }
            txn.put("bodies", b"big", &vec![7; 20 << 20])?;
            txn.put(META_TABLE, b"schema_version", b"x")
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let to = RedbBackend::open(&dir.path().join("kv.redb"), 1 << 20, |_| Ok(())).unwrap();
        let sums = copy(&from, &to).await.unwrap();
        let tables: Vec<_> = sums.iter().map(|s| (s.table.as_str(), s.entries)).collect();
        assert_eq!(tables, [("bodies", 1), ("many", 25_000)]);
        assert_eq!(
            to.read(|txn| txn.get("many", &24_999u32.to_be_bytes()))
                .await
                .unwrap(),
            Some(vec![24_999u32 as u8; 3])
        );
        // The layout version is each backend's own.
        assert_eq!(
            to.read(|txn| txn.get(META_TABLE, b"schema_version"))
                .await
                .unwrap(),
            None
        );

        // A destination that holds data is refused, and left as it was.
        let again = copy(&from, &to).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert_eq!(table_sum(&to, "many").await.unwrap(), sums[1]);
    }
}
