//! `pow` and `log` of many values at once, giving the same bits as the C library's scalar
//! functions the solver called before (EPANET's results on near-singular networks are
//! decided by round-off, so the solver must reproduce its arithmetic exactly).

mod log;
mod pow;

pub(crate) use log::natural_logs;
pub(crate) use pow::abs_powers;
