//! Tables in PostgreSQL, shared by every node of a deployment.
//!
//! All tables of the seam live in one PostgreSQL table, `mailroom_kv (tbl, k, v)`, keyed by
//! the table's name and the key; `bytea` compares as unsigned bytes, as the seam wants.
//! A message's body is its own row (the `bodies` table), so a changed flag rewrites the
//! message's small row and never the body.
//!
//! A transaction function runs on a blocking thread with a pooled connection: each read is
//! a round trip; writes are kept in the transaction's own overlay (which its reads see) and
//! sent together at commit, a few statements whatever their number. Write transactions run
//! one at a time across every node: each first takes a transaction-scoped advisory lock.
//! Reads run in `REPEATABLE READ` transactions: one committed state throughout.

use super::{Backend, Reader, Result, Visit, Writer, is_empty_range};
use crate::store::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use tokio::runtime::Handle;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

/// The advisory lock every write transaction holds (an arbitrary number of Mailroom's own).
const WRITE_LOCK: i64 = 0x6d61_696c_726f_6f6d;
/// The advisory lock held while the schema is created or migrated.
const MIGRATION_LOCK: i64 = WRITE_LOCK + 1;
/// The most rows a scan asks for at once; it starts smaller, as most scans stop early.
const SCAN_CHUNK: i64 = 512;
/// Writes are sent at commit in statements of about this many bytes of keys and values.
const FLUSH_BYTES: usize = 8 << 20;

pub struct PostgresBackend {
    pool: Pool,
}

pub(crate) fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {error}"))
}

/// Runs a future of the database client from a blocking thread.
fn wait<T, E: std::fmt::Display>(
    handle: &Handle,
    future: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    handle.block_on(future).map_err(backend)
}

impl PostgresBackend {
    /// Connects to `url` with a pool of up to `pool_size` connections, and creates or
    /// migrates the schema under an advisory lock (nodes starting together take turns);
    /// `prepare` runs inside that lock, in one write transaction, for the layout's own
    /// migrations.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        prepare: impl FnOnce(&mut dyn Writer) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the PostgreSQL URL is not valid: {e}")))?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .build()
            .map_err(backend)?;
        let this = Self { pool };
        let client = this
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        let created = async {
            client
                .batch_execute(
                    // Quiet: the server's notice that the table exists is not news.
                    "SET client_min_messages = warning;
                     CREATE TABLE IF NOT EXISTS mailroom_kv (
                         tbl text NOT NULL,
                         k bytea NOT NULL,
                         v bytea NOT NULL,
                         PRIMARY KEY (tbl, k)
                     )",
                )
                .await
                .map_err(backend)?;
            this.write(prepare).await
        }
        .await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend);
        created?;
        unlocked?;
        Ok(this)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("cannot reach PostgreSQL: {e}")))
    }
}

/// Runs `work` on a blocking thread; a panic there fails the transaction alone.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| Err(StoreError::Backend("a transaction panicked".into())))
    })
    .await
    .map_err(|e| StoreError::Backend(format!("a transaction did not finish: {e}")))?
}

impl Backend for PostgresBackend {
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut client = self.client().await?;
        let handle = Handle::current();
        blocking(move || {
            let txn = wait(
                &handle,
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start(),
            )?;
            let value = f(&Snapshot {
                txn: &txn,
                handle: &handle,
            })?;
            wait(&handle, txn.commit())?;
            Ok(value)
        })
        .await
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT DISTINCT tbl FROM mailroom_kv ORDER BY tbl", &[])
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut client = self.client().await?;
        let handle = Handle::current();
        blocking(move || {
            let txn = wait(&handle, client.transaction())?;
            wait(
                &handle,
                txn.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]),
            )?;
            let mut writes = Overlay {
                read: Snapshot {
                    txn: &txn,
                    handle: &handle,
                },
                tables: HashMap::new(),
            };
            let value = f(&mut writes)?;
            writes.flush()?;
            wait(&handle, txn.commit())?;
            Ok(value)
        })
        .await
    }
}

