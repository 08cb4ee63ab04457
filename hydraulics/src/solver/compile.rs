//! (in progress)
use super::data::HydNetwork;
use super::SolverError;
use crate::model::Network;

/// Compiles a network into the solver's internal form and units.
pub fn compile(network: &Network) -> Result<HydNetwork, SolverError> {
    let _ = network;
    todo!("compile")
}
