//! `aquatwin backup` and `aquatwin restore` as processes: a backup taken from a running `serve`
//! while devices keep posting readings over HTTP is restored into a fresh data directory, a new
//! `serve` on it has every reading the snapshot held (whole acknowledged batches, nothing acked
//! after the backup), its users and its alerts; the backup route is for super_admins only; bad
//! files, occupied targets and stores held by a running server are refused with exit status 2,
//! leaving the data directory as it was.

mod serve_support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serve_support::*;
use sha2::{Digest as _, Sha256};

/// A municipality admin: may do much, but not take backups.
const MANAGER: (&str, &str) = ("manager", "password-of-the-manager");
/// Readings per posted batch (the test configuration's body limit is 4096 bytes).
const BATCH: i64 = 30;

fn aquatwin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `aquatwin backup --url` of `serve` with `token` in the environment.
fn backup_url(serve: &Serve, token: &str, out: &Path) -> Output {
    aquatwin()
        .args(["backup", "--url", &serve.url(""), "--out"])
        .arg(out)
        .env("AQUATWIN_TOKEN", token)
        .output()
        .unwrap()
}

fn backup_data(data: &Path, out: &Path) -> Output {
    aquatwin()
        .args(["backup", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn restore(file: &Path, data: &Path, force: bool) -> Output {
    let mut command = aquatwin();
    command.arg("restore").arg(file).arg("--data").arg(data);
    if force {
        command.arg("--force");
    }
    command.output().unwrap()
}

/// The number after `wrote FILE: ` in `backup`'s closing line.
fn records_written(output: &Output) -> u64 {
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in `{text}`"))
}

/// One acknowledged batch: when it was sent and acked, and its readings.
struct Batch {
    sent: Instant,
    acked: Instant,
    readings: Vec<(i64, f64)>,
}

/// A device posting batches of one sensor's readings over HTTP, one after the other, until
/// stopped; returns the acknowledged batches in order.
fn feed(
    serve: &Serve,
    device: (&'static str, &'static str),
    sensor: &'static str,
    base_value: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Batch>> {
    let url = serve.url("/api/v1/ingest");
    let start = now_ms() - 3_600_000;
    std::thread::spawn(move || {
        let mut batches = Vec::new();
        let mut next = 0i64;
        while !stop.load(Ordering::Relaxed) {
            let readings: Vec<(i64, f64)> = (next..next + BATCH)
                .map(|i| (start + i * 1000, base_value + (i % 64) as f64 * 0.125))
                .collect();
            let sent = Instant::now();
            post_batch(
                &url,
                device,
                &readings_batch(sensor, readings.iter().copied()),
            );
            batches.push(Batch {
                sent,
                acked: Instant::now(),
                readings,
            });
            next += BATCH;
        }
        batches
    })
}

/// Raises a sensor fault: readings far out of any pressure sensor's range.
fn raise_alert(serve: &Serve) -> serde_json::Value {
    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &fault_batch(now_ms()),
    );
    let path = format!("/api/v1/municipalities/{MUNICIPALITY}/alerts");
    let mut alerts = serde_json::Value::Null;
    let raised = serve.wait_for(Duration::from_secs(15), || {
        alerts = serve.get(&path).1;
        alerts["alerts"].as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(raised, "no alert: {alerts}\n{}", serve.log());
    alerts["alerts"].clone()
}

/// Name and SHA-256 of every file under `dir`, to show it was left untouched.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                files.insert(path, format!("{digest:x}"));
            }
        }
    }
    files
}

#[test]
fn a_backup_taken_during_ingest_restores_a_consistent_twin() {
    let dir = TempDir::new("backup-live");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_user(
        &config.with_file_name("data"),
        MANAGER.0,
        MANAGER.1,
        "municipality_admin",
        Some(MUNICIPALITY),
    );
    let mut serve = Serve::start(&config, &[]);
    let alerts_before = raise_alert(&serve);

    let stop = Arc::new(AtomicBool::new(false));
    let feeders = [
        ("P-149", feed(&serve, DEVICE_A, "P-149", 40.0, stop.clone())),
        (
            "F-101",
            feed(&serve, DEVICE_B, "F-101", 900.0, stop.clone()),
        ),
    ];
    std::thread::sleep(Duration::from_millis(1500));

    // Only a super_admin may take a backup.
    let manager = login(serve.http, MANAGER.0, MANAGER.1);
    let route = serve.url("/api/v1/admin/backup");
    let (status, body) = curl(&["-X", "POST", &route]);
    assert_eq!(status, 401, "{body}");
    let auth = format!("Authorization: Bearer {manager}");
    let (status, body) = curl(&["-X", "POST", "-H", &auth, &route]);
    assert_eq!(status, 403, "{body}");
    let refused_file = dir.path().join("refused.backup");
    let refused = backup_url(&serve, &manager, &refused_file);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    assert!(!refused_file.exists());
    let no_token = aquatwin()
        .args(["backup", "--url", &serve.url(""), "--out"])
        .arg(&refused_file)
        .env_remove("AQUATWIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2), "{}", stderr(&no_token));
    assert!(stderr(&no_token).contains("AQUATWIN_TOKEN"));

    let file = dir.path().join("live.backup");
    let backup_started = Instant::now();
    let backup = backup_url(&serve, &serve.token, &file);
    let backup_finished = Instant::now();
    assert!(backup.status.success(), "{}", stderr(&backup));
    let records = records_written(&backup);
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    let fed: Vec<(&str, Vec<Batch>)> = feeders
        .into_iter()
        .map(|(sensor, feeder)| (sensor, feeder.join().unwrap()))
        .collect();
    let originals: Vec<HashSet<(i64, u64)>> = fed
        .iter()
        .map(|(sensor, _)| {
            serve
                .readings(sensor)
                .into_iter()
                .map(|(ts, value)| (ts, value.to_bits()))
                .collect()
        })
        .collect();
    assert!(serve
        .terminate(Duration::from_secs(20))
        .is_some_and(|s| s.success()));

    let restored = dir.path().join("restored");
    let output = restore(&file, &restored, false);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("{records} records")));

    // The restored store holds exactly the backup's records: backing it up again gives the same
    // bytes but for the creation time (header bytes 12..20) and so the digest (the last 32).
    let again = dir.path().join("again.backup");
    let output = backup_data(&restored, &again);
    assert!(output.status.success(), "{}", stderr(&output));
    let (first, second) = (
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap(),
    );
    assert_eq!(first.len(), second.len());
    let differing: Vec<usize> = (0..first.len())
        .filter(|&i| first[i] != second[i])
        .collect();
    assert!(
        differing
            .iter()
            .all(|&i| (12..20).contains(&i) || i >= first.len() - 32),
        "the re-backup differs at {:?}",
        &differing[..differing.len().min(10)]
    );

    // Serve on the restored directory: people log in (Serve::start logs the admin in).
    let serve = Serve::start(&config, &["--data", restored.to_str().unwrap()]);
    login(serve.http, MANAGER.0, MANAGER.1);
    let path = format!("/api/v1/municipalities/{MUNICIPALITY}/alerts");
    let (status, alerts) = serve.get(&path);
    assert_eq!(status, 200);
    let restored_alerts = alerts["alerts"].as_array().unwrap();
    for alert in alerts_before.as_array().unwrap() {
        assert!(
            restored_alerts
                .iter()
                .any(|a| a["id"] == alert["id"] && a["kind"] == alert["kind"]),
            "alert {} missing after restore: {alerts}",
            alert["id"]
        );
    }

    // Consistency: each sensor has exactly its first k acknowledged batches, whole (a batch of
    // one sensor is stored in one journal commit); every batch acked before the backup began is
    // there, none sent after it ended.
    for ((sensor, batches), original) in fed.iter().zip(&originals) {
        let stored: HashSet<(i64, u64)> = serve
            .readings(sensor)
            .into_iter()
            .map(|(ts, value)| (ts, value.to_bits()))
            .collect();
        assert!(
            stored.is_subset(original),
            "{sensor}: readings never stored"
        );
        let present = |batch: &Batch| {
            let held = batch
                .readings
                .iter()
                .filter(|(ts, value)| stored.contains(&(*ts, value.to_bits())))
                .count();
            assert!(
                held == 0 || held == batch.readings.len(),
                "{sensor}: a batch split by the snapshot ({held} of {})",
                batch.readings.len()
            );
            held > 0
        };
        let k = batches.iter().take_while(|b| present(b)).count();
        assert!(
            batches[k..].iter().all(|b| !present(b)),
            "{sensor}: the snapshot holds batches after a missing one"
        );
        assert_eq!(stored.len() as i64, k as i64 * BATCH, "{sensor}");
        let acked_before = batches.iter().filter(|b| b.acked < backup_started).count();
        let sent_before_end = batches.iter().filter(|b| b.sent < backup_finished).count();
        assert!(
            (acked_before..=sent_before_end).contains(&k),
            "{sensor}: {k} batches restored; {acked_before} acked before the backup, \
             {sent_before_end} sent before it ended"
        );
        assert!(
            acked_before > 0 && batches.len() > sent_before_end,
            "{sensor}: ingest went on"
        );
    }
}

