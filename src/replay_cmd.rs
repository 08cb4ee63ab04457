//! `aquatwin replay`: recorded telemetry through the same per-period twin step as the live
//! path (`twin::live::NetworkTwin::step` with its detection stage), written as the leak report
//! of design.md section 7.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hydraulics::results::{ResultsDocument, StepRecord};
use scenarios::replay::replay;
use serde_json::json;
use twin::detect::{EventKind, WatchConfig, DAY_MS};
use twin::live::{PeriodState, TwinError};
use twin::telemetry_files::{self, format_rfc3339, parse_timestamp};

use crate::BadInput;

/// Default length of the leak-free training window at the start of the telemetry.
const DEFAULT_TRAINING_MS: i64 = DAY_MS;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The EPANET .inp network the telemetry was recorded on.
    #[arg(long)]
    pub network: PathBuf,
    /// The sensors file (TOML: id, kind, node or link, unit per sensor).
    #[arg(long)]
    pub sensors: PathBuf,
    /// A long CSV (timestamp,sensor_id,value), a wide CSV, or a folder of wide CSVs
    /// (pressures.csv, flows.csv, levels.csv, demands.csv).
    #[arg(long)]
    pub telemetry: PathBuf,
    /// End of the leak-free training window: a timestamp (RFC 3339 or `YYYY-MM-DD HH:MM:SS`)
    /// or a duration from the first reading (`36h`, `2d`). Default: the first day.
    #[arg(long)]
    pub train_until: Option<String>,
    /// Replay speed: `max` (as fast as possible) or a factor of real time (`60` = an hour of
    /// telemetry per minute).
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Where to write the leak report (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the estimated state of the network in the results layout of `simulate --out`
    /// (time 0 = the first reading), for `aquatwin-view --results` to play the replay.
    #[arg(long)]
    pub states: Option<PathBuf>,
    /// Keep one state per this much telemetry time (`15m`, `1h`, `1d`); default: every period.
    #[arg(long, requires = "states")]
    pub states_every: Option<String>,
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let network = hydraulics::read_file(&args.network).map_err(|e| BadInput(e.to_string()))?;
    let sensors_text = std::fs::read_to_string(&args.sensors)
        .map_err(|e| BadInput(format!("{}: {e}", args.sensors.display())))?;
    let sensors = twin::sensors_file::parse(&sensors_text)
        .map_err(|e| BadInput(format!("{}: {e}", args.sensors.display())))?;
    let records = telemetry_files::read(&args.telemetry).map_err(|e| BadInput(e.to_string()))?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err(BadInput(format!("{}: no readings", args.telemetry.display())).into());
    };
    let (first_ms, last_ms) = (first.timestamp_ms, last.timestamp_ms);
    let train_until_ms = match &args.train_until {
        Some(text) => parse_train_until(text, first_ms)?,
        None => first_ms + DEFAULT_TRAINING_MS,
    };
    let speed = parse_speed(&args.speed)?;
    let states_every_ms = match &args.states_every {
        Some(text) => Some(
            parse_duration_ms(text)
                .filter(|&ms| ms > 0)
                .ok_or_else(|| {
                    BadInput(format!(
                        "--states-every: {text:?} is not a positive duration (e.g. 15m, 1h, 1d)"
                    ))
                })?,
        ),
        None => None,
    };
    let mut states = args.states.as_ref().map(|path| {
        let name = args
            .network
            .file_stem()
            .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
        (path, ResultsDocument::without_steps(&network, &name))
    });
    let mut next_state_ms = first_ms;
    let mut last_progress: Option<Instant> = None;
    let mut previous_ms: Option<i64> = None;
    let outcome = replay(
        network,
        sensors,
        &records,
        WatchConfig {
            train_until_ms,
            ..WatchConfig::default()
        },
        |progress, state| {
            if let Some((_, document)) = &mut states {
                if progress.time_ms >= next_state_ms {
                    document.steps.push(state_record(first_ms, state));
                    next_state_ms = progress.time_ms + states_every_ms.unwrap_or(1);
                }
            }
            if let (Some(factor), Some(previous)) = (speed, previous_ms) {
                let wait = (progress.time_ms - previous) as f64 / 1000.0 / factor;
                std::thread::sleep(Duration::from_secs_f64(wait.max(0.0)));
            }
            previous_ms = Some(progress.time_ms);
            let due = last_progress.is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
            if due || progress.time_ms == last_ms {
                last_progress = Some(Instant::now());
                eprint!(
                    "\rreplay: {:5.1}% {} periods {} events {}",
                    100.0 * progress.done,
                    format_rfc3339(progress.time_ms),
                    progress.periods,
                    progress.events
                );
                std::io::stderr().flush().ok();
            }
        },
    )
    .map_err(|e| -> anyhow::Error {
        match e {
            TwinError::UnknownTarget { .. } | TwinError::DuplicateSensor(_) => {
                BadInput(format!("{}: {e}", args.sensors.display())).into()
            }
            _ => anyhow::Error::new(e).context("replay"),
        }
    })?;
    eprintln!();
    let events = &outcome.events;
    let leaks: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Leak | EventKind::Burst))
        .filter_map(|e| {
            let location = e.location.as_ref()?;
            Some(json!({
                "detected_at": format_rfc3339(e.time_ms),
                "estimated_start": format_rfc3339(e.onset_ms),
                "kind": e.kind.name(),
                "link": location.link,
                "node": location.node,
                "estimated_flow": e.estimated_flow.unwrap_or(location.estimated_flow),
                "confidence": e.confidence,
                "candidates": location.candidates.iter()
                    .map(|(link, score)| json!({"link": link, "score": score}))
                    .collect::<Vec<_>>(),
            }))
        })
        .collect();
    let report = serde_json::to_string_pretty(&json!({ "leaks": leaks }))?;
    std::fs::write(&args.out, report + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;

    let training_note = match (&outcome.training_error, outcome.trained) {
        (Some(error), _) => format!("detection off: training failed: {error}"),
        (None, true) => format!(
            "trained until {}{}",
            format_rfc3339(train_until_ms),
            if outcome.inflow_metered {
                ", inflow metered (flow balance)"
            } else {
                ", inflow not metered: watching pressures"
            }
        ),
        (None, false) => "the telemetry ends inside the training window: nothing watched".into(),
    };
    println!(
        "replayed {} periods ({} to {}) in {:.2} s; {}",
        outcome.periods,
        format_rfc3339(first_ms),
        format_rfc3339(last_ms),
        started.elapsed().as_secs_f64(),
        training_note
    );
    if outcome.unconverged > 0 {
        println!("{} periods did not converge", outcome.unconverged);
    }
    if outcome.rejected > 0 {
        println!(
            "{} readings could not be converted to the network's units",
            outcome.rejected
        );
    }
    if !outcome.unknown_sensors.is_empty() {
        let mut ids: Vec<&String> = outcome.unknown_sensors.keys().collect();
        ids.sort();
        println!(
            "ignored {} readings of sensors not in {}: {:?}",
            outcome.unknown_sensors.values().sum::<usize>(),
            args.sensors.display(),
            ids
        );
    }
    for event in events {
        let place = event.location.as_ref().map_or_else(
            || "not located".to_string(),
            |l| format!("node {} pipe {}", l.node, l.link.as_deref().unwrap_or("-")),
        );
        println!(
            "  {} {} at {}, {}, flow {:.1}, confidence {:.2}",
            event.kind.name(),
            format_rfc3339(event.time_ms),
            format_rfc3339(event.onset_ms),
            place,
            event.estimated_flow.unwrap_or(f64::NAN),
            event.confidence
        );
    }
    println!("wrote {} ({} leaks)", args.out.display(), leaks.len());
    if let Some((path, mut document)) = states {
        document.options.duration_s = document.steps.last().map_or(0, |step| step.t);
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut writer, &document)
            .map_err(anyhow::Error::from)
            .and_then(|()| writer.flush().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "wrote {} ({} estimated states)",
            path.display(),
            document.steps.len()
        );
    }
    Ok(())
}