/// Reads of one database transaction.
struct Snapshot<'a> {
    txn: &'a Transaction<'a>,
    handle: &'a Handle,
}

impl Snapshot<'_> {
    /// One chunk of `from..to` in order, at most `limit` rows.
    fn chunk(
        &self,
        table: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let bounds: Vec<(&str, &[u8])> = [(from, ">=", ">"), (to, "<=", "<")]
            .into_iter()
            .filter_map(|(bound, inclusive, exclusive)| match bound {
                Bound::Included(key) => Some((inclusive, key)),
                Bound::Excluded(key) => Some((exclusive, key)),
                Bound::Unbounded => None,
            })
            .collect();
        let mut sql = String::from("SELECT k, v FROM mailroom_kv WHERE tbl = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&table, &limit];
        for (op, key) in &bounds {
            params.push(key);
            sql.push_str(&format!(" AND k {op} ${}", params.len()));
        }
        sql.push_str(if reverse {
            " ORDER BY k DESC LIMIT $2"
        } else {
            " ORDER BY k LIMIT $2"
        });
        let statement = wait(self.handle, self.txn.prepare_cached(&sql))?;
        let rows = wait(self.handle, self.txn.query(&statement, &params))?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }
}

impl Reader for Snapshot<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let statement = wait(
            self.handle,
            self.txn
                .prepare_cached("SELECT v FROM mailroom_kv WHERE tbl = $1 AND k = $2"),
        )?;
        let row = wait(self.handle, self.txn.query_opt(&statement, &[&table, &key]))?;
        Ok(row.map(|row| row.get(0)))
    }

    fn get_many(&self, table: &'static str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        match keys {
            [] => return Ok(Vec::new()),
            [key] => return Ok(vec![self.get(table, key)?]),
            _ => {}
        }
        let statement = wait(
            self.handle,
            self.txn
                .prepare_cached("SELECT k, v FROM mailroom_kv WHERE tbl = $1 AND k = ANY($2)"),
        )?;
        let rows = wait(self.handle, self.txn.query(&statement, &[&table, &keys]))?;
        let found: HashMap<Vec<u8>, Vec<u8>> = rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(keys.iter().map(|key| found.get(*key).cloned()).collect())
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        merged_scan(self, &BTreeMap::new(), table, from, to, reverse, visit)
    }
}

/// A write transaction's changes not sent yet: `None` for a deleted key.
type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;
/// One of them, as a scan meets it.
type Change<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

struct Overlay<'a> {
    read: Snapshot<'a>,
    tables: HashMap<&'static str, Changes>,
}

impl Overlay<'_> {
    /// Sends the changes: upserts and deletes, a few statements per table.
    fn flush(&mut self) -> Result<()> {
        let (txn, handle) = (self.read.txn, self.read.handle);
        let upsert = wait(
            handle,
            txn.prepare_cached(
                "INSERT INTO mailroom_kv (tbl, k, v)
                 SELECT $1, * FROM unnest($2::bytea[], $3::bytea[])
                 ON CONFLICT (tbl, k) DO UPDATE SET v = excluded.v",
            ),
        )?;
        let delete = wait(
            handle,
            txn.prepare_cached("DELETE FROM mailroom_kv WHERE tbl = $1 AND k = ANY($2)"),
        )?;
        for (table, changes) in std::mem::take(&mut self.tables) {
            let mut keys: Vec<&[u8]> = Vec::new();
            let mut values: Vec<&[u8]> = Vec::new();
            let mut bytes = 0;
            let mut gone: Vec<&[u8]> = Vec::new();
            for (key, value) in &changes {
                match value {
                    Some(value) => {
                        keys.push(key);
                        values.push(value);
                        bytes += key.len() + value.len();
                        if bytes >= FLUSH_BYTES {
                            wait(handle, txn.execute(&upsert, &[&table, &keys, &values]))?;
                            (keys, values, bytes) = (Vec::new(), Vec::new(), 0);
                        }
                    }
                    None => gone.push(key),
                }
            }
            if !keys.is_empty() {
                wait(handle, txn.execute(&upsert, &[&table, &keys, &values]))?;
            }
            if !gone.is_empty() {
                wait(handle, txn.execute(&delete, &[&table, &gone]))?;
            }
        }
        Ok(())
    }
}

