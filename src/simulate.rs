//! `aquatwin simulate` and `aquatwin demo`: run a network and report on the run.

use crate::BadInput;
use anyhow::Context as _;
use hydraulics::model::NodeKind;
use hydraulics::results::{clock_time, ResultsDocument, UnitsRecord};
use hydraulics::{InpError, Network, SimOptions, SimResults, SolverError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The demo network, EPANET's Net3 (public domain), shipped inside the binary.
const DEMO_NETWORK: &str = include_str!("../hydraulics/networks/Net3.inp");

/// The summary line that reports the process's peak memory; `aquatwin bench` reads it.
pub const PEAK_MEMORY_LABEL: &str = "peak memory";

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The EPANET .inp network file.
    pub network: PathBuf,
    /// Write the results (every hydraulic step, the reference JSON layout) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Solve only the first period, as EPANET does with a zero duration.
    #[arg(long)]
    pub steady: bool,
    /// Print a summary of the run (the default when no --out is given).
    #[arg(long)]
    pub summary: bool,
    /// Threads the solver may use (a second one helps networks of a few thousand junctions
    /// and more; the results are the same to the bit). Default: 2, or 1 on a single core.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The solver's threads when none are asked for: a second one where there is a second core.
pub fn default_solver_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Everything a summary reports about one run.
struct Run {
    name: String,
    network: Network,
    results: SimResults,
    read_time: Duration,
    solve_time: Duration,
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let network = read_network(&args.network)?;
    let read_time = started.elapsed();
    let name = args.network.file_stem().map_or_else(
        || "network".to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let options = SimOptions {
        steady: args.steady,
        threads: args.threads.unwrap_or_else(default_solver_threads),
    };
    let run = solve(name, network, &options, read_time)?;
    if let Some(out) = &args.out {
        write_results(&run, out)?;
        println!(
            "wrote {} ({} steps)",
            out.display(),
            run.results.steps.len()
        );
    }
    if args.summary || args.out.is_none() {
        print_summary(&run);
    }
    Ok(())
}

pub fn demo() -> anyhow::Result<()> {
    let started = Instant::now();
    let network = hydraulics::read_str(DEMO_NETWORK, "Net3.inp")
        .context("the embedded demo network does not read")?;
    let options = SimOptions::default();
    let run = solve("Net3".to_string(), network, &options, started.elapsed())?;
    println!("aquatwin demo: EPANET example network 3 (North Marin Water District), one week");
    print_summary(&run);
    Ok(())
}

/// Reads an .inp file; every way it can fail is the user's to fix.
pub(crate) fn read_network(path: &Path) -> anyhow::Result<Network> {
    let is_inp = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("inp"));
    if !is_inp {
        return Err(BadInput(format!(
            "{}: not an EPANET network (expected a file ending in .inp)",
            path.display()
        ))
        .into());
    }
    hydraulics::read_file(path).map_err(|error| match error {
        InpError::Io { .. } | InpError::Invalid(_) => BadInput(error.to_string()).into(),
    })
}

fn solve(
    name: String,
    network: Network,
    options: &SimOptions,
    read_time: Duration,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let results = hydraulics::simulate(&network, options).map_err(|error| -> anyhow::Error {
        match error {
            SolverError::InvalidNetwork(_) => BadInput(format!("{name}: {error}")).into(),
            SolverError::IllConditioned { .. } => {
                anyhow::Error::new(error).context(format!("simulating {name}"))
            }
        }
    })?;
    Ok(Run {
        name,
        network,
        results,
        read_time,
        solve_time: started.elapsed(),
    })
}

fn write_results(run: &Run, out: &Path) -> anyhow::Result<()> {
    let document = ResultsDocument::from_simulation(&run.network, &run.results, &run.name);
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut writer, &document)
        .and_then(|()| writer.flush().map_err(serde_json::Error::io))
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Lowest and highest junction pressure over all steps, with where and when.
#[derive(Debug, Clone, Copy)]
struct Extreme {
    value: f64,
    node: usize,
    t: u64,
}

fn pressure_extremes(run: &Run) -> Option<(Extreme, Extreme)> {
    let junctions: Vec<usize> = run
        .network
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| matches!(node.kind, NodeKind::Junction(_)))
        .map(|(index, _)| index)
        .collect();
    let mut extremes: Option<(Extreme, Extreme)> = None;
    for step in &run.results.steps {
        for &node in &junctions {
            let Some(&value) = step.pressure.get(node) else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            let here = Extreme {
                value,
                node,
                t: step.t,
            };
            extremes = Some(match extremes {
                None => (here, here),
                Some((low, high)) => (
                    if value < low.value { here } else { low },
                    if value > high.value { here } else { high },
                ),
            });
        }
    }
    extremes
}

fn print_summary(run: &Run) {
    let network = &run.network;
    let results = &run.results;
    let count =
        |wanted: fn(&NodeKind) -> bool| network.nodes.iter().filter(|n| wanted(&n.kind)).count();
    let units = UnitsRecord::of(network);
    println!(
        "network      {} ({} junctions, {} reservoirs, {} tanks, {} links; flow {}, pressure {})",
        run.name,
        count(|k| matches!(k, NodeKind::Junction(_))),
        count(|k| matches!(k, NodeKind::Reservoir(_))),
        count(|k| matches!(k, NodeKind::Tank(_))),
        network.links.len(),
        units.flow,
        units.pressure,
    );
    let reported = results.steps.iter().filter(|s| s.report).count();
    let span = match (results.steps.first(), results.steps.last()) {
        (Some(first), Some(last)) => format!(", {} to {}", clock_time(first.t), clock_time(last.t)),
        _ => String::new(),
    };
    println!(
        "periods      {} hydraulic steps ({reported} reported){span}",
        results.steps.len()
    );
    let iterations: u64 = results.steps.iter().map(|s| u64::from(s.iterations)).sum();
    let most = results
        .steps
        .iter()
        .map(|s| s.iterations)
        .max()
        .unwrap_or(0);
    println!("iterations   {iterations} in total, at most {most} in one step");
    if results.warnings.is_empty() {
        println!("warnings     none");
    }
    for (position, warning) in results.warnings.iter().enumerate() {
        println!(
            "{:<12} {} ({} times, first at {})",
            if position == 0 { "warnings" } else { "" },
            warning.message,
            warning.count,
            clock_time(warning.first_at)
        );
    }
    if let Some(halt) = &results.halted {
        println!("halted       at {}: {}", clock_time(halt.t), halt.message);
    }
    match pressure_extremes(run) {
        Some((low, high)) => {
            for (label, extreme) in [("min pressure", low), ("max pressure", high)] {
                println!(
                    "{label} {:.2} {} at node {} (t {})",
                    extreme.value,
                    units.pressure,
                    network.nodes[extreme.node].id,
                    clock_time(extreme.t)
                );
            }
        }
        None => println!("pressure     no junction pressures"),
    }
    println!(
        "time         {:.1} ms reading, {:.1} ms solving",
        run.read_time.as_secs_f64() * 1e3,
        run.solve_time.as_secs_f64() * 1e3
    );
    if let Some(peak) = peak_memory_mib() {
        println!("{PEAK_MEMORY_LABEL}  {peak:.1} MiB");
    }
}

/// This process's peak resident set size (Linux `VmHWM`), MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
