//! (in progress)
use super::data::{HydNetwork, HydState, SolveOutcome};

/// One network's solver: the symbolic factorization and work arrays, reused across periods.
pub struct Solver {}

impl Solver {
    pub fn new(network: &HydNetwork) -> Self {
        let _ = network;
        todo!("solver")
    }

    /// Solves the network equations for the current demands, tank heads, statuses and settings
    /// (EPANET's `hydsolve`), updating heads, flows and statuses in `state`.
    pub fn solve(&mut self, network: &HydNetwork, state: &mut HydState) -> SolveOutcome {
        let _ = (network, state);
        todo!("solver")
    }
}
