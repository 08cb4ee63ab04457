//! `aquatwin risk`: pipes ranked by risk = likelihood of a break over a horizon (a Weibull
//! proportional-hazards model fitted on the break history, `twin::risk`) x consequence (the
//! demand left unmet while the pipe's isolation segment is closed, under pressure driven
//! demand, which counts the junctions cut off and the pressure lost elsewhere).
//!
//! Input formats: the assets, breaks and twin-statistics CSV files of `twin::risk`
//! (documented in `twin/data/README.md`); `twin/data/net3_*.csv` is a synthetic Net3 example.

use super::{csv_field, is_json, write_csv, write_json};
use crate::simulate::read_network;
use crate::BadInput;
use hydraulics::Network;
use scenarios::criticality::{sweep, FailureKind, Settings};
use scenarios::impact::{customers, sum_of};
use scenarios::segments::{base_demand, place_valves, segments, ValvePlacement};
use serde::Serialize;
use std::path::{Path, PathBuf};
use twin::risk::{self, Dataset, Date, FitOptions, ScoreOptions, Window};

use super::criticality::Valves;

#[derive(Debug, clap::Args)]
pub struct RiskArgs {
    /// The EPANET .inp network file.
    pub network: PathBuf,
    /// Asset register CSV (pipe_id, install_year, material, diameter_mm, length_m[, zone]).
    #[arg(long)]
    pub assets: PathBuf,
    /// Break history CSV (pipe_id, date); the likelihood model is fitted on it.
    #[arg(long)]
    pub breaks: PathBuf,
    /// Twin statistics CSV (pipe_id, mean_pressure_m, max_pressure_m, transients_per_year).
    #[arg(long)]
    pub twin_stats: Option<PathBuf>,
    /// First day the break records cover (default: 1 January of the first break's year).
    #[arg(long)]
    pub window_start: Option<String>,
    /// Last day the break records cover (default: 31 December of the last break's year).
    #[arg(long)]
    pub window_end: Option<String>,
    /// Years ahead the likelihood covers.
    #[arg(long, default_value_t = 5.0)]
    pub horizon: f64,
    /// Isolation valves of the segments.
    #[arg(long, value_enum, default_value_t = Valves::PipeEnds)]
    pub valves: Valves,
    /// Base demand (network flow units) per customer, to count customers cut off.
    #[arg(long)]
    pub demand_per_customer: Option<f64>,
    /// Hours each segment closure is simulated for the consequence.
    #[arg(long, default_value_t = 24.0)]
    pub duration: f64,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write the ranking here (.json, else CSV).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One pipe's risk and the reasons for it.
#[derive(Debug, Clone, Serialize)]
struct PipeRiskRow {
    rank: usize,
    pipe: String,
    /// Probability of at least one break over the horizon.
    probability: f64,
    /// Demand left unmet while the pipe's segment is closed, m3 over the simulated duration.
    consequence_m3: f64,
    /// probability x consequence, m3.
    risk_m3: f64,
    cut_off_junctions: usize,
    demand_cut_off: f64,
    customers_cut_off: f64,
    /// Junctions cut off when the worst valve around the segment fails to close (N-1).
    cut_off_if_a_valve_fails: usize,
    /// Valves to close to isolate the pipe (`link@node`: on that link, at that node's end).
    valves: Vec<String>,
    /// The likelihood factors with the largest effect (`name=value (xmultiplier)`), then the
    /// consequence.
    factors: Vec<String>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|error| BadInput(format!("{}: cannot read: {error}", path.display())).into())
}

fn date(text: &str, option: &str) -> anyhow::Result<Date> {
    Date::parse(text)
        .ok_or_else(|| BadInput(format!("{option}: `{text}` is not a YYYY-MM-DD date")).into())
}

