//! Impact of a scenario against its baseline: pressure deficits, unmet demand under PDA,
//! customers affected, water lost, tanks running empty and WNTR's resilience metrics.

use crate::build::{BuiltScenario, OutletRole};
use crate::segments::{base_demand, place_valves, segments};
use crate::spec::{CustomerSettings, EventKind, Scenario};
use hydraulics::model::{Network, NodeKind};
use hydraulics::units::{UnitFactors, M3_PER_FT3};
use hydraulics::SimResults;
use serde::Serialize;
use series::{series, wsa};
pub use series::{summarize, SummaryBuilder};

mod series;

/// A junction's service counts as worse than in the baseline when its share of the required
/// demand falls by more than this.
const SERVICE_DROP: f64 = 0.01;
/// A tank counts as empty this close to its minimum level (length units).
const EMPTY_MARGIN: f64 = 0.01;

/// One run's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Demand the junctions ask for (PDA's full demand), m3.
    pub required_m3: f64,
    pub delivered_m3: f64,
    pub unmet_m3: f64,
    /// `unmet / required`, percent.
    pub unmet_percent: f64,
    /// Most junctions below the required pressure at one time.
    pub max_nodes_below_required: usize,
    /// Junction-hours below the required pressure.
    pub node_hours_below_required: f64,
    /// Lowest Todini resilience index over the run.
    pub min_todini: f64,
    /// Water service availability: delivered / required volume.
    pub water_service_availability: f64,
}

/// One time of the scenario run, with the baseline at the same time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimePoint {
    pub hours: f64,
    pub nodes_below_baseline: usize,
    pub nodes_below_scenario: usize,
    /// Flow units.
    pub unmet_baseline: f64,
    pub unmet_scenario: f64,
    /// Outflow of bursts and leaks, flow units.
    pub lost: f64,
    pub todini_baseline: f64,
    pub todini_scenario: f64,
    pub wsa_baseline: f64,
    pub wsa_scenario: f64,
}

/// One junction of the original network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeImpact {
    pub node: String,
    pub customers: f64,
    pub required_m3: f64,
    pub unmet_baseline_m3: f64,
    pub unmet_scenario_m3: f64,
    pub min_pressure_baseline: f64,
    pub min_pressure_scenario: f64,
    /// Its share of the required demand fell below the baseline's at some time.
    pub affected: bool,
}

/// When a tank first reaches its minimum level, hours; `None` when it does not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TankImpact {
    pub tank: String,
    pub empty_baseline_hours: Option<f64>,
    pub empty_scenario_hours: Option<f64>,
}

/// Volume through each burst, leak or extra draw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutletVolume {
    /// Index of the event in the scenario file.
    pub event: usize,
    pub node: String,
    pub lost: bool,
    pub volume_m3: f64,
    /// Largest outflow, flow units.
    pub peak_flow: f64,
}

/// What isolating a burst takes: the pipe's segment closed (see [`crate::segments`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstIsolation {
    /// Index of the burst event in the scenario file.
    pub event: usize,
    pub pipe: String,
    /// Valves to close, `link@node`.
    pub valves: Vec<String>,
    /// Links that carry no flow while the segment is closed.
    pub closed_links: Vec<String>,
    /// Junctions no source reaches while the segment is closed.
    pub cut_off: Vec<String>,
    /// Their base demand, flow units.
    pub demand_cut_off: f64,
    pub customers_cut_off: f64,
    /// Most junctions cut off when one of the valves fails to close.
    pub cut_off_if_a_valve_fails: usize,
}

