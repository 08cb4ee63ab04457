//! Criticality sweeps: every pipe fails in turn (closed, burst, or its isolation segment
//! closed) for the whole run under pressure driven demand, in parallel, ranked by the demand
//! left unmet.

use crate::build::{baseline, build};
use crate::impact::{summarize, RunSummary, SummaryBuilder};
use crate::segments::{Segments, ValvePlacement};
use crate::spec::{Event, EventKind, Outflow, PdaSettings, Scenario};
use hydraulics::model::{LinkKind, Network};
use hydraulics::solver::data::{HydNetwork, Status};
use hydraulics::solver::{close_link, compile, Linearization, PeriodRun, Solver};
use hydraulics::{SimOptions, SolverError};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use warm_start::{Response, WarmStart};

mod warm_start;

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

/// How each period of a failure run starts its Newton iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodStart {
    /// From the failure's previous period moved by what the baseline did between the same two
    /// times (see [`WarmStart`]): fewer iterations for the same answer within the solver's
    /// accuracy.
    Warm,
    /// As EPANET starts: the previous period's flows and the full demands.
    Cold,
}

/// What every failure of a sweep starts from: the baseline compiled once, its solver (the
/// ordering and symbolic factorization, done once) and its flows and delivered demands at
/// every period, with its links' statuses.
struct Prepared<'a> {
    network: &'a Network,
    base: Network,
    hyd: HydNetwork,
    solver: Solver,
    periods: Vec<BasePeriod>,
    /// The linearization of the baseline's first period, from which a closure's rerouting
    /// is predicted (see [`Response::closure`]).
    first_linearization: Option<Linearization>,
    /// Links whose status changes between the baseline's periods.
    switching: Vec<usize>,
    summary: RunSummary,
    identity: Vec<usize>,
    settings: &'a Settings,
}

/// What each worker keeps from one failure to the next: its copies of the baseline's compiled
/// network and solver (which keeps what the runs build from the network, see
/// [`PeriodRun::finish`]) and a summary builder, emptied after each failure.
struct Worker<'p> {
    hyd: HydNetwork,
    solver: Solver,
    summary: SummaryBuilder<'p>,
}

/// One solved period of the baseline, internal units (cfs).
struct BasePeriod {
    t: u64,
    flow: Vec<f64>,
    demand_flow: Vec<f64>,
    status: Vec<Status>,
    /// What the flows did since the period before beyond the first-order change of the
    /// period before's linearization (by link, NaN where that gives none); `None` for the
    /// first period and where link statuses changed in between.
    nonlinear: Option<Vec<f64>>,
}

/// What one failure run gives.
struct FailureRun {
    summary: RunSummary,
    halted: Option<String>,
}

