//! Leak scenarios made with our own solver, in the layout of `shared/leaks/example/*/`:
//! `network.inp` (the nominal model), `sensors.toml`, `pressures.csv`, `flows.csv`,
//! `levels.csv` (5-minute wide CSVs from 2019-01-01 00:00:00) and a `truth.json` that
//! `shared/tools/score_leaks.py` accepts.
//!
//! The "real" network differs from the nominal one as a utility's does: pipe roughness and
//! base demands perturbed (uniform, `±spread`), every junction's demand with its own hourly
//! noise, leaks as extra outflow at junctions (incipient: growing linearly to full size;
//! abrupt: full size at once), and noisy sensors rounded to two decimals. It is simulated at a
//! 5-minute step with its controls, and the sensors read from that run.

use std::fmt::Write as _;
use std::path::Path;

use hydraulics::generate::SplitMix64;
use hydraulics::model::{Demand, LinkKind, Network, NodeKind, Pattern};
use hydraulics::{SimOptions, SolverError};
use twin::reading::NetworkUnits;
use twin::telemetry_files::civil_from_ms;
use twin::Unit;

/// Reporting period of the generated telemetry (s).
pub const STEP_S: u64 = 300;
/// Unix time (ms) of the first row: 2019-01-01 00:00:00 UTC, as the shared scenarios.
pub const START_MS: i64 = 1_546_300_800_000;
/// Cubic metres per second in one cubic foot per second.
const CFS_TO_M3S: f64 = 0.028_316_846_592;

/// How a leak develops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakKind {
    /// Grows linearly from nothing at `start` to full size at `peak`.
    Incipient,
    /// Full size from `start`.
    Abrupt,
}

impl LeakKind {
    fn name(self) -> &'static str {
        match self {
            Self::Incipient => "incipient",
            Self::Abrupt => "abrupt",
        }
    }
}

/// One leak of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakSpec {
    /// Junction id.
    pub node: String,
    /// How it develops.
    pub kind: LeakKind,
    /// Start (s from the beginning).
    pub start_s: u64,
    /// When it reaches full size (s; `start_s` for abrupt leaks).
    pub peak_s: u64,
    /// Repair (s); `None` = still leaking at the end.
    pub end_s: Option<u64>,
    /// Full-size outflow (network flow unit).
    pub flow: f64,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSpec {
    /// Name written to `truth.json`.
    pub name: String,
    /// Length (days).
    pub days: u64,
    /// Seed of every random draw.
    pub seed: u64,
    /// The leaks.
    pub leaks: Vec<LeakSpec>,
    /// Pipe roughness of the real network: nominal times `U(1 - spread, 1 + spread)`.
    pub roughness_spread: f64,
    /// Base demands of the real network: nominal times `U(1 - spread, 1 + spread)`.
    pub demand_spread: f64,
    /// Relative standard deviation of each junction's demand, drawn per hour.
    pub demand_noise: f64,
    /// Number of pressure sensors (spread over the junctions).
    pub pressure_sensors: usize,
    /// Pressure sensor noise (network pressure unit).
    pub pressure_sd: f64,
    /// Flow meter noise, relative.
    pub flow_relative_sd: f64,
    /// Level sensor noise (network length unit).
    pub level_sd: f64,
}

/// A generated scenario: the files' contents.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedScenario {
    /// `network.inp`: the nominal model.
    pub network_inp: String,
    /// `sensors.toml`.
    pub sensors_toml: String,
    /// `pressures.csv`, `flows.csv`, `levels.csv` (empty when no such sensor).
    pub pressures_csv: String,
    /// See `pressures_csv`.
    pub flows_csv: String,
    /// See `pressures_csv`.
    pub levels_csv: String,
    /// `truth.json`.
    pub truth_json: String,
}

/// Why a scenario could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A leak names no junction.
    #[error("leak at `{0}`: no such junction")]
    UnknownJunction(String),
    /// The real network does not solve.
    #[error("simulating the scenario: {0}")]
    Solver(#[from] SolverError),
    /// Writing the files failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        cause: std::io::Error,
    },
}

/// Seeded, deterministic draws on hydraulics' SplitMix64.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// Uniform in (0, 1): never 0, so that `ln` is finite.
    fn uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `count` leaks at random junctions with demand, alternating incipient and abrupt, starting
