//! `aquatwin`: the command line of the water-network digital twin.

mod backup;
mod bench;
mod demo;
mod fleet;
mod planning;
mod replay_cmd;
mod serve;
mod simulate;
mod user_cmd;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for input the user can fix (bad file, bad option value).
const EXIT_BAD_INPUT: u8 = 2;

/// Digital twin for water distribution networks, with an EPANET 2.3 compatible solver.
#[derive(Debug, Parser)]
#[command(name = "aquatwin", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an EPANET .inp network's hydraulic simulation (extended period, or steady).
    Simulate(simulate::SimulateArgs),
    /// The live twin in one command: Net3, its sensors and a fleet publishing to it.
    Demo(demo::DemoArgs),
    /// Run the live twin: store, actors, MQTT/LoRaWAN/HTTP ingest and the HTTP API.
    Serve(serve::ServeArgs),
    /// Time our solver against EPANET 2.3 (owa-epanet) on large networks.
    Bench(bench::BenchArgs),
    /// Write a consistent snapshot of a server's store (running: --url; stopped: --data).
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory (or replace one with --force).
    Restore(backup::RestoreArgs),
    /// Manage platform users (the first super_admin) in a data directory.
    User(user_cmd::UserArgs),
    /// A synthetic sensor fleet for load tests: publishes over MQTT, HTTP or LoRaWAN UDP.
    Fleet(fleet::FleetArgs),
    /// Run a what-if scenario file (bursts, closures, outages...) and report its impact.
    Scenario(planning::scenario::ScenarioArgs),
    /// Fail every pipe in turn (closure, burst or segment isolation) and rank by impact.
    Criticality(planning::criticality::CriticalityArgs),
    /// Rank pipes by risk: likelihood of a break x consequence of isolating it.
    Risk(planning::risk::RiskArgs),
    /// Replay recorded telemetry through the twin: leak and burst detection, localization.
    Replay(replay_cmd::ReplayArgs),
    /// Write a synthetic network.
    Generate {
        #[command(subcommand)]
        shape: GenerateShape,
    },
}

#[derive(Debug, Subcommand)]
enum GenerateShape {
    /// A square grid of junctions fed by reservoirs along its first row.
    Grid {
        /// Number of junctions.
        #[arg(long)]
        junctions: usize,
        /// Number of reservoirs (default: one per 10,000 junctions).
        #[arg(long)]
        reservoirs: Option<usize>,
        /// Seed of the variation of lengths, roughness and demands.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The .inp file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

impl Command {
    /// Commands that talk to peers over sockets, where a closed connection must stay an error
    /// the program handles, not a signal that ends it.
    fn is_network_service(&self) -> bool {
        matches!(
            self,
            Command::Serve(_) | Command::Demo(_) | Command::Fleet(_)
        )
    }
}

/// Lets `aquatwin risk ... | head` end quietly when `head` closes the pipe, as Unix filters do:
/// Rust ignores SIGPIPE, so printing to a closed pipe would otherwise panic.
fn die_quietly_on_closed_stdout() {
    // SAFETY: restoring the default disposition of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A problem with what the user gave us; reported without a trace, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn main() -> ExitCode {
    // A bug must not greet users with a backtrace: one line, then exit status 101 as usual.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("aquatwin: internal error (please report it): {info}");
    }));
    let cli = Cli::parse();
    if !cli.command.is_network_service() {
        die_quietly_on_closed_stdout();
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aquatwin: error: {error:#}");
            if error.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Scenario(args) => planning::scenario::run(&args),
        Command::Criticality(args) => planning::criticality::run(&args),
        Command::Risk(args) => planning::risk::run(&args),
        Command::Replay(args) => replay_cmd::run(&args),
        Command::User(args) => user_cmd::run(&args),
        Command::Backup(args) => backup::run_backup(&args),
        Command::Restore(args) => backup::run_restore(&args),
        Command::Generate {
            shape:
                GenerateShape::Grid {
                    junctions,
                    reservoirs,
                    seed,
                    out,
                },
        } => {
            let defaults = hydraulics::generate::GridSpec::new(junctions);
            let spec = hydraulics::generate::GridSpec {
                reservoirs: reservoirs.unwrap_or(defaults.reservoirs),
                seed,
                ..defaults
            };
            let network = hydraulics::generate::grid(&spec)
                .map_err(|error| BadInput(format!("cannot generate the grid: {error}")))?;
            std::fs::write(&out, hydraulics::write_string(&network))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {}: {} junctions, {} reservoirs, {} pipes",
                out.display(),
                network.junction_count(),
                network.nodes.len() - network.junction_count(),
                network.links.len()
            );
            Ok(())
        }
    }
}
