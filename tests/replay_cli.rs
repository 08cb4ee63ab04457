//! `aquatwin replay` as a user runs it: on the shared example scenarios (made with EPANET) and
//! on scenarios generated with our solver, scored by `shared/tools/score_leaks.py` (BattLeDIM
//! rules: inside the leak's window, within 300 m pipe distance). The detector never sees
//! `truth.json`: replay gets only the network, the sensors file and the CSVs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use scenarios::replay::generate::{generate, random_leaks, write, ScenarioSpec};

const EXAMPLES: &str = "../shared/leaks/example";
const SCORER: &str = "../shared/tools/score_leaks.py";

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "aquatwin-replay-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn replay(scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let arg = |name: &str| scenario.join(name).display().to_string();
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(["replay", "--network", &arg("network.inp")])
        .args(["--sensors", &arg("sensors.toml")])
        .args(["--telemetry", &scenario.display().to_string()])
        .args(["--out", &out.display().to_string()])
        .args(extra)
        .output()
        .expect("aquatwin runs")
}

/// The scorer's verdict, or `None` when python3 is not installed.
fn score(scenario: &Path, leaks: &Path) -> serde_json::Value {
    score_within(scenario, leaks, 300.0)
}

/// The scorer's verdict with location tolerance `radius_m`.
fn score_within(scenario: &Path, leaks: &Path, radius_m: f64) -> serde_json::Value {
    let output = Command::new("python3")
        .arg(SCORER)
        .arg(scenario)
        .arg(leaks)
        .args(["--radius", &radius_m.to_string()])
        .output()
        .expect("python3 runs the scorer (.ci/run has it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The JSON document at `path`, read as `T`.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn count(score: &serde_json::Value, key: &str) -> u64 {
    score[key].as_u64().unwrap()
}

/// TP, FP, missed, detected leaks' (type, delay h, distance m) of one scored scenario.
fn summary(score: &serde_json::Value) -> String {
    let leaks: Vec<String> = score["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}: {}",
                l["type"].as_str().unwrap_or("?"),
                l["id"].as_str().unwrap_or("?"),
                if l["detected"].as_bool().unwrap_or(false) {
                    format!("after {} h at {} m", l["delay_hours"], l["distance_m"])
                } else {
                    "missed".to_string()
                }
            )
        })
        .collect();
    format!(
        "{}: TP {} FP {} missed {} [{}]",
        score["scenario"].as_str().unwrap_or("?"),
        count(score, "true_positives"),
        count(score, "false_positives"),
        count(score, "missed"),
        leaks.join("; ")
    )
}

