use super::*;
use crate::results::{compare, ResultsDocument, Tolerances};
use crate::solver::controls::apply_controls;
use std::path::Path;

/// A reservoir feeding a tank through a junction, in CFS and feet, with extra lines for
/// `[CONTROLS]` (which may go on with further sections, e.g. `[RULES]`), `[TIMES]` and
/// `[OPTIONS]`. The tank's diameter gives it an area of
/// 100 ft2, so a 1 cfs inflow raises it 0.01 ft a second.
fn tank_model(controls: &str, times: &str, options: &str) -> Network {
    let text = format!(
        "[JUNCTIONS]\n J1 0 0\n[RESERVOIRS]\n R1 100\n[TANKS]\n T1 0 10 0 20 \
         11.283791670955125 0\n[PIPES]\n P1 R1 J1 1000 12 100 0 Open\n P2 J1 T1 1000 12 100 \
         0 Open\n[CONTROLS]\n{controls}\n[TIMES]\n Duration 24:00\n{times}\n[OPTIONS]\n \
         Units CFS\n{options}\n[END]\n"
    );
    crate::inp::read_str(&text, "tank.inp").unwrap()
}

fn tank_network(controls: &str, times: &str) -> HydNetwork {
    compile(&tank_model(controls, times, "")).unwrap()
}

const TANK_NODE: usize = 2;

/// The initial state with the tank filling at `inflow` cfs.
fn filling_state(network: &HydNetwork, inflow: f64) -> HydState {
    let mut state = initial_state(network);
    state.node_demand[TANK_NODE] = inflow;
    state
}

fn clock(time: i64, next_report: i64, pattern_step: i64) -> Clock {
    Clock {
        time,
        next_report,
        duration: 86_400,
        hydraulic_step: 3600,
        pattern_step,
        pattern_start: 0,
        report_step: 3600,
        report_start: 0,
        rule_step: 360,
    }
}

#[test]
fn steps_stop_at_pattern_periods_and_report_times() {
    assert_eq!(clock(0, 3600, 3600).base_step(), 3600);
    assert_eq!(clock(1800, 3600, 2700).base_step(), 900);
    assert_eq!(clock(3000, 3600, 7200).base_step(), 600);
    let mut at_report = clock(3000, 3600, 7200);
    at_report.advance(600);
    assert_eq!((at_report.time, at_report.next_report), (3600, 7200));
    assert!(at_report.is_report_time());
    at_report.advance(1000);
    assert!(!at_report.is_report_time());
}

#[test]
fn tank_fill_and_drain_times_cut_the_step() {
    let network = tank_network("", "");
    // 10 ft to fill at 0.01 ft/s; 10 ft to drain at 0.02 ft/s.
    assert_eq!(
        tank_time_step(&network, &filling_state(&network, 1.0), 3600),
        1000
    );
    assert_eq!(
        tank_time_step(&network, &filling_state(&network, -2.0), 3600),
        500
    );
    assert_eq!(
        tank_time_step(&network, &filling_state(&network, 0.1), 3600),
        3600
    );
    assert_eq!(
        tank_time_step(&network, &filling_state(&network, 1e-7), 3600),
        3600
    );
}

#[test]
fn tank_levels_advance_and_stop_at_full() {
    let network = tank_network("", "");
    let mut state = filling_state(&network, 1.0);
    update_tank_levels(&network, &mut state, 500);
    assert!((state.head[TANK_NODE] - 15.0).abs() < 1e-9);
    // Within a second of full, the tank is set full.
    update_tank_levels(&network, &mut state, 499);
    assert!((state.head[TANK_NODE] - 20.0).abs() < 1e-9);
}

