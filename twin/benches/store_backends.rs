//! Measures the embedded store on our own write pattern (run: `cargo bench -p twin --bench
//! store_backends [redb|memory]`).
//!
//! This is the measurement that chose `redb` over `fjall` (November 2026, 2-core VM, ext4):
//! with group commits of 1,000-10,000 sensors per second redb wrote 84-259k readings/s with a
//! fsync'd batch p99 of 10-61 ms, against fjall's 70-113k readings/s and p99 of 21-351 ms;
//! reads of the last 10 minutes took 0.007-0.017 ms (p50) against 0.041-0.093 ms; disk use was
//! 7-10 bytes per reading against 63-372 (journal preallocation and rewritten blocks awaiting
//! compaction); reopening took under 8 ms against 20-770 ms. fjall was faster only for a lone
//! sensor's tiny fsync'd commit (0.14-0.23 ms against 0.26-4 ms p50), which the batching writer
//! avoids. The fjall backend was removed after the measurement.
//!
//! Pattern: `SENSORS` sensors (default 1000) each report one reading per second; every second the
//! readings of all sensors are appended in one fsync'd batch (group commit, as the storage writer
//! batches them). Also: single-sensor fsync'd appends (a lone sensor's batch), range reads of the
//! last 10 minutes and of the latest block, and the size on disk. Figures go to stdout.
//! `SECONDS` (default 300) sets how many seconds of telemetry are written.
//!
//! Then the ingest write path: the same readings through the [`ReadingJournal`] in fsync'd group
//! commits of `GROUP` readings (default 2000) as fast as the disk allows, and the compaction of
//! the journal into blocks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;
use twin::quality::QualityFlags;

use twin::store::{
    Durability, JournalEntry, Point, ReadingJournal, SeriesStore, Store, TenantKeys,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "  {name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default())
    );
}

/// A value like a pressure sensor's: slow drift plus quantised noise.
fn value(sensor: usize, second: usize) -> f64 {
    let base = 40.0 + (sensor % 50) as f64;
    let wave = ((second as f64) / 600.0 + sensor as f64).sin() * 2.0;
    ((base + wave) * 100.0).round() / 100.0
}

fn run(name: &str, dir: &Path, open: &dyn Fn(&Path) -> Box<dyn Store>) {
    let sensors = env_or("SENSORS", 1000);
    let seconds = env_or("SECONDS", 300);
    let tenant = TenantKeys::new("bench");
    let series = SeriesStore::default();
    let ids: Vec<String> = (0..sensors).map(|i| format!("s{i:05}")).collect();
    let t0: i64 = 1_700_000_000_000;
    println!("{name}: {sensors} sensors x {seconds} s, one fsync'd batch per second");

    let store = open(dir);
    let mut commits = Vec::with_capacity(seconds);
    let started = Instant::now();
    for second in 0..seconds {
        let ts = t0 + second as i64 * 1000;
        let points: Vec<[Point; 1]> = (0..sensors)
            .map(|s| {
                [Point {
                    timestamp: ts + (s % 7) as i64,
                    value: value(s, second),
                    flags: QualityFlags::empty(),
                }]
            })
            .collect();
        let batch: Vec<(&str, &[Point])> = ids
            .iter()
            .zip(&points)
            .map(|(id, p)| (id.as_str(), &p[..]))
            .collect();
        let t = Instant::now();
        if let Err(e) = series.append(store.as_ref(), &tenant, &batch, Durability::Durable) {
            println!("  append failed: {e}");
            return;
        }
        commits.push(t.elapsed());
    }
    let total = started.elapsed();
    let readings = sensors * seconds;
    println!(
        "  group commit: {readings} readings in {:.2} s = {:.0} readings/s",
        total.as_secs_f64(),
        readings as f64 / total.as_secs_f64()
    );
    summary("fsync'd batch latency", commits);

    // A lone sensor's small fsync'd append.
    let mut singles = Vec::new();
    let lone_started = Instant::now();
    for i in 0..300 {
        let ts = t0 + (seconds as i64 + i) * 1000;
        let p = [Point::new(ts, value(0, i as usize))];
        let t = Instant::now();
        if let Err(e) = series.append(
            store.as_ref(),
            &tenant,
            &[(ids[0].as_str(), &p)],
            Durability::Durable,
        ) {
            println!("  append failed: {e}");
            return;
        }
        singles.push(t.elapsed());
    }
    println!(
        "  single-sensor fsync'd appends: {:.0} commits/s",
        300.0 / lone_started.elapsed().as_secs_f64()
    );
    summary("single append latency", singles);

    // Reads: last 10 minutes of a sensor, and its latest block.
    let end = t0 + seconds as i64 * 1000;
    let mut reads = Vec::new();
    let mut latest = Vec::new();
    let mut got = 0usize;
    for i in 0..1000 {
        let id = &ids[(i * 7919) % sensors];
        let t = Instant::now();
        got += series
            .range(store.as_ref(), &tenant, id, end - 600_000, end)
            .map(|p| p.len())
            .unwrap_or(0);
        reads.push(t.elapsed());
        let t = Instant::now();
        got += series
            .latest(store.as_ref(), &tenant, id, 1)
            .map(|p| p.len())
            .unwrap_or(0);
        latest.push(t.elapsed());
    }
    summary("range read (last 10 min)", reads);
    summary("latest block read", latest);
    println!("  ({got} points read)");
    drop(store);
    println!(
        "  disk size after close: {:.2} MiB ({:.2} bytes/reading)",
        dir_size(dir) as f64 / (1024.0 * 1024.0),
        dir_size(dir) as f64 / readings as f64
    );
    let t = Instant::now();
    let reopened = open(dir);
    println!("  reopen: {:.1} ms", ms(t.elapsed()));
    drop(reopened);
}

