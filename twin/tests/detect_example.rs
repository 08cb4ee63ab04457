//! The detectors on the example scenarios in `../shared/leaks/example/` (made with EPANET):
//! only the telemetry CSVs are read (never `truth.json`). Residuals are taken against a
//! time-of-day profile learned on the first 3 days; the test checks that the monitor runs on
//! the rest and produces well-formed, deterministic events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twin::detect::{Event, Monitor, MonitorConfig, ProfileBaseline, Snapshot, DAY_MS};

const STEP: i64 = 300_000;
const TRAIN_DAYS: i64 = 3;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/leaks/example")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) to ms since the epoch.
fn parse_time(s: &str) -> Option<i64> {
    twin::telemetry_files::parse_timestamp(s).ok()
}

/// A BattLeDIM-style wide CSV: column ids and rows of `(time, values)`.
fn read_wide(path: &Path) -> (Vec<String>, Vec<(i64, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .map(|h| h.split(',').skip(1).map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cells = l.split(',');
            let t = cells
                .next()
                .and_then(parse_time)
                .unwrap_or_else(|| panic!("bad time in {l}"));
            let values = cells
                .map(|c| c.trim().parse().unwrap_or(f64::NAN))
                .collect();
            (t, values)
        })
        .collect();
    (header, rows)
}

/// Runs the monitor on one scenario; returns the sensor ids and the events.
fn detect(dir: &Path) -> (Vec<String>, Vec<Event>) {
    let (ids, pressures) = read_wide(&dir.join("pressures.csv"));
    let (_, flows) = read_wide(&dir.join("flows.csv"));
    // Flows on the links leaving reservoirs and tanks, positive into the network: their sum is the
    // network's total inflow (demand plus leaks).
    let inflow: BTreeMap<i64, f64> = flows.iter().map(|(t, v)| (*t, v.iter().sum())).collect();
    assert_eq!(pressures.len(), inflow.len(), "aligned 5-minute rows");
    let start = pressures.first().map(|r| r.0).expect("rows");
    let train_end = start + TRAIN_DAYS * DAY_MS;
    let training_rows: Vec<&(i64, Vec<f64>)> =
        pressures.iter().filter(|r| r.0 < train_end).collect();
    let profile =
        |series: Vec<(i64, f64)>| ProfileBaseline::fit(DAY_MS, STEP, &series).expect("baseline");
    let pressure_profiles: Vec<ProfileBaseline> = (0..ids.len())
        .map(|i| profile(training_rows.iter().map(|r| (r.0, r.1[i])).collect()))
        .collect();
    let flow_profile = profile(
        inflow
            .iter()
            .filter(|(t, _)| **t < train_end)
            .map(|(t, q)| (*t, *q))
            .collect(),
    );
    let snapshots: Vec<Snapshot> = pressures
        .iter()
        .map(|(t, p)| {
            let q = inflow.get(t).copied().unwrap_or(f64::NAN);
            Snapshot {
                time: *t,
                pressures: p
                    .iter()
                    .zip(&pressure_profiles)
                    .map(|(x, b)| b.residual(*t, *x))
                    .collect(),
                inlet_flow: q,
                inlet_residual: flow_profile.residual(*t, q),
            }
        })
        .collect();
    let (training, rest): (Vec<Snapshot>, Vec<Snapshot>) =
        snapshots.into_iter().partition(|s| s.time < train_end);
    let mut monitor = Monitor::fit(MonitorConfig::default(), ids.clone(), &training).expect("fit");
    println!("{}: disabled {:?}", dir.display(), monitor.disabled());
    let mut events = Vec::new();
    for s in &rest {
        events.extend(monitor.update(s).expect("update"));
    }
    (ids, events)
}

#[test]
fn detect_runs_on_the_example_scenarios() {
    let root = example_dir();
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!("skipped: no example scenarios at {}", root.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("pressures.csv").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let (ids, events) = detect(&dir);
        let (_, rows) = read_wide(&dir.join("pressures.csv"));
        let (first, last) = (rows[0].0 + TRAIN_DAYS * DAY_MS, rows[rows.len() - 1].0);
        for e in &events {
            println!("{}: {} {:?} at +{:.2} d, sensors {:?}, magnitude {:.3}, flow {:?}, confidence {:.2}",
                dir.display(), e.kind.name(), e.source, (e.time - rows[0].0) as f64 / DAY_MS as f64,
                e.sensors, e.magnitude, e.estimated_flow, e.confidence);
            assert!((first..=last).contains(&e.time), "{e:?}");
            assert!(e.onset.is_none_or(|o| o <= e.time), "{e:?}");
            assert!((0.0..=1.0).contains(&e.confidence), "{e:?}");
            assert!(e.magnitude.is_finite(), "{e:?}");
            assert!(e.estimated_flow.is_none_or(f64::is_finite), "{e:?}");
            assert!(e.sensors.iter().all(|s| ids.contains(s)), "{e:?}");
        }
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        assert_eq!(detect(&dir).1, events, "deterministic");
    }
}
