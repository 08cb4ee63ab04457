//! The reading journal: readings are made durable in group commits of raw entries, and folded
//! into compressed per-sensor blocks ([`SeriesStore`]) later by [`ReadingJournal::compact`].
//!
//! Why not append to the blocks directly: a block append reads and rewrites the sensor's whole
//! bucket block, so a commit that carries one new reading for each of thousands of sensors would
//! rewrite thousands of blocks, hundreds of times a second. A journal commit writes one key per
//! tenant whatever the number of sensors, which keeps one fsync for many readings cheap (the
//! ingest path acknowledges only after it). Time-series engines on FoundationDB do the same.
//!
//! Keys (all FoundationDB tuples under the tenant prefix):
//! - `(root, tenant, "journal", seq)`: one chunk of entries of one commit;
//! - `(root, "meta", "journal_tenant", tenant)`: tenants that have journal chunks, so that
//!   compaction after a restart finds them.
//!
//! Sequence numbers only need to be unique among the chunks that exist: on open the next one
//! follows the highest stored chunk, and a number freed by compaction may be used again.
//!
//! Compaction moves every chunk of a tenant into the blocks and deletes the chunks in one atomic
//! batch, so a reading is always in exactly one of the two places. Reads merge both under a lock
//! that compaction takes exclusively, so they never see a reading twice or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::keys::{Keyspace, TenantKeys};
use super::series::{Point, SeriesStore};
use super::tuple::Element;
use super::{Durability, KeyRange, Order, Store, StoreError, WriteBatch};
use crate::quality::QualityFlags;

const JOURNAL: &str = "journal";
const META: &str = "meta";
const TENANT: &str = "journal_tenant";
/// Version byte of a chunk's encoding.
const CHUNK_VERSION: u8 = 1;

/// One reading to journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JournalEntry<'a> {
    /// The tenant (municipality).
    pub tenant: &'a str,
    /// The sensor id.
    pub sensor: &'a str,
    /// The stored form of the reading.
    pub point: Point,
}

/// Durable group commits of readings, compacted into blocks.
pub struct ReadingJournal {
    store: Arc<dyn Store>,
    series: SeriesStore,
    root: Keyspace,
    next_seq: AtomicU64,
    /// Tenants whose `journal_tenant` marker is known to be written.
    known_tenants: Mutex<BTreeSet<String>>,
    /// Held shared by reads and exclusively by compaction.
    compaction: RwLock<()>,
}

impl std::fmt::Debug for ReadingJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadingJournal")
            .field("series", &self.series)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_vec(),
        reason: reason.to_string(),
    }
}

fn poisoned() -> StoreError {
    StoreError::backend("lock", "a journal lock is poisoned")
}

