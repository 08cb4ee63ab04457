//! Parity with EPANET 2.3, end to end: every network in `../shared/networks` that has a
//! reference is simulated by the `aquatwin` binary (extended period and `--steady`), and the
//! result is compared with EPANET's by our comparison and by `../shared/tools/compare_results.py`.
//! The two reports (problems and verdict) must agree word for word, and every case must pass.

use hydraulics::results::{compare, ResultsDocument, Tolerances};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const NETWORKS: &str = "../shared/networks";
const REFERENCES: &str = "../shared/reference";
const COMPARE_SCRIPT: &str = "../shared/tools/compare_results.py";
/// The machines have two cores.
const WORKERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Eps,
    Steady,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Eps => "eps",
            Mode::Steady => "steady",
        }
    }
    fn reference(self, network: &str) -> PathBuf {
        match self {
            Mode::Eps => Path::new(REFERENCES).join(format!("{network}.json")),
            Mode::Steady => Path::new(REFERENCES).join(format!("{network}.steady.json")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    network: String,
    mode: Mode,
}

impl Case {
    fn key(&self) -> String {
        format!("{} {}", self.network, self.mode.name())
    }
}

#[derive(Debug)]
struct Outcome {
    passed: bool,
    /// Our verdict line, or why there is no result to compare.
    verdict: String,
    /// `Some(verdict)` when compare_results.py's report differs from ours.
    disagreement: Option<String>,
    seconds: f64,
}

fn cases() -> Vec<Case> {
    let mut names: Vec<String> = std::fs::read_dir(NETWORKS)
        .unwrap_or_else(|e| panic!("cannot list {NETWORKS}: {e}"))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "inp").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    let mut cases = Vec::new();
    for network in names {
        for mode in [Mode::Eps, Mode::Steady] {
            if mode.reference(&network).is_file() {
                cases.push(Case {
                    network: network.clone(),
                    mode,
                });
            }
        }
    }
    cases
}

fn run_case(case: &Case, scratch: &Path) -> Outcome {
    let started = Instant::now();
    let result_path = scratch.join(format!("{}.{}.json", case.network, case.mode.name()));
    let reference_path = case.mode.reference(&case.network);
    let mut command = Command::new(env!("CARGO_BIN_EXE_aquatwin"));
    command
        .arg("simulate")
        .arg(Path::new(NETWORKS).join(format!("{}.inp", case.network)))
        .arg("--out")
        .arg(&result_path);
    if case.mode == Mode::Steady {
        command.arg("--steady");
    }
    let output = command.output().expect("the aquatwin binary runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_line = stderr.lines().next().unwrap_or("no message").to_string();
        return Outcome {
            passed: false,
            verdict: format!("simulate failed ({}): {first_line}", output.status),
            disagreement: None,
            seconds: started.elapsed().as_secs_f64(),
        };
    }

    let load = |path: &Path| -> ResultsDocument {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    };
    let tolerances = Tolerances {
        all_steps: true,
        ..Tolerances::default()
    };
    let ours = compare(&load(&result_path), &load(&reference_path), &tolerances);

    let script = Command::new("python3")
        .arg(COMPARE_SCRIPT)
        .arg(&result_path)
        .arg(&reference_path)
        .arg("--all-steps")
        .output()
        .expect("python3 runs compare_results.py");
    let script_report = String::from_utf8_lossy(&script.stdout);
    let script_verdict = script_report.lines().last().unwrap_or("").to_string();
    let disagreement = (script_report != ours.report() || script.status.success() != ours.passed())
        .then(|| format!("compare_results.py ({}): {script_verdict}", script.status));
    let verdict = ours.verdict();
    // Large results are not worth keeping once compared.
    let _ = std::fs::remove_file(&result_path);
    Outcome {
        passed: ours.passed(),
        verdict,
        disagreement,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[test]
fn every_network_matches_epanet() {
    let cases = cases();
    assert!(
        cases.len() > 40,
        "expected the shared networks at {NETWORKS}, found {}",
        cases.len()
    );
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parity");
    std::fs::create_dir_all(&scratch).unwrap();

    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(Case, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(index) else { break };
                let outcome = run_case(case, &scratch);
                outcomes.lock().unwrap().push((case.clone(), outcome));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));

    let mut failures = Vec::new();
    // The table goes to stderr directly: the test harness captures `println!`, and CI logs should
    // show parity at a glance even when the test passes.
    let mut table = format!(
        "{:<48} {:<5} {:>7}  verdict\n",
        "network mode", "", "seconds"
    );
    for (case, outcome) in &outcomes {
        let key = case.key();
        let mark = if outcome.passed { "ok" } else { "FAIL" };
        let _ = writeln!(
            table,
            "{key:<48} {mark:<5} {:>7.2}  {}",
            outcome.seconds, outcome.verdict
        );
        if let Some(script) = &outcome.disagreement {
            let _ = writeln!(table, "{:<48} {:<5} {:>7}  {script}", "", "DIFF", "");
            failures.push(format!(
                "{key}: verdicts differ: ours `{}`, {script}",
                outcome.verdict
            ));
        }
        if !outcome.passed {
            failures.push(format!("{key}: {}", outcome.verdict));
        }
    }
    let passed = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.passed)
        .count();
    let _ = writeln!(table, "{passed} of {} cases pass", outcomes.len());
    let _ = std::io::stderr().lock().write_all(table.as_bytes());
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
