//! Tables in memory: a backend for tests of the rules kept above the seam, with the same
//! transaction semantics as the others (snapshot reads, one writer, all or nothing).

use super::{Backend, Reader, Result, Visit, Writer};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

type Tables = HashMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Default)]
pub struct MemoryBackend {
    /// The committed state; a reader holds its snapshot while the writer builds the next.
    committed: Mutex<Arc<Tables>>,
    /// Held for a whole write transaction.
    writer: Mutex<()>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Arc<Tables> {
        self.committed
            .lock()
            .expect("memory store poisoned")
            .clone()
    }
}

/// A write transaction: a copy of the committed tables, which becomes them on success.
struct Transaction(Tables);

impl Reader for Tables {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(HashMap::get(self, table).and_then(|t| t.get(key)).cloned())
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let Some(entries) = HashMap::get(self, table) else {
            return Ok(());
        };
        if super::is_empty_range(from, to) {
            return Ok(());
        }
        let range = entries.range::<[u8], _>((from, to));
        let ordered: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for (key, value) in ordered {
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }
}

impl Reader for Transaction {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Reader::get(&self.0, table, key)
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        Reader::scan(&self.0, table, from, to, reverse, visit)
    }
}

impl Writer for Transaction {
    fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        self.0
            .entry(table)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        Ok(self
            .0
            .get_mut(table)
            .is_some_and(|t| t.remove(key).is_some()))
    }
}

impl Backend for MemoryBackend {
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send {
        std::future::ready(f(&*self.snapshot()))
    }

    fn tables(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        let names = self.snapshot().keys().map(|t| t.to_string()).collect();
        std::future::ready(Ok(names))
    }

    // Like the others, the transaction runs when the future is awaited.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _one_writer = self.writer.lock().expect("memory store poisoned");
        let mut txn = Transaction((*self.snapshot()).clone());
        let value = f(&mut txn);
        if value.is_ok() {
            *self.committed.lock().expect("memory store poisoned") = Arc::new(txn.0);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn keeps_ordered_tables_in_transactions() {
        super::super::conformance::a_backend_keeps_ordered_tables_in_transactions(
            super::MemoryBackend::new(),
        )
        .await;
    }
}