#[test]
fn bad_files_occupied_targets_and_held_stores_are_refused() {
    let dir = TempDir::new("backup-refusals");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let data = config.with_file_name("data");
    create_user(&data, ADMIN.0, ADMIN.1, "super_admin", None);
    let file = dir.path().join("users.backup");
    let output = backup_data(&data, &file);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(records_written(&output) > 0);

    // A target with something in it: refused without --force.
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("notes.txt"), "keep me").unwrap();
    let before = fingerprint(&target);
    let output = restore(&file, &target, false);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("not empty"), "{}", stderr(&output));

    // A flipped byte, a truncation: refused before anything is written, even with --force.
    let bytes = std::fs::read(&file).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let damaged = dir.path().join("damaged.backup");
    std::fs::write(&damaged, &flipped).unwrap();
    let output = restore(&damaged, &target, true);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("checksum mismatch") || message.contains("corrupt at byte"),
        "{message}"
    );
    std::fs::write(&damaged, &bytes[..bytes.len() - 10]).unwrap();
    let output = restore(&damaged, &target, true);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("truncated"), "{}", stderr(&output));
    assert_eq!(fingerprint(&target), before, "the target was touched");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("restoring") || name.contains("replaced"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // --force with a good file replaces the directory with the store.
    let output = restore(&file, &target, true);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!target.join("notes.txt").exists());
    assert!(target.join("aquatwin.redb").is_file());

    // A store held by a running server: neither read directly nor replaced.
    let serve = Serve::start(&config, &["--data", target.to_str().unwrap()]);
    let held = fingerprint(&target).keys().cloned().collect::<Vec<_>>();
    let output = backup_data(&target, &dir.path().join("held.backup"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
    let output = restore(&file, &target, true);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("stop the server"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fingerprint(&target).keys().cloned().collect::<Vec<_>>(),
        held
    );
    // The admin restored from the backup logs in.
    login(serve.http, ADMIN.0, ADMIN.1);
}
