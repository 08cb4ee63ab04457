//! `aquatwin-view`: opens a network with its results (or a live twin) in a 3D window, or renders
//! one frame to a PNG.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::Parser;
use hydraulics::model::PressureUnits;
use hydraulics::results::ResultsDocument;
use hydraulics::Network;
use twin::reading::TargetKind;
use viz::colour::{format_value, Quantity};
use viz::frames::{Clock, Frames};
use viz::geometry::Geometry;
use viz::live::{Credentials, LiveFeed, LiveSource, PASSWORD_ENV};
use viz::playback::parse_time;
use viz::view::{self, AlertMarker, Model, SensorMarker, Units, ViewerOptions};

/// Environment variable holding an access token for `--connect`.
const TOKEN_ENV: &str = "AQUATWIN_TOKEN";

/// The 3D viewer of aquatwin: a network, its results over time, or a live twin.
#[derive(Debug, Parser)]
#[command(name = "aquatwin-view", version, after_help = CONTROLS)]
struct Args {
    /// The EPANET .inp network (not needed with --connect: the server sends it).
    network: Option<PathBuf>,
    /// Results to play (`aquatwin simulate --out`, `aquatwin scenario --results`). Without
    /// it, the network is simulated here first.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Pipe risk ranking (`aquatwin risk --out X.json`), shown as the `risk` quantity.
    #[arg(long)]
    risk: Option<PathBuf>,
    /// Sensors file (TOML, as `serve` and `replay` take) to draw sensors and residuals.
    #[arg(long)]
    sensors: Option<PathBuf>,
    /// Leak report of `aquatwin replay --out` (JSON): each leak as an alert marker.
    #[arg(long)]
    leaks: Option<PathBuf>,
    /// Follow a running `aquatwin serve` at this URL (http://host:port).
    #[arg(long, requires = "municipality")]
    connect: Option<String>,
    /// Access token for --connect (else --token-file, else $AQUATWIN_TOKEN). Taken for 15
    /// minutes after it was issued, so a reconnection after that is refused: for a screen that
    /// stays on, use --user.
    #[arg(long, conflicts_with = "user")]
    token: Option<String>,
    /// File holding the access token for --connect.
    #[arg(long, conflicts_with = "user")]
    token_file: Option<PathBuf>,
    /// Account to log in as with --connect (instead of a token): the viewer logs in at start
    /// and again whenever the server refuses its access token. Its password comes from
    /// --password-file, else $AQUATWIN_PASSWORD.
    #[arg(long, requires = "connect")]
    user: Option<String>,
    /// File whose first line is the password of --user.
    #[arg(long, requires = "user")]
    password_file: Option<PathBuf>,
    /// Municipality to follow with --connect.
    #[arg(long)]
    municipality: Option<String>,
    /// Quantity to colour by: pressure, head, demand, flow, velocity, headloss, risk, residual.
    #[arg(long = "color-by", alias = "colour-by", default_value = "pressure")]
    colour_by: String,
    /// Time to show first: seconds, H:MM[:SS] or hours with `h` (e.g. 10:00, 36000, 10h).
    #[arg(long)]
    time: Option<String>,
    /// Vertical exaggeration of elevations (default: automatic, relief about 8% of the plan).
    #[arg(long)]
    exaggeration: Option<f32>,
    /// Render one frame to this PNG and exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// With --screenshot: also write where the legend and each link landed (JSON).
    #[arg(long, requires = "screenshot")]
    map: Option<PathBuf>,
    /// Render this many frames while orbiting, print frame times and exit.
    #[arg(long)]
    bench: Option<u32>,
    /// Window or image width, pixels.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Window or image height, pixels.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Render without a window (no display needed; for --screenshot and --bench).
    #[arg(long)]
    headless: bool,
}

