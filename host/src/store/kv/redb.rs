//! Tables in one redb file.
//!
//! Every table is a redb table of byte keys and byte values. redb has one writer at a time
//! and `begin_write` blocks, so write transactions run on a dedicated writer thread and the
//! async caller awaits the result; reads open their own read transaction and never wait for
//! the writer.

use super::{Backend, Reader, Result, Visit, Writer, is_empty_range};
use crate::store::StoreError;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, TableError, WriteTransaction,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Bound;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

type Bytes = &'static [u8];

pub(crate) fn definition(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

pub(crate) fn backend(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(error.into().to_string())
}

type Job = Box<dyn FnOnce(&Database) + Send>;
type ReadTable = Rc<ReadOnlyTable<Bytes, Bytes>>;
type WriteTable<'txn> = Rc<RefCell<Table<'txn, Bytes, Bytes>>>;

pub struct RedbBackend {
    db: Arc<Database>,
    /// `None` only while dropping.
    writer: Option<mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbBackend {
    /// Finishes the queued writes and closes the file before returning, so the same file can
    /// be opened again at once (redb allows one opener).
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl RedbBackend {
    /// Opens (or creates) the file at `path`, private to this user whatever the umask, with
    /// `cache_bytes` of page cache; `prepare` runs first in one write transaction (the
    /// file's migrations).
    pub fn open(
        path: &Path,
        cache_bytes: usize,
        prepare: impl FnOnce(&WriteTransaction) -> Result<()>,
    ) -> Result<Self> {
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let private = || -> std::io::Result<()> {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            };
            private()
                .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
                other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
            })?;
        let txn = db.begin_write().map_err(backend)?;
        prepare(&txn)?;
        txn.commit().map_err(backend)?;

        let db = Arc::new(db);
        let (writer, jobs) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in jobs {
                    job(&writer_db);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            db,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
        })
    }

    /// Runs `f` in one redb write transaction on the writer thread; commits when it
    /// succeeds.
    pub(crate) async fn write_txn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |db: &Database| {
            let outcome = db.begin_write().map_err(backend).and_then(|txn| {
                // A transaction function that panics fails its own write, not the writer
                // thread every later write needs.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&txn)))
                    .unwrap_or_else(|_| {
                        Err(StoreError::Backend("a write transaction panicked".into()))
                    });
                match ran {
                    Ok(value) => txn.commit().map_err(backend).map(|()| value),
                    Err(error) => {
                        let _ = txn.abort();
                        Err(error)
                    }
                }
            });
            let _ = done.send(outcome);
        });
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is closing".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        result
            .await
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?
    }

    /// Runs `f` in one redb read transaction.
    pub(crate) fn read_txn<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(backend)?;
        f(&txn)
    }
}

impl Backend for RedbBackend {
    /// Reads where they are asked for: redb's read transactions never wait for the writer.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send {
        std::future::ready(self.read_txn(|txn| f(&RedbReader::new(txn))))
    }

    fn tables(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        std::future::ready(self.read_txn(|txn| {
            Ok(txn
                .list_tables()
                .map_err(backend)?
                .map(|table| redb::TableHandle::name(&table).to_owned())
                .collect())
        }))
    }

    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send {
        self.write_txn(move |txn| f(&mut RedbWriter::new(txn)))
    }
}

/// Visits `from..to` of an open table.
fn scan(
    table: &impl ReadableTable<Bytes, Bytes>,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    reverse: bool,
    visit: &mut Visit<'_>,
) -> Result<()> {
    if is_empty_range(from, to) {
        return Ok(());
    }
    let range = table.range::<&[u8]>((from, to)).map_err(backend)?;
    let mut step = |entry: std::result::Result<_, redb::StorageError>| {
        let (key, value): (redb::AccessGuard<Bytes>, redb::AccessGuard<Bytes>) =
            entry.map_err(backend)?;
        visit(key.value(), value.value())
    };
    if reverse {
        for entry in range.rev() {
            if !step(entry)? {
                break;
            }
        }
    } else {
        for entry in range {
            if !step(entry)? {
                break;
            }
        }
    }
    Ok(())
}

/// A read transaction's tables, opened once each.
pub(crate) struct RedbReader<'a> {
    txn: &'a ReadTransaction,
    /// `None` for a table never written.
    tables: RefCell<HashMap<&'static str, Option<ReadTable>>>,
}

impl<'a> RedbReader<'a> {
    pub(crate) fn new(txn: &'a ReadTransaction) -> Self {
        Self {
            txn,
            tables: RefCell::default(),
        }
    }

    /// The table, or `None` when it was never written.
    fn table(&self, name: &'static str) -> Result<Option<ReadTable>> {
        if let Some(table) = self.tables.borrow().get(name) {
            return Ok(table.clone());
        }
        let table = match self.txn.open_table(definition(name)) {
            Ok(table) => Some(Rc::new(table)),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(backend(error)),
        };
        self.tables.borrow_mut().insert(name, table.clone());
        Ok(table)
    }
}

impl Reader for RedbReader<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(table) = self.table(table)? else {
            return Ok(None);
        };
        let value = table.get(key).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        match self.table(table)? {
            Some(table) => scan(&*table, from, to, reverse, visit),
            None => Ok(()),
        }
    }
}

/// A write transaction's tables, opened once each (redb refuses a second open). A visitor
/// of a scan may read any table but write none of those it is scanning.
pub(crate) struct RedbWriter<'txn> {
    txn: &'txn WriteTransaction,
    tables: RefCell<HashMap<&'static str, WriteTable<'txn>>>,
}

impl<'txn> RedbWriter<'txn> {
    pub(crate) fn new(txn: &'txn WriteTransaction) -> Self {
        Self {
            txn,
            tables: RefCell::default(),
        }
    }

    fn table(&self, name: &'static str) -> Result<WriteTable<'txn>> {
        if let Some(table) = self.tables.borrow().get(name) {
            return Ok(table.clone());
        }
        let table = Rc::new(RefCell::new(
            self.txn.open_table(definition(name)).map_err(backend)?,
        ));
        self.tables.borrow_mut().insert(name, table.clone());
        Ok(table)
    }
}

impl Reader for RedbWriter<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let table = self.table(table)?;
        let table = table.borrow();
        let value = table.get(key).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let table = self.table(table)?;
        let table = table.borrow();
        scan(&*table, from, to, reverse, visit)
    }
}

impl Writer for RedbWriter<'_> {
    fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        let table = self.table(table)?;
        table.borrow_mut().insert(key, value).map_err(backend)?;
        Ok(())
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        let table = self.table(table)?;
        let removed = table.borrow_mut().remove(key).map_err(backend)?.is_some();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_ordered_tables_in_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(&dir.path().join("kv.redb"), 1 << 20, |_| Ok(())).unwrap();
        super::super::conformance::a_backend_keeps_ordered_tables_in_transactions(backend).await;
    }

    #[tokio::test]
    async fn a_transaction_that_panics_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(&dir.path().join("kv.redb"), 1 << 20, |_| Ok(())).unwrap();
        let panicked = backend
            .write(|_| -> Result<()> { panic!("a bug in a rule") })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Backend(_))),
            "{panicked:?}"
        );
        backend
            .write(|txn| txn.put("t", b"k", b"v"))
            .await
            .expect("the writer still writes");
        assert_eq!(
            backend.read(move |txn| txn.get("t", b"k")).await.unwrap(),
            Some(b"v".to_vec())
        );
    }
}
