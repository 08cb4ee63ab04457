//! Crash safety of the embedded store on the ingest write path: every reading acknowledged
//! (journaled with `Durability::Durable`) before a `kill -9` is there after reopening, also when
//! the kill lands during or after a compaction of the journal into blocks.
//!
//! The test re-invokes its own executable as a child (selected by an environment variable). The
//! child journals readings in fsync'd group commits, compacts every few commits, and prints
//! `ack <i>` after each commit returns; the parent kills it with SIGKILL mid-stream, reopens the
//! store and checks every acknowledged reading.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use twin::store::{Durability, JournalEntry, Point, ReadingJournal, RedbStore, SeriesStore};

const CHILD_ENV: &str = "TWIN_CRASH_CHILD_DIR";
const START_ENV: &str = "TWIN_CRASH_CHILD_START";
const TEST_NAME: &str = "acknowledged_readings_survive_kill_9";
const SENSORS: [&str; 3] = ["p1", "p2", "f1"];
const T0: i64 = 1_700_000_000_000;
/// Rounds of (start index, acknowledgements to wait for before killing the child); each round
/// reopens the store the previous kill left behind.
const ROUNDS: [(i64, usize); 3] = [(0, 40), (100_000, 150), (200_000, 400)];

fn point(i: i64, sensor: usize) -> Point {
    Point::new(T0 + i * 250, i as f64 + sensor as f64 / 10.0)
}

/// The child: appends and acknowledges until killed (or a minute has passed).
fn child(dir: PathBuf, start: i64) {
    let store = RedbStore::open(&dir).expect("child opens the store");
    // Small buckets so the stream crosses several blocks.
    let journal = ReadingJournal::open(Arc::new(store), SeriesStore::new(10_000))
        .expect("child opens the journal");
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut i = start;
    while started.elapsed() < Duration::from_secs(60) {
        let entries: Vec<JournalEntry> = SENSORS
            .iter()
            .enumerate()
            .map(|(s, id)| JournalEntry {
                tenant: "crash",
                sensor: id,
                point: point(i, s),
            })
            .collect();
        journal
            .append(&entries, Durability::Durable)
            .expect("child append");
        writeln!(out, "ack {i}").expect("child writes ack");
        out.flush().expect("child flushes ack");
        if i % 7 == 0 {
            journal.compact().expect("child compacts");
        }
        i += 1;
    }
}

#[test]
fn acknowledged_readings_survive_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let start = std::env::var(START_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        child(PathBuf::from(dir), start);
        return;
    }
    let dir = std::env::temp_dir().join(format!("twin-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut acked: Vec<i64> = Vec::new();
    for (start, kill_after) in ROUNDS {
        acked.extend(run_and_kill(&dir, start, kill_after));
        check_acknowledged(&dir, &acked);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a child from index `start`, kills it after `kill_after` acknowledgements, and returns
/// every index it acknowledged.
fn run_and_kill(dir: &Path, start: i64, kill_after: usize) -> Vec<i64> {
    let exe = std::env::current_exe().expect("test executable path");
    let mut proc = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(START_ENV, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = proc.stdout.take().expect("child stdout");
    let mut reader = BufReader::new(stdout);
    let mut acked: Vec<i64> = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read child output");
        if n == 0 {
            break;
        }
        // Only complete lines count: a line cut by the kill was never acknowledged.
        if let Some(rest) = line.strip_prefix("ack ").and_then(|r| r.strip_suffix('\n')) {
            if let Ok(i) = rest.parse::<i64>() {
                acked.push(i);
            }
        }
        if !killed && acked.len() >= kill_after {
            proc.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    let status = proc.wait().expect("wait for child");
    assert!(
        killed,
        "child ended ({status}) after only {} acknowledgements",
        acked.len()
    );
    assert!(!status.success(), "the child was killed, not finished");
    acked
}

/// Reopens the store and asserts every acknowledged reading is there with its value.
fn check_acknowledged(dir: &Path, acked: &[i64]) {
    let store = RedbStore::open(dir).expect("reopen after kill -9");
    let journal =
        ReadingJournal::open(Arc::new(store), SeriesStore::new(10_000)).expect("reopen journal");
    for (s, id) in SENSORS.iter().enumerate() {
        let stored: BTreeMap<i64, f64> = journal
            .range("crash", id, i64::MIN, i64::MAX)
            .expect("read back")
            .into_iter()
            .map(|p| (p.timestamp, p.value))
            .collect();
        for &i in acked {
            let p = point(i, s);
            assert_eq!(
                stored.get(&p.timestamp),
                Some(&p.value),
                "acknowledged reading {i} of {id} lost"
            );
        }
    }
}
