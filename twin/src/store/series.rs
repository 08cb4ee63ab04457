//! Readings in compressed blocks per sensor and time bucket, on any [`Store`].
//!
//! One key per (tenant, sensor, bucket start); the value is a [`Block`]. Appending reads the
//! bucket's block, continues its bit stream and writes it back, all blocks of one call in one
//! atomic batch. Appends for one sensor must come from one writer at a time (its `SensorActor`);
//! different sensors may be appended concurrently only through one batching writer.

use std::collections::BTreeMap;

use super::gorilla::Block;
pub use super::gorilla::Point;
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
        let mut batch = WriteBatch::new();
        self.append_to_batch(store, tenant, series, &mut batch)?;
        store.write(batch, durability)
    }

    /// Adds to `batch` the block writes that append `series` (blocks read from `store`), so a
    /// caller can commit them atomically with other operations.
    pub fn append_to_batch(
        &self,
        store: &dyn Store,
        tenant: &TenantKeys,
        series: &[(&str, &[Point])],
        batch: &mut WriteBatch,
    ) -> Result<(), StoreError> {
        let mut groups: BTreeMap<Vec<u8>, Vec<Point>> = BTreeMap::new();
        for (sensor, points) in series {
            for p in *points {
                let key = tenant.reading_block(sensor, self.bucket_start(p.timestamp));
                groups.entry(key).or_default().push(*p);
            }
        }
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
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::QualityFlags;
    use crate::store::MemoryStore;
    use crate::testutil::Rng;

    /// Random appends (out of order, duplicates, negative times, several buckets and sensors)
    /// against a plain list as the model.
    #[test]
    fn random_appends_match_a_model() {
        let mut rng = Rng::new(11);
        for case in 0..40 {
            let store = MemoryStore::new();
            let tenant = TenantKeys::new("t");
            let series = SeriesStore::new(1 + rng.below(50_000) as i64);
            let sensors = ["a", "b"];
            let mut model: Vec<(usize, Point)> = Vec::new();
            let base = rng.below(200_000) as i64 - 100_000;
            for _ in 0..rng.below(30) {
                let mut chunks: Vec<Vec<Point>> = vec![Vec::new(), Vec::new()];
                for _ in 0..rng.below(20) {
                    let s = rng.below(2) as usize;
                    let p = Point {
                        timestamp: base + rng.below(300_000) as i64,
                        value: rng.below(1000) as f64 / 8.0,
                        flags: QualityFlags::from_bits(rng.below(4) as u16),
                    };
                    chunks[s].push(p);
                    model.push((s, p));
                }
                let batch: Vec<(&str, &[Point])> = sensors
                    .iter()
                    .zip(&chunks)
                    .map(|(id, c)| (*id, c.as_slice()))
                    .collect();
                series
                    .append(&store, &tenant, &batch, Durability::Buffered)
                    .unwrap();
            }
            for _ in 0..10 {
                let from = base + rng.below(320_000) as i64 - 10_000;
                let to = from + rng.below(200_000) as i64;
                for (s, id) in sensors.iter().enumerate() {
                    let mut want: Vec<Point> = model
                        .iter()
                        .filter(|(ms, p)| *ms == s && p.timestamp >= from && p.timestamp < to)
                        .map(|(_, p)| *p)
                        .collect();
                    want.sort_by_key(|p| p.timestamp);
                    let got = series.range(&store, &tenant, id, from, to).unwrap();
                    // Equal timestamps keep arrival order within a bucket; compare as multisets
                    // by sorting on every field.
                    let key = |p: &Point| (p.timestamp, p.value.to_bits(), p.flags.bits());
                    let mut got_sorted = got.clone();
                    got_sorted.sort_by_key(key);
                    want.sort_by_key(key);
                    assert_eq!(got_sorted, want, "case {case} sensor {id} [{from}, {to})");
                    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
                }
            }
        }
    }

    #[test]
    fn bucket_start_handles_negative_and_extreme_times() {
        let s = SeriesStore::new(1000);
        assert_eq!(s.bucket_start(0), 0);
        assert_eq!(s.bucket_start(999), 0);
        assert_eq!(s.bucket_start(-1), -1000);
        assert_eq!(s.bucket_start(i64::MIN), i64::MIN);
        assert_eq!(
            s.bucket_start(i64::MAX),
            i64::MAX - i64::MAX.rem_euclid(1000)
        );
        assert_eq!(SeriesStore::new(0).bucket_ms(), 1);
    }
}
