//! Readings in compressed blocks per sensor and time bucket, on any [`Store`].
//!
//! One key per (tenant, sensor, bucket start); the value is a [`Block`]. Appending reads the
//! bucket's block, continues its bit stream and writes it back, all blocks of one call in one
//! atomic batch. Appends for one sensor must come from one writer at a time (its `SensorActor`);
//! different sensors may be appended concurrently only through one batching writer.

use std::collections::BTreeMap;

pub use super::gorilla::Point;
use super::gorilla::Block;
use super::keys::TenantKeys;
use super::tuple::Element;
use super::{Durability, KeyRange, Order, Store, StoreError, WriteBatch};

/// Default bucket: one hour.
pub const DEFAULT_BUCKET_MS: i64 = 3_600_000;

/// Reading storage with a fixed bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStore {
    bucket_ms: i64,
}

impl Default for SeriesStore {
    fn default() -> Self {
        Self {
            bucket_ms: DEFAULT_BUCKET_MS,
        }
    }
}

fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_vec(),
        reason: reason.to_string(),
    }
}

impl SeriesStore {
    /// Buckets of `bucket_ms` milliseconds (at least 1).
    pub fn new(bucket_ms: i64) -> Self {
        Self {
            bucket_ms: bucket_ms.max(1),
        }
    }

    /// The bucket length in milliseconds.
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Start of the bucket holding `timestamp` (the first bucket is cut at `i64::MIN`).
    pub fn bucket_start(&self, timestamp: i64) -> i64 {
        timestamp.saturating_sub(timestamp.rem_euclid(self.bucket_ms))
    }

    /// Appends the points of each `(sensor_id, points)` in one atomic write with `durability`.
    /// When it returns `Ok` with [`Durability::Durable`], every point is on disk.
    pub fn append(
        &self,
        store: &dyn Store,
        tenant: &TenantKeys,
        series: &[(&str, &[Point])],
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut groups: BTreeMap<Vec<u8>, Vec<Point>> = BTreeMap::new();
        for (sensor, points) in series {
            for p in *points {
                let key = tenant.reading_block(sensor, self.bucket_start(p.timestamp));
                groups.entry(key).or_default().push(*p);
            }
        }
        let mut batch = WriteBatch::new();
        for (key, points) in groups {
            let mut block = match store.get(&key)? {
                Some(bytes) => Block::from_bytes(&bytes).map_err(|e| corrupt(&key, e))?,
                None => Block::new(),
            };
            for p in points {
                block.push(p);
            }
            batch.put(key, block.to_bytes());
        }
        store.write(batch, durability)
    }

    /// Points of `sensor_id` with `from <= timestamp < to`, sorted by timestamp (points with
    /// equal timestamps keep their arrival order).
    pub fn range(
        &self,
        store: &dyn Store,
        tenant: &TenantKeys,
        sensor_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let space = tenant.readings(sensor_id);
        let first = self.bucket_start(from);
        let last = self.bucket_start(to - 1);
        let end = match last.checked_add(1) {
            Some(next) => space.pack(&[Element::Int(next)]),
            None => space.range().end.unwrap_or_default(),
        };
        let range = KeyRange::new(space.pack(&[Element::Int(first)]), end);
        let mut out = Vec::new();
        for (key, value) in store.scan(&range, Order::Forward, None)? {
            let block = Block::from_bytes(&value).map_err(|e| corrupt(&key, e))?;
            let points = block.points().map_err(|e| corrupt(&key, e))?;
            out.extend(
                points
                    .into_iter()
                    .filter(|p| p.timestamp >= from && p.timestamp < to),
            );
        }
        out.sort_by_key(|p| p.timestamp);
        Ok(out)
    }

    /// The points of the sensor's most recent `blocks` buckets, sorted by timestamp.
    pub fn latest(
        &self,
        store: &dyn Store,
        tenant: &TenantKeys,
        sensor_id: &str,
        blocks: usize,
    ) -> Result<Vec<Point>, StoreError> {
        let range = tenant.readings(sensor_id).range();
        let mut out = Vec::new();
        for (key, value) in store.scan(&range, Order::Reverse, Some(blocks))? {
            let block = Block::from_bytes(&value).map_err(|e| corrupt(&key, e))?;
            out.extend(block.points().map_err(|e| corrupt(&key, e))?);
        }
        out.sort_by_key(|p| p.timestamp);
        Ok(out)
    }
}
