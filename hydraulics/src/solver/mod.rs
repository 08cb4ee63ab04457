//! The hydraulic solver: Global Gradient Algorithm (Todini-Pilati) as EPANET 2.3 runs it.
//!
//! - `compile`: model (file units) to [`data::HydNetwork`] (internal units).
//! - `linear`, `ordering`: EPANET's sparse Cholesky and minimum degree ordering, analysed
//!   once per network.
//! - `coeffs`, `newton`, `status`: one hydraulic solve (EPANET's `hydsolve`).
//! - `eps`: extended period simulation: patterns, time steps, results per step.
//! - `tanks`, `controls`: tank levels and simple controls between periods.
//! - `rules`: rule-based controls.
//! - `warnings`: the warnings EPANET reports after a period, counted over the run.
//! - `snapshot`: one period at a time with measured boundary conditions (the live twin).

pub mod data;

mod coeffs;
mod compile;
mod controls;
mod curves;
mod eps;
mod fork_join;
mod linear;
mod newton;
mod ordering;
mod rules;
mod snapshot;
mod status;
mod tanks;
mod vector_math;
mod warnings;

pub use compile::{close_link, compile};
pub use eps::{simulate, Period, PeriodRun, StateValues};
pub use newton::{Linearization, Solver};
pub use snapshot::{
    BoundaryConditions, KeptPeriod, LinkState, Snapshot, SnapshotError, SnapshotSolver,
};

/// How to run a simulation.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Solve only the first period (time 0), as EPANET does with a zero duration.
    pub steady: bool,
    /// Threads the solver may use: with 2 or more, a network large enough gets a second
    /// thread for its link coefficients and half of its factorization (the results are the
    /// same to the bit); 0 and 1 mean one thread.
    pub threads: usize,
}

/// Results of a simulation, in the network's own (file) units, arrays aligned with the
/// network's nodes and links.
#[derive(Debug, Clone, Default)]
pub struct SimResults {
    /// Every hydraulic time step the solver took.
    pub steps: Vec<StepResult>,
    /// Warnings as EPANET words them, with the time they first occurred and how often.
    pub warnings: Vec<SimWarning>,
    /// Set when the run stopped early (e.g. unbalanced with `UNBALANCED STOP`).
    pub halted: Option<Halt>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepResult {
    /// Seconds since the start.
    pub t: u64,
    /// `true` at reporting times.
    pub report: bool,
    pub head: Vec<f64>,
    pub pressure: Vec<f64>,
    pub demand: Vec<f64>,
    pub flow: Vec<f64>,
    /// 0 closed, 1 open, 2 active.
    pub status: Vec<u8>,
    /// EPANET's internal status code of each link ([`data::Status`] as a number).
    pub state: Vec<u8>,
    pub iterations: u32,
    pub relative_error: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimWarning {
    /// EPANET's message text, e.g. `WARNING: Negative pressures .`
    pub message: String,
    pub count: usize,
    /// Time of the first occurrence, seconds.
    pub first_at: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub t: u64,
    pub message: String,
}

/// Why a network cannot be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// The network is invalid for simulation (EPANET errors 2xx found after reading).
    #[error("invalid network: {0}")]
    InvalidNetwork(String),
    /// The linear system could not be solved (EPANET error 110).
    #[error("cannot solve network hydraulic equations at {time}: {detail}")]
    IllConditioned { time: String, detail: String },
}
