//! How well leaks CAN be located on Net3 with the generator's sensors, noise and model error,
//! whatever the localizer (issue 4): `twin::localize::identifiability` on the linearized
//! network at a night and a day hour, for 10 (today), 20 and 30 pressure sensors and the
//! generator's leak sizes; then, for the leaks of the tuning seeds 1-10, whether each was
//! locatable and where our detector put it. Both tests print tables for BENCHMARKS.md:
//! `cargo test --test leak_identifiability -- --ignored --nocapture`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hydraulics::generate::SplitMix64;
use hydraulics::model::{LinkKind, Network, NodeKind, PipeStatus};
use hydraulics::solver::{BoundaryConditions, LinkState, SnapshotSolver, StepResult};
use hydraulics::SimOptions;
use scenarios::replay::generate::{generate, nominal_total, random_leaks, write, ScenarioSpec};
use twin::estimate::{nominal_demands, Observation, Sensitivity};
use twin::localize::identifiability::{
    analyse, ideal_success, locatable_share, noise_covariance, relative_model_error, NoiseModel,
    Signatures, Verdict, INDISTINGUISHABLE_BELOW,
};
use twin::localize::{Localizer, SAME_PLACE_M};
use twin::{NetworkUnits, SensorKind};

const NET3: &str = "hydraulics/networks/Net3.inp";
const EXAMPLE_SENSORS: &str = "../shared/leaks/example/net3-dev-01/sensors.toml";
const SCORER: &str = "../shared/tools/score_leaks.py";
/// The generator's settings in `tests/replay_cli.rs` (the tuning and held-out seeds).
const PRESSURE_SD: f64 = 0.07;
const ROUNDING: f64 = 0.01;
const FLOW_RELATIVE_SD: f64 = 0.01;
const DEMAND_NOISE: f64 = 0.05;
const SPREAD: f64 = 0.1;
/// Leak sizes as shares of the average nominal consumption (`random_leaks`: 4-10 %).
const LEAK_SHARES: [f64; 3] = [0.04, 0.07, 0.10];
/// Perturbed networks drawn to measure the model error.
const DRAWS: u64 = 4;
/// The third hour studied, besides the least and the most consumption.
const MIDDAY: u64 = 12;

fn net3() -> Network {
    hydraulics::read_file(Path::new(NET3)).unwrap()
}

fn spec(seed: u64, pressure_sensors: usize, days: u64) -> ScenarioSpec {
    ScenarioSpec {
        name: format!("net3-gen-{seed}"),
        days,
        seed,
        leaks: Vec::new(),
        roughness_spread: SPREAD,
        demand_spread: SPREAD,
        demand_noise: DEMAND_NOISE,
        pressure_sensors,
        pressure_sd: PRESSURE_SD,
        flow_relative_sd: FLOW_RELATIVE_SD,
        level_sd: 0.016,
    }
}

/// The network's average nominal consumption over a week of hours, as `random_leaks` sizes
/// leaks.
fn average_consumption(network: &Network) -> f64 {
    (0..24 * 7)
        .map(|h| nominal_total(network, h * 3600))
        .sum::<f64>()
        / (24.0 * 7.0)
}

/// One solved hour of the nominal network: the boundary conditions the twin would measure
/// (tank levels, link states from the nominal run) and the snapshot solved with them.
struct OperatingPoint {
    hour: u64,
    conditions: BoundaryConditions,
    nominal: StepResult,
}

impl OperatingPoint {
    /// The linearized responses of `observations` around the nominal solution.
    fn sensitivity(&self, network: &Network, observations: &[Observation]) -> Sensitivity {
        let units = NetworkUnits::new(&network.options);
        let nominal = &self.nominal;
        Sensitivity::compute(
            network,
            &units,
            &nominal.head,
            &nominal.flow,
            &nominal.status,
            observations,
        )
    }
}

