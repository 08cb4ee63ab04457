//! State estimation for one period: the sensitivity of every observation (pressure, head, flow,
//! demand reading) to extra outflow at every junction, and a regularized weighted least-squares
//! (Gauss-Newton) estimate of demand-multiplier corrections per demand group and of leak
//! outflows at candidate junctions, with the nominal model as the prior.
//!
//! The sensitivities come from the solved period itself: around the solution the network's
//! equations linearize to `L dH = -dq` with `L` the junction block of the weighted Laplacian
//! whose link weights are the link conductances `dQ/dh` (the matrix of the solver's Newton step).
//! One Cholesky factorization of `L` then gives, per observed node, a row of `L^-1`: the
//! response of that observation to a unit leak at any junction. Rows are solved in parallel.

mod noise;
mod sensitivity;
mod wls;

pub use noise::ObservationNoise;
pub use sensitivity::{nominal_demands, Observation, Sensitivity};
pub use wls::{estimate, Estimate, EstimateConfig, EstimateError};