/// after `quiet_days` and at least a day apart, sized `min_share..max_share` of the network's
/// average nominal consumption.
pub fn random_leaks(
    network: &Network,
    spec: &ScenarioSpec,
    count: usize,
    quiet_days: f64,
    (min_share, max_share): (f64, f64),
) -> Vec<LeakSpec> {
    let mut rng = Rng::new(spec.seed ^ 0x5EED_1EAF);
    let junctions: Vec<usize> = (0..network.junction_count())
        .filter(|&j| match &network.nodes[j].kind {
            NodeKind::Junction(junction) => junction.demands.iter().any(|d| d.base > 0.0),
            _ => false,
        })
        .collect();
    let day_s = 86_400.0;
    let average: f64 = (0..24 * 7)
        .map(|h| crate::replay::generate::nominal_total(network, h * 3600))
        .sum::<f64>()
        / (24.0 * 7.0);
    let window = (spec.days as f64 - quiet_days).max(1.0) * day_s;
    let slot = window / count.max(1) as f64;
    (0..count)
        .filter(|_| !junctions.is_empty())
        .map(|i| {
            let node = junctions[(rng.0.next_u64() % junctions.len() as u64) as usize];
            let kind = if i % 2 == 0 {
                LeakKind::Incipient
            } else {
                LeakKind::Abrupt
            };
            let start = quiet_days * day_s + slot * i as f64 + rng.between(0.0, 0.3) * slot;
            let start_s = (start as u64) / STEP_S * STEP_S;
            let peak_s = match kind {
                LeakKind::Incipient => start_s + (rng.between(1.0, 2.0) * day_s) as u64,
                LeakKind::Abrupt => start_s,
            };
            LeakSpec {
                node: network.nodes[node].id.clone(),
                kind,
                start_s,
                peak_s,
                end_s: None,
                flow: average * rng.between(min_share, max_share),
            }
        })
        .collect()
}

/// The nominal consumption of the whole network at `seconds`.
pub fn nominal_total(network: &Network, seconds: u64) -> f64 {
    twin::estimate::nominal_demands(network, seconds)
        .iter()
        .sum::<f64>()
        * network.options.demand_multiplier
}

/// A pattern's factor at `seconds` under the nominal network's pattern clock.
fn factor_at(network: &Network, pattern: Option<usize>, seconds: u64) -> f64 {
    let step = network.times.pattern_step.max(1);
    let period = (seconds + network.times.pattern_start) / step;
    pattern
        .and_then(|p| network.patterns.get(p))
        .filter(|p| !p.multipliers.is_empty())
        .map_or(1.0, |p| {
            p.multipliers[usize::try_from(period % p.multipliers.len() as u64).unwrap_or(0)]
        })
}