fn operating_point(network: &Network, hour: u64) -> OperatingPoint {
    let time = hour * 3600;
    let run = hydraulics::simulate(
        network,
        &SimOptions {
            steady: false,
            ..Default::default()
        },
    )
    .unwrap();
    let step = run.steps.iter().rev().find(|s| s.t == time).unwrap();
    let tank_levels = network
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(n, node)| match &node.kind {
            NodeKind::Tank(tank) => Some((node.id.clone(), step.head[n] - tank.elevation)),
            _ => None,
        })
        .collect();
    // Pumps, valves and plain pipes as the run left them; check valves are the solver's.
    let link_states = network
        .links
        .iter()
        .enumerate()
        .filter(|(_, link)| {
            !matches!(&link.kind, LinkKind::Pipe(pipe) if pipe.status == PipeStatus::CheckValve)
        })
        .map(|(l, link)| {
            let state = if step.status[l] == 0 {
                LinkState::Closed
            } else {
                LinkState::Open
            };
            (link.id.clone(), state)
        })
        .collect();
    let conditions = BoundaryConditions {
        time,
        tank_levels,
        link_states,
        ..BoundaryConditions::default()
    };
    let nominal = snapshot(network, &conditions);
    OperatingPoint {
        hour,
        conditions,
        nominal,
    }
}

fn snapshot(network: &Network, conditions: &BoundaryConditions) -> StepResult {
    let solved = SnapshotSolver::new(network)
        .unwrap()
        .solve(conditions)
        .unwrap();
    assert!(solved.converged);
    solved.result
}

/// `network` with a constant extra outflow `flow` at junction `node`.
fn with_leak(network: &Network, node: usize, flow: f64) -> Network {
    let mut leaky = network.clone();
    assert!(leaky.add_constant_outflow(node, flow));
    leaky
}

/// The real network as the generator draws it: roughness and base demands times
/// `U(1 - SPREAD, 1 + SPREAD)`.
fn perturbed(network: &Network, seed: u64) -> Network {
    let mut rng = SplitMix64::new(seed);
    let mut draw = || {
        let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        1.0 - SPREAD + 2.0 * SPREAD * u
    };
    let mut real = network.clone();
    for link in &mut real.links {
        if let LinkKind::Pipe(pipe) = &mut link.kind {
            pipe.roughness *= draw();
        }
    }
    for node in &mut real.nodes {
        if let NodeKind::Junction(junction) = &mut node.kind {
            let scale = draw();
            for demand in &mut junction.demands {
                demand.base *= scale;
            }
        }
    }
    real
}

/// Junctions the generator places leaks at (with consumption), each equally likely.
fn leak_candidates(network: &Network) -> Vec<usize> {
    (0..network.junction_count())
        .filter(|&j| match &network.nodes[j].kind {
            NodeKind::Junction(junction) => junction.demands.iter().any(|d| d.base > 0.0),
            _ => false,
        })
        .collect()
}

/// Pressure and flow observations of a sensors file (levels are boundary conditions).
fn observations_of(network: &Network, sensors_toml: &str) -> Vec<Observation> {
    twin::sensors_file::parse(sensors_toml)
        .unwrap()
        .iter()
        .filter_map(|s| match s.kind {
            SensorKind::Pressure => network.node_index(&s.target).map(Observation::Pressure),
            SensorKind::Flow => network.link_index(&s.target).map(Observation::Flow),
            _ => None,
        })
        .collect()
}

/// The generator's sensors with `count` pressure sensors (its placement).
fn generator_sensors(network: &Network, count: usize) -> Vec<Observation> {
    let scenario = generate(network, &spec(1, count, 1)).unwrap();
    observations_of(network, &scenario.sensors_toml)
}

/// Every junction's pressure and every source link's flow: the observations of any sensor
/// set of the generator.
fn full_observations(network: &Network) -> Vec<Observation> {
    let junctions = network.junction_count();
    let mut observations: Vec<Observation> = (0..junctions).map(Observation::Pressure).collect();
    observations.extend(
        (0..network.links.len())
            .filter(|&l| (network.links[l].from >= junctions) != (network.links[l].to >= junctions))
            .map(Observation::Flow),
    );
    observations
}

fn read(observations: &[Observation], result: &StepResult) -> Vec<f64> {
    observations
        .iter()
        .map(|o| match *o {
            Observation::Pressure(n) => result.pressure[n],
            Observation::Flow(l) => result.flow[l],
            _ => 0.0,
        })
        .collect()
}

/// Per junction, the solver's change of every observation of `full` when a leak of `flow`
/// is added there to `network` at `point`, per unit of leak.
fn solved_signatures(
    network: &Network,
    point: &OperatingPoint,
    full: &[Observation],
    flow: f64,
) -> Vec<Vec<f64>> {
    let without = read(full, &snapshot(network, &point.conditions));
    (0..network.junction_count())
        .map(|j| {
            let with = read(
                full,
                &snapshot(&with_leak(network, j, flow), &point.conditions),
            );
            with.iter()
                .zip(&without)
                .map(|(a, b)| (a - b) / flow)
                .collect()
        })
        .collect()
}

