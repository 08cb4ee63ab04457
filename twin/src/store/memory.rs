//! In-memory backend: a `BTreeMap` behind a lock. For tests; nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use super::{
    Durability, KeyRange, KeyValue, Order, Snapshot, Store, StoreError, WriteBatch, WriteOp,
};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// A store held in memory. Snapshots share the map until the next write (copy on write).
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<Arc<Map>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self) -> Result<Arc<Map>, StoreError> {
        self.map
            .read()
            .map(|m| Arc::clone(&m))
            .map_err(|_| StoreError::backend("read", "lock poisoned"))
    }
}

fn bounds(range: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    let end = match &range.end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    (Bound::Included(range.start.as_slice()), end)
}

fn scan_map(map: &Map, range: &KeyRange, order: Order, limit: Option<usize>) -> Vec<KeyValue> {
    if range.is_empty() {
        return Vec::new();
    }
    let iter = map.range::<[u8], _>(bounds(range));
    let limit = limit.unwrap_or(usize::MAX);
    let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
    match order {
        Order::Forward => iter.take(limit).map(clone).collect(),
        Order::Reverse => iter.rev().take(limit).map(clone).collect(),
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.current()?.get(key).cloned())
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: Order,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let map = self.current()?;
        Ok(scan_map(&map, range, order, limit))
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), StoreError> {
        let mut guard = self
            .map
            .write()
            .map_err(|_| StoreError::backend("write", "lock poisoned"))?;
        let map = Arc::make_mut(&mut guard);
        for op in batch.ops() {
            match op {
                WriteOp::Put(k, v) => {
                    map.insert(k.clone(), v.clone());
                }
                WriteOp::Delete(k) => {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(MemorySnapshot(self.current()?)))
    }
}

/// A frozen map.
struct MemorySnapshot(Arc<Map>);

impl Snapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn for_each(
        &self,
        range: &KeyRange,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if range.is_empty() {
            return Ok(());
        }
        for (k, v) in self.0.range::<[u8], _>(bounds(range)) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}
