//! `aquatwin criticality`: every pipe fails in turn; pipes ranked by the demand left unmet.
//! `--bench` times the pipe-closure sweep with 1 and 2 worker threads (and with periods started
//! cold, as EPANET starts them) against EPANET's toolkit in a loop (owa-epanet,
//! `tests/peers/epanet_scenario_criticality.py`), in the same run.

use super::{csv_field, is_json, write_csv, write_json};
use crate::simulate::read_network;
use crate::BadInput;
use anyhow::Context as _;
use hydraulics::Network;
use scenarios::criticality::{pipes, sweep, FailureKind, PeriodStart, Report, Settings};
use scenarios::segments::{place_valves, segments, ValvePlacement};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const EPANET_LOOP: &str = include_str!("../../tests/peers/epanet_scenario_criticality.py");

/// How each pipe fails (`--kind`; the `failure` of the API's criticality jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    PipeClosure,
    Burst,
    Segment,
}

impl From<Kind> for FailureKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::PipeClosure => FailureKind::PipeClosure,
            Kind::Burst => FailureKind::Burst,
            Kind::Segment => FailureKind::Segment,
        }
    }
}

/// Where the isolation valves are (`--valves`; `valves` of the API's jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Valves {
    /// The model's own valves are the isolation valves.
    Model,
    /// One isolation valve at each end of every pipe.
    PipeEnds,
}

