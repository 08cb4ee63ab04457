//! The conformance suite every backend passes: one generic function, run per backend.

use super::tuple::Element;
use super::*;
use crate::quality::QualityFlags;
use crate::testutil::{Rng, TempDir};

fn kv(k: &[u8], v: &[u8]) -> KeyValue {
    (k.to_vec(), v.to_vec())
}

/// Checks the [`Store`] contract on an empty store.
pub(crate) fn check_store(store: &dyn Store) {
    // Point operations.
    assert_eq!(store.get(b"a").unwrap(), None);
    store.put(b"a", b"1").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    store.put(b"a", b"2").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"2".to_vec()));
    store.delete(b"a").unwrap();
    assert_eq!(store.get(b"a").unwrap(), None);
    store.delete(b"never-there").unwrap();
    store.put(b"empty", b"").unwrap();
    assert_eq!(store.get(b"empty").unwrap(), Some(Vec::new()));
    store.delete(b"empty").unwrap();

    // Range scans in key order, bounds, limits, reverse.
    let mut batch = WriteBatch::new();
    for k in [&b"b"[..], b"a", b"c\x00", b"c", b"d", b"\xff\xff"] {
        batch.put(k, k);
    }
    store.write(batch, Durability::Buffered).unwrap();
    let all = store.scan(&KeyRange::all(), Order::Forward, None).unwrap();
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"a"[..], b"b", b"c", b"c\x00", b"d", b"\xff\xff"]);
    let r = KeyRange::new(b"b".to_vec(), b"d".to_vec());
    assert_eq!(
        store.scan(&r, Order::Forward, None).unwrap(),
        vec![kv(b"b", b"b"), kv(b"c", b"c"), kv(b"c\x00", b"c\x00")]
    );
    assert_eq!(
        store.scan(&r, Order::Reverse, Some(2)).unwrap(),
        vec![kv(b"c\x00", b"c\x00"), kv(b"c", b"c")]
    );
    assert_eq!(
        store
            .scan(&KeyRange::prefix(b"c"), Order::Forward, None)
            .unwrap()
            .len(),
        2
    );
    assert!(store
        .scan(
            &KeyRange::new(b"d".to_vec(), b"b".to_vec()),
            Order::Forward,
            None
        )
        .unwrap()
        .is_empty());

    // Atomic batch with puts and deletes, applied in order.
    let mut batch = WriteBatch::new();
    batch.delete(b"a".to_vec());
    batch.put(b"x".to_vec(), b"1".to_vec());
    batch.put(b"x".to_vec(), b"2".to_vec());
    batch.delete(b"b".to_vec());
    store.write(batch, Durability::Durable).unwrap();
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"x").unwrap(), Some(b"2".to_vec()));
    store.write(WriteBatch::new(), Durability::Durable).unwrap();

    // Snapshots do not see later writes.
    let snap = store.snapshot().unwrap();
    store.put(b"x", b"3").unwrap();
    store.put(b"y", b"new").unwrap();
    store.delete(b"d").unwrap();
    assert_eq!(snap.get(b"x").unwrap(), Some(b"2".to_vec()));
    assert_eq!(snap.get(b"y").unwrap(), None);
    let mut seen = Vec::new();
    snap.for_each(&KeyRange::all(), &mut |k, _| {
        seen.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(
        seen,
        [&b"c"[..], b"c\x00", b"d", b"x", b"\xff\xff"].map(|k| k.to_vec())
    );
    let mut first = Vec::new();
    snap.for_each(&KeyRange::prefix(b"c"), &mut |k, _| {
        first.push(k.to_vec());
        false
    })
    .unwrap();
    assert_eq!(first, vec![b"c".to_vec()]);
    drop(snap);
    assert_eq!(store.get(b"x").unwrap(), Some(b"3".to_vec()));

    // Tenants: every query of a tenant is a range inside its prefix.
    let a = TenantKeys::new("a");
    let ab = TenantKeys::new("ab");
    store
        .put(&a.key(&["sensors".into(), "s1".into()]), b"A")
        .unwrap();
    store
        .put(&ab.key(&["sensors".into(), "s1".into()]), b"AB")
        .unwrap();
    let in_a = store.scan(&a.range(), Order::Forward, None).unwrap();
    assert_eq!(in_a.len(), 1);
    assert_eq!(in_a[0].1, b"A");
    assert_eq!(
        a.space().unpack(&in_a[0].0).unwrap(),
        vec![Element::from("sensors"), Element::from("s1")]
    );

    // Reading blocks: append across buckets, query by time, latest blocks.
    check_series(store, &a);
}

fn check_series(store: &dyn Store, tenant: &TenantKeys) {
    let series = SeriesStore::new(60_000);
    let mut rng = Rng::new(3);
    let t0 = 1_700_000_000_000i64;
    let mut expected: Vec<Point> = Vec::new();
    let mut other: Vec<Point> = Vec::new();
    for second in 0..300 {
        let ts = t0 + second * 1000 + rng.below(50) as i64;
        let p = Point {
            timestamp: ts,
            value: 50.0 + rng.below(100) as f64 / 10.0,
            flags: if rng.below(20) == 0 {
                QualityFlags::SPIKE
            } else {
                QualityFlags::empty()
            },
        };
        let q = Point::new(ts, second as f64);
        series
            .append(
                store,
                tenant,
                &[("p1", &[p]), ("p2", &[q])],
                Durability::Buffered,
            )
            .unwrap();
        expected.push(p);
        other.push(q);
    }
    let got = series
        .range(store, tenant, "p1", i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got.iter().zip(&expected).all(|(a, b)| a.same_bits(b)));
    let (from, to) = (t0 + 61_500, t0 + 185_000);
    let window = series.range(store, tenant, "p2", from, to).unwrap();
    let want: Vec<Point> = other
        .iter()
        .copied()
        .filter(|p| p.timestamp >= from && p.timestamp < to)
        .collect();
    assert_eq!(window, want);
    let latest = series.latest(store, tenant, "p2", 1).unwrap();
    let last_bucket = series.bucket_start(other[other.len() - 1].timestamp);
    let want: Vec<Point> = other
        .iter()
        .copied()
        .filter(|p| series.bucket_start(p.timestamp) == last_bucket)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(latest, want);
    // Another tenant sees nothing.
    let none = series
        .range(store, &TenantKeys::new("zz"), "p1", i64::MIN, i64::MAX)
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn memory_store_conforms() {
    check_store(&MemoryStore::new());
}

#[test]
fn redb_store_conforms() {
    let dir = TempDir::new("redb-conformance");
    check_store(&RedbStore::open(dir.path()).unwrap());
}

#[test]
fn redb_store_keeps_data_across_reopen() {
    let dir = TempDir::new("redb-reopen");
    let tenant = TenantKeys::new("t");
    let series = SeriesStore::default();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        let points: Vec<Point> = (0..100).map(|i| Point::new(i * 1000, i as f64)).collect();
        series
            .append(&store, &tenant, &[("s", &points)], Durability::Durable)
            .unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(
        series
            .range(&store, &tenant, "s", 0, 100_000)
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn corrupt_block_is_reported_with_its_key() {
    let store = MemoryStore::new();
    let tenant = TenantKeys::new("t");
    let key = tenant.reading_block("s", 0);
    store.put(&key, b"garbage").unwrap();
    let err = SeriesStore::default()
        .range(&store, &tenant, "s", 0, 10)
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { key: k, .. } if k == key));
    assert!(SeriesStore::default()
        .append(
            &store,
            &tenant,
            &[("s", &[Point::new(1, 1.0)])],
            Durability::Durable
        )
        .is_err());
}
