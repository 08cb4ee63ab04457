//! Scenario files: TOML text to a checked [`Scenario`] (the format is documented in the crate
//! root).

use crate::segments::ValvePlacement;
use hydraulics::model::{LinkKind, Network, NodeKind};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a scenario file is wrong: the file, the event (index into `events`, from 0) and the
/// field, when the problem is in one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ScenarioError {
    pub file: String,
    pub event: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(event) = self.event {
            write!(f, ": events[{event}]")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Pressure-driven demand settings of a scenario, in the network's pressure units.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdaSettings {
    pub minimum_pressure: f64,
    pub required_pressure: f64,
    #[serde(default = "half")]
    pub exponent: f64,
}

fn half() -> f64 {
    0.5
}

/// How many customers each junction serves.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettings {
    /// Base demand (network flow units) per customer; a junction without an entry in `nodes`
    /// serves `base demand / demand_per_customer` customers.
    pub demand_per_customer: Option<f64>,
    /// Customers of named junctions, overriding the demand rule.
    #[serde(default)]
    pub nodes: std::collections::BTreeMap<String, f64>,
}

/// How an outflow (burst, leak) is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outflow {
    /// Orifice of `area` (length units squared) and discharge coefficient `cd`:
    /// `d = cd area sqrt(2 g h)`.
    Orifice { area: f64, cd: f64 },
    /// EPANET emitter coefficient (flow units per pressure unit ^ 0.5).
    Coefficient(f64),
    /// A fixed flow (flow units) drawn through a flow control valve, as long as the pressure
    /// allows it.
    Flow(f64),
}

/// What an event does.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The pipe breaks at `position` (0 = its start node, 1 = its end node).
    Burst {
        pipe: usize,
        position: f64,
        outflow: Outflow,
    },
    /// Water escapes at a junction.
    Leak { node: usize, outflow: Outflow },
    /// A link is closed.
    PipeClosure { link: usize },
    /// A valve is closed.
    ValveClose { valve: usize },
    /// A valve is opened fully.
    ValveOpen { valve: usize },
    /// A pump stops (whatever its controls say).
    PumpOutage { pump: usize },
    /// A tank is cut off from the network.
    TankOutOfService { tank: usize },
    /// An extra draw (a fire flow, a surge of demand) at a junction, flow units.
    DemandSurge { node: usize, flow: f64 },
    /// A reservoir's head becomes `head` (length units).
    ReservoirHead { reservoir: usize, head: f64 },
}

/// One event of a scenario, times in seconds from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub start: u64,
    /// When the event ends (repair, valve reopened); `None`: it lasts to the end.
    pub end: Option<u64>,
}

/// A checked scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The network file, resolved against the scenario file's folder.
    pub network_path: PathBuf,
    /// Scenario name (the file's `name`, else its stem).
    pub name: String,
    /// Seconds.
    pub duration: u64,
    pub pda: PdaSettings,
    pub customers: CustomerSettings,
    /// Where the isolation valves are, for the isolation plan of each burst.
    pub isolation_valves: ValvePlacement,
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTop {
    network: PathBuf,
    name: Option<String>,
    duration_hours: Option<f64>,
    pda: Option<PdaSettings>,
    #[serde(default)]
    customers: CustomerSettings,
    isolation_valves: Option<String>,
    #[serde(default)]
    events: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    kind: String,
    at_hours: f64,
    until_hours: Option<f64>,
    pipe: Option<String>,
    link: Option<String>,
    valve: Option<String>,
    pump: Option<String>,
    tank: Option<String>,
    reservoir: Option<String>,
    node: Option<String>,
    position: Option<f64>,
    area: Option<f64>,
    cd: Option<f64>,
    coefficient: Option<f64>,
    flow: Option<f64>,
    head: Option<f64>,
}

/// The scenario file's top level, before the network is read: where the network is.
pub fn network_path(text: &str, file: &Path) -> Result<PathBuf, ScenarioError> {
    let top = parse_top(text, file)?;
    Ok(resolve(file, &top.network))
}

fn resolve(file: &Path, network: &Path) -> PathBuf {
    match file.parent() {
        Some(folder) if network.is_relative() => folder.join(network),
        _ => network.to_path_buf(),
    }
}

