//! Parity on networks beyond `../shared`: rule-heavy networks in `tests/data/rules/` (US and SI
//! units, kPa, ELSE and priorities, OR, clock-time wrap, every premise variable, tanks emptying
//! under rules) are run by EPANET 2.3 itself (owa-epanet, through `tests/peers/epanet_results.py`)
//! and by the `aquatwin` binary, and every step is compared with the parity tolerances, link
//! status (closed, open, active) included.

use hydraulics::results::{compare, ResultsDocument, StepRecord, Tolerances};
use std::path::Path;
use std::process::Command;

const NETWORKS: &str = "tests/data/rules";
const PEER: &str = "tests/peers/epanet_results.py";

#[derive(serde::Deserialize)]
struct PeerDocument {
    node_ids: Vec<String>,
    link_ids: Vec<String>,
    steps: Vec<StepRecord>,
}

fn check(name: &str, scratch: &Path) -> Result<String, String> {
    let network = Path::new(NETWORKS).join(name);
    let ours_path = scratch.join(format!("{name}.ours.json"));
    let peer_path = scratch.join(format!("{name}.epanet.json"));

    let peer = Command::new("python3")
        .arg(PEER)
        .arg(&network)
        .arg(&peer_path)
        .output()
        .expect("python3 runs the EPANET peer");
    assert!(
        peer.status.success(),
        "{PEER} failed on {name}: {}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let ours = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .arg("simulate")
        .arg(&network)
        .arg("--out")
        .arg(&ours_path)
        .output()
        .expect("the aquatwin binary runs");
    assert!(
        ours.status.success(),
        "simulate failed on {name}: {}",
        String::from_utf8_lossy(&ours.stderr)
    );

    let read =
        |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let ours: ResultsDocument = serde_json::from_str(&read(&ours_path)).expect("our results");
    let epanet: PeerDocument = serde_json::from_str(&read(&peer_path)).expect("EPANET's results");
    let reference = ResultsDocument {
        node_ids: epanet.node_ids,
        link_ids: epanet.link_ids,
        steps: epanet.steps,
        ..ours.clone()
    };
    let tolerances = Tolerances {
        all_steps: true,
        ..Tolerances::default()
    };
    let outcome = compare(&ours, &reference, &tolerances);
    let same_steps = ours.steps.len() == reference.steps.len();
    if outcome.passed() && same_steps {
        Ok(outcome.verdict())
    } else {
        Err(format!(
            "{}: {} steps ours, {} EPANET's\n  {}",
            outcome.verdict(),
            ours.steps.len(),
            reference.steps.len(),
            outcome.problems.join("\n  ")
        ))
    }
}

#[test]
fn rule_networks_match_epanet_run_in_the_same_test() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("epanet_peer");
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let mut names: Vec<String> = std::fs::read_dir(NETWORKS)
        .expect("tests/data/rules")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".inp"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "expected the rule networks in {NETWORKS}");
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| match check(name, &scratch) {
            Ok(verdict) => {
                eprintln!("{verdict}");
                None
            }
            Err(problem) => Some(problem),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