impl ReadingJournal {
    /// The journal of `store` under the default root, blocks cut as `series` says.
    pub fn open(store: Arc<dyn Store>, series: SeriesStore) -> Result<Self, StoreError> {
        let journal = Self {
            store,
            series,
            root: Keyspace::default(),
            next_seq: AtomicU64::new(0),
            known_tenants: Mutex::new(BTreeSet::new()),
            compaction: RwLock::new(()),
        };
        let tenants = journal.stored_tenants()?;
        let mut next_seq = 0;
        for tenant in &tenants {
            let space = journal.chunk_space(tenant);
            if let Some((key, _)) = journal
                .store
                .scan(&space.range(), Order::Reverse, Some(1))?
                .pop()
            {
                match space.unpack(&key)?.as_slice() {
                    [Element::Int(seq)] => next_seq = next_seq.max(*seq as u64 + 1),
                    _ => return Err(corrupt(&key, "journal key is not one integer")),
                }
            }
        }
        journal.next_seq.store(next_seq, Ordering::SeqCst);
        *journal.known_tenants.lock().map_err(|_| poisoned())? = tenants;
        Ok(journal)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The block layout.
    pub fn series(&self) -> SeriesStore {
        self.series
    }

    fn tenant_marker_space(&self) -> Keyspace {
        self.root
            .subspace(&[Element::from(META), Element::from(TENANT)])
    }

    fn stored_tenants(&self) -> Result<BTreeSet<String>, StoreError> {
        let space = self.tenant_marker_space();
        let mut tenants = BTreeSet::new();
        for (key, _) in self.store.scan(&space.range(), Order::Forward, None)? {
            match space.unpack(&key)?.as_slice() {
                [Element::String(tenant)] => {
                    tenants.insert(tenant.clone());
                }
                _ => return Err(corrupt(&key, "tenant marker is not one string")),
            }
        }
        Ok(tenants)
    }

    fn chunk_space(&self, tenant: &str) -> Keyspace {
        self.root
            .tenant(tenant)
            .space()
            .subspace(&[Element::from(JOURNAL)])
    }

    /// Writes `entries` in one atomic commit with `durability`: with [`Durability::Durable`],
    /// every entry is on disk when this returns `Ok`. Safe to call from several threads.
    pub fn append(
        &self,
        entries: &[JournalEntry<'_>],
        durability: Durability,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut by_tenant: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        for entry in entries {
            let chunk = by_tenant
                .entry(entry.tenant)
                .or_insert_with(|| vec![CHUNK_VERSION]);
            encode_entry(chunk, entry.sensor, &entry.point);
        }
        let mut batch = WriteBatch::new();
        let mut new_tenants = Vec::new();
        {
            let known = self.known_tenants.lock().map_err(|_| poisoned())?;
            for tenant in by_tenant.keys() {
                if !known.contains(*tenant) {
                    batch.put(
                        self.tenant_marker_space().pack(&[Element::from(*tenant)]),
                        Vec::new(),
                    );
                    new_tenants.push(tenant.to_string());
                }
            }
        }
        let first = self
            .next_seq
            .fetch_add(by_tenant.len() as u64, Ordering::SeqCst);
        for (offset, (tenant, chunk)) in by_tenant.into_iter().enumerate() {
            let key = self
                .chunk_space(tenant)
                .pack(&[Element::Int(first as i64 + offset as i64)]);
            batch.put(key, chunk);
        }
        self.store.write(batch, durability)?;
        if !new_tenants.is_empty() {
            self.known_tenants
                .lock()
                .map_err(|_| poisoned())?
                .extend(new_tenants);
        }
        Ok(())
    }

    /// Every journal entry of `tenant` (optionally of one sensor), in commit order.
    fn journal_points(
        &self,
        tenant: &str,
        sensor: Option<&str>,
    ) -> Result<Vec<(String, Point)>, StoreError> {
        let range = self.chunk_space(tenant).range();
        let mut out = Vec::new();
        for (key, value) in self.store.scan(&range, Order::Forward, None)? {
            decode_chunk(&value, |id, point| {
                if sensor.is_none_or(|s| s == id) {
                    out.push((id.to_string(), point));
                }
            })
            .map_err(|reason| corrupt(&key, reason))?;
        }
        Ok(out)
    }

    /// Folds every journal chunk into the sensors' blocks; returns the number of readings moved.
    /// Each tenant is one atomic batch (blocks written, chunks deleted), buffered: a crash
    /// before the next durable commit rolls back to the chunks, which still hold the readings.
    pub fn compact(&self) -> Result<usize, StoreError> {
        let _exclusive = self.compaction.write().map_err(|_| poisoned())?;
        let tenants: Vec<String> = self
            .known_tenants
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .cloned()
            .collect();
        let mut moved = 0;
        for tenant in tenants {
            let range = self.chunk_space(&tenant).range();
            let chunks = self.store.scan(&range, Order::Forward, None)?;
            if chunks.is_empty() {
                continue;
            }
            let mut by_sensor: BTreeMap<String, Vec<Point>> = BTreeMap::new();
            let mut batch = WriteBatch::new();
            for (key, value) in chunks {
                decode_chunk(&value, |id, point| {
                    by_sensor.entry(id.to_string()).or_default().push(point);
                })
                .map_err(|reason| corrupt(&key, reason))?;
                batch.delete(key);
            }
            moved += by_sensor.values().map(Vec::len).sum::<usize>();
            let series: Vec<(&str, &[Point])> = by_sensor
                .iter()
                .map(|(id, points)| (id.as_str(), points.as_slice()))
                .collect();
            self.series.append_to_batch(
                self.store.as_ref(),
                &TenantKeys::new(&tenant),
                &series,
                &mut batch,
            )?;
            self.store.write(batch, Durability::Buffered)?;
        }
        Ok(moved)
    }

    /// Readings of `sensor` of `tenant` with `from <= timestamp < to`, sorted by timestamp
    /// (equal timestamps in arrival order), from the blocks and the journal.
    pub fn range(
        &self,
        tenant: &str,
        sensor: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, StoreError> {
        let _shared = self.compaction.read().map_err(|_| poisoned())?;
        let keys = TenantKeys::new(tenant);
        let mut points = self
            .series
            .range(self.store.as_ref(), &keys, sensor, from, to)?;
        points.extend(
            self.journal_points(tenant, Some(sensor))?
                .into_iter()
                .map(|(_, p)| p)
                .filter(|p| p.timestamp >= from && p.timestamp < to),
        );
        points.sort_by_key(|p| p.timestamp);
        Ok(points)
    }

    /// The `n` most recent readings of `sensor` (by timestamp), oldest first.
    pub fn latest(&self, tenant: &str, sensor: &str, n: usize) -> Result<Vec<Point>, StoreError> {
        let _shared = self.compaction.read().map_err(|_| poisoned())?;
        let keys = TenantKeys::new(tenant);
        let journal: Vec<Point> = self
            .journal_points(tenant, Some(sensor))?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let mut blocks = 1;
        let mut previous = None;
        loop {
            let mut points = self
                .series
                .latest(self.store.as_ref(), &keys, sensor, blocks)?;
            let from_blocks = points.len();
            let exhausted = from_blocks == 0 || previous == Some(from_blocks);
            // Blocks not fetched hold only points older than the oldest fetched bucket.
            let covered_from = points
                .first()
                .map_or(i64::MIN, |p| self.series.bucket_start(p.timestamp));
            points.extend_from_slice(&journal);
            points.sort_by_key(|p| p.timestamp);
            let skip = points.len().saturating_sub(n);
            let complete =
                points.len() >= n && points.get(skip).is_none_or(|p| p.timestamp >= covered_from);
            if complete || exhausted {
                return Ok(points.split_off(skip));
            }
            previous = Some(from_blocks);
            blocks *= 2;
        }
    }

    /// Every key of the journal and its bookkeeping (for backups and tests).
    pub fn journal_range(&self, tenant: &str) -> KeyRange {
        self.chunk_space(tenant).range()
    }
}

fn encode_entry(chunk: &mut Vec<u8>, sensor: &str, point: &Point) {
    let id = sensor.as_bytes();
    // Sensor ids are short; longer ones are cut at the limit of the length prefix, which the
    // configuration never allows anyway.
    let len = id.len().min(u16::MAX as usize);
    chunk.extend_from_slice(&(len as u16).to_le_bytes());
    chunk.extend_from_slice(&id[..len]);
    chunk.extend_from_slice(&point.timestamp.to_le_bytes());
    chunk.extend_from_slice(&point.value.to_bits().to_le_bytes());
    chunk.extend_from_slice(&point.flags.bits().to_le_bytes());
}

fn decode_chunk(bytes: &[u8], mut each: impl FnMut(&str, Point)) -> Result<(), String> {
    let (&version, body) = bytes.split_first().ok_or("empty chunk")?;
    if version != CHUNK_VERSION {
        return Err(format!("unsupported chunk version {version}"));
    }
    let mut cursor = Cursor { rest: body };
    while !cursor.rest.is_empty() {
        let len = u16::from_le_bytes(cursor.array()?) as usize;
        let id = std::str::from_utf8(cursor.take(len)?).map_err(|e| format!("sensor id: {e}"))?;
        let timestamp = i64::from_le_bytes(cursor.array()?);
        let value = f64::from_bits(u64::from_le_bytes(cursor.array()?));
        let flags = QualityFlags::from_bits(u16::from_le_bytes(cursor.array()?));
        each(
            id,
            Point {
                timestamp,
                value,
                flags,
            },
        );
    }
    Ok(())
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("chunk truncated".to_string());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| "chunk truncated".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, RedbStore};
    use crate::testutil::{Rng, TempDir};

    fn key(p: &Point) -> (i64, u64, u16) {
        (p.timestamp, p.value.to_bits(), p.flags.bits())
    }

    /// Random appends, compactions and reopenings against a plain list as the model: every
    /// reading is read back exactly once, whichever side of a compaction it is on.
    fn random_appends_match_a_model(open: &dyn Fn() -> Arc<dyn Store>) {
        let mut rng = Rng::new(5);
        let tenants = ["north", "south"];
        let sensors = ["a", "b", "c"];
        let mut model: Vec<(usize, usize, Point)> = Vec::new();
        let mut journal = ReadingJournal::open(open(), SeriesStore::new(40_000)).unwrap();
        for round in 0..60 {
            let mut entries = Vec::new();
            for _ in 0..rng.below(25) {
                let (t, s) = (rng.below(2) as usize, rng.below(3) as usize);
                let point = Point {
                    timestamp: rng.below(200_000) as i64 - 50_000,
                    value: rng.below(1000) as f64 / 4.0,
                    flags: QualityFlags::from_bits(rng.below(3) as u16),
                };
                model.push((t, s, point));
                entries.push(JournalEntry {
                    tenant: tenants[t],
                    sensor: sensors[s],
                    point,
                });
            }
            journal.append(&entries, Durability::Buffered).unwrap();
            match rng.below(6) {
                0 => {
                    journal.compact().unwrap();
                }
                1 => journal = ReadingJournal::open(open(), SeriesStore::new(40_000)).unwrap(),
                _ => {}
            }
            for (t, tenant) in tenants.iter().enumerate() {
                for (s, sensor) in sensors.iter().enumerate() {
                    let from = rng.below(150_000) as i64 - 60_000;
                    let to = from + rng.below(120_000) as i64;
                    let mut want: Vec<Point> = model
                        .iter()
                        .filter(|(mt, ms, p)| {
                            *mt == t && *ms == s && p.timestamp >= from && p.timestamp < to
                        })
                        .map(|(_, _, p)| *p)
                        .collect();
                    let mut got = journal.range(tenant, sensor, from, to).unwrap();
                    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
                    got.sort_by_key(key);
                    want.sort_by_key(key);
                    assert_eq!(got, want, "round {round} {tenant}/{sensor} [{from}, {to})");

                    let mut all: Vec<Point> = model
                        .iter()
                        .filter(|(mt, ms, _)| *mt == t && *ms == s)
                        .map(|(_, _, p)| *p)
                        .collect();
                    all.sort_by_key(|p| p.timestamp);
                    let n = rng.below(8) as usize;
                    let latest = journal.latest(tenant, sensor, n).unwrap();
                    let want_times: Vec<i64> = all[all.len().saturating_sub(n)..]
                        .iter()
                        .map(|p| p.timestamp)
                        .collect();
                    let got_times: Vec<i64> = latest.iter().map(|p| p.timestamp).collect();
                    assert_eq!(got_times, want_times, "latest {n} of {tenant}/{sensor}");
                }
            }
        }
    }

    #[test]
    fn memory_backend_matches_the_model() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        random_appends_match_a_model(&|| store.clone());
    }

    #[test]
    fn redb_backend_matches_the_model_across_reopenings() {
        let dir = TempDir::new("journal-model");
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
        random_appends_match_a_model(&|| store.clone());
    }

    #[test]
    fn a_corrupt_chunk_is_reported_with_its_key() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let journal = ReadingJournal::open(store.clone(), SeriesStore::default()).unwrap();
        let entry = JournalEntry {
            tenant: "t",
            sensor: "s",
            point: Point::new(1, 2.0),
        };
        journal.append(&[entry], Durability::Durable).unwrap();
        let (key, mut value) = store
            .scan(&journal.journal_range("t"), Order::Forward, None)
            .unwrap()
            .remove(0);
        value.pop();
        store.put(&key, &value).unwrap();
        let err = journal.range("t", "s", 0, 10).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("truncated")),
            "{err}"
        );
    }
}