impl Reader for Overlay<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.tables.get(table).and_then(|changes| changes.get(key)) {
            Some(changed) => Ok(changed.clone()),
            None => self.read.get(table, key),
        }
    }

    fn get_many(&self, table: &'static str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(changes) = self.tables.get(table) else {
            return self.read.get_many(table, keys);
        };
        let stored: Vec<&[u8]> = keys
            .iter()
            .filter(|key| !changes.contains_key(**key))
            .copied()
            .collect();
        let mut stored = self.read.get_many(table, &stored)?.into_iter();
        keys.iter()
            .map(|key| match changes.get(*key) {
                Some(changed) => Ok(changed.clone()),
                None => Ok(stored.next().flatten()),
            })
            .collect()
    }

    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let empty = Changes::new();
        let changes = self.tables.get(table).unwrap_or(&empty);
        merged_scan(&self.read, changes, table, from, to, reverse, visit)
    }
}

impl Writer for Overlay<'_> {
    fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        self.tables
            .entry(table)
            .or_default()
            .insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        let existed = self.get(table, key)?.is_some();
        if existed {
            self.remove(table, key)?;
        }
        Ok(existed)
    }

    /// Sent as a delete at commit, which finds nothing to do for a key never stored.
    fn remove(&mut self, table: &'static str, key: &[u8]) -> Result<()> {
        self.tables
            .entry(table)
            .or_default()
            .insert(key.to_vec(), None);
        Ok(())
    }
}

/// Visits `from..to` of the stored table with `changes` laid over it, in chunks that grow
/// while the visitor wants more.
fn merged_scan(
    read: &Snapshot<'_>,
    changes: &Changes,
    table: &'static str,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    reverse: bool,
    visit: &mut Visit<'_>,
) -> Result<()> {
    if is_empty_range(from, to) {
        return Ok(());
    }
    let range = changes.range::<[u8], _>((from, to));
    let mut changed: Box<dyn Iterator<Item = Change<'_>>> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut next_change = changed.next();
    // Whether `a` comes before `b` in the scan's order.
    let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
    let (mut from, mut to) = (from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec));
    let mut limit = 32;
    loop {
        let rows = read.chunk(
            table,
            from.as_ref().map(Vec::as_slice),
            to.as_ref().map(Vec::as_slice),
            reverse,
            limit,
        )?;
        let last_chunk = (rows.len() as i64) < limit;
        for (key, value) in &rows {
            // Changed keys before this stored one.
            while let Some((changed_key, change)) = next_change {
                if !before(changed_key, key) {
                    break;
                }
                if let Some(value) = change
                    && !visit(changed_key, value)?
                {
                    return Ok(());
                }
                next_change = changed.next();
            }
            let replaced = next_change.filter(|(changed_key, _)| *changed_key == key);
            let keep_going = match replaced {
                Some((_, change)) => {
                    next_change = changed.next();
                    match change {
                        Some(value) => visit(key, value)?,
                        None => true,
                    }
                }
                None => visit(key, value)?,
            };
            if !keep_going {
                return Ok(());
            }
        }
        match rows.last() {
            Some((last, _)) if !last_chunk => {
                let after = Bound::Excluded(last.clone());
                if reverse {
                    to = after
                } else {
                    from = after
                }
                limit = (limit * 4).min(SCAN_CHUNK);
            }
            _ => break,
        }
    }
    // Changed keys after the last stored one.
    while let Some((key, change)) = next_change {
        if let Some(value) = change
            && !visit(key, value)?
        {
            return Ok(());
        }
        next_change = changed.next();
    }
    Ok(())
}
