//! Criticality sweeps: every pipe fails in turn (closed, burst, or its isolation segment
//! closed) for the whole run under pressure driven demand, in parallel, ranked by the demand
//! left unmet.

use crate::build::{baseline, build};
use crate::impact::{summarize, RunSummary};
use crate::segments::{Segments, ValvePlacement};
use crate::spec::{Event, EventKind, Outflow, PdaSettings, Scenario};
use hydraulics::model::{LinkKind, Network, StatusSpec};
use hydraulics::{SimOptions, SolverError};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How each pipe fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The pipe is closed.
    PipeClosure,
    /// The pipe bursts at mid-length: an orifice of `burst_area_fraction` of its cross
    /// section, Cd 0.75, no isolation.
    Burst,
    /// The pipe's isolation segment is closed (see [`crate::segments`]).
    Segment,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::PipeClosure => "pipe-closure",
            FailureKind::Burst => "burst",
            FailureKind::Segment => "segment",
        }
    }
}

/// Settings of a sweep.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kind: FailureKind,
    /// Seconds.
    pub duration: u64,
    pub pda: PdaSettings,
    /// Worker threads.
    pub jobs: usize,
    /// Burst orifice area as a fraction of the pipe's cross section.
    pub burst_area_fraction: f64,
}

impl Settings {
    /// A scenario of these settings with `events`.
    pub fn scenario(&self, events: Vec<Event>) -> Scenario {
        Scenario {
            network_path: Default::default(),
            name: String::new(),
            duration: self.duration,
            pda: self.pda,
            customers: Default::default(),
            isolation_valves: ValvePlacement::PipeEnds,
            events,
        }
    }
}

/// One pipe's failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipeCriticality {
    /// 1 = most critical.
    pub rank: usize,
    pub pipe: String,
    /// Unmet demand beyond the baseline's, m3 over the run.
    pub unmet_increase_m3: f64,
    pub unmet_percent: f64,
    pub max_nodes_below_required: usize,
    pub node_hours_below_required: f64,
    /// Junctions cut off from every source (segment closures).
    pub cut_off_nodes: usize,
    /// Why the run stopped early, if it did.
    pub halted: Option<String>,
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub kind: String,
    pub duration_hours: f64,
    pub baseline: RunSummary,
    pub pipes: Vec<PipeCriticality>,
}

/// The failure scenario network of pipe `pipe`, with the indices of the original nodes in it
/// and the junctions its isolation cuts off.
fn failure_network(
    network: &Network,
    base: &Network,
    pipe: usize,
    settings: &Settings,
    segments: Option<&Segments>,
) -> (Network, Vec<usize>, usize) {
    let identity = || (0..network.nodes.len()).collect::<Vec<_>>();
    match (settings.kind, segments) {
        (FailureKind::Segment, Some(segments)) => {
            let isolation = segments.isolate(network, pipe);
            let mut shut = base.clone();
            for &link in &isolation.closed_links {
                shut.links[link].initial_status = Some(StatusSpec::Closed);
            }
            (shut, identity(), isolation.cut_off.len())
        }
        (FailureKind::Burst, _) => {
            let area = pipe_area(network, pipe) * settings.burst_area_fraction;
            let burst = Event {
                kind: EventKind::Burst {
                    pipe,
                    position: 0.5,
                    outflow: Outflow::Orifice { area, cd: 0.75 },
                },
                start: 0,
                end: None,
            };
            let built = build(network, &settings.scenario(vec![burst]));
            (built.network, built.original_nodes, 0)
        }
        _ => {
            let mut shut = base.clone();
            shut.links[pipe].initial_status = Some(StatusSpec::Closed);
            (shut, identity(), 0)
        }
    }
}

/// Cross-section of a pipe in length units squared.
fn pipe_area(network: &Network, pipe: usize) -> f64 {
    let LinkKind::Pipe(p) = &network.links[pipe].kind else {
        return 0.0;
    };
    let per_length = if network.options.flow_units.is_us() {
        12.0
    } else {
        1000.0
    };
    let d = p.diameter / per_length;
    std::f64::consts::FRAC_PI_4 * d * d
}

/// The pipes of `network`, in order.
pub fn pipes(network: &Network) -> Vec<usize> {
    (0..network.links.len())
        .filter(|&l| matches!(network.links[l].kind, LinkKind::Pipe(_)))
        .collect()
}

