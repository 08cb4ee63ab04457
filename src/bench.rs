//! `aquatwin bench`: our solver against EPANET 2.3 on the same networks, in the same run.
//!
//! EPANET runs through the PyPI package `owa-epanet`, timed inside Python by
//! `tests/peers/epanet_bench.py` (embedded here, so the binary needs no source tree).

use crate::simulate::{default_solver_threads, PEAK_MEMORY_LABEL};
use crate::BadInput;
use anyhow::Context as _;
use hydraulics::generate::{grid, GridSpec};
use hydraulics::results::format_general;
use hydraulics::{Network, SimOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EPANET_PEER: &str = include_str!("../tests/peers/epanet_bench.py");

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Folder holding the benchmark networks.
    #[arg(long, default_value = "../shared/networks")]
    pub networks: PathBuf,
    /// Networks (file stems in the folder) whose full extended period simulation is timed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "Net6,MICROPOLIS_v1,BWSN_Network_1"
    )]
    pub names: Vec<String>,
    /// Runs per network; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Junctions of the synthetic grid timed for parse + steady solve (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub grid_junctions: usize,
    /// Runs of the grid; medians are reported (EPANET takes minutes on the 100,000 grid).
    #[arg(long, default_value_t = 1)]
    pub grid_repeat: usize,
    /// Python interpreter that has owa-epanet installed.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Time only our solver.
    #[arg(long)]
    pub no_epanet: bool,
    /// Threads our solver may use (as `simulate --threads`). Default: 2, or 1 on a single core.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Times of one solver on one network: one run's, or medians.
#[derive(Debug, Clone, Copy)]
struct Timing {
    read: Duration,
    solve: Duration,
    /// The fastest solve: the run least disturbed by whatever else the machine was doing.
    fastest_solve: Duration,
}

