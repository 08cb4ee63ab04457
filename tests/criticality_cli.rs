//! `aquatwin criticality` on Net3 as a user runs it: a short pipe-closure sweep ranks pipes,
//! its CSV and JSON parse, one worker and two give the same ranking, periods started cold
//! (`--cold-start`, as EPANET starts them) rank the same top pipes, and the top pipe's figures
//! from the cold-started sweep are those of a scenario file closing that pipe run through
//! `aquatwin scenario`.

use std::path::{Path, PathBuf};
use std::process::Command;

const NET3: &str = "hydraulics/networks/Net3.inp";

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("criticality_cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sweep(kind: &str, jobs: &str, out: &Path) -> String {
    sweep_with(kind, jobs, out, &[])
}

fn sweep_with(kind: &str, jobs: &str, out: &Path, extra: &[&str]) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args([
            "criticality",
            NET3,
            "--kind",
            kind,
            "--duration",
            "6",
            "--jobs",
            jobs,
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .expect("the aquatwin binary runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn pipe_closures_on_net3_rank_the_same_with_one_and_two_jobs() {
    let dir = scratch();
    let one = sweep("pipe-closure", "1", &dir.join("one.csv"));
    let two = sweep("pipe-closure", "2", &dir.join("two.csv"));
    assert_eq!(one, two, "1 and 2 jobs disagree");
    let rows: Vec<Vec<&str>> = one
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 117, "Net3 has 117 pipes");
    let unmet: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    let cold = sweep_with(
        "pipe-closure",
        "2",
        &dir.join("cold.csv"),
        &["--cold-start"],
    );
    let cold_rows: Vec<Vec<&str>> = cold
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let top_ten = |rows: &[Vec<&str>]| {
        let mut ids: Vec<String> = rows[..10].iter().map(|r| r[1].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        top_ten(&rows),
        top_ten(&cold_rows),
        "warm and cold starts rank apart"
    );
    assert!(unmet.windows(2).all(|w| w[0] >= w[1]), "not ranked");
    assert!(
        unmet[0] > 0.0,
        "closing Net3's worst pipe must leave demand unmet"
    );
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
    }

    // The top pipe closed for 6 h through a scenario file gives the same extra unmet demand as
    // the sweep that starts its periods the same way.
    let top = cold_rows[0][1];
    let top_unmet: f64 = cold_rows[0][2].parse().unwrap();
    let scenario = dir.join("top.toml");
    let network = std::fs::canonicalize(NET3).unwrap();
    std::fs::write(
        &scenario,
        format!(
            "network = {network:?}\nduration_hours = 6\n[[events]]\nkind = \"pipe_closure\"\n\
             pipe = \"{top}\"\nat_hours = 0\n"
        ),
    )
    .unwrap();
    let impact = dir.join("top.json");
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args([
            "scenario",
            scenario.to_str().unwrap(),
            "--out",
            impact.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&impact).unwrap()).unwrap();
    let from_scenario = report["unmet_increase_m3"].as_f64().unwrap();
    assert!(
        (from_scenario - top_unmet).abs() <= 1e-9 * top_unmet.max(1.0),
        "{from_scenario} vs {top_unmet}"
    );
}

#[test]
fn segment_and_burst_sweeps_write_parseable_json() {
    let dir = scratch();
    for kind in ["segment", "burst"] {
        let text = sweep(kind, "2", &dir.join(format!("{kind}.json")));
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["kind"], kind);
        let pipes = report["pipes"].as_array().unwrap();
        assert_eq!(pipes.len(), 117);
        assert_eq!(pipes[0]["rank"], 1);
        if kind == "segment" {
            // With a valve at each pipe end, isolating the pipe to a dead-end junction cuts
            // that junction off.
            assert!(pipes
                .iter()
                .any(|p| p["cut_off_nodes"].as_u64().unwrap() > 0));
        }
    }
}

/// `--bench` as a user runs it: our sweeps and EPANET 2.3's toolkit loop (owa-epanet) over the
/// same pipes, round by round, with the ratios printed.
#[test]
fn the_benchmark_times_ours_against_epanets_loop() {
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args([
            "criticality",
            NET3,
            "--duration",
            "2",
            "--limit",
            "4",
            "--bench",
            "--bench-rounds",
            "2",
        ])
        .output()
        .expect("the aquatwin binary runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ratio_after = |label: &str| -> f64 {
        let rest = stdout
            .split(label)
            .nth(1)
            .unwrap_or_else(|| panic!("no `{label}` in:\n{stdout}"));
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        number.parse().unwrap_or_else(|_| panic!("{stdout}"))
    };
    for label in ["ours(1 job)/EPANET = ", "fastest rounds: "] {
        let ratio = ratio_after(label);
        assert!(
            ratio > 0.0 && ratio.is_finite(),
            "{label}{ratio} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("4 pipes x 2 rounds"), "{stdout}");
}