fn parse_top(text: &str, file: &Path) -> Result<FileTop, ScenarioError> {
    toml::from_str(text).map_err(|error| ScenarioError {
        file: file.display().to_string(),
        event: None,
        field: None,
        message: error.to_string().trim_end().replace('\n', " "),
    })
}

/// Parses and checks a scenario file against its network (already read from
/// [`network_path`]).
pub fn parse(text: &str, file: &Path, network: &Network) -> Result<Scenario, ScenarioError> {
    let top = parse_top(text, file)?;
    let error = |event: Option<usize>, field: Option<&str>, message: String| ScenarioError {
        file: file.display().to_string(),
        event,
        field: field.map(str::to_string),
        message,
    };
    let duration = match top.duration_hours {
        Some(hours) if !(hours.is_finite() && hours > 0.0) => {
            return Err(error(
                None,
                Some("duration_hours"),
                format!("must be a positive number of hours, not {hours}"),
            ))
        }
        Some(hours) => (hours * 3600.0).round() as u64,
        None => network.times.duration,
    };
    let pda = top.pda.unwrap_or_else(|| default_pda(network));
    for (field, value) in [
        ("pda.minimum_pressure", pda.minimum_pressure),
        ("pda.required_pressure", pda.required_pressure),
        ("pda.exponent", pda.exponent),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(error(
                None,
                Some(field),
                format!("must not be negative, not {value}"),
            ));
        }
    }
    if pda.required_pressure <= pda.minimum_pressure {
        return Err(error(
            None,
            Some("pda.required_pressure"),
            "must be above pda.minimum_pressure".to_string(),
        ));
    }
    if let Some(per) = top.customers.demand_per_customer {
        if !(per.is_finite() && per > 0.0) {
            return Err(error(
                None,
                Some("customers.demand_per_customer"),
                format!("must be positive, not {per}"),
            ));
        }
    }
    for (id, &count) in &top.customers.nodes {
        if network.node_index(id).is_none() {
            return Err(error(
                None,
                Some("customers.nodes"),
                format!("unknown node `{id}`"),
            ));
        }
        if !(count.is_finite() && count >= 0.0) {
            return Err(error(
                None,
                Some("customers.nodes"),
                format!("node `{id}`: a count of customers must not be negative, not {count}"),
            ));
        }
    }
    let events = top
        .events
        .into_iter()
        .enumerate()
        .map(|(index, table)| {
            parse_event(table, network, duration)
                .map_err(|(field, message)| error(Some(index), field, message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A second split of the same pipe would measure its position on the first part only.
    for (index, event) in events.iter().enumerate() {
        if let EventKind::Burst { pipe, .. } = event.kind {
            let earlier = events[..index]
                .iter()
                .any(|e| matches!(e.kind, EventKind::Burst { pipe: p, .. } if p == pipe));
            if earlier {
                return Err(error(
                    Some(index),
                    Some("pipe"),
                    format!(
                        "pipe `{}` already bursts in an earlier event",
                        network.links[pipe].id
                    ),
                ));
            }
        }
    }
    let name = top.name.unwrap_or_else(|| {
        file.file_stem().map_or_else(
            || "scenario".to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    let isolation_valves = match top.isolation_valves.as_deref() {
        None | Some("pipe_ends") => ValvePlacement::PipeEnds,
        Some("model") => ValvePlacement::ModelValves,
        Some(other) => {
            return Err(error(
                None,
                Some("isolation_valves"),
                format!("`{other}` is neither `pipe_ends` nor `model`"),
            ))
        }
    };
    Ok(Scenario {
        network_path: resolve(file, &top.network),
        name,
        duration,
        pda,
        customers: top.customers,
        isolation_valves,
        events,
    })
}

/// The network's own PDA settings when it is pressure driven, else 0 to 20 m (WNTR's usual
/// nominal pressure) in the network's pressure units.
pub fn default_pda(network: &Network) -> PdaSettings {
    use hydraulics::model::DemandModel;
    if network.options.demand_model == DemandModel::Pda {
        return PdaSettings {
            minimum_pressure: network.options.minimum_pressure,
            required_pressure: network.options.required_pressure,
            exponent: network.options.pressure_exponent,
        };
    }
    let units = hydraulics::units::UnitFactors::new(&network.options);
    PdaSettings {
        minimum_pressure: 0.0,
        required_pressure: 20.0 / hydraulics::units::M_PER_FT * units.pressure,
        exponent: 0.5,
    }
}

type FieldError = (Option<&'static str>, String);

fn parse_event(table: toml::Table, network: &Network, duration: u64) -> Result<Event, FieldError> {
    let raw: FileEvent = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| (None, e.message().to_string()))?;
    let seconds = |field: &'static str, hours: f64| -> Result<u64, FieldError> {
        if !hours.is_finite() || hours < 0.0 {
            return Err((Some(field), format!("must not be negative, not {hours}")));
        }
        let t = (hours * 3600.0).round() as u64;
        if t > duration {
            return Err((
                Some(field),
                format!(
                    "{hours} h is beyond the scenario's duration ({} h)",
                    duration as f64 / 3600.0
                ),
            ));
        }
        Ok(t)
    };
    let start = seconds("at_hours", raw.at_hours)?;
    let end = match raw.until_hours {
        Some(hours) => {
            let end = seconds("until_hours", hours)?;
            if end <= start {
                return Err((Some("until_hours"), "must be after at_hours".to_string()));
            }
            Some(end)
        }
        None => None,
    };
    let kind = match raw.kind.as_str() {
        "burst" => EventKind::Burst {
            pipe: element(&raw.pipe, "pipe", network, Want::Pipe)?,
            position: match raw.position {
                None => 0.5,
                Some(p) if p > 0.0 && p < 1.0 => p,
                Some(p) => {
                    return Err((
                        Some("position"),
                        format!("must be strictly between 0 and 1, not {p}"),
                    ))
                }
            },
            outflow: outflow(&raw)?,
        },
        "leak" => EventKind::Leak {
            node: element(&raw.node, "node", network, Want::Junction)?,
            outflow: outflow(&raw)?,
        },
        "pipe_closure" => {
            let (id, field) = if raw.link.is_some() {
                (&raw.link, "link")
            } else {
                (&raw.pipe, "pipe")
            };
            EventKind::PipeClosure {
                link: element(id, field, network, Want::Link)?,
            }
        }
        "valve_close" => EventKind::ValveClose {
            valve: element(&raw.valve, "valve", network, Want::Valve)?,
        },
        "valve_open" => EventKind::ValveOpen {
            valve: element(&raw.valve, "valve", network, Want::Valve)?,
        },
        "pump_outage" => EventKind::PumpOutage {
            pump: element(&raw.pump, "pump", network, Want::Pump)?,
        },
        "tank_out_of_service" => EventKind::TankOutOfService {
            tank: element(&raw.tank, "tank", network, Want::Tank)?,
        },
        "demand_surge" | "fire_flow" => EventKind::DemandSurge {
            node: element(&raw.node, "node", network, Want::Junction)?,
            flow: positive("flow", raw.flow)?,
        },
        "reservoir_head" => EventKind::ReservoirHead {
            reservoir: element(&raw.reservoir, "reservoir", network, Want::Reservoir)?,
            head: match raw.head {
                Some(h) if h.is_finite() => h,
                Some(h) => return Err((Some("head"), format!("must be a number, not {h}"))),
                None => return Err((Some("head"), "is required".to_string())),
            },
        },
        other => {
            return Err((
                Some("kind"),
                format!(
                    "unknown kind `{other}` (burst, leak, pipe_closure, valve_close, valve_open, \
                     pump_outage, tank_out_of_service, demand_surge, fire_flow, reservoir_head)"
                ),
            ))
        }
    };
    check_expressible(&kind, network, start, end)?;
    Ok(Event { kind, start, end })
}

/// Checks what the network's own settings must allow for the event to be modelled: an
/// orifice needs EPANET's emitter exponent 0.5, a head change needs a non-zero base head and
/// times on pattern periods.
fn check_expressible(
    kind: &EventKind,
    network: &Network,
    start: u64,
    end: Option<u64>,
) -> Result<(), FieldError> {
    match kind {
        EventKind::Burst {
            outflow: Outflow::Orifice { .. },
            ..
        }
        | EventKind::Leak {
            outflow: Outflow::Orifice { .. },
            ..
        } if network.options.emitter_exponent != 0.5 => Err((
            Some("area"),
            format!(
                "an orifice needs the emitter exponent 0.5, the network's is {}; give \
                 `coefficient` instead",
                network.options.emitter_exponent
            ),
        )),
        EventKind::ReservoirHead { reservoir, .. } => {
            if let NodeKind::Reservoir(r) = &network.nodes[*reservoir].kind {
                if r.head == 0.0 {
                    return Err((
                        Some("reservoir"),
                        "the reservoir's head in the network is 0, which no pattern can scale"
                            .to_string(),
                    ));
                }
            }
            let step = network.times.pattern_step.max(1);
            for (field, t) in [("at_hours", Some(start)), ("until_hours", end)] {
                if let Some(t) = t {
                    if !(t + network.times.pattern_start).is_multiple_of(step) {
                        return Err((
                            Some(field),
                            format!(
                                "a head change must start and end on a pattern period (every \
                                 {} h)",
                                step as f64 / 3600.0
                            ),
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn positive(field: &'static str, value: Option<f64>) -> Result<f64, FieldError> {
    match value {
        Some(v) if v.is_finite() && v > 0.0 => Ok(v),
        Some(v) => Err((Some(field), format!("must be positive, not {v}"))),
        None => Err((Some(field), "is required".to_string())),
    }
}

fn outflow(raw: &FileEvent) -> Result<Outflow, FieldError> {
    let given = [raw.area, raw.coefficient, raw.flow]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err((
            Some("area"),
            "give exactly one of `area` (with optional `cd`), `coefficient` or `flow`".to_string(),
        ));
    }
    if raw.area.is_some() {
        let cd = match raw.cd {
            None => 0.75,
            Some(cd) => positive("cd", Some(cd))?,
        };
        Ok(Outflow::Orifice {
            area: positive("area", raw.area)?,
            cd,
        })
    } else if raw.coefficient.is_some() {
        Ok(Outflow::Coefficient(positive(
            "coefficient",
            raw.coefficient,
        )?))
    } else {
        Ok(Outflow::Flow(positive("flow", raw.flow)?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Pipe,
    Link,
    Valve,
    Pump,
    Junction,
    Tank,
    Reservoir,
}

impl Want {
    fn noun(self) -> &'static str {
        match self {
            Want::Pipe => "pipe",
            Want::Link => "link",
            Want::Valve => "valve",
            Want::Pump => "pump",
            Want::Junction => "junction",
            Want::Tank => "tank",
            Want::Reservoir => "reservoir",
        }
    }
}

fn element(
    id: &Option<String>,
    field: &'static str,
    network: &Network,
    want: Want,
) -> Result<usize, FieldError> {
    let Some(id) = id else {
        return Err((Some(field), "is required".to_string()));
    };
    let unknown = || (Some(field), format!("unknown {} `{id}`", want.noun()));
    let fits = match want {
        Want::Pipe | Want::Link | Want::Valve | Want::Pump => {
            let index = network.link_index(id).ok_or_else(unknown)?;
            let kind = &network.links[index].kind;
            let fits = match want {
                Want::Pipe => matches!(kind, LinkKind::Pipe(_)),
                Want::Valve => matches!(kind, LinkKind::Valve(_)),
                Want::Pump => matches!(kind, LinkKind::Pump(_)),
                _ => true,
            };
            (index, fits)
        }
        Want::Junction | Want::Tank | Want::Reservoir => {
            let index = network.node_index(id).ok_or_else(unknown)?;
            let kind = &network.nodes[index].kind;
            let fits = match want {
                Want::Junction => matches!(kind, NodeKind::Junction(_)),
                Want::Tank => matches!(kind, NodeKind::Tank(_)),
                _ => matches!(kind, NodeKind::Reservoir(_)),
            };
            (index, fits)
        }
    };
    match fits {
        (index, true) => Ok(index),
        _ => Err((Some(field), format!("`{id}` is not a {}", want.noun()))),
    }
}