/// The isolation plan of every burst of `scenario` on `network`.
pub fn burst_isolations(network: &Network, scenario: &Scenario) -> Vec<BurstIsolation> {
    let bursts: Vec<(usize, usize)> = scenario
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.kind {
            EventKind::Burst { pipe, .. } => Some((i, pipe)),
            _ => None,
        })
        .collect();
    if bursts.is_empty() {
        return Vec::new();
    }
    let segs = segments(network, place_valves(network, scenario.isolation_valves));
    let customers = customers(network, &scenario.customers);
    let ids = |items: &[usize], name: &dyn Fn(usize) -> String| -> Vec<String> {
        items.iter().map(|&i| name(i)).collect()
    };
    bursts
        .into_iter()
        .map(|(event, pipe)| {
            let isolation = segs.isolate(network, pipe);
            BurstIsolation {
                event,
                pipe: network.links[pipe].id.clone(),
                valves: ids(&isolation.valves, &|v| segs.valves[v].name(network)),
                closed_links: ids(&isolation.closed_links, &|l| network.links[l].id.clone()),
                cut_off: ids(&isolation.cut_off, &|n| network.nodes[n].id.clone()),
                demand_cut_off: base_demand(network, &isolation.cut_off),
                customers_cut_off: sum_of(isolation.cut_off.iter().map(|&n| customers[n])),
                cut_off_if_a_valve_fails: segs
                    .isolate_with_failure(network, pipe)
                    .iter()
                    .map(|f| f.cut_off.len())
                    .max()
                    .unwrap_or(isolation.cut_off.len()),
            }
        })
        .collect()
}

/// Everything `aquatwin scenario` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    pub scenario: String,
    pub network: String,
    pub duration_hours: f64,
    pub flow_units: String,
    pub required_pressure: f64,
    pub baseline: RunSummary,
    pub with_events: RunSummary,
    /// Extra unmet demand caused by the events, m3.
    pub unmet_increase_m3: f64,
    pub nodes_affected: usize,
    pub customers_affected: f64,
    pub water_lost_m3: f64,
    pub outlets: Vec<OutletVolume>,
    pub tanks: Vec<TankImpact>,
    /// How each burst would be isolated.
    pub isolations: Vec<BurstIsolation>,
    /// Runs that stopped early, as the solver said.
    pub halted: Vec<String>,
    pub timeline: Vec<TimePoint>,
    pub nodes: Vec<NodeImpact>,
}

/// The sum of `values`, 0 (not Rust's -0) when there are none, so reports never show `-0`.
pub fn sum_of(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |total, v| total + v)
}

/// Customers at each node of `network` (zeros without a customer setting).
pub fn customers(network: &Network, settings: &CustomerSettings) -> Vec<f64> {
    network
        .nodes
        .iter()
        .map(|node| {
            if let Some(&count) = settings.nodes.get(&node.id) {
                return count;
            }
            match (&node.kind, settings.demand_per_customer) {
                (NodeKind::Junction(j), Some(per)) => {
                    j.demands.iter().map(|d| d.base).sum::<f64>().max(0.0) / per
                }
                _ => 0.0,
            }
        })
        .collect()
}

/// When tank `node` (index `at` in the run) first reaches its minimum level.
fn empty_time(network: &Network, node: usize, at: usize, results: &SimResults) -> Option<f64> {
    let NodeKind::Tank(tank) = &network.nodes[node].kind else {
        return None;
    };
    results
        .steps
        .iter()
        .find(|s| s.head[at] - tank.elevation <= tank.min_level + EMPTY_MARGIN)
        .map(|s| s.t as f64 / 3600.0)
}