/// Generates the scenario `spec` on the nominal `network`.
pub fn generate(
    network: &Network,
    spec: &ScenarioSpec,
) -> Result<GeneratedScenario, GenerateError> {
    let mut rng = Rng::new(spec.seed);
    let steps = usize::try_from(spec.days * 86_400 / STEP_S).unwrap_or(0);
    let units = NetworkUnits::new(&network.options);
    let mut real = network.clone();
    real.times.duration = spec.days * 86_400;
    real.times.hydraulic_step = STEP_S;
    real.times.report_step = STEP_S;
    real.times.report_start = 0;
    real.times.pattern_step = STEP_S;
    real.times.pattern_start = 0;
    // Every pattern at the 5-minute step over the whole run, read on the nominal clock.
    for (index, pattern) in real.patterns.iter_mut().enumerate() {
        pattern.multipliers = (0..steps)
            .map(|k| factor_at(network, Some(index), k as u64 * STEP_S))
            .collect();
    }
    for link in &mut real.links {
        if let LinkKind::Pipe(pipe) = &mut link.kind {
            pipe.roughness *= rng.between(1.0 - spec.roughness_spread, 1.0 + spec.roughness_spread);
        }
    }
    let default_pattern = network.default_pattern_index();
    let hours = steps.div_ceil(12);
    let junctions = real.junction_count();
    let mut added: Vec<Pattern> = Vec::new();
    let first_new = real.patterns.len();
    for j in 0..junctions {
        let NodeKind::Junction(junction) = &mut real.nodes[j].kind else {
            continue;
        };
        if junction.demands.iter().all(|d| d.base == 0.0) {
            continue;
        }
        let scale = rng.between(1.0 - spec.demand_spread, 1.0 + spec.demand_spread);
        let noise: Vec<f64> = (0..hours)
            .map(|_| (1.0 + spec.demand_noise * rng.gaussian()).max(0.0))
            .collect();
        for demand in &mut junction.demands {
            let source = demand.pattern.or(default_pattern);
            let multipliers = (0..steps)
                .map(|k| factor_at(network, source, k as u64 * STEP_S) * noise[k / 12])
                .collect();
            demand.base *= scale;
            demand.pattern = Some(first_new + added.len());
            added.push(Pattern {
                id: format!("GEN-D{}-{}", j, added.len()),
                multipliers,
            });
        }
    }
    let mut truth_leaks = Vec::new();
    for (i, leak) in spec.leaks.iter().enumerate() {
        let node = real
            .node_index(&leak.node)
            .filter(|&n| n < junctions)
            .ok_or_else(|| GenerateError::UnknownJunction(leak.node.clone()))?;
        let end_s = leak.end_s.unwrap_or(spec.days * 86_400);
        let shape: Vec<f64> = (0..steps)
            .map(|k| {
                let t = k as u64 * STEP_S;
                if t < leak.start_s || t >= end_s {
                    0.0
                } else if t >= leak.peak_s {
                    1.0
                } else {
                    (t - leak.start_s) as f64 / (leak.peak_s - leak.start_s).max(1) as f64
                }
            })
            .collect();
        let m3_per_step = leak.flow / units.factors.flow * CFS_TO_M3S * STEP_S as f64;
        let cumulative: Vec<f64> = std::iter::once(0.0)
            .chain(shape.iter().scan(0.0, |sum, s| {
                *sum += s * m3_per_step;
                Some(*sum)
            }))
            .collect();
        if let NodeKind::Junction(junction) = &mut real.nodes[node].kind {
            junction.demands.push(Demand {
                base: leak.flow,
                pattern: Some(first_new + added.len()),
                category: None,
            });
        }
        added.push(Pattern {
            id: format!("GEN-LEAK-{i}"),
            multipliers: shape,
        });
        let adjacent: Vec<String> = real
            .links
            .iter()
            .filter(|l| l.from == node || l.to == node)
            .map(|l| format!("\"{}\"", l.id))
            .collect();
        truth_leaks.push(format!(
            "{{\"id\": \"leak-{}\", \"node\": \"{}\", \"adjacent_links\": [{}], \"type\": \"{}\", \
             \"start\": \"{}\", \"peak\": \"{}\", \"end\": \"{}\", \"repaired\": {}, \
             \"max_flow\": {}, \"leaked_volume_m3\": {:.3}, \"cumulative_volume_step_s\": {}, \
             \"cumulative_volume_m3\": [{}]}}",
            i + 1,
            leak.node,
            adjacent.join(", "),
            leak.kind.name(),
            timestamp(leak.start_s),
            timestamp(leak.peak_s),
            timestamp(end_s.min(spec.days * 86_400 - STEP_S)),
            leak.end_s.is_some(),
            leak.flow,
            cumulative.last().copied().unwrap_or(0.0),
            STEP_S,
            cumulative
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    real.patterns.extend(added);
    let results = hydraulics::simulate(
        &real,
        &SimOptions {
            steady: false,
            ..Default::default()
        },
    )?;
    let reports: Vec<_> = results
        .steps
        .iter()
        .filter(|s| s.report && s.t % STEP_S == 0)
        .take(steps)
        .collect();

    let pressure_nodes = spread_junctions(network, spec.pressure_sensors);
    let source_links: Vec<usize> = (0..network.links.len())
        .filter(|&l| {
            let link = &network.links[l];
            (link.from >= junctions) != (link.to >= junctions)
        })
        .collect();
    let tanks: Vec<usize> = (junctions..network.nodes.len())
        .filter(|&n| matches!(network.nodes[n].kind, NodeKind::Tank(_)))
        .collect();
    let flow_unit = Unit::Flow(units.flow_units).name();
    let mut sensors = String::new();
    let mut add_sensor = |kind: &str, place: &str, id: &str, unit: &str| {
        let _ = writeln!(
            sensors,
            "[[sensor]]\nid = \"{id}\"\nkind = \"{kind}\"\n{place} = \"{id}\"\nunit = \"{unit}\"\n"
        );
    };
    for &n in &pressure_nodes {
        add_sensor(
            "pressure",
            "node",
            &network.nodes[n].id,
            units.pressure_unit.name(),
        );
    }
    for &l in &source_links {
        add_sensor("flow", "link", &network.links[l].id, flow_unit);
    }
    for &n in &tanks {
        add_sensor(
            "level",
            "node",
            &network.nodes[n].id,
            units.length_unit().name(),
        );
    }
    let table = |ids: Vec<&String>, value: &mut dyn FnMut(usize, usize) -> f64| -> String {
        if ids.is_empty() {
            return String::new();
        }
        let mut csv = String::from("Timestamp");
        for id in &ids {
            let _ = write!(csv, ",{id}");
        }
        csv.push('\n');
        for (row, _) in reports.iter().enumerate() {
            csv.push_str(&timestamp(row as u64 * STEP_S));
            for column in 0..ids.len() {
                let _ = write!(csv, ",{:.2}", value(row, column));
            }
            csv.push('\n');
        }
        csv
    };
    let pressures_csv = table(
        pressure_nodes
            .iter()
            .map(|&n| &network.nodes[n].id)
            .collect(),
        &mut |row, c| reports[row].pressure[pressure_nodes[c]] + spec.pressure_sd * rng.gaussian(),
    );
    let flows_csv = table(
        source_links.iter().map(|&l| &network.links[l].id).collect(),
        &mut |row, c| {
            reports[row].flow[source_links[c]] * (1.0 + spec.flow_relative_sd * rng.gaussian())
        },
    );
    let levels_csv = table(
        tanks.iter().map(|&n| &network.nodes[n].id).collect(),
        &mut |row, c| {
            let n = tanks[c];
            let elevation = match &network.nodes[n].kind {
                NodeKind::Tank(tank) => tank.elevation,
                _ => 0.0,
            };
            reports[row].head[n] - elevation + spec.level_sd * rng.gaussian()
        },
    );
    let mut nominal = network.clone();
    nominal.times.duration = spec.days * 86_400;
    let truth_json = format!(
        "{{\"scenario\": \"{}\", \"generator\": \"aquatwin scenarios::replay::generate\", \
         \"seed\": {}, \"start_time\": \"{}\", \"duration_s\": {}, \"timestep_s\": {}, \
         \"perturbation\": {{\"roughness_spread\": {}, \"demand_spread\": {}, \
         \"demand_noise_hourly\": {}}}, \"sensor_noise\": {{\"pressure_sd\": {}, \
         \"flow_relative_sd\": {}, \"level_sd\": {}}},\n\"leaks\": [\n{}\n]}}\n",
        spec.name,
        spec.seed,
        timestamp(0),
        spec.days * 86_400,
        STEP_S,
        spec.roughness_spread,
        spec.demand_spread,
        spec.demand_noise,
        spec.pressure_sd,
        spec.flow_relative_sd,
        spec.level_sd,
        truth_leaks.join(",\n")
    );
    Ok(GeneratedScenario {
        network_inp: hydraulics::write_string(&nominal),
        sensors_toml: sensors,
        pressures_csv,
        flows_csv,
        levels_csv,
        truth_json,
    })
}

/// Writes the scenario's files into `dir` (created if needed).
pub fn write(scenario: &GeneratedScenario, dir: &Path) -> Result<(), GenerateError> {
    let io = |path: &Path, cause| GenerateError::Io {
        path: path.display().to_string(),
        cause,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, text) in [
        ("network.inp", &scenario.network_inp),
        ("sensors.toml", &scenario.sensors_toml),
        ("pressures.csv", &scenario.pressures_csv),
        ("flows.csv", &scenario.flows_csv),
        ("levels.csv", &scenario.levels_csv),
        ("truth.json", &scenario.truth_json),
    ] {
        if !text.is_empty() {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` of `seconds` after [`START_MS`].
fn timestamp(seconds: u64) -> String {
    let ms = START_MS + i64::try_from(seconds).unwrap_or(0) * 1000;
    let (y, mo, d, h, mi, s) = civil_from_ms(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `count` junctions spread over the network: farthest-point sampling on coordinates (junction
/// order where there are none), skipping junctions next to a reservoir or tank.
fn spread_junctions(network: &Network, count: usize) -> Vec<usize> {
    let junctions = network.junction_count();
    let next_to_source: Vec<bool> = (0..junctions)
        .map(|j| {
            network
                .links
                .iter()
                .any(|l| (l.from == j && l.to >= junctions) || (l.to == j && l.from >= junctions))
        })
        .collect();
    let candidates: Vec<usize> = (0..junctions).filter(|&j| !next_to_source[j]).collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let position = |j: usize| network.nodes[j].coordinates.unwrap_or((j as f64, 0.0));
    let mut chosen = vec![candidates[candidates.len() / 2]];
    let mut nearest: Vec<f64> = vec![f64::INFINITY; candidates.len()];
    while chosen.len() < count.min(candidates.len()) {
        let last = position(*chosen.last().unwrap_or(&candidates[0]));
        let mut best = (0, -1.0);
        for (i, &c) in candidates.iter().enumerate() {
            let (x, y) = position(c);
            let d = (x - last.0).hypot(y - last.1);
            nearest[i] = nearest[i].min(d);
            if nearest[i] > best.1 {
                best = (i, nearest[i]);
            }
        }
        chosen.push(candidates[best.0]);
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net3() -> Network {
        let text = include_str!("../../../hydraulics/networks/Net3.inp");
        hydraulics::read_str(text, "Net3.inp").unwrap()
    }

    fn spec(leaks: Vec<LeakSpec>) -> ScenarioSpec {
        ScenarioSpec {
            name: "t".into(),
            days: 2,
            seed: 3,
            leaks,
            roughness_spread: 0.0,
            demand_spread: 0.0,
            demand_noise: 0.0,
            pressure_sensors: 5,
            pressure_sd: 0.0,
            flow_relative_sd: 0.0,
            level_sd: 0.0,
        }
    }

    /// Sum over the inflow columns of a flows CSV, row by row (signed into the network).
    fn inflow(network: &Network, csv: &str) -> Vec<f64> {
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').skip(1).collect();
        let junctions = network.junction_count();
        let signs: Vec<f64> = header
            .iter()
            .map(|id| {
                let link = &network.links[network.link_index(id).unwrap()];
                if link.from >= junctions {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        lines
            .map(|l| {
                l.split(',')
                    .skip(1)
                    .zip(&signs)
                    .map(|(v, s)| v.parse::<f64>().unwrap() * s)
                    .sum()
            })
            .collect()
    }

    #[test]
    fn a_leak_adds_its_flow_to_the_inflow_and_the_truth_volume_matches() {
        let network = net3();
        let leak = LeakSpec {
            node: "123".into(),
            kind: LeakKind::Abrupt,
            start_s: 86_400,
            peak_s: 86_400,
            end_s: None,
            flow: 500.0,
        };
        let without = generate(&network, &spec(Vec::new())).unwrap();
        let with = generate(&network, &spec(vec![leak])).unwrap();
        let (a, b) = (
            inflow(&network, &without.flows_csv),
            inflow(&network, &with.flows_csv),
        );
        assert_eq!(a.len(), 2 * 288);
        // Before the leak the two runs agree; after it the inflow is larger by the leak.
        assert!((a[200] - b[200]).abs() < 0.05, "{} {}", a[200], b[200]);
        let excess: f64 = (300..500).map(|k| b[k] - a[k]).sum::<f64>() / 200.0;
        assert!((excess - 500.0).abs() < 5.0, "{excess}");
        // truth.json: 500 gpm for a day, in m3.
        let truth = &with.truth_json;
        let expected = 500.0 * 6.309_019_64e-5 * 86_400.0;
        let volume: f64 = truth
            .split("\"leaked_volume_m3\": ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (volume - expected).abs() < 0.01 * expected,
            "{volume} {expected}"
        );
        assert!(truth.contains("\"start\": \"2019-01-02 00:00:00\""));
        let sensors = twin::sensors_file::parse(&with.sensors_toml).unwrap();
        assert_eq!(sensors.len(), 5 + 5 + 3, "pressures, source links, tanks");
        let mut records = Vec::new();
        twin::telemetry_files::parse(&with.pressures_csv, Path::new("p.csv"), &mut records)
            .unwrap();
        assert_eq!(records.len(), 5 * 2 * 288);
    }

    #[test]
    fn random_leaks_start_after_the_quiet_days_in_order() {
        let network = net3();
        let mut s = spec(Vec::new());
        s.days = 14;
        let leaks = random_leaks(&network, &s, 3, 5.0, (0.04, 0.1));
        assert_eq!(leaks.len(), 3);
        assert!(leaks.windows(2).all(|w| w[0].start_s < w[1].start_s));
        assert!(leaks
            .iter()
            .all(|l| l.start_s >= 5 * 86_400 && l.flow > 0.0));
        assert_eq!(leaks[1].kind, LeakKind::Abrupt);
        assert_eq!(leaks, random_leaks(&network, &s, 3, 5.0, (0.04, 0.1)));
    }
}