/// The ingest write path: journal group commits as fast as fsync allows, then compaction.
fn run_journal(name: &str, dir: &Path, open: &dyn Fn(&Path) -> Box<dyn Store>) {
    let sensors = env_or("SENSORS", 1000);
    let seconds = env_or("SECONDS", 300);
    let group = env_or("GROUP", 2000).max(1);
    let ids: Vec<String> = (0..sensors).map(|i| format!("s{i:05}")).collect();
    let t0: i64 = 1_800_000_000_000;
    let store: Arc<dyn Store> = Arc::from(open(dir));
    let journal = match ReadingJournal::open(store, SeriesStore::default()) {
        Ok(journal) => journal,
        Err(e) => {
            println!("  journal open failed: {e}");
            return;
        }
    };
    let readings = sensors * seconds;
    println!("{name} journal: {readings} readings in fsync'd group commits of {group}");
    let all: Vec<JournalEntry> = (0..readings)
        .map(|i| JournalEntry {
            tenant: "bench",
            sensor: &ids[i % sensors],
            point: Point::new(
                t0 + (i / sensors) as i64 * 1000,
                value(i % sensors, i / sensors),
            ),
        })
        .collect();
    let mut commits = Vec::new();
    let started = Instant::now();
    for chunk in all.chunks(group) {
        let t = Instant::now();
        if let Err(e) = journal.append(chunk, Durability::Durable) {
            println!("  append failed: {e}");
            return;
        }
        commits.push(t.elapsed());
    }
    let total = started.elapsed();
    println!(
        "  journal group commit: {:.0} readings/s",
        readings as f64 / total.as_secs_f64()
    );
    summary("fsync'd journal commit latency", commits);
    let t = Instant::now();
    match journal.compact() {
        Ok(moved) => println!(
            "  compaction: {moved} readings into blocks in {:.1} ms ({:.0} readings/s)",
            ms(t.elapsed()),
            moved as f64 / t.elapsed().as_secs_f64()
        ),
        Err(e) => println!("  compaction failed: {e}"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twin-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn main() {
    // `cargo bench` passes `--bench`; filters select backends by name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    type Opener = fn(&Path) -> Box<dyn Store>;
    let backends: [(&str, Opener); 2] = [
        ("redb", |p| match twin::store::RedbStore::open(p) {
            Ok(store) => Box::new(store),
            Err(e) => panic!("cannot open the redb store in {}: {e}", p.display()),
        }),
        // In-process baseline: the cost of our encoding and block rewrites without any I/O.
        ("memory", |_| Box::new(twin::store::MemoryStore::new())),
    ];
    for (name, open) in backends {
        if wanted(name) {
            let dir = temp_dir(name);
            run(name, &dir, &open);
            let _ = std::fs::remove_dir_all(&dir);
            run_journal(name, &dir, &open);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
