//! The `aquatwin` binary as a user drives it: bad input, the demo, summaries, generated grids.

use std::path::Path;
use std::process::{Command, Output};

const NETWORKS: &str = "../shared/networks";

fn aquatwin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(args)
        .output()
        .expect("aquatwin runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `simulate` on a file that must be refused: exit status 2, the expected words in the
/// message, and never a panic.
fn assert_refused(path: &str, expected: &[&str]) {
    let output = aquatwin(&["simulate", path]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    for word in expected {
        assert!(
            stderr.to_lowercase().contains(&word.to_lowercase()),
            "{path}: expected `{word}` in:\n{stderr}"
        );
    }
}

#[test]
fn duplicate_ids_are_refused_with_file_line_and_cause() {
    assert_refused(
        &format!("{NETWORKS}/Net1broken.inp"),
        &["Net1broken.inp:24", "duplicate"],
    );
}

#[test]
fn unknown_section_is_refused_with_file_line_and_cause() {
    assert_refused(
        &format!("{NETWORKS}/bad_syntax.inp"),
        &["bad_syntax.inp:330", "FOO"],
    );
}

#[test]
fn undefined_node_is_refused_with_file_line_and_cause() {
    assert_refused(
        &format!("{NETWORKS}/bad_values.inp"),
        &["bad_values.inp:56", "node1"],
    );
}

#[test]
fn missing_file_is_refused() {
    assert_refused("no/such/network.inp", &["no/such/network.inp"]);
}

#[test]
fn file_that_is_not_an_inp_is_refused() {
    assert_refused("../shared/reference/Net1.json", &["Net1.json", ".inp"]);
}

#[test]
fn every_command_has_help() {
    for command in [
        vec!["--help"],
        vec!["simulate", "--help"],
        vec!["demo", "--help"],
        vec!["bench", "--help"],
        vec!["generate", "--help"],
        vec!["generate", "grid", "--help"],
        vec!["serve", "--help"],
        vec!["fleet", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
        vec!["scenario", "--help"],
        vec!["criticality", "--help"],
        vec!["risk", "--help"],
        vec!["replay", "--help"],
    ] {
        let output = aquatwin(&command);
        assert!(output.status.success(), "{command:?}");
        assert!(text(&output.stdout).contains("Usage:"), "{command:?}");
    }
}

#[test]
fn demo_simulates_net3_and_prints_a_summary() {
    let output = aquatwin(&["demo", "--duration", "2"]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{}{}",
        stdout,
        text(&output.stderr)
    );
    for expected in [
        "Net3",
        "periods",
        "iterations",
        "min pressure",
        "max pressure",
    ] {
        assert!(
            stdout.contains(expected),
            "expected `{expected}` in:\n{stdout}"
        );
    }
}

#[test]
fn simulate_writes_results_in_the_reference_layout() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-net1.json");
    let output = aquatwin(&[
        "simulate",
        &format!("{NETWORKS}/Net1.inp"),
        "--out",
        out.to_str().unwrap(),
        "--summary",
    ]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{}{}",
        stdout,
        text(&output.stderr)
    );
    assert!(
        stdout.contains("periods") && stdout.contains("wrote"),
        "{stdout}"
    );
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(document["network"], "Net1");
    assert_eq!(document["units"]["flow"], "GPM");
    assert_eq!(document["node_types"][9], "RESERVOIR");
    assert_eq!(document["link_types"][12], "PUMP");
    let first = &document["steps"][0];
    for field in [
        "t", "report", "head", "pressure", "demand", "flow", "status", "state",
    ] {
        assert!(!first[field].is_null(), "step field {field}");
    }
}

#[test]
fn generated_grid_reads_back() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-grid.inp");
    let output = aquatwin(&[
        "generate",
        "grid",
        "--junctions",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let network = hydraulics::read_file(&out).unwrap();
    assert_eq!(network.junction_count(), 50);
    assert_eq!(network.nodes.len(), 51);
}

#[test]
fn impossible_grid_is_bad_input() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-empty-grid.inp");
    let output = aquatwin(&[
        "generate",
        "grid",
        "--junctions",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("at least one junction"));
}

#[test]
fn bench_times_ours_and_epanet_side_by_side() {
    let output = aquatwin(&[
        "bench",
        "--repeat",
        "1",
        "--names",
        "BWSN_Network_1",
        "--grid-junctions",
        "400",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        !stdout.contains("EPANET not timed"),
        "owa-epanet must be installed:\n{stdout}"
    );
    for row in ["BWSN_Network_1 (EPS)", "grid 400 junctions (steady)"] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(row))
            .unwrap_or_else(|| {
                panic!("no `{row}` row in:\n{stdout}");
            });
        assert!(
            line.contains(" ms") && line.contains('x') && line.contains("MiB"),
            "{line}"
        );
        assert!(!line.contains("n/a"), "{line}");
    }
}
