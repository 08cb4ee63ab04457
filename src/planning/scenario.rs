//! `aquatwin scenario`: run a what-if scenario file against its baseline and report the impact.

use super::{csv_field, write_csv, write_json};
use crate::simulate::read_network;
use crate::BadInput;
use anyhow::Context as _;
use hydraulics::results::ResultsDocument;
use hydraulics::{SimOptions, SimResults, SolverError};
use scenarios::impact::{assess, Impact, RunSummary};
use scenarios::{BuiltScenario, Scenario};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML; its format is in the `scenarios` crate documentation).
    pub scenario: PathBuf,
    /// Write the impact report (JSON) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write CSV tables (timeline, nodes, outlets, tanks) into this folder.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write SVG charts (pressure at the junctions hit hardest, unmet demand, junctions below
    /// the required pressure) into this folder.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the scenario's network (events as elements and controls) as an .inp file.
    #[arg(long)]
    pub write_inp: Option<PathBuf>,
    /// Write the scenario run's results (every step, the results JSON layout).
    #[arg(long)]
    pub results: Option<PathBuf>,
}

pub fn run(args: &ScenarioArgs) -> anyhow::Result<()> {
    let file = &args.scenario;
    let text = std::fs::read_to_string(file)
        .map_err(|error| BadInput(format!("{}: cannot read: {error}", file.display())))?;
    let network_path =
        scenarios::spec::network_path(&text, file).map_err(|error| BadInput(error.to_string()))?;
    let network = read_network(&network_path)?;
    let scenario =
        scenarios::parse(&text, file, &network).map_err(|error| BadInput(error.to_string()))?;
    let ScenarioRun {
        base_results,
        built,
        results,
        impact,
    } = run_scenario(&network, &scenario, file)?;
    if let Some(path) = &args.write_inp {
        std::fs::write(path, hydraulics::write_string(&built.network))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.results {
        let document = ResultsDocument::from_simulation(&built.network, &results, &scenario.name);
        write_json(path, &document)?;
    }
    print_impact(&impact);
    if let Some(path) = &args.out {
        write_json(path, &impact)?;
    }
    if let Some(folder) = &args.csv {
        write_tables(folder, &impact)?;
    }
    if let Some(folder) = &args.plot {
        let identity: Vec<usize> = (0..network.nodes.len()).collect();
        super::plot::write_charts(
            folder,
            &impact,
            (&identity, &base_results),
            (&built.original_nodes, &results),
        )?;
    }
    Ok(())
}

/// A scenario run: the baseline's results, the scenario's network and results, the impact.
pub struct ScenarioRun {
    /// The baseline's results (same duration and PDA settings, no events).
    pub base_results: SimResults,
    /// The network with the events written into it.
    pub built: BuiltScenario,
    /// The scenario network's results.
    pub results: SimResults,
    /// What `--out` writes.
    pub impact: Impact,
}

/// Runs `scenario` (read from `file`, named in errors) and its baseline on `network`, and
/// assesses the impact: what `aquatwin scenario` and the API's scenario jobs report.
pub fn run_scenario(
    network: &hydraulics::Network,
    scenario: &Scenario,
    file: &Path,
) -> anyhow::Result<ScenarioRun> {
    let base = scenarios::baseline(network, scenario);
    let built = scenarios::build(network, scenario);
    let (base_results, results) = (solve(&base, file)?, solve(&built.network, file)?);
    let impact = assess(network, scenario, (&base, &base_results), &built, &results);
    Ok(ScenarioRun {
        base_results,
        built,
        results,
        impact,
    })
}

fn solve(network: &hydraulics::Network, file: &Path) -> anyhow::Result<SimResults> {
    hydraulics::simulate(network, &SimOptions::default()).map_err(|error| match error {
        SolverError::InvalidNetwork(_) => BadInput(format!("{}: {error}", file.display())).into(),
        SolverError::IllConditioned { .. } => anyhow::Error::from(error),
    })
}

/// How a row of the summary table shows one run's figure.
type SummaryCell = fn(&RunSummary) -> String;

fn print_impact(impact: &Impact) {
    println!(
        "scenario `{}` on {}: {} h, pressure driven demand, required pressure {:.2}",
        impact.scenario, impact.network, impact.duration_hours, impact.required_pressure
    );
    println!("{:<42} {:>14} {:>14}", "", "baseline", "scenario");
    let rows: [(&str, SummaryCell); 7] = [
        ("demand required (m3)", |s| format!("{:.1}", s.required_m3)),
        ("unmet demand (m3)", |s| format!("{:.1}", s.unmet_m3)),
        ("unmet demand (%)", |s| format!("{:.2}", s.unmet_percent)),
        ("most junctions below required pressure", |s| {
            s.max_nodes_below_required.to_string()
        }),
        ("junction-hours below required pressure", |s| {
            format!("{:.1}", s.node_hours_below_required)
        }),
        ("lowest Todini resilience index", |s| {
            format!("{:.3}", s.min_todini)
        }),
        ("water service availability", |s| {
            format!("{:.4}", s.water_service_availability)
        }),
    ];
    for (label, value) in rows {
        println!(
            "{label:<42} {:>14} {:>14}",
            value(&impact.baseline),
            value(&impact.with_events)
        );
    }
    println!(
        "extra unmet demand: {:.1} m3; junctions affected: {}; customers affected: {:.0}",
        impact.unmet_increase_m3, impact.nodes_affected, impact.customers_affected
    );
    for outlet in &impact.outlets {
        println!(
            "events[{}] {} at {}: {:.1} m3, peak {:.2} {}",
            outlet.event,
            if outlet.lost { "lost" } else { "drawn" },
            outlet.node,
            outlet.volume_m3,
            outlet.peak_flow,
            impact.flow_units
        );
    }
    println!("water lost: {:.1} m3", impact.water_lost_m3);
    for plan in &impact.isolations {
        println!(
            "events[{}] isolating pipe {}: close {}; {} junctions cut off ({:.1} {} base demand, \
             {:.0} customers); {} if a valve fails to close",
            plan.event,
            plan.pipe,
            plan.valves.join(", "),
            plan.cut_off.len(),
            plan.demand_cut_off,
            impact.flow_units,
            plan.customers_cut_off,
            plan.cut_off_if_a_valve_fails
        );
    }
    for tank in &impact.tanks {
        let when = |h: Option<f64>| h.map_or("never".to_string(), |h| format!("{h:.2} h"));
        println!(
            "tank {} empties: baseline {}, scenario {}",
            tank.tank,
            when(tank.empty_baseline_hours),
            when(tank.empty_scenario_hours)
        );
    }
    for halt in &impact.halted {
        println!("warning: {halt}");
    }
}

fn write_tables(folder: &Path, impact: &Impact) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let timeline: Vec<String> = impact
        .timeline
        .iter()
        .map(|p| {
            format!(
                "{},{},{},{},{},{},{},{},{},{}",
                p.hours,
                p.nodes_below_baseline,
                p.nodes_below_scenario,
                p.unmet_baseline,
                p.unmet_scenario,
                p.lost,
                p.todini_baseline,
                p.todini_scenario,
                p.wsa_baseline,
                p.wsa_scenario
            )
        })
        .collect();
    write_csv(
        &folder.join("timeline.csv"),
        "hours,nodes_below_baseline,nodes_below_scenario,unmet_baseline,unmet_scenario,lost,\
         todini_baseline,todini_scenario,wsa_baseline,wsa_scenario",
        &timeline,
    )?;
    let nodes: Vec<String> = impact
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{},{},{},{},{},{},{},{}",
                csv_field(&n.node),
                n.customers,
                n.required_m3,
                n.unmet_baseline_m3,
                n.unmet_scenario_m3,
                n.min_pressure_baseline,
                n.min_pressure_scenario,
                n.affected
            )
        })
        .collect();
    write_csv(
        &folder.join("nodes.csv"),
        "node,customers,required_m3,unmet_baseline_m3,unmet_scenario_m3,min_pressure_baseline,\
         min_pressure_scenario,affected",
        &nodes,
    )?;
    let outlets: Vec<String> = impact
        .outlets
        .iter()
        .map(|o| {
            format!(
                "{},{},{},{},{}",
                o.event,
                csv_field(&o.node),
                o.lost,
                o.volume_m3,
                o.peak_flow
            )
        })
        .collect();
    write_csv(
        &folder.join("outlets.csv"),
        "event,node,lost,volume_m3,peak_flow",
        &outlets,
    )?;
    let hours = |h: Option<f64>| h.map_or(String::new(), |h| h.to_string());
    let tanks: Vec<String> = impact
        .tanks
        .iter()
        .map(|t| {
            format!(
                "{},{},{}",
                csv_field(&t.tank),
                hours(t.empty_baseline_hours),
                hours(t.empty_scenario_hours)
            )
        })
        .collect();
    write_csv(
        &folder.join("tanks.csv"),
        "tank,empty_baseline_hours,empty_scenario_hours",
        &tanks,
    )
}