#[test]
fn replay_scores_the_shared_examples() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("truth.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    let scratch = Scratch::new("examples");
    let (mut found, mut false_alarms, mut days) = (0, 0, 0.0);
    for dir in &dirs {
        let out = scratch.0.join(format!(
            "{}.json",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let run = replay(dir, &out, &[]);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(stdout.contains("replayed 2016 periods"), "{stdout}");
        let report: serde_json::Value = read_json(&out);
        for leak in report["leaks"].as_array().unwrap() {
            assert!(leak["node"].is_string() && leak["detected_at"].is_string());
            // RFC 3339 in UTC: the text orders as the time does.
            let start = leak["estimated_start"].as_str().unwrap();
            assert!(start <= leak["detected_at"].as_str().unwrap(), "{leak}");
            assert!(matches!(leak["kind"].as_str(), Some("leak" | "burst")));
            let confidence = leak["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&confidence));
            assert!(leak["estimated_flow"].as_f64().unwrap() > 0.0);
        }
        // The same input gives the same report.
        let again = scratch.0.join("again.json");
        assert!(replay(dir, &again, &[]).status.success());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&again).unwrap()
        );
        let score = score(dir, &out);
        assert!(score.get("error").is_none(), "{score}");
        println!("{}", summary(&score));
        found += count(&score, "true_positives");
        false_alarms += count(&score, "false_positives");
        days += 7.0;
    }
    // What the detector reaches on these two weeks (1 day of training each): at most this
    // many false alarms. Stop 20's signatures (measured against three days pooled, not the
    // day before) lost the one leak found until then, net3-dev-01's burst at node 35. That
    // find was luck: the true node ranked 6th in the match, and the reported node happened to
    // lie 9 m from it. The three-day reference shows the undetected incipient leak at node 243
    // in the same signature instead, and it is located 1.2 km from it. net3-dev-01's two
    // false alarms are that one (at 255) and a burst at 159 after both leaks ended, which stop
    // 19 also raised and was still locating when the data ran out; net3-dev-02's one was
    // there before. On 72 generated leaks the same change located 8 more and raised 14 fewer
    // false alarms, on 32 fresh ones 4 more and 7 fewer (BENCHMARKS, stop 20). Stop 21 (no
    // flow-balance prior in the localization, a new leak told from a known one by fit) drops
    // the burst at 159: 2 false alarms.
    println!("{found} of the examples' leaks found within 300 m");
    assert!(
        false_alarms <= 2,
        "{false_alarms} false alarms in {days} days"
    );
}

/// What replay reached on a set of generated scenarios.
#[derive(Debug, Default)]
struct Tally {
    /// Leaks reported inside their window within 300 m.
    found: u64,
    /// Leaks reported inside their window anywhere.
    detected: u64,
    leaks: u64,
    false_alarms: u64,
    /// Days watched after training, all scenarios together.
    watched_days: u64,
    /// Delays (h) of the leaks found within 300 m, by leak type.
    abrupt_delays: Vec<f64>,
    incipient_delays: Vec<f64>,
    /// Leaks found within 300 m whose reported kind (burst, leak) matches their type (abrupt,
    /// incipient).
    kind_right: u64,
}

impl Tally {
    /// Asserts the leak count and what the detector reached: at least `found` located and
    /// `detected` detected in their window, at most `false_alarms`.
    fn assert_reaches(&self, leaks: u64, found: u64, detected: u64, false_alarms: u64) {
        assert_eq!(self.leaks, leaks);
        assert!(
            self.found >= found && self.detected >= detected,
            "{} found, {} detected",
            self.found,
            self.detected
        );
        assert!(
            self.false_alarms <= false_alarms,
            "{} false alarms",
            self.false_alarms
        );
    }

    fn false_alarms_per_network_month(&self) -> f64 {
        self.false_alarms as f64 * 30.0 / self.watched_days.max(1) as f64
    }

    fn totals(&self) -> String {
        let median = |delays: &[f64]| {
            let mut sorted = delays.to_vec();
            sorted.sort_by(f64::total_cmp);
            match sorted.len() {
                0 => "-".to_string(),
                n if n % 2 == 1 => format!("{:.1} h", sorted[n / 2]),
                n => format!("{:.1} h", (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
            }
        };
        format!(
            "total: {}/{} leaks found within 300 m ({} detected anywhere), {} false alarms in {} \
             watched days ({:.2} per network-month); median delay of the found ones: abrupt {} \
             (of {}), incipient {} (of {}); kind right for {} of the found",
            self.found,
            self.leaks,
            self.detected,
            self.false_alarms,
            self.watched_days,
            self.false_alarms_per_network_month(),
            median(&self.abrupt_delays),
            self.abrupt_delays.len(),
            median(&self.incipient_delays),
            self.incipient_delays.len(),
            self.kind_right,
        )
    }
}

/// How many of the leaks `score` found within 300 m `report` gives the right kind: `burst`
/// for an abrupt leak, `leak` for an incipient one.
fn kinds_right(score: &serde_json::Value, report: &serde_json::Value) -> u64 {
    let found = score["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|detection| detection["result"] == "TP");
    found
        .filter(|detection| {
            let leak = score["leaks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["id"] == detection["leak"])
                .unwrap();
            let reported = &report["leaks"][detection["index"].as_u64().unwrap() as usize];
            let expected = if leak["type"] == "abrupt" {
                "burst"
            } else {
                "leak"
            };
            reported["kind"] == expected
        })
        .count() as u64
}

/// Scores replay on scenarios made with our solver on Net3, one per seed: two leaks each
/// (incipient then abrupt, 4-10 % of the average consumption) after 5 leak-free days,
/// roughness and demands perturbed by 10 %, hourly demand noise 5 %, noisy sensors; three
/// days of training. `per_scenario`: print each scenario's leaks (not for fresh held-out
/// seeds, whose details must not steer the next change).
fn score_generated(
    seeds: std::ops::RangeInclusive<u64>,
    pressure_sensors: usize,
    per_scenario: bool,
) -> Tally {
    let network = hydraulics::read_file(Path::new("hydraulics/networks/Net3.inp")).unwrap();
    let scratch = Scratch::new("generated");
    let mut tally = Tally::default();
    for seed in seeds {
        let mut spec = ScenarioSpec {
            name: format!("net3-gen-{seed}"),
            days: 14,
            seed,
            leaks: Vec::new(),
            roughness_spread: 0.1,
            demand_spread: 0.1,
            demand_noise: 0.05,
            pressure_sensors,
            pressure_sd: 0.07,
            flow_relative_sd: 0.01,
            level_sd: 0.016,
        };
        spec.leaks = random_leaks(&network, &spec, 2, 5.0, (0.04, 0.1));
        let dir = scratch.0.join(&spec.name);
        write(&generate(&network, &spec).unwrap(), &dir).unwrap();
        let out = dir.join("leaks.json");
        let run = replay(&dir, &out, &["--train-until", "3d"]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let score = score(&dir, &out);
        assert!(score.get("error").is_none(), "{score}");
        // Detection alone: any place in the network counts.
        let anywhere = score_within(&dir, &out, 1e9);
        if per_scenario {
            println!("{}", summary(&score));
            println!("  ignoring location: {}", summary(&anywhere));
        }
        for leak in score["leaks"].as_array().unwrap() {
            let Some(delay) = leak["delay_hours"].as_f64() else {
                continue;
            };
            match leak["type"].as_str() {
                Some("abrupt") => tally.abrupt_delays.push(delay),
                _ => tally.incipient_delays.push(delay),
            }
        }
        tally.detected += count(&anywhere, "true_positives");
        tally.kind_right += kinds_right(&score, &read_json(&out));
        tally.found += count(&score, "true_positives");
        tally.leaks += count(&score, "n_true_leaks");
        tally.false_alarms += count(&score, "false_positives");
        tally.watched_days += 14 - 3;
    }
    println!("{}", tally.totals());
    tally
}

/// The scenarios the detector's parameters were chosen on.
#[test]
fn replay_scores_generated_net3_scenarios() {
    let tally = score_generated(1..=4, 10, true);
    // What the detector reaches on these scenarios (deterministic: fixed seeds). Stop 22
    // (residual offsets per pump regime): 4 located, 7 detected in the window, 3 false
    // alarms; stop 21: 4, 8, 4. Stop 22 also raises a leak on the flow balance's level over
    // the reference, not only on its rise since the chart's run began: 5, 8, 4. Stop 23
    // (signatures matched against the sensitivities averaged over their hours): 5, 8, 3.
    // Stop 24 (the likeliest junctions' responses solved, not linearized): 5, 8, 5; with the
    // leaks already reported fitted beside each candidate place: 4, 8, 5.
    tally.assert_reaches(8, 4, 8, 5);
}

/// Scenarios the parameters were not chosen on in stop 11, then looked at in stops 12-13 and
/// 20 (which compared reference days on them as well as on the tuning seeds).
#[test]
#[ignore = "slow in the dev profile; run with --ignored"]
fn replay_scores_held_out_net3_scenarios() {
    let tally = score_generated(11..=18, 10, true);
    // Stop 22 (residual offsets per pump regime; a leak raised on the flow balance's level
    // over the reference as well as on its rise): 5 located, 11 detected in the window, 7
    // false alarms. With the regime offsets alone: 5, 9, 5 (two alarms of seed 15, its two
    // leaks, dropped as transients: the flow balance fell after their onsets). Stop 21 (no flow-balance prior in the
    // localization; a new leak told from a known one by fit): 7, 12, 5. Stop 20 (signatures
    // against three reference days): 9, 14, 6. Stops 13-19: 8, 14, 11. Stop 23 (signatures
    // matched against the sensitivities averaged over their hours): 6, 11, 6. Stop 24 (the
    // likeliest junctions' responses solved, not linearized): 6, 11, 7; with the leaks
    // already reported fitted beside each candidate place: the same; reported at 12 h only
    // with a confidence of 0.7 (else at 18 h): 5, 11, 7.
    tally.assert_reaches(16, 5, 11, 7);
}

/// The tuning scenarios again with 30 pressure sensors instead of 10: the density at which
/// an ideal localizer would place 80-86 % of these leaks within 300 m (BENCHMARKS, stop 16).
/// With today's detector the gap to that is the detector's own.
#[test]
fn replay_scores_net3_scenarios_with_30_sensors() {
    let tally = score_generated(1..=10, 30, true);
    // Stop 22 (residual offsets per pump regime; a leak raised on the flow balance's level
    // over the reference as well as on its rise): 12 located, 20 detected in the window, 12
    // false alarms; the regime offsets alone: 14, 19, 7. Stop 21: 12 (10 sensors: 9), 17, 7. Stop 20: 13, 19, 13. With one
    // reference day (stop 19's signatures): 10, 19, 17. Stop 23 (signatures matched against
    // the sensitivities averaged over their hours): 14, 20, 13; reported at a location's
    // confidence of 0.9 rather than 0.8: 14, 20, 12. Stop 24 (the likeliest junctions'
    // responses solved, not linearized): 15, 20, 11; with the leaks already reported fitted
    // beside each candidate place: the same; reported at 12 h only with a confidence of 0.7
    // (else at 18 h): 15, 20, 10. Stop 25 (the charts' directions whitened by the training
    // window's covariance): 14, 19, 8.
    tally.assert_reaches(20, 14, 19, 8);
}

/// Held-out and fresh scenarios with 30 pressure sensors (totals only for the fresh ones).
#[test]
#[ignore = "held-out data: run once per round, with --ignored"]
fn replay_scores_held_out_net3_scenarios_with_30_sensors() {
    // Stop 20, before and after its change (three reference days): held-out 11-18 6 located,
    // 13 detected, 11 false alarms before, 8, 14, 9 after; fresh 51-58 5, 11, 10 before,
    // 7, 11, 7 after. Stop 21: 6, 14, 10 and 11, 13, 4 (the first of its changes alone: 9,
    // 14, 7 and 10, 13, 5; the second, tempered likelihoods, lost here and won on the
    // development set). Stop 22 (residual offsets per pump regime): 8, 13, 10 and 10, 13, 5;
    // with a leak raised on the balance's level over the reference too: 12, 16, 11 and 10,
    // 13, 4. Stop 23 (signatures matched against the sensitivities averaged over their
    // hours): 10, 16, 13 and 9, 14, 6; it located 38 more of 640 development leaks with 18
    // fewer false alarms, and 9 fewer of 320 fresh ones with 11 more (BENCHMARKS, stop 23). Then
    // reported at a location's confidence of 0.9 rather than 0.8: 10, 16, 12 and 10, 14, 5.
    // Stop 24 (the likeliest junctions' responses solved, not linearized): 13, 16, 12 and
    // 13, 15, 4; with the leaks already reported fitted beside each candidate place: 12, 16,
    // 9 and 13, 14, 3; reported at 12 h only with a confidence of 0.7 (else at 18 h): 11, 16,
    // 9 and 13, 14, 3.
    for (seeds, per_scenario, found, detected, false_alarms) in
        [(11..=18, true, 11, 16, 9), (51..=58, false, 13, 14, 3)]
    {
        score_generated(seeds, 30, per_scenario).assert_reaches(16, found, detected, false_alarms);
    }
}

/// The development set: 60 scenarios (120 leaks) at each sensor density. Eight or ten
/// scenarios scatter by several leaks from one seed range to the next (stop 20: 1 and 5 of 16
/// located on two fresh ranges with one detector), too much to choose a change on; stop 21
/// chose its changes on these.
#[test]
#[ignore = "about a minute in release: run with --ignored when changing the detector"]
fn replay_scores_the_development_set() {
    // Stop 22: 30 sensors 74 located, 107 detected in the window, 59 false alarms (2.7 per
    // network-month); 10 sensors 48, 96, 55 (2.5). With its first change alone (residual
    // offsets per pump regime): 67, 101, 52 and 41, 88, 52; the second raises a leak on the
    // flow balance's level over the reference as well as on its rise.
    // Stop 21: 62, 100, 52 and 35, 86, 60. Stop 20's detector: 50, 97, 63 and 25, 96, 87.
    // Stop 23 (signatures matched against the sensitivities averaged over their hours): 82,
    // 109, 52 (2.4) and 54, 99, 53 (2.4); then reported at a location's confidence of 0.9
    // rather than 0.8: 81, 108, 47 (2.1) and 55, 99, 50 (2.3).
    // The reported kind (burst or leak) was right for 49 and 30 of the found when it was the
    // alarm's; told from the shape of the flow balance's rise by the report: 50 and 41.
    // Stop 24 (the likeliest junctions' responses solved, not linearized): 87, 110, 50 (2.3)
    // and 57, 100, 50 (2.3), kind right for 52 and 41. With the leaks already reported
    // fitted beside each candidate place: 85, 109, 43 (2.0) and 56, 99, 45 (2.0), kind right
    // for 50 and 40. Reported at 12 h only with a confidence of 0.7 (else at 18 h): 90, 109,
    // 33 (1.5) and 55, 95, 42 (1.9), kind right for 56 and 41.
    // Stop 25 (the charts' directions whitened by the training window's covariance): 90, 108,
    // 36 (1.6) and 55, 98, 45 (2.0), kind right for 56 and 35; the abrupt leaks' median delay
    // 6.4 h and 12.5 h against 10.3 h and 22.6 h. With the signature's noise correlated as on
    // the training window: 90, 108, 35 (1.6) and 55, 96, 45 (2.0), kind right for 58 and 34;
    // delays 6.2 h and 14.0 h (on the five sets: 24 more located of 1,120 than stop 24, 31
    // fewer false alarms).
    for (seeds, sensors, found, detected, false_alarms, kind_right) in [
        (1000..=1059, 30, 90, 108, 35, 58),
        (1100..=1159, 10, 55, 96, 45, 34),
    ] {
        let tally = score_generated(seeds, sensors, false);
        tally.assert_reaches(120, found, detected, false_alarms);
        assert!(tally.kind_right >= kind_right, "{}", tally.kind_right);
    }
}

/// Fresh scenarios, scored once before a round of changes and once after it: totals and
/// delays only, so that no change is chosen on them.
#[test]
#[ignore = "fresh held-out data: run once per round, with --ignored"]
fn replay_scores_fresh_net3_scenarios() {
    let tally = score_generated(59..=66, 10, false);
    // Stop 20, seeds 59-66, before and after its change (signatures against three reference
    // days): 3 located, 13 detected in the window, 15 false alarms before; 5, 12, 11 after.
    // Stop 21: 2, 12, 11 (its own fresh seeds, 91-98 and 99-106: BENCHMARKS, stop 21).
    // Stop 22: 2, 11, 11; with its first change alone (residual offsets per pump regime) 3,
    // 11, 8 (its fresh seeds 107-122: BENCHMARKS, stop 22).
    // Stop 23 (signatures matched against the sensitivities averaged over their hours): 2,
    // 11, 10. Stop 24 (the likeliest junctions' responses solved, not linearized): 6, 12, 10;
    // with the leaks already reported fitted beside each candidate place: 4, 10, 7; reported
    // at 12 h only with a confidence of 0.7 (else at 18 h): 3, 10, 8.
    // Stop 17 (seeds 35-42): 4, 13, 11. Stop 16 (seeds 27-34): 4, 12, 9.
    tally.assert_reaches(16, 3, 10, 8);
}

#[test]
fn bad_telemetry_is_refused_with_file_line_and_cause() {
    let example = Path::new(EXAMPLES).join("net3-dev-01");
    let scratch = Scratch::new("bad");
    let bad = scratch.0.join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,sensor_id,value\n2019-01-01 00:00:00,105,51.2\n2019-01-01 00:05:00,105,x\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(["replay", "--network"])
        .arg(example.join("network.inp"))
        .arg("--sensors")
        .arg(example.join("sensors.toml"))
        .arg("--telemetry")
        .arg(&bad)
        .arg("--out")
        .arg(scratch.0.join("leaks.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.csv:3: value `x` is not a number"),
        "{stderr}"
    );
    let run = replay(&example, &scratch.0.join("l.json"), &["--speed", "fast"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--speed"));
}

/// `--states` writes the replay's estimated states in the results layout the viewer plays:
/// one per `--states-every`, every array aligned with the network, and the estimated pressures
/// at the pressure sensors close to what those sensors recorded.
#[test]
fn replay_writes_its_estimated_states_for_playback() {
    let example = Path::new(EXAMPLES).join("net3-dev-01");
    let scratch = Scratch::new("states");
    let states_path = scratch.0.join("states.json");
    let states_arg = states_path.display().to_string();
    let run = replay(
        &example,
        &scratch.0.join("leaks.json"),
        &["--states", &states_arg, "--states-every", "1h"],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("(168 estimated states)"), "{stdout}");
    let states: hydraulics::results::ResultsDocument = read_json(&states_path);
    let network = hydraulics::read_file(&example.join("network.inp")).unwrap();
    assert_eq!(states.node_ids.len(), network.nodes.len());
    assert_eq!(states.link_ids.len(), network.links.len());
    assert_eq!(states.steps.len(), 168);
    for (k, step) in states.steps.iter().enumerate() {
        assert_eq!(step.t, 3600 * k as u64);
        assert_eq!(step.pressure.len(), network.nodes.len());
        assert_eq!(step.flow.len(), network.links.len());
    }
    assert_eq!(states.options.duration_s, 167 * 3600);

    // The recorded pressures, by seconds from the first row, against the estimates.
    let recorded = std::fs::read_to_string(example.join("pressures.csv")).unwrap();
    let mut lines = recorded.lines();
    let sensors: Vec<&str> = lines.next().unwrap().split(',').skip(1).collect();
    let mut errors = Vec::new();
    for (row, line) in lines.enumerate() {
        let seconds = 300 * row as u64;
        let Some(step) = states.steps.iter().find(|s| s.t == seconds) else {
            continue;
        };
        for (sensor, value) in sensors.iter().zip(line.split(',').skip(1)) {
            let node = states.node_ids.iter().position(|id| id == sensor).unwrap();
            errors.push((step.pressure[node] - value.parse::<f64>().unwrap()).abs());
        }
    }
    assert_eq!(errors.len(), 168 * sensors.len());
    errors.sort_by(f64::total_cmp);
    let (median, largest) = (errors[errors.len() / 2], errors[errors.len() - 1]);
    assert!(
        median < 0.5 && largest < 5.0,
        "median {median} psi, largest {largest} psi"
    );

    let run = replay(
        &example,
        &scratch.0.join("leaks.json"),
        &["--states", &states_arg, "--states-every", "soon"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--states-every: \"soon\""));
}

/// 14 days of 5-minute data on an 800-junction grid with 40 sensors; run with
/// `cargo test --release --test replay_cli -- --ignored` for the timing (target < 60 s).
#[test]
#[ignore = "timing; run in release"]
fn replay_of_two_weeks_on_800_junctions() {
    let spec = hydraulics::generate::GridSpec::new(800);
    let network = hydraulics::generate::grid(&spec).unwrap();
    let scratch = Scratch::new("grid800");
    let mut scenario = ScenarioSpec {
        name: "grid-800".into(),
        days: 14,
        seed: 7,
        leaks: Vec::new(),
        roughness_spread: 0.1,
        demand_spread: 0.1,
        demand_noise: 0.05,
        pressure_sensors: 39,
        pressure_sd: 0.05,
        flow_relative_sd: 0.01,
        level_sd: 0.005,
    };
    scenario.leaks = random_leaks(&network, &scenario, 2, 5.0, (0.03, 0.06));
    let dir = scratch.0.join("grid-800");
    write(&generate(&network, &scenario).unwrap(), &dir).unwrap();
    let out = dir.join("leaks.json");
    let started = Instant::now();
    let run = replay(&dir, &out, &["--train-until", "3d"]);
    let elapsed = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("replayed 4032 periods"), "{stdout}");
    println!("{stdout}replay wall time {elapsed:.1} s");
    println!("{}", summary(&score(&dir, &out)));
    assert!(elapsed < 60.0, "{elapsed} s");
}