/// Relative model error (pooled over pressures, and over flows) of the nominal network's
/// leak signatures against those of perturbed networks, both solved with the leak; and of
/// the linearization's `q s_j` against the nominal network's solved signatures.
fn model_error(network: &Network, point: &OperatingPoint, flow: f64) -> ((f64, f64), (f64, f64)) {
    let junctions = network.junction_count();
    let full = full_observations(network);
    let sensitivity = point.sensitivity(network, &full);
    let candidates = leak_candidates(network);
    let nominal = solved_signatures(network, point, &full, flow);
    let scaled = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x * flow).collect() };
    let linear_pairs: Vec<(Vec<f64>, Vec<f64>)> = candidates
        .iter()
        .map(|&j| {
            let linear = (0..full.len())
                .map(|i| flow * sensitivity.get(i, j))
                .collect();
            (linear, scaled(&nominal[j]))
        })
        .collect();
    let mut real_pairs = Vec::new();
    for draw in 0..DRAWS {
        let real = perturbed(network, 1000 + draw);
        let solved = solved_signatures(&real, point, &full, flow);
        for &j in &candidates {
            real_pairs.push((scaled(&nominal[j]), scaled(&solved[j])));
        }
    }
    let pooled = |pairs: &[(Vec<f64>, Vec<f64>)], rows: std::ops::Range<usize>| -> f64 {
        let (mut error, mut size) = (0.0, 0.0);
        for (modelled, simulated) in pairs {
            for i in rows.clone() {
                error += (simulated[i] - modelled[i]).powi(2);
                size += modelled[i].powi(2);
            }
        }
        (error / size).sqrt()
    };
    // The library's per-observation pooling agrees with the pooled figure's order.
    let per_observation = relative_model_error(&real_pairs, full.len());
    assert!(per_observation.iter().all(|e| e.is_finite()));
    let m = full.len();
    (
        (
            pooled(&real_pairs, 0..junctions),
            pooled(&real_pairs, junctions..m),
        ),
        (
            pooled(&linear_pairs, 0..junctions),
            pooled(&linear_pairs, junctions..m),
        ),
    )
}

/// Pooled relative error of the linearization's signatures against the solver's (`solved`,
/// per unit leak, rows of `full`) over the leak candidates, at the rows `rows` only.
fn linearization_error(
    network: &Network,
    point: &OperatingPoint,
    full: &[Observation],
    solved: &[Vec<f64>],
    rows: &[usize],
) -> f64 {
    let sensitivity = point.sensitivity(network, full);
    let (mut error, mut size) = (0.0, 0.0);
    for j in leak_candidates(network) {
        for &i in rows {
            error += (sensitivity.get(i, j) - solved[j][i]).powi(2);
            size += solved[j][i].powi(2);
        }
    }
    (error / size).sqrt()
}

/// Everything the analysis needs at one operating point for one sensor set.
struct Setting {
    /// The linearization's signatures (the noise goes through them).
    linear: Signatures,
    /// The solver's signatures of the leak size studied.
    solved: Signatures,
    noise: NoiseModel,
}

fn setting(
    network: &Network,
    point: &OperatingPoint,
    observations: &[Observation],
    solved: &[Vec<f64>],
    (pressure_error, flow_error): (f64, f64),
    window_hours: f64,
) -> Setting {
    let sensitivity = point.sensitivity(network, observations);
    let pressure_sd = (PRESSURE_SD * PRESSURE_SD + ROUNDING * ROUNDING / 12.0).sqrt();
    let reading_sd = observations
        .iter()
        .map(|o| match *o {
            Observation::Flow(l) => {
                let sd = FLOW_RELATIVE_SD * point.nominal.flow[l].abs();
                (sd * sd + ROUNDING * ROUNDING / 12.0).sqrt()
            }
            _ => pressure_sd,
        })
        .collect();
    let model_error = observations
        .iter()
        .map(|o| match o {
            Observation::Flow(_) => flow_error,
            _ => pressure_error,
        })
        .collect();
    let multiplier = network.options.demand_multiplier;
    let consumption: Vec<f64> = nominal_demands(network, point.hour * 3600)
        .iter()
        .map(|d| d * multiplier)
        .collect();
    let linear = Signatures::linear(&sensitivity, &consumption);
    let full = full_observations(network);
    let rows: Vec<usize> = observations
        .iter()
        .map(|o| full.iter().position(|f| f == o).unwrap())
        .collect();
    let columns: Vec<Vec<f64>> = solved
        .iter()
        .map(|column| rows.iter().map(|&r| column[r]).collect())
        .collect();
    let solved = Signatures::from_columns(&columns, linear.uniform().to_vec());
    Setting {
        linear,
        solved,
        noise: NoiseModel {
            reading_sd,
            readings_per_hour: 12.0,
            demand_noise: DEMAND_NOISE,
            consumption,
            window_hours,
            model_error,
        },
    }
}