/// One line of the report.
struct Row {
    label: String,
    steps: Option<usize>,
    ours: Result<Timing, String>,
    /// Ours on one thread, when `ours` may use more.
    ours_one_thread: Option<Timing>,
    epanet: Option<Timing>,
    peak_memory_mib: Option<f64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.repeat == 0 || args.grid_repeat == 0 {
        return Err(BadInput("--repeat and --grid-repeat must be at least 1".to_string()).into());
    }
    let scratch = std::env::temp_dir().join(format!("aquatwin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let outcome = bench_in(args, &scratch);
    // The scratch folder only holds files we wrote; a failure to remove it is not worth an error.
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

fn bench_in(args: &BenchArgs, scratch: &Path) -> anyhow::Result<()> {
    let paths: Vec<PathBuf> = args
        .names
        .iter()
        .map(|name| args.networks.join(format!("{name}.inp")))
        .collect();
    if let Some(missing) = paths.iter().find(|path| !path.is_file()) {
        return Err(BadInput(format!(
            "{}: no such network (set the folder with --networks)",
            missing.display()
        ))
        .into());
    }
    let peer = scratch.join("epanet_bench.py");
    std::fs::write(&peer, EPANET_PEER)
        .with_context(|| format!("cannot write {}", peer.display()))?;
    let threads = args.threads.unwrap_or_else(default_solver_threads);
    let mut notes = Vec::new();
    let mut epanet_of = |paths: &[PathBuf], repeat: usize, steady: bool| {
        if args.no_epanet {
            return HashMap::new();
        }
        epanet_timings(&args.python, &peer, paths, repeat, steady).unwrap_or_else(|error| {
            let note = format!("EPANET not timed: {error:#}");
            if !notes.contains(&note) {
                notes.push(note);
            }
            HashMap::new()
        })
    };

    println!(
        "aquatwin bench: medians of {} runs ({} for the grid), ours and EPANET's alternated \
         round by round; EPANET 2.3 via owa-epanet; ours on {threads} thread(s) (same results to \
         the bit on any number); `fastest`: the fastest solves' ratio; `1 thread`: ours on one \
         thread against EPANET (medians)",
        args.repeat, args.grid_repeat
    );
    // Round by round, EPANET's run of every network then ours: a machine that slows down for
    // a while (other load, clock changes) slows both sides alike instead of one.
    let mut epanet_runs: HashMap<String, Vec<Timing>> = HashMap::new();
    let mut our_runs: Vec<Result<(usize, Vec<Timing>), String>> =
        vec![Ok((0, Vec::new())); paths.len()];
    let mut one_thread_runs: Vec<Vec<Timing>> = vec![Vec::new(); paths.len()];
    for _ in 0..args.repeat {
        for (name, timing) in epanet_of(&paths, 1, false) {
            epanet_runs.entry(name).or_default().push(timing);
        }
        let paths_and_runs = paths
            .iter()
            .zip(our_runs.iter_mut())
            .zip(&mut one_thread_runs);
        for ((path, runs), one_thread) in paths_and_runs {
            if let Ok((steps, timings)) = runs {
                match time_ours(path, 1, false, threads) {
                    Ok((run_steps, timing)) => {
                        *steps = run_steps;
                        timings.push(timing);
                    }
                    Err(error) => *runs = Err(format!("{error:#}")),
                }
            }
            if threads > 1 && runs.is_ok() {
                if let Ok((_, timing)) = time_ours(path, 1, false, 1) {
                    one_thread.push(timing);
                }
            }
        }
    }
    let mut rows = Vec::new();
    let runs = our_runs.into_iter().zip(one_thread_runs);
    for ((name, path), (runs, one_thread)) in args.names.iter().zip(&paths).zip(runs) {
        let (steps, ours) = match runs {
            Ok((steps, timings)) => (Some(steps), Ok(median_timing(&timings))),
            Err(error) => (None, Err(error)),
        };
        rows.push(Row {
            label: format!("{name} (EPS)"),
            steps,
            ours,
            ours_one_thread: (!one_thread.is_empty()).then(|| median_timing(&one_thread)),
            epanet: epanet_runs.get(name).map(|runs| median_timing(runs)),
            peak_memory_mib: peak_memory_of_simulation(path, false),
        });
    }

    if args.grid_junctions > 0 {
        let network = grid(&GridSpec::new(args.grid_junctions))
            .map_err(|error| BadInput(format!("cannot generate the grid: {error}")))?;
        let grid_name = format!("grid{}", args.grid_junctions);
        let grid_path = scratch.join(format!("{grid_name}.inp"));
        std::fs::write(&grid_path, hydraulics::write_string(&network))
            .with_context(|| format!("cannot write {}", grid_path.display()))?;
        let epanet_grid = epanet_of(std::slice::from_ref(&grid_path), args.grid_repeat, true);
        let (steps, ours) = match time_ours(&grid_path, args.grid_repeat, true, threads) {
            Ok((steps, timing)) => (Some(steps), Ok(timing)),
            Err(error) => (None, Err(format!("{error:#}"))),
        };
        rows.push(Row {
            label: format!("grid {} junctions (steady)", args.grid_junctions),
            steps,
            ours,
            ours_one_thread: None,
            epanet: epanet_grid.get(&grid_name).copied(),
            peak_memory_mib: peak_memory_of_simulation(&grid_path, true),
        });
    }

    print_table(&rows);
    for note in notes {
        println!("note: {note}");
    }
    Ok(())
}

/// Our medians over `repeat` runs: reading the file, and simulating it.
fn time_ours(
    path: &Path,
    repeat: usize,
    steady: bool,
    threads: usize,
) -> anyhow::Result<(usize, Timing)> {
    let mut reads = Vec::with_capacity(repeat);
    let mut solves = Vec::with_capacity(repeat);
    let mut steps = 0;
    for _ in 0..repeat {
        let started = Instant::now();
        let network: Network = hydraulics::read_file(path)?;
        reads.push(started.elapsed());
        let started = Instant::now();
        let results = hydraulics::simulate(&network, &SimOptions { steady, threads })?;
        solves.push(started.elapsed());
        steps = results.steps.len();
    }
    Ok((
        steps,
        Timing {
            read: median(&mut reads),
            solve: median(&mut solves),
            fastest_solve: solves.iter().min().copied().unwrap_or_default(),
        },
    ))
}

/// Medians of reading and solving, each over the runs.
fn median_timing(runs: &[Timing]) -> Timing {
    let mut reads: Vec<Duration> = runs.iter().map(|run| run.read).collect();
    let mut solves: Vec<Duration> = runs.iter().map(|run| run.solve).collect();
    Timing {
        read: median(&mut reads),
        solve: median(&mut solves),
        fastest_solve: runs
            .iter()
            .map(|run| run.fastest_solve)
            .min()
            .unwrap_or_default(),
    }
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

/// EPANET's medians per network name, from the Python peer's JSON lines.
fn epanet_timings(
    python: &str,
    peer: &Path,
    paths: &[PathBuf],
    repeat: usize,
    steady: bool,
) -> anyhow::Result<HashMap<String, Timing>> {
    let mut command = Command::new(python);
    command.arg(peer).arg("--repeat").arg(repeat.to_string());
    if steady {
        command.arg("--steady");
    }
    let output = command
        .args(paths)
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{python} {} failed: {}",
            peer.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut timings = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("unexpected peer output {line}"))?;
        let seconds = |key: &str| record[key].as_f64().map(Duration::from_secs_f64);
        if let (Some(name), Some(read), Some(solve)) = (
            record["network"].as_str(),
            seconds("open_s"),
            seconds("solve_s"),
        ) {
            let fastest_solve = seconds("fastest_solve_s").unwrap_or(solve);
            let timing = Timing {
                read,
                solve,
                fastest_solve,
            };
            timings.insert(name.to_string(), timing);
        }
    }
    Ok(timings)
}

/// Peak resident memory of a separate `aquatwin simulate` of `path` (a fresh process, so
/// nothing else this run allocated counts), from its summary.
fn peak_memory_of_simulation(path: &Path, steady: bool) -> Option<f64> {
    let mut command = Command::new(std::env::current_exe().ok()?);
    command.arg("simulate").arg(path).arg("--summary");
    if steady {
        command.arg("--steady");
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with(PEAK_MEMORY_LABEL))?;
    line[PEAK_MEMORY_LABEL.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<32} {:>6} {:>11} {:>11} {:>11} {:>11} {:>12} {:>8} {:>9} {:>10}",
        "network",
        "steps",
        "ours read",
        "ours solve",
        "EPANET open",
        "EPANET solve",
        "ours/EPANET",
        "fastest",
        "1 thread",
        "peak RSS"
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    for row in rows {
        let steps = row.steps.map_or_else(|| "-".to_string(), |s| s.to_string());
        let (epanet_read, epanet_solve) = row
            .epanet
            .map_or(("n/a".to_string(), "n/a".to_string()), |e| {
                (ms(e.read), ms(e.solve))
            });
        let peak = row
            .peak_memory_mib
            .map_or_else(|| "-".to_string(), |m| format!("{m:.1} MiB"));
        match &row.ours {
            Ok(ours) => {
                let ratio = |ours: Duration, epanet: Option<Duration>| {
                    epanet.map_or_else(
                        || "n/a".to_string(),
                        |e| {
                            let ratio = ours.as_secs_f64() / e.as_secs_f64();
                            format!("{}x", format_general(ratio, 3))
                        },
                    )
                };
                let one_thread = row.ours_one_thread.map_or_else(
                    || "-".to_string(),
                    |one| ratio(one.solve, row.epanet.map(|e| e.solve)),
                );
                println!(
                    "{:<32} {:>6} {:>11} {:>11} {:>11} {:>11} {:>12} {:>8} {:>9} {:>10}",
                    row.label,
                    steps,
                    ms(ours.read),
                    ms(ours.solve),
                    epanet_read,
                    epanet_solve,
                    ratio(ours.solve, row.epanet.map(|e| e.solve)),
                    ratio(ours.fastest_solve, row.epanet.map(|e| e.fastest_solve)),
                    one_thread,
                    peak
                );
            }
            Err(error) => println!(
                "{:<32} ours failed: {error}; EPANET {epanet_read} open, {epanet_solve} solve",
                row.label
            ),
        }
    }
}