impl<'a> Prepared<'a> {
    fn new(network: &'a Network, settings: &'a Settings) -> Result<Self, SolverError> {
        let base = baseline(network, &settings.scenario(Vec::new()));
        let hyd = compile(&base)?;
        let mut solver = Solver::new(&hyd);
        let identity: Vec<usize> = (0..network.nodes.len()).collect();
        let mut summary =
            SummaryBuilder::new(network, &base, &identity, settings.pda.required_pressure);
        let mut periods = Vec::new();
        let mut run = PeriodRun::new(&hyd, &mut solver, &SimOptions::default());
        let mut response = Response::new(&hyd);
        let mut linear = None;
        let mut first_linearization = None;
        while let Some(period) = run.solve_period_with(|state, solver| {
            if periods.len() == 1 {
                first_linearization = solver.linearization();
            }
            // The baseline starts as EPANET does; only its first-order change is kept.
            let before = (periods.last())
                .map(|before: &BasePeriod| (&before.status[..], &before.demand_flow[..]));
            linear = (response.predict(&hyd, solver, state, before)).map(<[f64]>::to_vec);
        }) {
            if period.solved {
                let state = run.state();
                summary.push_state(period.t, &hyd, state);
                let nonlinear = linear
                    .take()
                    .zip(periods.last())
                    .map(|(mut linear, before)| {
                        for ((change, &now), &then) in
                            linear.iter_mut().zip(&state.flow).zip(&before.flow)
                        {
                            *change = (now - then) - *change;
                        }
                        linear
                    });
                periods.push(BasePeriod {
                    t: period.t,
                    flow: state.flow.clone(),
                    status: state.status.clone(),
                    demand_flow: state.demand_flow[..hyd.junctions].to_vec(),
                    nonlinear,
                });
                response.remember(state);
            }
        }
        run.finish();
        let summary = summary.finish(base.times.duration);
        let switching = match periods.first() {
            Some(first) => (0..hyd.links.len())
                .filter(|&link| periods.iter().any(|p| p.status[link] != first.status[link]))
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            network,
            switching,
            summary,
            hyd,
            solver,
            periods,
            first_linearization,
            identity,
            base,
            settings,
        })
    }

    /// A worker's own copies of what every failure starts from.
    fn worker(&self) -> Worker<'_> {
        Worker {
            hyd: self.hyd.clone(),
            solver: self.solver.clone(),
            summary: SummaryBuilder::new(
                self.network,
                &self.base,
                &self.identity,
                self.settings.pda.required_pressure,
            ),
        }
    }

    /// Runs the failure of `pipe` on `worker`'s network and solver (links closed for the run
    /// are opened again after it).
    fn run(
        &self,
        pipe: usize,
        segments: Option<&Segments>,
        start: PeriodStart,
        worker: &mut Worker<'_>,
    ) -> Result<(FailureRun, usize), SolverError> {
        let Worker {
            hyd,
            solver,
            summary,
        } = worker;
        let (closed, cut_off) = match (self.settings.kind, segments) {
            (FailureKind::Burst, _) => return self.run_burst(pipe).map(|run| (run, 0)),
            (FailureKind::Segment, Some(segments)) => {
                let isolation = segments.isolate(self.network, pipe);
                (isolation.closed_links, isolation.cut_off.len())
            }
            _ => (vec![pipe], 0),
        };
        let saved: Vec<_> = closed.iter().map(|&l| hyd.links[l].clone()).collect();
        for &link in &closed {
            close_link(hyd, link);
        }
        let closure = match (&closed[..], &self.first_linearization) {
            ([link], Some(linearization)) => Some((*link, linearization)),
            _ => None,
        };
        let mut warm = WarmStart::new(&self.periods, &self.switching, hyd, &closed, closure);
        let mut halted = None;
        let compiled = &*hyd;
        let mut run = PeriodRun::new(compiled, solver, &SimOptions::default());
        while let Some(period) = run.solve_period_with(|state, solver| {
            if start == PeriodStart::Warm {
                warm.seed(compiled, solver, state);
            }
        }) {
            if period.solved {
                summary.push_state(period.t, hyd, run.state());
                warm.remember(period.t, run.state());
            }
            if let Some(halt) = period.halted {
                halted = Some(halt.message);
            }
        }
        run.finish();
        for (&link, original) in closed.iter().zip(saved) {
            hyd.links[link] = original;
        }
        let summary = summary.finish_and_clear(self.base.times.duration);
        Ok((FailureRun { summary, halted }, cut_off))
    }

    /// A burst splits the pipe, so its network is compiled anew and solved from a cold start.
    fn run_burst(&self, pipe: usize) -> Result<FailureRun, SolverError> {
        let area = pipe_area(self.network, pipe) * self.settings.burst_area_fraction;
        let burst = Event {
            kind: EventKind::Burst {
                pipe,
                position: 0.5,
                outflow: Outflow::Orifice { area, cd: 0.75 },
            },
            start: 0,
            end: None,
        };
        let built = build(self.network, &self.settings.scenario(vec![burst]));
        let results = hydraulics::simulate(&built.network, &SimOptions::default())?;
        Ok(FailureRun {
            summary: summarize(
                self.network,
                &built.network,
                &results,
                &built.original_nodes,
                self.settings.pda.required_pressure,
            ),
            halted: results.halted.map(|h| h.message),
        })
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
/// called with the number done after each; `start` says how each period's solve starts.
pub fn sweep(
    network: &Network,
    elements: &[usize],
    settings: &Settings,
    segments: Option<&Segments>,
    progress: &(dyn Fn(usize) + Sync),
    start: PeriodStart,
) -> Result<Report, SolverError> {
    let never = AtomicBool::new(false);
    sweep_until(
        network, elements, settings, segments, progress, &never, start,
    )?
    .ok_or_else(|| SolverError::InvalidNetwork("the sweep stopped without being asked to".into()))
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
    start: PeriodStart,
) -> Result<Option<Report>, SolverError> {
    let prepared = Prepared::new(network, settings)?;
    let done = AtomicUsize::new(0);
    let worker_copies = || prepared.worker();
    let run_one =
        |worker: &mut Worker<'_>, &pipe: &usize| -> Result<Option<PipeCriticality>, SolverError> {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let (run, cut_off) = prepared.run(pipe, segments, start, worker)?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok(Some(PipeCriticality {
                rank: 0,
                pipe: network.links[pipe].id.clone(),
                unmet_increase_m3: run.summary.unmet_m3 - prepared.summary.unmet_m3,
                unmet_percent: run.summary.unmet_percent,
                max_nodes_below_required: run.summary.max_nodes_below_required,
                node_hours_below_required: run.summary.node_hours_below_required,
                cut_off_nodes: cut_off,
                halted: run.halted,
            }))
        };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(settings.jobs.max(1))
        .build()
        .map_err(|e| SolverError::InvalidNetwork(format!("cannot start worker threads: {e}")))?;
    let pipes = pool.install(|| {
        elements
            .par_iter()
            .map_init(worker_copies, run_one)
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
        baseline: prepared.summary,
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
        let report = sweep_until(
            &network,
            &elements,
            &settings,
            None,
            &count,
            &running,
            PeriodStart::Warm,
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), elements.len());
        assert_eq!(
            report,
            sweep(
                &network,
                &elements,
                &settings,
                None,
                &|_| {},
                PeriodStart::Warm
            )
            .unwrap()
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
            PeriodStart::Warm,
        )
        .unwrap();
        assert!(none.is_none());
        assert_eq!(untouched.load(Ordering::Relaxed), 0);
    }

    /// A run that takes over what an earlier run left with the solver (the demands of each
    /// pattern period among them), and a summary fed from the solver's state, give to the bit
    /// what a fresh run and a summary of the written results give, a closed pipe or not.
    #[test]
    fn reused_run_parts_and_summaries_from_the_state_change_no_bit_on_net3() {
        let path = std::path::Path::new("../../shared/networks/Net3.inp");
        let network = hydraulics::read_file(path).expect("Net3 is in the shared networks");
        let base = compile(&network).unwrap();
        let identity: Vec<usize> = (0..network.nodes.len()).collect();
        let pipe = pipes(&network)[10];
        let mut closed = base.clone();
        close_link(&mut closed, pipe);
        let options = SimOptions::default();
        let mut reused = Solver::new(&base);
        let mut kept = SummaryBuilder::new(&network, &network, &identity, 20.0);
        for (round, hyd) in [&base, &closed, &base, &closed].into_iter().enumerate() {
            let mut fresh_solver = Solver::new(hyd);
            let mut fresh = PeriodRun::new(hyd, &mut fresh_solver, &options);
            let mut run = PeriodRun::new(hyd, &mut reused, &options);
            let mut written = SummaryBuilder::new(&network, &network, &identity, 20.0);
            let mut step = hydraulics::solver::StepResult::default();
            while let Some(period) = run.solve_period(|_| {}) {
                let expected = fresh.solve_period(|_| {}).unwrap();
                assert_eq!(period.t, expected.t);
                let (a, b) = (run.state(), fresh.state());
                assert_eq!(a.head, b.head, "round {round} at {}", period.t);
                assert_eq!(a.flow, b.flow, "round {round} at {}", period.t);
                assert_eq!(
                    a.demand_flow, b.demand_flow,
                    "round {round} at {}",
                    period.t
                );
                if period.solved {
                    fresh.write_step_values(&expected, &mut step);
                    written.push(&step);
                    kept.push_state(period.t, hyd, a);
                }
            }
            assert!(fresh.solve_period(|_| {}).is_none());
            run.finish();
            let duration = network.times.duration;
            assert_eq!(kept.finish_and_clear(duration), written.finish(duration));
        }
    }

    /// Net3's first period: the rerouting predicted from the open network's linearization
    /// brings the flows of a pipe closure far closer to the solved ones than the open
    /// network's flows are, for a pipe in a loop; a pipe that alone feeds a part gets none.
    #[test]
    fn a_closure_is_predicted_from_the_open_networks_linearization_on_net3() {
        let path = std::path::Path::new("../../shared/networks/Net3.inp");
        let network = hydraulics::read_file(path).expect("Net3 is in the shared networks");
        let base = compile(&network).unwrap();
        let options = SimOptions::default();
        let first_period = |hyd: &HydNetwork, solver: &mut Solver| {
            let mut run = PeriodRun::new(hyd, solver, &options);
            assert!(run.solve_period(|_| {}).is_some_and(|period| period.solved));
            run.state().flow.clone()
        };
        let mut solver = Solver::new(&base);
        let open = first_period(&base, &mut solver);
        let linearization = solver
            .linearization()
            .expect("a solved period keeps its factor");
        let mut response = Response::new(&base);
        let (mut missed_all, mut moved_all) = (0.0, 0.0);
        for pipe in pipes(&network) {
            let Some(change) =
                (response.closure(&base, &mut solver, &linearization, pipe, open[pipe]))
                    .map(<[f64]>::to_vec)
            else {
                continue;
            };
            let mut closed = base.clone();
            close_link(&mut closed, pipe);
            let solved = first_period(&closed, &mut Solver::new(&closed));
            let (mut missed, mut moved) = (0.0, 0.0);
            for link in (0..open.len()).filter(|&link| link != pipe && !change[link].is_nan()) {
                missed += (solved[link] - open[link] - change[link]).abs();
                moved += (solved[link] - open[link]).abs();
            }
            // In cfs: a pipe that carried next to nothing moves next to nothing.
            assert!(
                missed <= 0.5 * moved + 1e-3,
                "pipe {pipe}: missed {missed} of {moved}"
            );
            (missed_all, moved_all) = (missed_all + missed, moved_all + moved);
        }
        // 94 of Net3's 117 pipes are predicted, missing 14 % of the change all together.
        assert!(
            missed_all < 0.2 * moved_all,
            "missed {missed_all} of {moved_all}"
        );
        // Junction 131 hangs on pipe 137 alone.
        let (dead_end, _) = (network.links.iter().enumerate())
            .find(|(_, link)| link.id == "137")
            .expect("Net3 has pipe 137");
        assert!(response
            .closure(&base, &mut solver, &linearization, dead_end, open[dead_end])
            .is_none());
    }

    /// Net3 24 h, every pipe closed: periods started warm give the figures of periods started
    /// as EPANET starts them within the solver's accuracy, except where a status check made
    /// between iterations decides otherwise from the other starting point (a link closed one
    /// period earlier or later): both are balanced solutions, and such pipes stay rare.
    #[test]
    fn warm_started_closures_match_cold_started_ones_on_net3() {
        let path = std::path::Path::new("../../shared/networks/Net3.inp");
        let network = hydraulics::read_file(path).expect("Net3 is in the shared networks");
        let settings = Settings {
            duration: 24 * 3600,
            jobs: 2,
            ..settings(&network)
        };
        let elements = pipes(&network);
        let never = AtomicBool::new(false);
        let sweep = |start| {
            sweep_until(&network, &elements, &settings, None, &|_| {}, &never, start)
                .unwrap()
                .unwrap()
        };
        let (warm, cold) = (sweep(PeriodStart::Warm), sweep(PeriodStart::Cold));
        assert_eq!(warm.baseline, cold.baseline);
        let required = warm.baseline.required_m3;
        let mut differing = Vec::new();
        for w in &warm.pipes {
            let c = cold.pipes.iter().find(|c| c.pipe == w.pipe).unwrap();
            let unmet = (w.unmet_increase_m3 - c.unmet_increase_m3).abs();
            let hours = (w.node_hours_below_required - c.node_hours_below_required).abs();
            assert!(unmet <= 2e-4 * required, "pipe {}: {w:?} vs {c:?}", w.pipe);
            assert_eq!(w.halted, c.halted, "pipe {}", w.pipe);
            if unmet > 1e-3 * c.unmet_increase_m3.abs() + 0.1 || hours > 0.5 {
                differing.push(w.pipe.clone());
            }
        }
        assert!(differing.len() * 50 <= elements.len(), "{differing:?}");
        let top = |report: &Report| {
            let mut ids: Vec<String> = report.pipes[..10].iter().map(|p| p.pipe.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(top(&warm), top(&cold));
    }
}