#[test]
fn level_and_time_controls_cut_the_step() {
    let network = tank_network("LINK P1 CLOSED IF NODE T1 ABOVE 15", "");
    assert_eq!(
        control_time_step(&network, &filling_state(&network, 1.0), 3600),
        500
    );
    // A draining tank never reaches the upper level.
    assert_eq!(
        control_time_step(&network, &filling_state(&network, -1.0), 3600),
        3600
    );

    let network = tank_network("LINK P1 CLOSED AT TIME 0:20", "");
    assert_eq!(
        control_time_step(&network, &filling_state(&network, 0.0), 3600),
        1200
    );

    // Clock time 23:50 with the start at 23:00: 50 minutes of simulated time.
    let network = tank_network(
        "LINK P1 CLOSED AT CLOCKTIME 23:50",
        " Start ClockTime 23:00",
    );
    assert_eq!(
        control_time_step(&network, &filling_state(&network, 0.0), 3600),
        3000
    );

    // A control that would not change its link does not cut the step.
    let network = tank_network("LINK P1 OPEN AT TIME 0:20", "");
    assert_eq!(
        control_time_step(&network, &filling_state(&network, 0.0), 3600),
        3600
    );
}

#[test]
fn level_controls_fire_within_one_second_of_flow() {
    let network = tank_network("LINK P1 CLOSED IF NODE T1 ABOVE 15", "");
    // 0.02 ft below the control level is 2 ft3 short of its volume.
    let mut state = filling_state(&network, 1.0);
    state.head[TANK_NODE] = 14.98;
    assert_eq!(apply_controls(&network, &mut state), 0);
    assert_eq!(state.status[0], Status::Open);
    state.node_demand[TANK_NODE] = 3.0;
    assert_eq!(apply_controls(&network, &mut state), 1);
    assert_eq!(state.status[0], Status::Closed);
}

#[test]
fn rules_are_checked_every_rule_step_and_end_the_step() {
    let rule = "[RULES]\nRULE 1\nIF TANK T1 LEVEL ABOVE 15\nTHEN PIPE P1 STATUS IS CLOSED";
    let network = tank_network(rule, "");
    assert_eq!(network.times.rule_step, 360);
    let mut run = Simulation::new(&network, false);
    run.state.node_demand[TANK_NODE] = 1.0;
    // The level passes 15 ft at 500 s; the rule sees it at the second rule step.
    assert_eq!(run.time_step(), 720);
    assert_eq!(run.state.status[0], Status::Closed);
    assert!((run.state.head[TANK_NODE] - 17.2).abs() < 1e-9);
    assert_eq!(run.state.time, 0);
}

#[test]
fn a_steady_run_solves_one_period() {
    let steady = SimOptions {
        steady: true,
        ..Default::default()
    };
    let results = simulate(&tank_model("", "", ""), &steady).unwrap();
    assert_eq!(results.steps.len(), 1);
    assert!(results.steps[0].report);
    assert!(results.halted.is_none());
}

#[test]
fn every_step_is_kept_and_reporting_times_are_marked() {
    // The tank fills in 1000 s at first, so the run takes a step that is not reported.
    let results = simulate(&tank_model("", "", ""), &SimOptions::default()).unwrap();
    let times: Vec<u64> = results.steps.iter().map(|s| s.t).collect();
    assert_eq!(times.first(), Some(&0));
    assert_eq!(times.last(), Some(&86_400));
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    for step in &results.steps {
        assert_eq!(step.report, step.t % 3600 == 0, "t={}", step.t);
    }
    assert!(results.steps.iter().any(|s| !s.report));
}

#[test]
fn unbalanced_stop_halts_after_the_period() {
    let options = " Trials 1\n Accuracy 1e-12\n Unbalanced Stop";
    let results = simulate(&tank_model("", "", options), &SimOptions::default()).unwrap();
    assert_eq!(results.steps.len(), 1);
    assert_eq!(results.halted.as_ref().map(|h| h.t), Some(0));
    let messages: Vec<&str> = results
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .collect();
    assert!(
        messages.contains(&"WARNING: System unbalanced . Simulation halted."),
        "{messages:?}"
    );
}

