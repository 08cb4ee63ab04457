//! (in progress)
use super::{SimOptions, SimResults, SolverError};
use crate::model::Network;

/// Runs the network's extended period simulation (or one steady period).
pub fn simulate(network: &Network, options: &SimOptions) -> Result<SimResults, SolverError> {
    let _ = (network, options);
    todo!("eps")
}