fn verdicts(setting: &Setting, localizer: &Localizer, flow: f64, leaks: &[usize]) -> Vec<Verdict> {
    let base = noise_covariance(&setting.linear, &setting.noise);
    analyse(
        &setting.solved,
        &base,
        localizer,
        &setting.noise,
        flow,
        leaks,
        INDISTINGUISHABLE_BELOW,
        SAME_PLACE_M,
    )
}

/// Samples of the simulated ideal localizer per leak.
const SAMPLES: usize = 300;

/// The chance that an ideal localizer picks a junction within the radius of `junction`.
fn ideal(setting: &Setting, localizer: &Localizer, flow: f64, junction: usize) -> f64 {
    let base = noise_covariance(&setting.linear, &setting.noise);
    let within: Vec<bool> = localizer
        .distances(junction, SAME_PLACE_M)
        .iter()
        .map(|d| d.is_finite())
        .collect();
    ideal_success(
        &setting.solved,
        &base,
        &setting.noise,
        flow,
        junction,
        &within,
        SAMPLES,
        junction as u64,
    )
    .unwrap()
}

/// The night and day hours of the first day: least and most nominal consumption.
fn night_and_day(network: &Network) -> (u64, u64) {
    let total = |h: &u64| nominal_total(network, h * 3600);
    let night = (0..24)
        .min_by(|a, b| total(a).total_cmp(&total(b)))
        .unwrap();
    let day = (0..24)
        .max_by(|a, b| total(a).total_cmp(&total(b)))
        .unwrap();
    (night, day)
}

/// Model errors measured at both hours, the larger of each kept for both.
fn measured_model_error(network: &Network, points: &[&OperatingPoint], flow: f64) -> (f64, f64) {
    let mut worst = (0.0_f64, 0.0_f64);
    for point in points {
        let (real, linear) = model_error(network, point, flow);
        println!(
            "model error at {:02}:00 (leak {flow:.0} gpm, {DRAWS} perturbed networks x every \
             leak junction): pressure {:.1} % (linearization alone {:.1} %), flow {:.1} % \
             ({:.1} %)",
            point.hour,
            100.0 * real.0,
            100.0 * linear.0,
            100.0 * real.1,
            100.0 * linear.1
        );
        worst = (worst.0.max(real.0), worst.1.max(real.1));
    }
    worst
}