#[test]
fn unbalanced_continue_runs_to_the_end() {
    let options = " Trials 1\n Accuracy 1e-12\n Unbalanced Continue 0";
    let results = simulate(&tank_model("", "", options), &SimOptions::default()).unwrap();
    assert!(results.halted.is_none());
    assert_eq!(results.steps.last().map(|s| s.t), Some(86_400));
    let unbalanced = results
        .warnings
        .iter()
        .find(|w| w.message == "WARNING: System unbalanced .");
    // Later periods start from the previous flows and may balance within the one trial.
    assert!(unbalanced.is_some_and(|w| w.first_at == 0 && w.count >= 1));
}

/// Simulates `name` from the shared networks and compares every step with EPANET's, and
/// when `with_warnings` the warnings and every link's internal state too.
fn parity(name: &str, with_warnings: bool) -> Result<String, String> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let (file, steady) = match name.strip_suffix(".steady") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let network = crate::inp::read_file(&shared.join(format!("networks/{file}.inp")))
        .map_err(|e| e.to_string())?;
    let results = simulate(
        &network,
        &SimOptions {
            steady,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let ours = ResultsDocument::from_simulation(&network, &results, name);
    let text = std::fs::read_to_string(shared.join(format!("reference/{name}.json")))
        .map_err(|e| e.to_string())?;
    let reference: ResultsDocument = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let tolerances = Tolerances {
        all_steps: true,
        ..Tolerances::default()
    };
    let outcome = compare(&ours, &reference, &tolerances);
    let mut warnings_differ = Vec::new();
    if with_warnings {
        warnings_differ.extend(warning_differences(&ours, &text));
        warnings_differ.extend(state_differences(&ours, &reference));
    }
    if outcome.passed() && warnings_differ.is_empty() {
        Ok(outcome.verdict())
    } else {
        Err(format!(
            "{}\n  {}\n  {}",
            outcome.verdict(),
            outcome.problems.join("\n  "),
            warnings_differ.join("\n  ")
        ))
    }
}

/// Differences between our warnings and EPANET's (message, count, first time) in the
/// reference file's `epanet_warnings`; EPANET gives no time for the closed link blamed for
/// a disconnection.
fn warning_differences(ours: &ResultsDocument, reference_text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Reference {
        epanet_warnings: Vec<crate::results::WarningRecord>,
    }
    let Ok(reference) = serde_json::from_str::<Reference>(reference_text) else {
        return vec!["reference has no readable epanet_warnings".to_string()];
    };
    let key = |w: &crate::results::WarningRecord| {
        let first_at = if w.message.contains("because of Link") {
            String::new()
        } else {
            w.first_at.clone()
        };
        (w.message.clone(), w.count, first_at)
    };
    let ours: Vec<_> = ours.warnings.iter().map(key).collect();
    let expected: Vec<_> = reference.epanet_warnings.iter().map(key).collect();
    if ours == expected {
        Vec::new()
    } else {
        vec![format!("warnings: ours {ours:?}\n  EPANET's {expected:?}")]
    }
}

/// The first step and link where EPANET's internal link state differs from ours.
fn state_differences(ours: &ResultsDocument, reference: &ResultsDocument) -> Option<String> {
    let by_time: std::collections::HashMap<u64, &crate::results::StepRecord> =
        ours.steps.iter().map(|s| (s.t, s)).collect();
    for expected in &reference.steps {
        let Some(step) = by_time.get(&expected.t) else {
            continue;
        };
        for (link, (a, b)) in step.state.iter().zip(&expected.state).enumerate() {
            if a != b {
                let id = &reference.link_ids[link];
                return Some(format!(
                    "state of {id} at t={}: ours {a}, EPANET's {b}",
                    expected.t
                ));
            }
        }
    }
    None
}

fn check_parity(names: &[&str], with_warnings: bool) {
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| match parity(name, with_warnings) {
            Ok(verdict) => {
                println!("{verdict}");
                None
            }
            Err(problem) => Some(problem),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every step of these extended period runs, and their warnings, agree with EPANET's.
#[test]
fn extended_period_parity() {
    check_parity(
        &[
            "Net1",
            "Net2",
            "Net3",
            "latin1",
            "Anytown",
            "Anytown_multipointcurves",
            "BWSN_Network_1",
            "Jilin_including_water_quality",
            "New_York_Tunnels_including_water_quality",
            "msx_example",
            "msx_net2-cl2",
            "bad_times",
            "times",
            "io",
            "leaks",
            "epanet_leaks",
            "simulator",
            "cv_controls",
            "control_comb",
            "conditional_controls_1",
            "tank_controls_1",
            "tank_controls_2",
            "time_controls",
            "fcv_open_no_downstream_sources",
            "prv_open_no_upstream_sources",
            "psv_open_no_downstream_sources",
            "Net6",
            "Richmond_skeleton",
            "conditional_controls_2",
            "Anytown_wntrtest",
            "fcv_open_no_upstream_sources",
            "prv_closed_no_upstream_sources",
        ],
        true,
    );
}

/// Single-period networks (the solve itself; the driver runs one period).
#[test]
fn single_period_parity() {
    check_parity(
        &[
            "Awumah_layout1",
            "Balerma",
            "Extended_Hanoi",
            "KL",
            "RuralNetwork",
            "ZJ",
            "exnet-3",
            "foss_poly_1",
            "ky1",
            "ky3",
            "ky4",
            "ky5",
            "ky10",
            "nytun",
            "skeletonize",
        ],
        true,
    );
}

/// Rule-based controls (MICROPOLIS: 196 TCVs and rules), warnings and link states included.
#[test]
fn rule_based_parity() {
    check_parity(&["MICROPOLIS_v1"], true);
}

/// The first period alone (`SimOptions::steady`) of extended period networks. The
/// references' warnings are those of the whole run, so they are not compared.
#[test]
fn steady_option_parity() {
    check_parity(
        &[
            "Net1.steady",
            "Net2.steady",
            "Net3.steady",
            "Net6.steady",
            "MICROPOLIS_v1.steady",
            "Richmond_skeleton.steady",
            "BWSN_Network_1.steady",
            "io.steady",
            "tank_controls_2.steady",
        ],
        false,
    );
}

/// Every shared network, extended period and steady, solved with its factorization split
/// for two threads wherever the elimination tree allows (down to parts of one column), gives
/// every head, flow, demand, status and iteration count of the one-thread solve to the bit.
#[test]
fn a_split_factorization_on_two_threads_changes_no_bit() {
    let networks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/networks");
    let mut split = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&networks)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "inp"))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(network) = crate::inp::read_file(&path) else {
            continue;
        };
        let Ok(hyd) = compile(&network) else {
            continue;
        };
        for steady in [false, true] {
            let options = SimOptions { steady, threads: 2 };
            let one = simulate_with(&hyd, &mut Solver::new(&hyd), &options);
            let mut two_threads = Solver::with_split(&hyd, Some(1));
            split += usize::from(two_threads.is_split());
            let two = simulate_with(&hyd, &mut two_threads, &options);
            let name = path.display();
            assert_eq!(one.steps.len(), two.steps.len(), "{name}");
            assert_eq!(one.halted, two.halted, "{name}");
            assert_eq!(one.warnings, two.warnings, "{name}");
            for (a, b) in one.steps.iter().zip(&two.steps) {
                let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let t = a.t;
                assert_eq!(t, b.t, "{name}");
                assert_eq!(a.iterations, b.iterations, "{name} t={t}");
                assert_eq!(bits(&a.head), bits(&b.head), "{name} t={t}");
                assert_eq!(bits(&a.flow), bits(&b.flow), "{name} t={t}");
                assert_eq!(bits(&a.demand), bits(&b.demand), "{name} t={t}");
                assert_eq!(a.state, b.state, "{name} t={t}");
                assert_eq!(a.relative_error.to_bits(), b.relative_error.to_bits());
            }
        }
    }
    assert!(split >= 40, "only {split} runs had a split factorization");
}
