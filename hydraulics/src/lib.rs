//! EPANET-compatible hydraulics: the network model, `.inp` reading and writing, topology, and
//! the Global Gradient Algorithm solver with extended-period simulation.
//!
//! Synchronous and deterministic; no I/O beyond the files a caller names.

pub mod generate;
pub mod inp;
pub mod model;
pub mod results;
pub mod solver;
pub mod topology;
pub mod units;

pub use inp::{read_file, read_str, write_string, InpError};
pub use model::Network;
pub use solver::{simulate, SimOptions, SimResults, SolverError};