/// Compares the scenario's run with the baseline's.
pub fn assess(
    original: &Network,
    scenario: &Scenario,
    baseline: (&Network, &SimResults),
    built: &BuiltScenario,
    results: &SimResults,
) -> Impact {
    let units = UnitFactors::new(&original.options);
    let to_m3 = M3_PER_FT3 / units.flow;
    let required_pressure = scenario.pda.required_pressure;
    let identity: Vec<usize> = (0..original.nodes.len()).collect();
    let base = series(
        original,
        baseline.0,
        baseline.1,
        &identity,
        required_pressure,
    );
    let with = series(
        original,
        &built.network,
        results,
        &built.original_nodes,
        required_pressure,
    );
    let customers = customers(original, &scenario.customers);
    let timeline: Vec<TimePoint> = (0..with.t.len())
        .map(|k| {
            let b = base.at(with.t[k]);
            let lost = built
                .outlets
                .iter()
                .filter(|o| o.role == OutletRole::Loss)
                .map(|o| results.steps[k].demand[o.node])
                .sum();
            TimePoint {
                hours: with.t[k] as f64 / 3600.0,
                nodes_below_baseline: base.below[b],
                nodes_below_scenario: with.below[k],
                unmet_baseline: base.unmet[b],
                unmet_scenario: with.unmet[k],
                lost,
                todini_baseline: base.todini[b],
                todini_scenario: with.todini[k],
                wsa_baseline: wsa(base.unmet[b], base.required[b]),
                wsa_scenario: wsa(with.unmet[k], with.required[k]),
            }
        })
        .collect();
    let nodes: Vec<NodeImpact> = (0..original.nodes.len())
        .filter(|&j| matches!(original.nodes[j].kind, NodeKind::Junction(_)))
        .map(|j| {
            let affected = (0..with.t.len())
                .any(|k| with.service[j][k] < base.service[j][base.at(with.t[k])] - SERVICE_DROP);
            NodeImpact {
                node: original.nodes[j].id.clone(),
                customers: customers[j],
                required_m3: with.node_required_m3[j],
                unmet_baseline_m3: base.node_unmet_m3[j],
                unmet_scenario_m3: with.node_unmet_m3[j],
                min_pressure_baseline: base.node_min_pressure[j],
                min_pressure_scenario: with.node_min_pressure[j],
                affected,
            }
        })
        .collect();
    let outlets: Vec<OutletVolume> = built
        .outlets
        .iter()
        .map(|o| {
            let flows = results.steps.iter().map(|s| s.demand[o.node]);
            OutletVolume {
                event: o.event,
                node: built.network.nodes[o.node].id.clone(),
                lost: o.role == OutletRole::Loss,
                volume_m3: flows
                    .clone()
                    .zip(&with.weight)
                    .map(|(q, w)| q * w)
                    .sum::<f64>()
                    * to_m3,
                peak_flow: flows.fold(0.0, f64::max),
            }
        })
        .collect();
    let tanks = (0..original.nodes.len())
        .filter(|&i| matches!(original.nodes[i].kind, NodeKind::Tank(_)))
        .map(|i| TankImpact {
            tank: original.nodes[i].id.clone(),
            empty_baseline_hours: empty_time(original, i, i, baseline.1),
            empty_scenario_hours: empty_time(original, i, built.original_nodes[i], results),
        })
        .collect();
    let baseline_summary = base.summary(to_m3);
    let with_summary = with.summary(to_m3);
    let halted = [("baseline", baseline.1), ("scenario", results)]
        .iter()
        .filter_map(|(run, r)| r.halted.as_ref().map(|h| format!("{run}: {}", h.message)))
        .collect();
    Impact {
        scenario: scenario.name.clone(),
        network: scenario.network_path.display().to_string(),
        duration_hours: scenario.duration as f64 / 3600.0,
        flow_units: original.options.flow_units.name().to_string(),
        required_pressure,
        unmet_increase_m3: with_summary.unmet_m3 - baseline_summary.unmet_m3,
        nodes_affected: nodes.iter().filter(|n| n.affected).count(),
        customers_affected: sum_of(nodes.iter().filter(|n| n.affected).map(|n| n.customers)),
        water_lost_m3: sum_of(outlets.iter().filter(|o| o.lost).map(|o| o.volume_m3)),
        baseline: baseline_summary,
        with_events: with_summary,
        outlets,
        tanks,
        isolations: burst_isolations(original, scenario),
        halted,
        timeline,
        nodes,
    }
}
