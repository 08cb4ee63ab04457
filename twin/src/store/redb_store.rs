//! Embedded backend on `redb` (the default): one file in the data directory, copy-on-write
//! B-trees, ACID transactions; a commit with [`Durability::Durable`] is fsync'd before it
//! returns, so an acknowledged write survives `kill -9` and power loss.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    Durability, KeyRange, KeyValue, Order, Snapshot, Store, StoreError, WriteBatch, WriteOp,
};

/// The single table holding every key.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "aquatwin.redb";

/// A store in one `redb` file.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

fn err(op: &'static str) -> impl Fn(redb::Error) -> StoreError {
    move |e| StoreError::backend(op, e)
}

impl RedbStore {
    /// Opens (or creates) the store in directory `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::backend(
                "create the data directory",
                format!("{}: {e}", dir.display()),
            )
        })?;
        let path = dir.join(FILE_NAME);
        let db = redb::Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            e => StoreError::backend("open", format!("{}: {e}", path.display())),
        })?;
        // Create the table once so readers never see it missing.
        let txn = db.begin_write().map_err(|e| err("open")(e.into()))?;
        txn.open_table(KV).map_err(|e| err("open")(e.into()))?;
        txn.commit().map_err(|e| err("open")(e.into()))?;
        Ok(Self { db, path })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn collect<'a, I>(iter: I, limit: usize) -> Result<Vec<KeyValue>, StoreError>
where
    I: Iterator<
        Item = Result<
            (
                redb::AccessGuard<'a, &'static [u8]>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
{
    iter.take(limit)
        .map(|item| {
            let (k, v) = item.map_err(|e| err("scan")(e.into()))?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        })
        .collect()
}

fn table_range<'t, T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &'t T,
    range: &KeyRange,
) -> Result<redb::Range<'t, &'static [u8], &'static [u8]>, StoreError> {
    let start = range.start.as_slice();
    let r = match &range.end {
        Some(end) => table.range::<&[u8]>(start..end.as_slice()),
        None => table.range::<&[u8]>(start..),
    };
    r.map_err(|e| err("scan")(e.into()))
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| err("get")(e.into()))?;
        let table = txn.open_table(KV).map_err(|e| err("get")(e.into()))?;
        let value = table.get(key).map_err(|e| err("get")(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: Order,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(|e| err("scan")(e.into()))?;
        let table = txn.open_table(KV).map_err(|e| err("scan")(e.into()))?;
        let iter = table_range(&table, range)?;
        let limit = limit.unwrap_or(usize::MAX);
        match order {
            Order::Forward => collect(iter, limit),
            Order::Reverse => collect(iter.rev(), limit),
        }
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| err("write")(e.into()))?;
        let mode = match durability {
            Durability::Durable => redb::Durability::Immediate,
            Durability::Buffered => redb::Durability::None,
        };
        txn.set_durability(mode)
            .map_err(|e| err("write")(e.into()))?;
        {
            let mut table = txn.open_table(KV).map_err(|e| err("write")(e.into()))?;
            for op in batch.ops() {
                match op {
                    WriteOp::Put(k, v) => {
                        table
                            .insert(k.as_slice(), v.as_slice())
                            .map_err(|e| err("write")(e.into()))?;
                    }
                    WriteOp::Delete(k) => {
                        table
                            .remove(k.as_slice())
                            .map_err(|e| err("write")(e.into()))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| err("commit")(e.into()))
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| err("snapshot")(e.into()))?;
        let table = txn.open_table(KV).map_err(|e| err("snapshot")(e.into()))?;
        Ok(Box::new(RedbSnapshot { table }))
    }
}

/// A read transaction's view of the table.
struct RedbSnapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Snapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.table.get(key).map_err(|e| err("get")(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn for_each(
        &self,
        range: &KeyRange,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if range.is_empty() {
            return Ok(());
        }
        for item in table_range(&self.table, range)? {
            let (k, v) = item.map_err(|e| err("scan")(e.into()))?;
            if !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn a_second_open_of_the_same_store_is_locked() {
        let dir = TempDir::new("redb-lock");
        let first = RedbStore::open(dir.path()).unwrap();
        match RedbStore::open(dir.path()) {
            Err(StoreError::Locked { path }) => assert_eq!(path, first.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        RedbStore::open(dir.path()).unwrap();
    }
}