const CONTROLS: &str = "\
Controls: left drag orbit, right/middle drag pan, wheel zoom, click select; Space play/pause,
Left/Right step, Up/Down speed, Home/End, C cycle colour, 1-8 colour by, F fit, / search,
P J A S L K layers, H help.";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("aquatwin-view: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let colour_by: Quantity = args.colour_by.parse()?;
    let start_time = match &args.time {
        Some(text) => Some(
            parse_time(text)
                .ok_or_else(|| anyhow!("--time {text}: expected seconds, H:MM[:SS] or e.g. 10h"))?,
        ),
        None => None,
    };
    if args.width == 0 || args.height == 0 || args.width > 8192 || args.height > 8192 {
        return Err(anyhow!("--width/--height must be 1 to 8192 pixels"));
    }
    let (network, mut frames, source, feed_source) = match &args.connect {
        Some(url) => {
            let mut source = LiveSource::new(
                url.clone(),
                args.municipality.clone().unwrap_or_default(),
                credentials(&args)?,
            );
            eprintln!(
                "aquatwin-view: fetching the network of {} from {url}",
                source.municipality
            );
            let network = source.fetch_network()?;
            let frames = Frames::new(&network, Clock::Unix);
            let label = format!("live {} at {url}", source.municipality);
            (network, frames, label, Some(source))
        }
        None => {
            let path = args
                .network
                .as_ref()
                .ok_or_else(|| anyhow!("give a network (.inp) or --connect URL"))?;
            let network = read_network(path)?;
            let (frames, label) = playback_frames(&network, path, args.results.as_deref())?;
            (network, frames, label, None)
        }
    };
    if let Some(path) = &args.risk {
        frames.set_fixed(Quantity::Risk, read_risk(path, &network)?);
    }
    let geometry = Geometry::new(&network, args.exaggeration);
    let sensors = match &args.sensors {
        Some(path) => read_sensors(path, &network, &geometry)?,
        None => Vec::new(),
    };
    let feed: Option<LiveFeed> = match feed_source {
        Some(source) => {
            let sensor_nodes: HashMap<String, usize> = sensors
                .iter()
                .filter_map(|s| s.node.map(|node| (s.id.clone(), node)))
                .collect();
            Some(viz::live::follow(source, &network, sensor_nodes)?)
        }
        None => None,
    };
    let alerts = match &args.leaks {
        Some(path) => read_leaks(path, &geometry)?,
        None => Vec::new(),
    };
    let title = source.clone();
    let model = Model {
        geometry,
        frames,
        sensors,
        alerts,
        source,
    };
    let options = ViewerOptions {
        title,
        width: args.width,
        height: args.height,
        headless: args.headless,
        colour_by,
        start_time,
        screenshot: args.screenshot.clone(),
        map: args.map.clone(),
        bench_frames: args.bench,
        units: units_of(&network),
    };
    // Bevy panics when no renderer can start (no GPU driver, no software Vulkan): say what to
    // install instead of leaving the user with a backtrace.
    let exit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        view::run(model, options, feed)
    }))
    .map_err(|_| {
        anyhow!(
            "the renderer could not start: no GPU driver and no software Vulkan driver found \
             (on Debian: apt install mesa-vulkan-drivers; with no display use --headless)"
        )
    })?;
    Ok(if exit.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Who `--connect` asks as: an account (`--user`, its password from a file or the
/// environment, never the command line), else an access token.
fn credentials(args: &Args) -> anyhow::Result<Credentials> {
    if let Some(user) = &args.user {
        let password = match &args.password_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--password-file {}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => std::env::var(PASSWORD_ENV).map_err(|_| {
                anyhow!("--user {user} needs a password: --password-file FILE or ${PASSWORD_ENV}")
            })?,
        };
        if password.is_empty() {
            return Err(anyhow!("--user {user}: the password is empty"));
        }
        return Ok(Credentials::Account {
            user: user.clone(),
            password,
        });
    }
    if let Some(token) = &args.token {
        return Ok(Credentials::Token(token.trim().to_string()));
    }
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        return Ok(Credentials::Token(text.trim().to_string()));
    }
    std::env::var(TOKEN_ENV)
        .map(|token| Credentials::Token(token.trim().to_string()))
        .map_err(|_| {
            anyhow!(
                "--connect needs a token: --token, --token-file or ${TOKEN_ENV}; or an account \
                 to log in as: --user NAME with --password-file FILE or ${PASSWORD_ENV}"
            )
        })
}

fn read_network(path: &Path) -> anyhow::Result<Network> {
    hydraulics::read_file(path).map_err(|error| anyhow!("{error}"))
}

/// Frames from a results file, or from simulating the network here.
fn playback_frames(
    network: &Network,
    path: &Path,
    results: Option<&Path>,
) -> anyhow::Result<(Frames, String)> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (document, label) = match results {
        Some(results) => {
            let text = std::fs::read_to_string(results)
                .with_context(|| format!("cannot read {}", results.display()))?;
            let document: ResultsDocument = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a results file", results.display()))?;
            let label = format!("{name} + {}", results.display());
            (document, label)
        }
        None => {
            eprintln!("aquatwin-view: no --results: simulating {name}");
            let simulated = hydraulics::simulate(network, &hydraulics::SimOptions::default())
                .map_err(|error| anyhow!("{name}: {error}"))?;
            let document = ResultsDocument::from_simulation(network, &simulated, &name);
            (document, format!("{name} (simulated)"))
        }
    };
    let frames = Frames::from_results(network, &document).map_err(|error| match results {
        Some(results) => anyhow!("{}: {error}", results.display()),
        None => anyhow!("{error}"),
    })?;
    Ok((frames, label))
}

