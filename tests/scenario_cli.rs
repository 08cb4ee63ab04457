//! `aquatwin scenario` as a user runs it: a day of trouble on Net3 (a main break, a fire flow,
//! a pump outage, a tank out of service, a leak, a closure, a reservoir head change) run by
//! us and, from the network our writer writes, by EPANET 2.3 itself (owa-epanet, in this
//! test), compared step by step with `compare_results.py`; the reported water lost checked
//! against EPANET's own outflows; bad scenario files rejected with the file, event and field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCENARIO: &str = "tests/data/scenarios/net3_burst.toml";
const PEER: &str = "tests/peers/epanet_results.py";
const COMPARE_SCRIPT: &str = "../shared/tools/compare_results.py";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn aquatwin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(args)
        .output()
        .expect("the aquatwin binary runs")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `[SECTION]` data lines of an .inp text, split in fields.
fn section(inp: &str, name: &str) -> Vec<Vec<String>> {
    let header = format!("[{name}]");
    inp.lines()
        .skip_while(|l| !l.trim().eq_ignore_ascii_case(&header))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.split(';').next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn field(rows: &[Vec<String>], id: &str, column: usize) -> f64 {
    let row = rows
        .iter()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("{id} not found"));
    row[column].parse().unwrap()
}

#[test]
fn net3_burst_scenario_matches_epanet_on_the_written_network() {
    let dir = scratch("scenario_net3");
    let (inp, ours, epanet, impact, csv, plots) = (
        dir.join("scenario.inp"),
        dir.join("ours.json"),
        dir.join("epanet.json"),
        dir.join("impact.json"),
        dir.join("csv"),
        dir.join("plots"),
    );
    let run = aquatwin(&[
        "scenario",
        SCENARIO,
        "--write-inp",
        inp.to_str().unwrap(),
        "--results",
        ours.to_str().unwrap(),
        "--out",
        impact.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "scenario failed: {}{}",
        stdout,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("water lost"), "{stdout}");

    let peer = Command::new("python3")
        .args([PEER, inp.to_str().unwrap(), epanet.to_str().unwrap()])
        .output()
        .expect("python3 runs the EPANET peer");
    assert!(
        peer.status.success(),
        "{PEER}: {}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let compare = Command::new("python3")
        .args([
            COMPARE_SCRIPT,
            ours.to_str().unwrap(),
            epanet.to_str().unwrap(),
            "--all-steps",
        ])
        .output()
        .expect("python3 runs compare_results.py");
    assert!(
        compare.status.success(),
        "compare_results.py: {}",
        String::from_utf8_lossy(&compare.stdout)
    );

    // The break: the new junction sits at the elevation interpolated 30 % along pipe 229
    // (junctions 173 at -4 ft and 199 at -2 ft), and its outlet's emitter is an orifice of
    // 0.05 ft2 with Cd 0.75: C = Cd A sqrt(2 g) 448.831 / sqrt(0.4333) (GPM, psi).
    let text = std::fs::read_to_string(&inp).unwrap();
    let junctions = section(&text, "JUNCTIONS");
    let elevation = field(&junctions, "burst0", 1);
    assert!((elevation - (-4.0 + 0.3 * 2.0)).abs() < 1e-9, "{elevation}");
    let pipes = section(&text, "PIPES");
    assert!((field(&pipes, "229", 3) - 1200.0).abs() < 1e-9);
    assert!((field(&pipes, "burst0_p2", 3) - 2800.0).abs() < 1e-9);
    let emitters = section(&text, "EMITTERS");
    let expected = 0.75 * 0.05 * (2.0 * 9.80665 / 0.3048_f64).sqrt() * 448.831 / 0.4333_f64.sqrt();
    let coefficient = field(&emitters, "burst0_out", 1);
    assert!(
        (coefficient - expected).abs() < 1e-6 * expected,
        "{coefficient} vs {expected}"
    );

    // Water lost: EPANET's outflow at the burst and leak outlets over its own time steps.
    let epanet_doc = read_json(&epanet);
    let ids: Vec<&str> = epanet_doc["node_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let steps = epanet_doc["steps"].as_array().unwrap();
    let mut lost_gallons = 0.0;
    for (k, step) in steps.iter().enumerate() {
        let t = step["t"].as_f64().unwrap();
        let next = steps
            .get(k + 1)
            .map_or(24.0 * 3600.0, |s| s["t"].as_f64().unwrap());
        for outlet in ["burst0_out", "leak4_out"] {
            let i = ids.iter().position(|id| *id == outlet).unwrap();
            lost_gallons += step["demand"][i].as_f64().unwrap() * (next - t) / 60.0;
        }
    }
    let lost_m3 = lost_gallons * 0.003785411784;
    let report = read_json(&impact);
    let reported = report["water_lost_m3"].as_f64().unwrap();
    assert!(
        (reported - lost_m3).abs() < 0.005 * lost_m3,
        "reported {reported} m3, EPANET's outflows {lost_m3} m3"
    );
    // The fire flow was drawn through its valve and is not counted as lost.
    let draw = report["outlets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["event"] == 1)
        .unwrap();
    assert_eq!(draw["lost"], false);
    assert!((draw["peak_flow"].as_f64().unwrap() - 1000.0).abs() < 1.0);
    assert!(report["unmet_increase_m3"].as_f64().unwrap() >= 0.0);
    // Isolating the break with a valve at each pipe end closes the pipe at both ends.
    let plan = &report["isolations"][0];
    assert_eq!(plan["pipe"], "229");
    assert_eq!(plan["valves"], serde_json::json!(["229@173", "229@199"]));
    assert_eq!(plan["closed_links"], serde_json::json!(["229"]));
    assert!(
        plan["cut_off_if_a_valve_fails"].as_u64().unwrap()
            >= plan["cut_off"].as_array().unwrap().len() as u64
    );
    for name in ["timeline.csv", "nodes.csv", "outlets.csv", "tanks.csv"] {
        let table = std::fs::read_to_string(csv.join(name)).unwrap();
        assert!(table.lines().count() > 1, "{name} is empty");
    }
    for name in ["pressure.svg", "unmet.svg", "below.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{name}"
        );
    }
}

/// The scenario file `text` (network next to it) must be refused with exit status 2 and a
/// message holding every one of `expected`.
fn refused(name: &str, text: &str, expected: &[&str]) {
    let dir = scratch("scenario_bad");
    let network = std::fs::canonicalize("hydraulics/networks/Net3.inp").unwrap();
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!("network = {:?}\nduration_hours = 24\n{text}", network),
    )
    .unwrap();
    let run = aquatwin(&["scenario", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{name}: {stderr}");
    assert!(stderr.contains(name), "{name}: no file name in {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{name}: `{part}` not in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const CLOSURE: &str = "[[events]]\nkind = \"pipe_closure\"\npipe = \"20\"\nat_hours = 1\n";

#[test]
fn bad_scenario_files_name_the_file_the_event_and_the_field() {
    refused(
        "unknown_pipe.toml",
        &format!(
            "{CLOSURE}[[events]]\nkind = \"burst\"\npipe = \"nope\"\narea = 0.1\nat_hours = 2\n"
        ),
        &["events[1]", "field `pipe`", "unknown pipe `nope`"],
    );
    refused(
        "late.toml",
        &format!("{CLOSURE}[[events]]\nkind = \"pump_outage\"\npump = \"335\"\nat_hours = 30\n"),
        &[
            "events[1]",
            "field `at_hours`",
            "beyond the scenario's duration",
        ],
    );
    refused(
        "negative.toml",
        "[[events]]\nkind = \"leak\"\nnode = \"123\"\narea = -0.2\nat_hours = 2\n",
        &["events[0]", "field `area`", "must be positive"],
    );
    refused(
        "negative_flow.toml",
        "[[events]]\nkind = \"fire_flow\"\nnode = \"123\"\nflow = -5\nat_hours = 2\n",
        &["events[0]", "field `flow`", "must be positive"],
    );
    refused(
        "not_a_pump.toml",
        "[[events]]\nkind = \"pump_outage\"\npump = \"20\"\nat_hours = 2\n",
        &["events[0]", "field `pump`", "is not a pump"],
    );
    let burst = "[[events]]\nkind = \"burst\"\npipe = \"229\"\nflow = 100\nat_hours = 1\n";
    refused(
        "twice.toml",
        &format!("{burst}{burst}"),
        &["events[1]", "field `pipe`", "already bursts"],
    );
    refused(
        "valves.toml",
        "isolation_valves = \"everywhere\"\n",
        &["field `isolation_valves`", "`everywhere`"],
    );
    refused(
        "unknown_kind.toml",
        "[[events]]\nkind = \"meteor\"\nat_hours = 2\n",
        &["events[0]", "field `kind`", "unknown kind `meteor`"],
    );
}
