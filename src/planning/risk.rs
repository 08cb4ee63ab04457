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
use scenarios::criticality::{sweep_until, FailureKind, PeriodStart, Settings};
use scenarios::impact::{customers, sum_of};
use scenarios::segments::{base_demand, place_valves, segments, ValvePlacement};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
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
pub struct PipeRiskRow {
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

/// What a risk ranking is computed from: the CSV texts, each with the name its messages use,
/// and the options of `aquatwin risk` (the API's risk jobs fill them from their JSON body).
pub struct RiskInputs<'a> {
    /// Asset register: (name, text).
    pub assets: (&'a str, &'a str),
    /// Break history: (name, text).
    pub breaks: (&'a str, &'a str),
    /// Twin statistics: (name, text).
    pub twin_stats: Option<(&'a str, &'a str)>,
    /// First day the break records cover, `YYYY-MM-DD`.
    pub window_start: Option<&'a str>,
    /// Last day the break records cover, `YYYY-MM-DD`.
    pub window_end: Option<&'a str>,
    /// Years ahead the likelihood covers.
    pub horizon: f64,
    /// Isolation valves of the segments.
    pub valves: Valves,
    /// Base demand per customer, to count customers cut off.
    pub demand_per_customer: Option<f64>,
    /// Hours each segment closure is simulated.
    pub duration: f64,
    /// Worker threads of the consequence sweep.
    pub jobs: usize,
}

/// The fitted likelihood model and each pipe's probability of a break.
pub struct Likelihood {
    /// The period the break records cover.
    pub window: Window,
    /// The Weibull proportional-hazards model.
    pub model: risk::WeibullPh,
    /// Each asset's probability over the horizon and its top factors.
    pub pipes: Vec<risk::PipeRisk>,
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
    let network = read_network(&args.network)?;
    let assets_name = args.assets.display().to_string();
    let assets_text = read(&args.assets)?;
    let breaks_name = args.breaks.display().to_string();
    let breaks_text = read(&args.breaks)?;
    let twin_stats = match &args.twin_stats {
        Some(path) => Some((path.display().to_string(), read(path)?)),
        None => None,
    };
    let inputs = RiskInputs {
        assets: (&assets_name, &assets_text),
        breaks: (&breaks_name, &breaks_text),
        twin_stats: twin_stats
            .as_ref()
            .map(|(name, text)| (name.as_str(), text.as_str())),
        window_start: args.window_start.as_deref(),
        window_end: args.window_end.as_deref(),
        horizon: args.horizon,
        valves: args.valves,
        demand_per_customer: args.demand_per_customer,
        duration: args.duration,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let network_name = args.network.display().to_string();
    let Likelihood {
        window,
        model,
        pipes,
    } = fit_likelihood(&network, &network_name, &inputs)?;
    let never = AtomicBool::new(false);
    let rows = rank(&network, &inputs, pipes, &|_| {}, &never)?
        .ok_or_else(|| anyhow::anyhow!("the ranking stopped without being asked to"))?;
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

/// Checks `inputs` against `network` (named `network_name` in messages), fits the likelihood
/// model on the break history and scores every asset. Every problem with the inputs is a
/// [`BadInput`].
pub fn fit_likelihood(
    network: &Network,
    network_name: &str,
    inputs: &RiskInputs,
) -> anyhow::Result<Likelihood> {
    let bad = |e: &dyn std::fmt::Display| anyhow::Error::from(BadInput(e.to_string()));
    if !(inputs.duration.is_finite() && inputs.duration > 0.0) {
        return Err(bad(&format!(
            "--duration must be positive, not {}",
            inputs.duration
        )));
    }
    if !(inputs.horizon.is_finite() && inputs.horizon > 0.0) {
        return Err(bad(&format!(
            "--horizon must be positive, not {}",
            inputs.horizon
        )));
    }
    let (assets_name, assets_text) = inputs.assets;
    let assets = risk::parse_assets(assets_text, assets_name).map_err(|e| bad(&e))?;
    let unknown: Vec<&str> = assets
        .iter()
        .filter(|a| network.link_index(&a.id).is_none())
        .map(|a| a.id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(bad(&format!(
            "{assets_name}: pipes not in {network_name}: {}",
            unknown.join(", ")
        )));
    }
    let (breaks_name, breaks_text) = inputs.breaks;
    let breaks = risk::parse_breaks(breaks_text, breaks_name).map_err(|e| bad(&e))?;
    let first = breaks.iter().map(|b| b.date.year()).min();
    let last = breaks.iter().map(|b| b.date.year()).max();
    let start = match (inputs.window_start, first) {
        (Some(text), _) => date(text, "--window-start")?,
        (None, Some(year)) => Date::new(year, 1, 1).ok_or_else(|| bad(&"bad break year"))?,
        (None, None) => return Err(bad(&format!("{breaks_name}: no breaks to fit on"))),
    };
    let end = match (inputs.window_end, last) {
        (Some(text), _) => date(text, "--window-end")?,
        (None, Some(year)) => Date::new(year, 12, 31).ok_or_else(|| bad(&"bad break year"))?,
        (None, None) => return Err(bad(&format!("{breaks_name}: no breaks to fit on"))),
    };
    let window = Window::new(start, end)
        .ok_or_else(|| bad(&"the observation window ends before it starts"))?;
    let mut data = Dataset::new(assets, &breaks, window).map_err(|e| bad(&e))?;
    if let Some((name, text)) = inputs.twin_stats {
        let stats = risk::parse_twin_stats(text, name).map_err(|e| bad(&e))?;
        data = data.with_twin_stats(stats).map_err(|e| bad(&e))?;
    }
    let model = risk::fit(&data, &FitOptions::default()).map_err(|e| bad(&e))?;
    let pipes = model
        .score(
            &data,
            &ScoreOptions {
                horizon_years: inputs.horizon,
                ..ScoreOptions::default()
            },
        )
        .map_err(|e| bad(&e))?;
    Ok(Likelihood {
        window,
        model,
        pipes,
    })
}

/// The consequence of each pipe of `likelihood` (its isolation segment closed for
/// `inputs.duration` hours) and the ranking by probability x consequence; `progress` is called
/// with the number of segment closures done; `None` once `stop` is set.
pub fn rank(
    network: &Network,
    inputs: &RiskInputs,
    likelihood: Vec<risk::PipeRisk>,
    progress: &(dyn Fn(usize) + Sync),
    stop: &AtomicBool,
) -> anyhow::Result<Option<Vec<PipeRiskRow>>> {
    let placement: ValvePlacement = inputs.valves.into();
    let segs = segments(network, place_valves(network, placement));
    let pipes: Vec<usize> = likelihood
        .iter()
        .filter_map(|p| network.link_index(&p.pipe_id))
        .collect();
    let settings = Settings {
        kind: FailureKind::Segment,
        duration: (inputs.duration * 3600.0).round() as u64,
        pda: scenarios::spec::default_pda(network),
        jobs: inputs.jobs,
        burst_area_fraction: 0.0,
    };
    let Some(report) = sweep_until(
        network,
        &pipes,
        &settings,
        Some(&segs),
        progress,
        stop,
        PeriodStart::Warm,
    )
    .map_err(|error| BadInput(error.to_string()))?
    else {
        return Ok(None);
    };
    let by_pipe: std::collections::HashMap<&str, &scenarios::criticality::PipeCriticality> =
        report.pipes.iter().map(|c| (c.pipe.as_str(), c)).collect();
    let customer_counts = customers(
        network,
        &scenarios::spec::CustomerSettings {
            demand_per_customer: inputs.demand_per_customer,
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
    Ok(Some(rows))
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