#[test]
#[ignore = "analysis for BENCHMARKS.md; run with --ignored --nocapture"]
fn identifiability_of_leaks_on_net3() {
    let network = net3();
    let units = NetworkUnits::new(&network.options);
    let localizer = Localizer::new(&network, &units);
    let candidates = leak_candidates(&network);
    let average = average_consumption(&network);
    let (night, day) = night_and_day(&network);
    let points = [
        operating_point(&network, night),
        operating_point(&network, MIDDAY),
        operating_point(&network, day),
    ];
    println!(
        "Net3: {} junctions, {} leak candidates, average consumption {average:.0} gpm; least \
         {night:02}:00 ({:.0} gpm), midday ({:.0} gpm), most {day:02}:00 ({:.0} gpm)",
        network.junction_count(),
        candidates.len(),
        nominal_total(&network, night * 3600),
        nominal_total(&network, MIDDAY * 3600),
        nominal_total(&network, day * 3600)
    );
    for point in &points {
        let running: Vec<&str> = network
            .links
            .iter()
            .enumerate()
            .filter(|(l, link)| {
                matches!(link.kind, LinkKind::Pump(_)) && point.nominal.status[*l] != 0
            })
            .map(|(_, link)| link.id.as_str())
            .collect();
        println!("pumps running at {:02}:00: {running:?}", point.hour);
    }
    let error = measured_model_error(&network, &[&points[0], &points[2]], 0.07 * average);
    let full = full_observations(&network);
    // Per operating point and leak size: the solver's signature of a leak at every junction.
    let solved: Vec<Vec<Vec<Vec<f64>>>> = points
        .iter()
        .map(|point| {
            LEAK_SHARES
                .iter()
                .map(|share| solved_signatures(&network, point, &full, share * average))
                .collect()
        })
        .collect();
    let ten = generator_sensors(&network, 10);
    let pressure_rows: Vec<usize> = ten
        .iter()
        .filter(|o| matches!(o, Observation::Pressure(_)))
        .map(|o| full.iter().position(|f| f == o).unwrap())
        .collect();
    for (point, solved) in points.iter().zip(&solved) {
        let errors: Vec<String> = LEAK_SHARES
            .iter()
            .zip(solved)
            .map(|(share, solved)| {
                let e = linearization_error(&network, point, &full, solved, &pressure_rows);
                format!("{:.0} gpm {:.1} %", share * average, 100.0 * e)
            })
            .collect();
        println!(
            "linearization error at the generator's 10 pressure sensors, {:02}:00: {}",
            point.hour,
            errors.join(", ")
        );
    }
    let example = std::fs::read_to_string(EXAMPLE_SENSORS).unwrap();
    let sets: Vec<(String, Vec<Observation>)> = vec![
        (
            "10 (example, k-means)".into(),
            observations_of(&network, &example),
        ),
        ("10 (generator)".into(), ten),
        ("20 (generator)".into(), generator_sensors(&network, 20)),
        ("30 (generator)".into(), generator_sensors(&network, 30)),
    ];
    println!(
        "share of leaks locatable within {SAME_PLACE_M} m (separation >= \
         {INDISTINGUISHABLE_BELOW} from every junction beyond) / an ideal localizer's chance to \
         pick a junction within {SAME_PLACE_M} m ({SAMPLES} simulated signatures per leak \
         junction; in brackets its analytic bounds); leak junctions equally likely"
    );
    for window in [1.0, 12.0] {
        println!();
        println!("signature window {window} h each side");
        println!(
            "| pressure sensors | time | {} |",
            LEAK_SHARES
                .iter()
                .map(|s| format!("leak {:.0} % ({:.0} gpm)", 100.0 * s, s * average))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("|---|---|---:|---:|---:|");
        for (name, observations) in &sets {
            for (point, solved) in points.iter().zip(&solved) {
                let cells: Vec<String> = LEAK_SHARES
                    .iter()
                    .zip(solved)
                    .map(|(share, solved)| {
                        let setting = setting(&network, point, observations, solved, error, window);
                        let v = verdicts(&setting, &localizer, share * average, &candidates);
                        let ideal = candidates
                            .iter()
                            .map(|&j| ideal(&setting, &localizer, share * average, j))
                            .sum::<f64>()
                            / candidates.len() as f64;
                        let share = locatable_share(&v, |_| 1.0);
                        format!(
                            "{:.0} % / {:.0} % ({:.0}-{:.0} %)",
                            100.0 * share.locatable,
                            100.0 * ideal,
                            100.0 * share.at_least,
                            100.0 * share.at_most
                        )
                    })
                    .collect();
                println!("| {name} | {:02}:00 | {} |", point.hour, cells.join(" | "));
            }
        }
    }
    // The noise model against stop 12's measured spread of one-hour day-matched signatures
    // (0.2-0.6 psi per sensor).
    let one_hour = setting(&network, &points[2], &sets[1].1, &solved[2][1], error, 1.0);
    let covariance = noise_covariance(&one_hour.linear, &one_hour.noise);
    let spreads: Vec<String> = (0..sets[1].1.len())
        .filter(|&i| matches!(sets[1].1[i], Observation::Pressure(_)))
        .map(|i| format!("{:.2}", covariance[(i, i)].sqrt()))
        .collect();
    println!(
        "modelled sd of a 1 h day-matched pressure signature at {day:02}:00, generator's 10 \
         sensors (psi): {}",
        spreads.join(" ")
    );
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scored(dir: &Path, leaks: &Path, radius: f64) -> serde_json::Value {
    let output = Command::new("python3")
        .arg(SCORER)
        .arg(dir)
        .arg(leaks)
        .args(["--radius", &radius.to_string()])
        .output()
        .expect("python3 runs the scorer");
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
#[ignore = "analysis for BENCHMARKS.md (tuning seeds only); run with --ignored --nocapture"]
fn identifiability_of_the_tuning_leaks() {
    let network = net3();
    let units = NetworkUnits::new(&network.options);
    let localizer = Localizer::new(&network, &units);
    let average = average_consumption(&network);
    let (night, day) = night_and_day(&network);
    let points: Vec<OperatingPoint> = (0..24).map(|h| operating_point(&network, h)).collect();
    let error = measured_model_error(
        &network,
        &[&points[night as usize], &points[day as usize]],
        0.07 * average,
    );
    let sensors = generator_sensors(&network, 10);
    let full = full_observations(&network);
    let scratch = Scratch(
        std::env::temp_dir().join(format!("aquatwin-identifiability-{}", std::process::id())),
    );
    println!(
        "| seed | leak | node | type | size (gpm) | start hour | far confusers 1 h / 12 h | \
         nearest far confuser (m, separation) 12 h | locatable 1 h / 12 h | ideal chance 12 h | \
         our report: distance (m), delay (h) |"
    );
    println!("|---|---|---|---|---:|---:|---|---|---|---:|---|");
    let (mut locatable_12, mut located, mut leaks_seen, mut expected) = (0, 0, 0, 0.0);
    for seed in 1..=10 {
        let mut spec = spec(seed, 10, 14);
        spec.leaks = random_leaks(&network, &spec, 2, 5.0, (0.04, 0.1));
        let dir = scratch.0.join(&spec.name);
        write(&generate(&network, &spec).unwrap(), &dir).unwrap();
        let out = dir.join("leaks.json");
        let arg = |name: &str| dir.join(name).display().to_string();
        let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
            .args(["replay", "--network", &arg("network.inp")])
            .args(["--sensors", &arg("sensors.toml")])
            .args(["--telemetry", &dir.display().to_string()])
            .args(["--out", &out.display().to_string()])
            .args(["--train-until", "3d"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let anywhere = scored(&dir, &out, 1e9);
        let within = scored(&dir, &out, SAME_PLACE_M);
        for (index, leak) in spec.leaks.iter().enumerate() {
            leaks_seen += 1;
            let node = network.node_index(&leak.node).unwrap();
            let hour = (leak.start_s / 3600) % 24;
            let point = &points[hour as usize];
            let solved = solved_signatures(&network, point, &full, leak.flow);
            let verdict = |window: f64| {
                let setting = setting(&network, point, &sensors, &solved, error, window);
                verdicts(&setting, &localizer, leak.flow, &[node]).remove(0)
            };
            let (short, long) = (verdict(1.0), verdict(12.0));
            let chance = ideal(
                &setting(&network, point, &sensors, &solved, error, 12.0),
                &localizer,
                leak.flow,
                node,
            );
            expected += chance;
            locatable_12 += usize::from(long.locatable);
            let nearest = long
                .far_confusers
                .iter()
                .min_by(|a, b| a.2.total_cmp(&b.2))
                .map_or("-".to_string(), |c| {
                    format!("{} ({:.0} m, {:.1})", network.nodes[c.0].id, c.2, c.1)
                });
            let report = |score: &serde_json::Value| score["leaks"][index].clone();
            let (far, near) = (report(&anywhere), report(&within));
            let is_located = near["detected"].as_bool().unwrap_or(false);
            let shown = if is_located { &near } else { &far };
            let ours = if shown["detected"].as_bool().unwrap_or(false) {
                format!(
                    "{:.0} m, {:.1} h{}",
                    shown["distance_m"].as_f64().unwrap_or(f64::NAN),
                    shown["delay_hours"].as_f64().unwrap_or(f64::NAN),
                    if is_located { " (located)" } else { "" }
                )
            } else {
                "not reported in its window".to_string()
            };
            located += usize::from(near["detected"].as_bool().unwrap_or(false));
            println!(
                "| {seed} | {} | {} | {:?} | {:.0} | {hour:02} | {} / {} | {nearest} | {} / {} | \
                 {chance:.2} ({:.2}-{:.2}) | {ours} |",
                index + 1,
                leak.node,
                leak.kind,
                leak.flow,
                short.far_confusers.len(),
                long.far_confusers.len(),
                if short.locatable { "yes" } else { "no" },
                if long.locatable { "yes" } else { "no" },
                1.0 - long.confusion,
                1.0 - long.worst_confusion,
            );
        }
    }
    println!(
        "locatable with 12 h windows: {locatable_12}/{leaks_seen}; an ideal localizer's \
         expected count: {expected:.1}/{leaks_seen}; located by our detector: \
         {located}/{leaks_seen}"
    );
}
