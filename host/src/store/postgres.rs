//! The shared store: the tables of the storage seam in a PostgreSQL database, for several
//! nodes at once. The layout version lives in the seam's `meta` table; a database written
//! by a newer Mailroom is refused.

use super::kv::postgres::PostgresBackend;
use super::kv::{Json, Key, Table};
use super::kv_store::KvStore;
use super::{Result, StoreError};

/// The seam's layout this code writes (the same numbering as the embedded file's).
pub const SCHEMA_VERSION: u64 = super::redb::SCHEMA_VERSION;

/// The layout version, kept beside the data; each backend writes its own at start.
pub(super) const META: Table<Json<u64>> = Table::new(super::META_TABLE);

/// The store in PostgreSQL.
pub type PostgresStore = KvStore<PostgresBackend>;

impl KvStore<PostgresBackend> {
    /// Connects to the database at `url` with up to `pool_size` connections, creating or
    /// migrating its schema.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self> {
        let backend = PostgresBackend::connect(url, pool_size, |txn| {
            let version = Key::new().str("schema_version");
            match META.get(txn, &version)? {
                Some(found) if found > SCHEMA_VERSION => Err(StoreError::TooNew {
                    found,
                    known: SCHEMA_VERSION,
                }),
                Some(found) if found == SCHEMA_VERSION => Ok(()),
                _ => META.put(txn, &version, &SCHEMA_VERSION),
            }
        })
        .await?;
        Ok(Self::new(backend))
    }
}