/// Runs the failure of each of `elements` (pipe indices) and ranks them; `progress` is
/// called with the number done after each.
pub fn sweep(
    network: &Network,
    elements: &[usize],
    settings: &Settings,
    segments: Option<&Segments>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Report, SolverError> {
    let never = AtomicBool::new(false);
    sweep_until(network, elements, settings, segments, progress, &never)?.ok_or_else(|| {
        SolverError::InvalidNetwork("the sweep stopped without being asked to".into())
    })
}

/// [`sweep`] that can be stopped: once `stop` is set, no further failure is started and the
/// answer is `None` (a planning job cancelled while it runs).
pub fn sweep_until(
    network: &Network,
    elements: &[usize],
    settings: &Settings,
    segments: Option<&Segments>,
    progress: &(dyn Fn(usize) + Sync),
    stop: &AtomicBool,
) -> Result<Option<Report>, SolverError> {
    let base = baseline(network, &settings.scenario(Vec::new()));
    let identity: Vec<usize> = (0..network.nodes.len()).collect();
    let required = settings.pda.required_pressure;
    let base_results = hydraulics::simulate(&base, &SimOptions::default())?;
    let base_summary = summarize(network, &base, &base_results, &identity, required);
    let done = AtomicUsize::new(0);
    let run_one = |&pipe: &usize| -> Result<Option<PipeCriticality>, SolverError> {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (failed, map, cut_off) = failure_network(network, &base, pipe, settings, segments);
        let results = hydraulics::simulate(&failed, &SimOptions::default())?;
        let summary = summarize(network, &failed, &results, &map, required);
        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
        Ok(Some(PipeCriticality {
            rank: 0,
            pipe: network.links[pipe].id.clone(),
            unmet_increase_m3: summary.unmet_m3 - base_summary.unmet_m3,
            unmet_percent: summary.unmet_percent,
            max_nodes_below_required: summary.max_nodes_below_required,
            node_hours_below_required: summary.node_hours_below_required,
            cut_off_nodes: cut_off,
            halted: results.halted.map(|h| h.message),
        }))
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(settings.jobs.max(1))
        .build()
        .map_err(|e| SolverError::InvalidNetwork(format!("cannot start worker threads: {e}")))?;
    let pipes = pool.install(|| {
        elements
            .par_iter()
            .map(run_one)
            .collect::<Result<Vec<_>, _>>()
    })?;
    // A failure skipped because of `stop` is `None`: the sweep is incomplete.
    let Some(mut pipes) = pipes.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    pipes.sort_by(|a, b| {
        b.unmet_increase_m3
            .total_cmp(&a.unmet_increase_m3)
            .then(
                b.node_hours_below_required
                    .total_cmp(&a.node_hours_below_required),
            )
            .then_with(|| a.pipe.cmp(&b.pipe))
    });
    for (rank, pipe) in pipes.iter_mut().enumerate() {
        pipe.rank = rank + 1;
    }
    Ok(Some(Report {
        kind: settings.kind.name().to_string(),
        duration_hours: settings.duration as f64 / 3600.0,
        baseline: base_summary,
        pipes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop fed by a reservoir, with a branch: closing pipe 1 cuts everyone off.
    const LOOP: &str = "
[JUNCTIONS]
 A 0 10
 B 0 10
 C 0 10
 D 0 10
[RESERVOIRS]
 R 100
[PIPES]
 1 R A 100 10 100
 2 A B 100 10 100
 3 B C 100 10 100
 4 C A 100 10 100
 5 C D 100 10 100
[TIMES]
 DURATION 2
[END]
";

    fn settings(network: &Network) -> Settings {
        Settings {
            kind: FailureKind::PipeClosure,
            duration: 7200,
            pda: crate::spec::default_pda(network),
            jobs: 1,
            burst_area_fraction: 0.1,
        }
    }

    #[test]
    fn a_stopped_sweep_gives_no_report_and_an_unstopped_one_the_sweeps() {
        let network = hydraulics::read_str(LOOP, "loop.inp").unwrap();
        let elements = pipes(&network);
        let settings = settings(&network);
        let done = AtomicUsize::new(0);
        let count = |n: usize| {
            done.fetch_max(n, Ordering::Relaxed);
        };
        let running = AtomicBool::new(false);
        let report = sweep_until(&network, &elements, &settings, None, &count, &running)
            .unwrap()
            .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), elements.len());
        assert_eq!(
            report,
            sweep(&network, &elements, &settings, None, &|_| {}).unwrap()
        );
        assert_eq!(report.pipes[0].pipe, "1");

        let stopped = AtomicBool::new(true);
        let untouched = AtomicUsize::new(0);
        let none = sweep_until(
            &network,
            &elements,
            &settings,
            None,
            &|n| untouched.store(n, Ordering::Relaxed),
            &stopped,
        )
        .unwrap();
        assert!(none.is_none());
        assert_eq!(untouched.load(Ordering::Relaxed), 0);
    }
}
