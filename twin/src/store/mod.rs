//! Storage: one ordered key-value model for everything the twin keeps.
//!
//! [`Store`] is the trait every backend implements: point reads and writes, range scans in key
//! order, atomic batch writes with a chosen [`Durability`], and consistent snapshots (for
//! backups). Keys are FoundationDB tuples ([`tuple`](mod@tuple)) under a tenant prefix
//! ([`keys`]); readings are kept in compressed blocks per sensor and time bucket ([`series`],
//! [`gorilla`]).
//!
//! Backends: [`MemoryStore`] (a `BTreeMap`, for tests) and [`RedbStore`] (embedded, the default,
//! crash-safe). `redb` was chosen over `fjall` by measuring our write pattern
//! (`twin/benches/store_backends.rs`).

pub mod gorilla;
pub mod journal;
pub mod keys;
pub mod memory;
pub mod redb_store;
pub mod series;
pub mod tuple;

#[cfg(test)]
mod conformance;

pub use journal::{JournalEntry, ReadingJournal};
pub use keys::{Keyspace, TenantKeys};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use series::{Point, SeriesStore};

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption, transaction).
    #[error("store backend failed to {op}: {message}")]
    Backend {
        /// What was being done (`open`, `commit`, `scan`, ...).
        op: &'static str,
        /// The backend's message.
        message: String,
    },
    /// The store is open in another process: the embedded store allows one at a time.
    #[error("the store {} is in use by another process", path.display())]
    Locked {
        /// The store's file.
        path: std::path::PathBuf,
    },
    /// A key could not be decoded as a tuple.
    #[error("bad key: {0}")]
    Key(#[from] tuple::TupleError),
    /// A stored value could not be decoded.
    #[error("corrupt value under key {key:02x?}: {reason}")]
    Corrupt {
        /// The key.
        key: Vec<u8>,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// A backend error for `op` from anything displayable.
    pub fn backend(op: &'static str, err: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            op,
            message: err.to_string(),
        }
    }
}

/// How durable a committed write must be when the commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk (fsync): survives a crash or power loss. An acknowledged write uses this.
    Durable,
    /// Visible to readers, but may be lost in a crash until a later durable commit.
    Buffered,
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Sets a key to a value.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (absent keys are fine).
    Delete(Vec<u8>),
}

/// Operations applied atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put(key.into(), value.into()));
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(key.into()));
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there is no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A half-open key range `[start, end)`; `end: None` means "to the last key".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// First key included.
    pub start: Vec<u8>,
    /// First key excluded; `None`: unbounded.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: prefix.to_vec(),
            end: tuple::strinc(prefix),
        }
    }

    /// Every key.
    pub fn all() -> Self {
        Self {
            start: Vec::new(),
            end: None,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the range can hold no key.
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
    }
}

/// Scan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending key order.
    Forward,
    /// Descending key order (e.g. "the latest block").
    Reverse,
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A consistent, read-only view of a store at one point in time.
pub trait Snapshot {
    /// The value of `key` in the snapshot.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `f` on every pair of `range`, in key order, until it returns `false`.
    fn for_each(
        &self,
        range: &KeyRange,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
}

/// An ordered key-value store.
pub trait Store: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` pairs of `range` in `order`.
    fn scan(
        &self,
        range: &KeyRange,
        order: Order,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// Applies `batch` atomically: after a crash either every operation is there or none.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError>;

    /// A consistent snapshot: later writes are not seen through it.
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError>;

    /// Sets one key, durably.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(batch, Durability::Durable)
    }

    /// Removes one key, durably.
    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch, Durability::Durable)
    }
}