impl From<Valves> for ValvePlacement {
    fn from(valves: Valves) -> Self {
        match valves {
            Valves::Model => ValvePlacement::ModelValves,
            Valves::PipeEnds => ValvePlacement::PipeEnds,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CriticalityArgs {
    /// The EPANET .inp network file.
    pub network: PathBuf,
    /// How each pipe fails.
    #[arg(long, value_enum, default_value_t = Kind::PipeClosure)]
    pub kind: Kind,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Hours simulated per failure (default: the network's duration).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write the ranking here (.json, else CSV).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the first N pipes (in file order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Isolation valves for `--kind segment`.
    #[arg(long, value_enum, default_value_t = Valves::PipeEnds)]
    pub valves: Valves,
    /// Burst orifice area as a fraction of the pipe's cross section (`--kind burst`).
    #[arg(long, default_value_t = 0.1)]
    pub burst_area: f64,
    /// Start every period's solve as EPANET does (previous flows, full demands) instead of
    /// from the failure's previous period moved by the baseline's change: slower; for checking.
    #[arg(long)]
    pub cold_start: bool,
    /// Time the pipe-closure sweep with 1 and 2 jobs against EPANET's toolkit in a loop.
    #[arg(long)]
    pub bench: bool,
    /// Rounds of --bench (each round our three sweeps, then EPANET's loop over the pipes); the
    /// figures are means over the rounds, besides the ratio of the fastest rounds.
    #[arg(long, default_value_t = 5)]
    pub bench_rounds: usize,
    /// Python interpreter with owa-epanet, for --bench.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

pub fn run(args: &CriticalityArgs) -> anyhow::Result<()> {
    let network = read_network(&args.network)?;
    let duration = match args.duration {
        Some(hours) if !(hours.is_finite() && hours > 0.0) => {
            return Err(BadInput(format!("--duration must be positive hours, not {hours}")).into())
        }
        Some(hours) => (hours * 3600.0).round() as u64,
        None => network.times.duration,
    };
    if !(args.burst_area > 0.0 && args.burst_area <= 1.0) {
        return Err(BadInput(format!(
            "--burst-area must be a fraction in (0, 1], not {}",
            args.burst_area
        ))
        .into());
    }
    let mut elements = pipes(&network);
    if let Some(limit) = args.limit {
        elements.truncate(limit);
    }
    let settings = Settings {
        kind: args.kind.into(),
        duration,
        pda: scenarios::spec::default_pda(&network),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        burst_area_fraction: args.burst_area,
    };
    if args.bench {
        return bench(args, &network, &elements, &settings);
    }
    let segs = (settings.kind == FailureKind::Segment)
        .then(|| segments(&network, place_valves(&network, args.valves.into())));
    let started = Instant::now();
    let start = if args.cold_start {
        PeriodStart::Cold
    } else {
        PeriodStart::Warm
    };
    let report = run_sweep(&network, &elements, &settings, segs.as_ref(), start, true)?;
    let elapsed = started.elapsed().as_secs_f64();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    println!(
        "criticality ({}) of {} pipes, {} h each, {} jobs: {:.2} s ({:.2} ms per scenario)",
        report.kind,
        report.pipes.len(),
        report.duration_hours,
        settings.jobs,
        elapsed,
        1000.0 * elapsed / report.pipes.len().max(1) as f64
    );
    println!("rank  pipe        unmet+ (m3)  unmet %  max below  node-hours below  cut off");
    for pipe in report.pipes.iter().take(10) {
        println!(
            "{:>4}  {:<10} {:>12.1} {:>8.2} {:>10} {:>17.1} {:>8}",
            pipe.rank,
            pipe.pipe,
            pipe.unmet_increase_m3,
            pipe.unmet_percent,
            pipe.max_nodes_below_required,
            pipe.node_hours_below_required,
            pipe.cut_off_nodes
        );
    }
    if let Some(out) = &args.out {
        write_report(out, &report)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn run_sweep(
    network: &Network,
    elements: &[usize],
    settings: &Settings,
    segs: Option<&scenarios::segments::Segments>,
    start: PeriodStart,
    show_progress: bool,
) -> anyhow::Result<Report> {
    let total = elements.len();
    // A progress line rewritten in place only makes sense on a terminal.
    let show_progress = show_progress && std::io::stderr().is_terminal();
    let progress = move |done: usize| {
        if show_progress {
            let mut err = std::io::stderr().lock();
            // Progress is best effort: a closed stderr must not stop the sweep.
            let _ = write!(err, "\rcriticality: {done}/{total} scenarios");
            let _ = err.flush();
        }
    };
    sweep(network, elements, settings, segs, &progress, start)
        .map_err(|error| BadInput(format!("{}: {error}", network_name(network))).into())
}

fn network_name(network: &Network) -> String {
    network
        .title
        .first()
        .cloned()
        .unwrap_or_else(|| "network".to_string())
}

fn write_report(out: &Path, report: &Report) -> anyhow::Result<()> {
    if is_json(out) {
        return write_json(out, report);
    }
    let rows: Vec<String> = report
        .pipes
        .iter()
        .map(|p| {
            format!(
                "{},{},{},{},{},{},{},{}",
                p.rank,
                csv_field(&p.pipe),
                p.unmet_increase_m3,
                p.unmet_percent,
                p.max_nodes_below_required,
                p.node_hours_below_required,
                p.cut_off_nodes,
                csv_field(p.halted.as_deref().unwrap_or(""))
            )
        })
        .collect();
    write_csv(
        out,
        "rank,pipe,unmet_increase_m3,unmet_percent,max_nodes_below_required,\
         node_hours_below_required,cut_off_nodes,halted",
        &rows,
    )
}

/// Pipe closures with 1 and 2 jobs and with cold starts, and EPANET's loop over the same pipes
/// on the same network (written by our writer with the same duration and PDA settings), round
/// by round so that a slow spell of the machine hits both sides alike.
fn bench(
    args: &CriticalityArgs,
    network: &Network,
    elements: &[usize],
    settings: &Settings,
) -> anyhow::Result<()> {
    let closure = Settings {
        kind: FailureKind::PipeClosure,
        ..settings.clone()
    };
    let configurations = [
        (1, PeriodStart::Warm),
        (2, PeriodStart::Warm),
        (1, PeriodStart::Cold),
    ];
    let scratch = std::env::temp_dir().join(format!("aquatwin-crit-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let outcome = (|| {
        let epanet_loop = EpanetLoop::write(&scratch, network, elements, &closure, &args.python)?;
        let rounds = args.bench_rounds.max(1);
        let scenarios = elements.len().max(1) as f64;
        // Per round, seconds per scenario: our three sweeps, then EPANET's.
        let mut ours = Vec::with_capacity(rounds);
        let mut epanet = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let mut round = [0.0; 3];
            for (spent, &(jobs, start)) in round.iter_mut().zip(&configurations) {
                let started = Instant::now();
                let jobs_settings = Settings {
                    jobs,
                    ..closure.clone()
                };
                run_sweep(network, elements, &jobs_settings, None, start, false)?;
                *spent = started.elapsed().as_secs_f64() / scenarios;
            }
            ours.push(round);
            epanet.push(epanet_loop.per_scenario()?);
        }
        anyhow::Ok((ours, epanet))
    })();
    // The scratch folder is ours alone; failing to remove it leaves only temp files.
    let _ = std::fs::remove_dir_all(&scratch);
    let (ours_rounds, epanet_rounds) = outcome?;
    let rounds = ours_rounds.len();
    let mean = |values: &mut dyn Iterator<Item = f64>| values.sum::<f64>() / rounds as f64;
    let ours: [f64; 3] =
        std::array::from_fn(|i| mean(&mut ours_rounds.iter().map(|round| round[i])));
    let epanet = mean(&mut epanet_rounds.iter().copied());
    let fastest = |values: &mut dyn Iterator<Item = f64>| values.fold(f64::INFINITY, f64::min);
    let fastest_ratio = fastest(&mut ours_rounds.iter().map(|round| round[0]))
        / fastest(&mut epanet_rounds.iter().copied());
    println!(
        "pipe-closure criticality, {} pipes x {rounds} rounds, {} h PDA each ({})",
        elements.len(),
        closure.duration as f64 / 3600.0,
        args.network.display()
    );
    println!(
        "ours 1 job: {:.3} ms/scenario; ours 2 jobs: {:.3} ms/scenario (speed-up {:.2}x); \
         ours 1 job, cold starts: {:.3} ms/scenario; EPANET loop: {:.3} ms/scenario; \
         ours(1 job)/EPANET = {:.2} (cold starts: {:.2}; fastest rounds: {:.2})",
        ours[0] * 1000.0,
        ours[1] * 1000.0,
        ours[0] / ours[1],
        ours[2] * 1000.0,
        epanet * 1000.0,
        ours[0] / epanet,
        ours[2] / epanet,
        fastest_ratio
    );
    Ok(())
}

/// EPANET's criticality loop (`tests/peers/epanet_scenario_criticality.py`) over the pipes,
/// ready to run one round at a time.
struct EpanetLoop {
    python: String,
    peer: PathBuf,
    inp: PathBuf,
    list: PathBuf,
}

impl EpanetLoop {
    /// Writes the peer, the baseline network and the pipe list into `scratch`.
    fn write(
        scratch: &Path,
        network: &Network,
        elements: &[usize],
        closure: &Settings,
        python: &str,
    ) -> anyhow::Result<Self> {
        let scenario = Settings {
            jobs: 1,
            ..closure.clone()
        }
        .scenario(Vec::new());
        let inp = scratch.join("baseline.inp");
        std::fs::write(
            &inp,
            hydraulics::write_string(&scenarios::baseline(network, &scenario)),
        )?;
        let list = scratch.join("pipes.txt");
        let ids: Vec<&str> = elements
            .iter()
            .map(|&l| network.links[l].id.as_str())
            .collect();
        std::fs::write(&list, ids.join("\n"))?;
        let peer = scratch.join("epanet_scenario_criticality.py");
        std::fs::write(&peer, EPANET_LOOP)?;
        Ok(Self {
            python: python.to_string(),
            peer,
            inp,
            list,
        })
    }

    /// One round over the pipes: EPANET's seconds per scenario.
    fn per_scenario(&self) -> anyhow::Result<f64> {
        let output = Command::new(&self.python)
            .arg(&self.peer)
            .arg(&self.inp)
            .arg(&self.list)
            .output()
            .with_context(|| format!("cannot run {}", self.python))?;
        if !output.status.success() {
            anyhow::bail!(
                "EPANET loop failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let timing: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("the EPANET loop printed no JSON")?;
        timing["per_scenario_s"]
            .as_f64()
            .context("the EPANET loop gave no per_scenario_s")
    }
}