/// One period's estimated state as a results step, its time counted from the first reading.
fn state_record(first_ms: i64, state: &PeriodState) -> StepRecord {
    StepRecord {
        t: u64::try_from((state.timestamp_ms - first_ms) / 1000).unwrap_or(0),
        report: true,
        head: state.head.clone(),
        pressure: state.pressure.clone(),
        demand: state.demand.clone(),
        flow: state.flow.clone(),
        status: state.status.clone(),
        state: Vec::new(),
    }
}

/// `--train-until`: a timestamp, or a duration after the first reading.
fn parse_train_until(text: &str, first_ms: i64) -> anyhow::Result<i64> {
    parse_duration_ms(text).map_or_else(
        || parse_timestamp(text.trim()).map_err(|e| BadInput(format!("--train-until: {e}")).into()),
        |ms| Ok(first_ms + ms),
    )
}

/// A duration with an `m`, `h` or `d` suffix (`90m`, `36h`, `2.5d`), in ms.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    [('m', 60_000.0), ('h', 3_600_000.0), ('d', DAY_MS as f64)]
        .into_iter()
        .find_map(|(suffix, unit_ms)| {
            text.strip_suffix(suffix)
                .and_then(|n| n.parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| (n * unit_ms) as i64)
        })
}

/// `--speed`: `None` for `max`, else the factor of real time.
fn parse_speed(text: &str) -> anyhow::Result<Option<f64>> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .map(Some)
        .ok_or_else(|| {
            BadInput(format!(
                "--speed `{text}`: expected `max` or a positive number"
            ))
            .into()
        })
}