pub fn run(args: &RiskArgs) -> anyhow::Result<()> {
    let bad = |e: &dyn std::fmt::Display| anyhow::Error::from(BadInput(e.to_string()));
    let network = read_network(&args.network)?;
    let assets_name = args.assets.display().to_string();
    let assets = risk::parse_assets(&read(&args.assets)?, &assets_name).map_err(|e| bad(&e))?;
    let unknown: Vec<&str> = assets
        .iter()
        .filter(|a| network.link_index(&a.id).is_none())
        .map(|a| a.id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(bad(&format!(
            "{assets_name}: pipes not in {}: {}",
            args.network.display(),
            unknown.join(", ")
        )));
    }
    let breaks_name = args.breaks.display().to_string();
    let breaks = risk::parse_breaks(&read(&args.breaks)?, &breaks_name).map_err(|e| bad(&e))?;
    let first = breaks.iter().map(|b| b.date.year()).min();
    let last = breaks.iter().map(|b| b.date.year()).max();
    let start = match (&args.window_start, first) {
        (Some(text), _) => date(text, "--window-start")?,
        (None, Some(year)) => Date::new(year, 1, 1).ok_or_else(|| bad(&"bad break year"))?,
        (None, None) => return Err(bad(&format!("{breaks_name}: no breaks to fit on"))),
    };
    let end = match (&args.window_end, last) {
        (Some(text), _) => date(text, "--window-end")?,
        (None, Some(year)) => Date::new(year, 12, 31).ok_or_else(|| bad(&"bad break year"))?,
        (None, None) => return Err(bad(&format!("{breaks_name}: no breaks to fit on"))),
    };
    let window = Window::new(start, end)
        .ok_or_else(|| bad(&"the observation window ends before it starts"))?;
    let mut data = Dataset::new(assets, &breaks, window).map_err(|e| bad(&e))?;
    if let Some(path) = &args.twin_stats {
        let stats = risk::parse_twin_stats(&read(path)?, &path.display().to_string())
            .map_err(|e| bad(&e))?;
        data = data.with_twin_stats(stats).map_err(|e| bad(&e))?;
    }
    let model = risk::fit(&data, &FitOptions::default()).map_err(|e| bad(&e))?;
    if !(args.horizon.is_finite() && args.horizon > 0.0) {
        return Err(bad(&format!(
            "--horizon must be positive, not {}",
            args.horizon
        )));
    }
    let likelihood = model
        .score(
            &data,
            &ScoreOptions {
                horizon_years: args.horizon,
                ..ScoreOptions::default()
            },
        )
        .map_err(|e| bad(&e))?;
    let rows = consequences_and_rank(args, &network, likelihood)?;
    println!(
        "risk of {} pipes: Weibull PH fit on {} breaks over {window} (shape {:.2}, scale {:.1} \
         years), {}-year horizon x unmet demand with the segment closed for {} h",
        rows.len(),
        model.breaks,
        model.shape.value,
        model.scale.value,
        args.horizon,
        args.duration
    );
    println!("rank  pipe     P(break)  consequence m3    risk m3  top factors");
    for row in rows.iter().take(10) {
        println!(
            "{:>4}  {:<8} {:>8.3} {:>14.1} {:>10.2}  {}",
            row.rank,
            row.pipe,
            row.probability,
            row.consequence_m3,
            row.risk_m3,
            row.factors.join("; ")
        );
    }
    if let Some(out) = &args.out {
        write_rows(out, &rows)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn consequences_and_rank(
    args: &RiskArgs,
    network: &Network,
    likelihood: Vec<risk::PipeRisk>,
) -> anyhow::Result<Vec<PipeRiskRow>> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(BadInput(format!(
            "--duration must be positive, not {}",
            args.duration
        ))
        .into());
    }
    let placement: ValvePlacement = args.valves.into();
    let segs = segments(network, place_valves(network, placement));
    let pipes: Vec<usize> = likelihood
        .iter()
        .filter_map(|p| network.link_index(&p.pipe_id))
        .collect();
    let settings = Settings {
        kind: FailureKind::Segment,
        duration: (args.duration * 3600.0).round() as u64,
        pda: scenarios::spec::default_pda(network),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        burst_area_fraction: 0.0,
    };
    let report = sweep(network, &pipes, &settings, Some(&segs), &|_| {})
        .map_err(|error| BadInput(error.to_string()))?;
    let by_pipe: std::collections::HashMap<&str, &scenarios::criticality::PipeCriticality> =
        report.pipes.iter().map(|c| (c.pipe.as_str(), c)).collect();
    let customer_counts = customers(
        network,
        &scenarios::spec::CustomerSettings {
            demand_per_customer: args.demand_per_customer,
            nodes: Default::default(),
        },
    );
    let mut rows: Vec<PipeRiskRow> = likelihood
        .into_iter()
        .filter_map(|p| {
            let link = network.link_index(&p.pipe_id)?;
            let criticality = by_pipe.get(p.pipe_id.as_str())?;
            let isolation = segs.isolate(network, link);
            let consequence = criticality.unmet_increase_m3.max(0.0);
            let customers_cut = sum_of(isolation.cut_off.iter().map(|&n| customer_counts[n]));
            let worst_failure = segs
                .isolate_with_failure(network, link)
                .iter()
                .map(|failure| failure.cut_off.len())
                .max()
                .unwrap_or(isolation.cut_off.len());
            let mut factors: Vec<String> = p
                .factors
                .iter()
                .map(|c| format!("{}={} (x{:.2})", c.factor, c.value, c.log_ratio.exp()))
                .collect();
            factors.push(format!(
                "consequence: {} junctions cut off, {:.1} m3 unmet",
                isolation.cut_off.len(),
                consequence
            ));
            Some(PipeRiskRow {
                rank: 0,
                pipe: p.pipe_id.clone(),
                probability: p.probability,
                consequence_m3: consequence,
                risk_m3: p.probability * consequence,
                cut_off_junctions: isolation.cut_off.len(),
                demand_cut_off: base_demand(network, &isolation.cut_off),
                customers_cut_off: customers_cut,
                cut_off_if_a_valve_fails: worst_failure,
                valves: isolation
                    .valves
                    .iter()
                    .map(|&v| segs.valves[v].name(network))
                    .collect(),
                factors,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.risk_m3
            .total_cmp(&a.risk_m3)
            .then(b.probability.total_cmp(&a.probability))
            .then_with(|| a.pipe.cmp(&b.pipe))
    });
    for (rank, row) in rows.iter_mut().enumerate() {
        row.rank = rank + 1;
    }
    Ok(rows)
}

fn write_rows(out: &Path, rows: &[PipeRiskRow]) -> anyhow::Result<()> {
    if is_json(out) {
        return write_json(out, &rows);
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{},{},{},{},{},{},{},{},{},{},{}",
                r.rank,
                csv_field(&r.pipe),
                r.probability,
                r.consequence_m3,
                r.risk_m3,
                r.cut_off_junctions,
                r.demand_cut_off,
                r.customers_cut_off,
                r.cut_off_if_a_valve_fails,
                csv_field(&r.valves.join(" ")),
                csv_field(&r.factors.join("; "))
            )
        })
        .collect();
    write_csv(
        out,
        "rank,pipe,probability,consequence_m3,risk_m3,cut_off_junctions,demand_cut_off,\
         customers_cut_off,cut_off_if_a_valve_fails,valves,factors",
        &lines,
    )
}
