//! What-if scenarios, isolation segments and criticality sweeps (issue 5); replay (issue 4).
//!
//! # Scenario files
//!
//! A scenario is a TOML file. Times are hours from the start of the run; sizes are in the
//! network's own units (flow units, length units, pressure units).
//!
//! ```toml
//! network = "Net3.inp"        # relative to the scenario file's folder
//! name = "main break at 02:00" # optional, default: the file's stem
//! duration_hours = 24          # optional, default: the network's duration
//! isolation_valves = "pipe_ends" # or "model": where the isolation valves of bursts are
//!
//! [pda]                        # optional: pressure driven demand, pressure units
//! minimum_pressure = 0         # default: the network's PDA settings, else 0 and 20 m
//! required_pressure = 28.4
//! exponent = 0.5
//!
//! [customers]                  # optional
//! demand_per_customer = 0.5    # base demand (flow units) per customer
//! nodes = { "10" = 120 }       # customers of named junctions (override)
//!
//! [[events]]
//! kind = "burst"               # see the kinds below
//! pipe = "20"
//! position = 0.5               # along the pipe, from its start node; default 0.5
//! area = 0.05                  # orifice area, length units squared ...
//! cd = 0.75                    # ... and discharge coefficient (default 0.75),
//! # coefficient = 30           # or an EPANET emitter coefficient,
//! # flow = 500                # or a fixed flow
//! at_hours = 2
//! until_hours = 8              # optional: the event ends (repair); default: never
//! ```
//!
//! Event kinds and their fields (besides `at_hours` and `until_hours`):
//!
//! | kind | fields | modelled as |
//! |---|---|---|
//! | `burst` (one per pipe) | `pipe`, `position`, one of `area`(+`cd`) / `coefficient` / `flow` | the pipe split at `position` (new junction at the interpolated elevation, two pipes with proportional lengths), an outlet junction with an emitter, `d = cd A sqrt(2 g h)`, i.e. EPANET's `q = C p^0.5` with `C` in the network's units (a fixed `flow` is drawn through a flow control valve instead) |
//! | `leak` | `node`, one of `area`(+`cd`) / `coefficient` / `flow` | the same outlet at a junction |
//! | `pipe_closure` | `pipe` (or `link`) | the link closed, reopened at `until_hours` |
//! | `valve_close`, `valve_open` | `valve` | the valve closed / fully open, back to its setting at `until_hours` |
//! | `pump_outage` | `pump` | a switch pipe in series on the pump's discharge, closed: the pump's own controls cannot restart it |
//! | `tank_out_of_service` | `tank` | every link of the tank cut by a closed switch pipe |
//! | `demand_surge`, `fire_flow` | `node`, `flow` | an extra draw of `flow` through a flow control valve |
//! | `reservoir_head` | `reservoir`, `head` | a head pattern (times must fall on pattern periods) |
//!
//! Outlets and switches are opened and closed by `AT TIME` controls, so the network
//! [`build::build`] returns can be written with `hydraulics::write_string` and run by EPANET
//! unchanged. Errors name the file, the event (`events[i]`, from 0) and the field.
//!
//! The impact of a scenario ([`impact::assess`]) compares its run with the baseline (the same
//! network, duration and PDA settings, no events): junctions below the required pressure over
//! time, unmet demand (volume and percent of the PDA full demand), customers affected (a
//! junction whose share of its demand falls by more than 1 % below the baseline's at some
//! time), water lost through bursts and leaks, when tanks run empty, and WNTR's Todini
//! resilience index and water service availability, and for each burst the isolation plan
//! (valves to close, junctions, demand and customers cut off, and with a valve failing).
//!
//! [`segments`] finds isolation segments and what isolating a pipe takes (valves to operate,
//! junctions cut off, with one valve failing to close); [`criticality`] fails every pipe in
//! turn in parallel and ranks them.

pub mod build;
pub mod criticality;
pub mod impact;
pub mod replay;
pub mod segments;
pub mod spec;

pub use build::{baseline, build, BuiltScenario};
pub use spec::{parse, Scenario, ScenarioError};