/// Risk per link from `aquatwin risk --out X.json` (`[{pipe, risk_m3, ...}]`).
fn read_risk(path: &Path, network: &Network) -> anyhow::Result<Vec<f32>> {
    #[derive(serde::Deserialize)]
    struct Row {
        pipe: String,
        risk_m3: f64,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows: Vec<Row> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a risk ranking (JSON from `aquatwin risk --out X.json`)",
            path.display()
        )
    })?;
    let links = network.link_ids();
    let mut risk = vec![f32::NAN; network.links.len()];
    for row in rows {
        let index = links.get(row.pipe.as_str()).ok_or_else(|| {
            anyhow!(
                "{}: pipe {} is not in the network",
                path.display(),
                row.pipe
            )
        })?;
        risk[*index] = row.risk_m3 as f32;
    }
    Ok(risk)
}

/// Leaks of a replay's report (`{"leaks": [{"detected_at", "kind", "link", "node",
/// "estimated_flow", "confidence"}]}`), shown for the whole timeline.
fn read_leaks(path: &Path, geometry: &Geometry) -> anyhow::Result<Vec<AlertMarker>> {
    #[derive(serde::Deserialize)]
    struct Report {
        leaks: Vec<Leak>,
    }
    #[derive(serde::Deserialize)]
    struct Leak {
        detected_at: String,
        kind: String,
        link: Option<String>,
        node: Option<String>,
        estimated_flow: Option<f64>,
        confidence: Option<f64>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: Report = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a leak report (JSON from `aquatwin replay --out`)",
            path.display()
        )
    })?;
    report
        .leaks
        .into_iter()
        .enumerate()
        .map(|(index, leak)| {
            let on_link = leak
                .link
                .as_deref()
                .and_then(|id| geometry.find_link(id))
                .map(|i| geometry.links[i].point_along(0.5).0);
            let on_node = leak
                .node
                .as_deref()
                .and_then(|id| geometry.find_node(id))
                .map(|i| geometry.nodes[i].position);
            let place = leak.link.as_deref().or(leak.node.as_deref()).unwrap_or("?");
            let position = on_link.or(on_node).ok_or_else(|| {
                anyhow!(
                    "{}: leak {}: {place} is not in the network",
                    path.display(),
                    index + 1
                )
            })?;
            let flow = leak.estimated_flow.map_or(String::new(), |f| {
                format!(", about {}", format_value(f as f32))
            });
            let confidence = leak
                .confidence
                .map_or(String::new(), |c| format!(", confidence {c:.2}"));
            Ok(AlertMarker {
                id: index as u64 + 1,
                title: format!(
                    "#{} {} at {place} detected {}{flow}{confidence}",
                    index + 1,
                    leak.kind,
                    leak.detected_at
                ),
                position: position + bevy::math::Vec3::Y * view::ALERT_LIFT,
                raised: f64::NEG_INFINITY,
                open: true,
            })
        })
        .collect()
}

fn read_sensors(
    path: &Path,
    network: &Network,
    geometry: &Geometry,
) -> anyhow::Result<Vec<SensorMarker>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let sensors =
        twin::sensors_file::parse(&text).map_err(|error| anyhow!("{}: {error}", path.display()))?;
    let mut markers = Vec::new();
    for sensor in sensors {
        let (position, node) = match sensor.kind.target_kind() {
            TargetKind::Node => {
                let index = network.node_index(&sensor.target).ok_or_else(|| {
                    anyhow!(
                        "{}: sensor {}: no node {}",
                        path.display(),
                        sensor.id,
                        sensor.target
                    )
                })?;
                (geometry.nodes[index].position, Some(index))
            }
            TargetKind::Link => {
                let index = network.link_index(&sensor.target).ok_or_else(|| {
                    anyhow!(
                        "{}: sensor {}: no link {}",
                        path.display(),
                        sensor.id,
                        sensor.target
                    )
                })?;
                (geometry.links[index].point_along(0.5).0, None)
            }
            TargetKind::Device => continue,
        };
        markers.push(SensorMarker {
            id: sensor.id.clone(),
            kind: sensor.kind.name().to_string(),
            position,
            node,
        });
    }
    Ok(markers)
}

fn units_of(network: &Network) -> Units {
    let options = &network.options;
    let si = !options.flow_units.is_us();
    let pressure = options.pressure_units.unwrap_or(if si {
        PressureUnits::Meters
    } else {
        PressureUnits::Psi
    });
    let length = if si { "m" } else { "ft" };
    Units {
        pressure: match pressure {
            PressureUnits::Psi => "psi",
            PressureUnits::Kpa => "kPa",
            PressureUnits::Bar => "bar",
            PressureUnits::Meters => "m",
            PressureUnits::Feet => "ft",
        }
        .to_string(),
        head: length.to_string(),
        flow: options.flow_units.name().to_string(),
        velocity: format!("{length}/s"),
        headloss: format!("{length}/1000{length}"),
    }
}
