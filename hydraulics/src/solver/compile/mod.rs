//! Compiles a [`Network`] (file units) into the solver's [`HydNetwork`] (feet, cfs, seconds),
//! converting every value exactly as EPANET 2.3 does when it reads a file (`adjustdata`,
//! `inittanks`, `convertunits`, pump curve fitting, `resistcoeff`).

use std::f64::consts::PI;

use super::coeffs::{minor_loss_per_flow_squared, pcv_loss_coeff, CBIG, CSMALL};
use super::curves::interpolate;
use super::data::{
    ControlKind, HydControl, HydCurve, HydDemand, HydLink, HydNetwork, HydNode, HydOptions,
    HydPump, HydTank, HydTimes, LinkType, PumpType, Status, MISSING,
};
use super::SolverError;
use crate::model::{
    ControlCondition, HeadlossFormula, Link, LinkAction, LinkKind, Network, NodeKind, Pipe,
    PipeStatus, Pump, StatusSpec, Tank, Unbalanced, Valve, ValveType,
};
use crate::units::{UnitFactors, M_PER_FT};

/// Kinematic viscosity of water at 20 C, ft2/s (EPANET's `VISCOS`).
const VISCOSITY_OF_WATER: f64 = 1.1e-5;
/// EPANET's `BIG` and `TINY`.
const BIG: f64 = 1.0e10;
const TINY: f64 = 1.0e-6;
/// Head loss of a constant-power pump per horsepower: 550 ft.lbf/s / 62.4 lbf/ft3.
const HEAD_PER_HORSEPOWER: f64 = 8.814;

/// Compiles a network into the solver's internal form and units.
pub fn compile(network: &Network) -> Result<HydNetwork, SolverError> {
    let units = UnitFactors::new(&network.options);
    let options = compile_options(network, &units);
    let junctions = network.junction_count();
    let default_pattern = network.default_pattern_index();

    let mut nodes = Vec::with_capacity(network.nodes.len());
    let mut tanks = Vec::new();
    for (index, node) in network.nodes.iter().enumerate() {
        let (elevation, demands) = match &node.kind {
            NodeKind::Junction(junction) => {
                let demands = junction
                    .demands
                    .iter()
                    .map(|d| HydDemand {
                        base: d.base / units.flow,
                        pattern: d.pattern.or(default_pattern),
                    })
                    .collect();
                (junction.elevation / units.elevation, demands)
            }
            NodeKind::Reservoir(reservoir) => {
                let head = reservoir.head / units.elevation;
                tanks.push(HydTank {
                    node: index,
                    area: 0.0,
                    hmin: head,
                    hmax: head,
                    h0: head,
                    vmin: 0.0,
                    vmax: 0.0,
                    v0: 0.0,
                    pattern: reservoir.pattern,
                    volume_curve: None,
                    can_overflow: false,
                });
                (head, Vec::new())
            }
            NodeKind::Tank(tank) => {
                tanks.push(compile_tank(network, index, tank, &units)?);
                (tank.elevation / units.elevation, Vec::new())
            }
        };
        let emitter_coeff = if index < junctions && node.emitter_coefficient > 0.0 {
            // EPANET stores the emitter as a head loss coefficient: h = ke * q^qexp.
            let factor = units.flow.powf(options.emitter_exponent) / units.pressure;
            factor / node.emitter_coefficient.powf(options.emitter_exponent)
        } else {
            0.0
        };
        nodes.push(HydNode {
            id: node.id.clone(),
            elevation,
            demands,
            emitter_coeff,
        });
    }

    let mut links = Vec::with_capacity(network.links.len());
    let mut pumps = Vec::new();
    let mut valves = Vec::new();
    for (index, link) in network.links.iter().enumerate() {
        let compiled = match &link.kind {
            LinkKind::Pipe(pipe) => compile_pipe(link, pipe, &options, &units),
            LinkKind::Pump(pump) => {
                let compiled_pump = compile_pump(network, index, link, pump, &units)?;
                let compiled = pump_link(link, pump, pumps.len(), compiled_pump.head_curve);
                pumps.push(compiled_pump);
                compiled
            }
            LinkKind::Valve(valve) => {
                valves.push(index);
                compile_valve(network, link, valve, &units)?
            }
        };
        links.push(compiled);
    }
    let curves = compile_curves(network, &units);
    for link in &mut links {
        link.resistance = resistance(link, &options, &curves);
    }

    let controls = network
        .controls
        .iter()
        .map(|control| compile_control(network, junctions, &links, control, &units))
        .collect::<Result<_, _>>()?;

    Ok(HydNetwork {
        nodes,
        junctions,
        links,
        tanks,
        pumps,
        valves,
        patterns: network
            .patterns
            .iter()
            .map(|p| {
                if p.multipliers.is_empty() {
                    vec![1.0]
                } else {
                    p.multipliers.clone()
                }
            })
            .collect(),
        curves,
        controls,
        rules: network.rules.clone(),
        options,
        times: compile_times(network),
        units,
    })
}

/// The network's curve `index`, which the reader checked exists.
/// Closes `link` of a compiled network as a `[STATUS] link CLOSED` line would have closed it
/// (a check valve keeps its own status, a pump's speed becomes 0, a control valve loses its
/// setting), without compiling again: sweeps of closures reuse one compiled network.
pub fn close_link(network: &mut HydNetwork, link: usize) {
    let Some(compiled) = network.links.get_mut(link) else {
        return;
    };
    match compiled.link_type {
        LinkType::CvPipe => {}
        LinkType::Pipe | LinkType::Gpv => compiled.initial_status = Status::Closed,
        LinkType::Pump => {
            compiled.initial_status = Status::Closed;
            compiled.initial_setting = 0.0;
        }
        LinkType::Prv
        | LinkType::Psv
        | LinkType::Pbv
        | LinkType::Fcv
        | LinkType::Tcv
        | LinkType::Pcv => {
            compiled.initial_status = Status::Closed;
            compiled.initial_setting = MISSING;
        }
    }
}

fn model_curve(network: &Network, index: usize) -> Result<&crate::model::Curve, SolverError> {
    network
        .curves
        .get(index)
        .ok_or_else(|| undefined("curve", index))
}

/// A reference the reader should have rejected (EPANET's errors 203-206).
fn undefined(what: &str, index: usize) -> SolverError {
    SolverError::InvalidNetwork(format!("undefined {what} (index {index})"))
}

fn compile_options(network: &Network, units: &UnitFactors) -> HydOptions {
    let options = &network.options;
    // A value above 1e-3 is a multiple of water's viscosity, else the viscosity itself.
    let viscosity = if options.viscosity > 1.0e-3 {
        options.viscosity * VISCOSITY_OF_WATER
    } else if units.si {
        options.viscosity / (M_PER_FT * M_PER_FT)
    } else {
        options.viscosity
    };
    HydOptions {
        headloss: options.headloss,
        accuracy: options.accuracy,
        max_trials: options.trials,
        extra_trials: match options.unbalanced {
            Unbalanced::Stop => None,
            Unbalanced::Continue(n) => Some(n),
        },
        check_freq: options.check_freq,
        max_check: options.max_check,
        damp_limit: options.damp_limit,
        head_error_limit: options.head_error / units.head,
        flow_change_limit: options.flow_change / units.flow,
        htol: 0.0005,
        qtol: 0.0001,
        rqtol: 1.0e-7,
        viscosity,
        specific_gravity: options.specific_gravity,
        demand_multiplier: options.demand_multiplier,
        emitter_exponent: 1.0 / options.emitter_exponent,
        emitter_backflow: options.emitter_backflow,
        demand_model: options.demand_model,
        pmin: options.minimum_pressure / units.pressure,
        preq: options.required_pressure / units.pressure,
        pexp: options.pressure_exponent,
        hexp: match options.headloss {
            HeadlossFormula::HazenWilliams => 1.852,
            _ => 2.0,
        },
    }
}

fn compile_times(network: &Network) -> HydTimes {
    let times = &network.times;
    let as_seconds = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let pattern_step = if times.pattern_step == 0 {
        3600
    } else {
        as_seconds(times.pattern_step)
    };
    let report_step = if times.report_step == 0 {
        pattern_step
    } else {
        as_seconds(times.report_step)
    };
    let hydraulic_step = if times.hydraulic_step == 0 {
        3600
    } else {
        as_seconds(times.hydraulic_step)
    }
    .min(pattern_step)
    .min(report_step);
    let duration = as_seconds(times.duration);
    let report_start = if as_seconds(times.report_start) > duration {
        0
    } else {
        as_seconds(times.report_start)
    };
    let rule_step = match times.rule_step {
        Some(step) if step > 0 => as_seconds(step),
        _ => hydraulic_step / 10,
    }
    .min(hydraulic_step);
    HydTimes {
        duration,
        hydraulic_step,
        pattern_step,
        pattern_start: as_seconds(times.pattern_start),
        report_step,
        report_start,
        rule_step,
        start_clocktime: as_seconds(times.start_clocktime),
    }
}

/// A tank's levels, area and volumes (EPANET's `tankdata` + `inittanks` + `convertunits`).
fn compile_tank(
    network: &Network,
    node: usize,
    tank: &Tank,
    units: &UnitFactors,
) -> Result<HydTank, SolverError> {
    let id = network.nodes.get(node).map_or("?", |n| n.id.as_str());
    let level_error = || {
        SolverError::InvalidNetwork(format!(
            "Error 225: invalid lower/upper levels for tank {id}"
        ))
    };
    if tank.initial_level > tank.max_level
        || tank.min_level > tank.max_level
        || tank.initial_level < tank.min_level
    {
        return Err(level_error());
    }
    // Volumes and the nominal diameter in file units first, as EPANET computes them.
    let mut diameter = tank.diameter;
    let area = PI * (diameter * diameter) / 4.0;
    let mut vmin = if tank.min_volume > 0.0 {
        tank.min_volume
    } else {
        area * tank.min_level
    };
    let mut v0 = vmin + area * (tank.initial_level - tank.min_level);
    let mut vmax = vmin + area * (tank.max_level - tank.min_level);
    if let Some(curve_index) = tank.volume_curve {
        let curve = model_curve(network, curve_index)?;
        let (x, y): (Vec<f64>, Vec<f64>) = curve.points.iter().copied().unzip();
        let (Some(&first), Some(&last)) = (x.first(), x.last()) else {
            return Err(level_error());
        };
        if tank.min_level < first || tank.max_level > last {
            return Err(level_error());
        }
        vmin = interpolate(&x, &y, tank.min_level);
        vmax = interpolate(&x, &y, tank.max_level);
        v0 = interpolate(&x, &y, tank.initial_level);
        let n = x.len() - 1;
        let slope = (y[n] - y[0]) / (x[n] - x[0]);
        diameter = (4.0 * slope / PI).sqrt();
    }
    let elevation = tank.elevation / units.elevation;
    Ok(HydTank {
        node,
        area: PI * (diameter / units.elevation).powi(2) / 4.0,
        hmin: elevation + tank.min_level / units.elevation,
        hmax: elevation + tank.max_level / units.elevation,
        h0: elevation + tank.initial_level / units.elevation,
        vmin: vmin / units.volume,
        vmax: vmax / units.volume,
        v0: v0 / units.volume,
        pattern: None,
        volume_curve: tank.volume_curve,
        can_overflow: tank.overflow,
    })
}

fn base_link(link: &Link, link_type: LinkType) -> HydLink {
    HydLink {
        id: link.id.clone(),
        from: link.from,
        to: link.to,
        link_type,
        diameter: 0.0,
        length: 0.0,
        roughness: 0.0,
        minor_loss: 0.0,
        resistance: 0.0,
        initial_status: Status::Open,
        initial_setting: 0.0,
        leak_area: 0.0,
        leak_expansion: 0.0,
        pump: None,
        curve: None,
    }
}

fn compile_pipe(link: &Link, pipe: &Pipe, options: &HydOptions, units: &UnitFactors) -> HydLink {
    let link_type = if pipe.status == PipeStatus::CheckValve {
        LinkType::CvPipe
    } else {
        LinkType::Pipe
    };
    let mut compiled = base_link(link, link_type);
    compiled.diameter = pipe.diameter / units.diameter;
    compiled.length = pipe.length / units.length;
    // Darcy-Weisbach roughness is given in millifeet or millimetres.
    compiled.roughness = if options.headloss == HeadlossFormula::DarcyWeisbach {
        pipe.roughness / (1000.0 * units.elevation)
    } else {
        pipe.roughness
    };
    compiled.minor_loss = minor_loss_per_flow_squared(pipe.minor_loss, compiled.diameter);
    compiled.initial_status = if pipe.status == PipeStatus::Closed {
        Status::Closed
    } else {
        Status::Open
    };
    // [STATUS] changes a plain pipe's status only; a check valve keeps its own.
    if link_type == LinkType::Pipe {
        match link.initial_status {
            Some(StatusSpec::Open) => compiled.initial_status = Status::Open,
            Some(StatusSpec::Closed) => compiled.initial_status = Status::Closed,
            _ => {}
        }
    }
    compiled.initial_setting = compiled.roughness;
    compiled.leak_area = pipe.leak_area;
    compiled.leak_expansion = pipe.leak_expansion;
    compiled
}

fn pump_link(link: &Link, pump: &Pump, pump_index: usize, head_curve: Option<usize>) -> HydLink {
    let mut compiled = base_link(link, LinkType::Pump);
    compiled.pump = Some(pump_index);
    compiled.curve = head_curve;
    compiled.initial_setting = pump.speed;
    compiled.initial_status = Status::Open;
    match link.initial_status {
        Some(StatusSpec::Open) => compiled.initial_setting = 1.0,
        Some(StatusSpec::Closed) => {
            compiled.initial_status = Status::Closed;
            compiled.initial_setting = 0.0;
        }
        Some(StatusSpec::Value(speed)) => {
            compiled.initial_setting = speed;
            if speed == 0.0 {
                compiled.initial_status = Status::Closed;
            }
        }
        None => {}
    }
    compiled
}

/// A pump's characteristic curve fitted as EPANET does (`updatepumpparams`, `powercurve`),
/// computed in file units and then converted.
fn compile_pump(
    network: &Network,
    link_index: usize,
    link: &Link,
    pump: &Pump,
    units: &UnitFactors,
) -> Result<HydPump, SolverError> {
    let curve_error = |code: u32, what: &str| {
        SolverError::InvalidNetwork(format!("Error {code}: {what} for pump {}", link.id))
    };
    let mut compiled = HydPump {
        link: link_index,
        pump_type: PumpType::ConstHp,
        q0: 1.0,
        qmax: BIG,
        hmax: BIG,
        h0: 0.0,
        r: 0.0,
        n: -1.0,
        head_curve: None,
        efficiency_curve: pump.efficiency_curve,
        speed_pattern: pump.pattern,
    };
    let Some(curve_index) = pump.head_curve else {
        let Some(power) = pump.power.filter(|p| *p > 0.0) else {
            return Err(curve_error(226, "no head curve or power"));
        };
        compiled.r = -HEAD_PER_HORSEPOWER * power / units.power;
        return Ok(compiled);
    };
    let points = &model_curve(network, curve_index)?.points;
    let fit = match points.as_slice() {
        [] => return Err(curve_error(226, "empty head curve")),
        [(q1, h1)] => Some((1.33334 * h1, *h1, 0.0, *q1, 2.0 * q1)),
        [(q0, h0), (q1, h1), (q2, h2)] if *q0 == 0.0 => Some((*h0, *h1, *h2, *q1, *q2)),
        _ => None,
    };
    match fit {
        Some((h0, h1, h2, q1, q2)) => {
            let (a, b, c) = power_curve(h0, h1, h2, q1, q2)
                .ok_or_else(|| curve_error(227, "invalid head curve"))?;
            compiled.pump_type = PumpType::PowerFunc;
            compiled.h0 = -a / units.head;
            compiled.r = -b * units.flow.powf(c) / units.head;
            compiled.n = c;
            compiled.q0 = q1 / units.flow;
            compiled.qmax = (-a / b).powf(1.0 / c) / units.flow;
            compiled.hmax = h0 / units.head;
        }
        None => {
            if points.windows(2).any(|w| w[1].1 >= w[0].1) {
                return Err(curve_error(227, "head curve not decreasing"));
            }
            let (first, last) = (points[0], points[points.len() - 1]);
            compiled.pump_type = PumpType::Custom;
            compiled.head_curve = Some(curve_index);
            compiled.qmax = last.0 / units.flow;
            compiled.q0 = (first.0 + last.0) / 2.0 / units.flow;
            compiled.hmax = first.1 / units.head;
            compiled.h0 = 0.0;
            compiled.r = 0.0;
            compiled.n = 1.0;
        }
    }
    Ok(compiled)
}

/// Fits `h = a + b q^c` through a shutoff head and two points; `None` when the points do not
/// describe a falling curve.
fn power_curve(h0: f64, h1: f64, h2: f64, q1: f64, q2: f64) -> Option<(f64, f64, f64)> {
    if h0 < TINY || h0 - h1 < TINY || h1 - h2 < TINY || q1 < TINY || q2 - q1 < TINY {
        return None;
    }
    let h4 = h0 - h1;
    let h5 = h0 - h2;
    let c = (h5 / h4).ln() / (q2 / q1).ln();
    if c <= 0.0 || c > 20.0 {
        return None;
    }
    let b = -h4 / q1.powf(c);
    (b < 0.0).then_some((h0, b, c))
}

fn valve_type(valve_type: ValveType) -> LinkType {
    match valve_type {
        ValveType::Prv => LinkType::Prv,
        ValveType::Psv => LinkType::Psv,
        ValveType::Pbv => LinkType::Pbv,
        ValveType::Fcv => LinkType::Fcv,
        ValveType::Tcv => LinkType::Tcv,
        ValveType::Gpv => LinkType::Gpv,
        ValveType::Pcv => LinkType::Pcv,
    }
}

/// A valve setting in file units converted to internal units.
pub(crate) fn valve_setting(link_type: LinkType, setting: f64, units: &UnitFactors) -> f64 {
    match link_type {
        LinkType::Fcv => setting / units.flow,
        LinkType::Prv | LinkType::Psv | LinkType::Pbv => setting / units.pressure,
        _ => setting,
    }
}

fn compile_valve(
    network: &Network,
    link: &Link,
    valve: &Valve,
    units: &UnitFactors,
) -> Result<HydLink, SolverError> {
    let link_type = valve_type(valve.valve_type);
    let mut compiled = base_link(link, link_type);
    compiled.diameter = valve.diameter / units.diameter;
    compiled.minor_loss = minor_loss_per_flow_squared(valve.minor_loss, compiled.diameter);
    compiled.curve = valve.curve;
    if link_type == LinkType::Gpv {
        let curve = valve.curve.ok_or_else(|| {
            SolverError::InvalidNetwork(format!("Error 206: no headloss curve for GPV {}", link.id))
        })?;
        if model_curve(network, curve)?.points.len() < 2 {
            return Err(SolverError::InvalidNetwork(format!(
                "Error 230: headloss curve of GPV {} needs two points",
                link.id
            )));
        }
        // A GPV's setting is its curve, and [STATUS] only opens or closes it.
        compiled.initial_setting = curve as f64;
        compiled.initial_status = match link.initial_status {
            Some(StatusSpec::Closed) => Status::Closed,
            _ => Status::Open,
        };
        return Ok(compiled);
    }
    compiled.initial_status = Status::Active;
    compiled.initial_setting = valve_setting(link_type, valve.setting, units);
    match link.initial_status {
        Some(StatusSpec::Open) => {
            compiled.initial_status = Status::Open;
            compiled.initial_setting = MISSING;
        }
        Some(StatusSpec::Closed) => {
            compiled.initial_status = Status::Closed;
            compiled.initial_setting = MISSING;
        }
        Some(StatusSpec::Value(value)) => {
            compiled.initial_setting = valve_setting(link_type, value, units);
        }
        None => {}
    }
    Ok(compiled)
}

/// EPANET's `resistcoeff`: the friction resistance of a pipe for the network's formula, a huge
/// one for pumps and a tiny one for valves (a PCV's loss at its initial opening).
fn resistance(link: &HydLink, options: &HydOptions, curves: &[HydCurve]) -> f64 {
    match link.link_type {
        LinkType::Pipe | LinkType::CvPipe => {
            let (e, d, length) = (link.roughness, link.diameter, link.length);
            match options.headloss {
                HeadlossFormula::HazenWilliams => {
                    4.727 * length / e.powf(options.hexp) / d.powf(4.871)
                }
                HeadlossFormula::DarcyWeisbach => {
                    length / 2.0 / 32.2 / d / (PI * (d * d) / 4.0).powi(2)
                }
                HeadlossFormula::ChezyManning => {
                    (4.0 * e / (1.49 * PI * (d * d))).powi(2) * (d / 4.0).powf(-1.333) * length
                }
            }
        }
        LinkType::Pump => CBIG,
        LinkType::Pcv => pcv_loss_coeff(link, link.initial_setting, curves),
        _ => CSMALL,
    }
}

/// Converts each curve's points to internal units for the use the network makes of it:
/// efficiency curves (cfs, %), tank volume curves (level in ft above the tank bottom, ft3).
/// Pump head curves and GPV head loss curves keep their file units, as EPANET keeps them
/// (their segments are converted where used, with EPANET's rounding), and so do PCV curves
/// and unused curves.
fn compile_curves(network: &Network, units: &UnitFactors) -> Vec<HydCurve> {
    let mut scales: Vec<Option<(f64, f64)>> = vec![None; network.curves.len()];
    let mut use_curve = |curve: Option<usize>, scale: (f64, f64)| {
        if let Some(slot) = curve.and_then(|c| scales.get_mut(c)) {
            slot.get_or_insert(scale);
        }
    };
    for link in &network.links {
        match &link.kind {
            LinkKind::Pump(pump) => {
                // Head curves stay in file units: the solver converts each segment it uses.
                use_curve(pump.head_curve, (1.0, 1.0));
                use_curve(pump.efficiency_curve, (units.flow, 1.0));
            }
            LinkKind::Valve(valve) if valve.valve_type == ValveType::Gpv => {
                use_curve(valve.curve, (1.0, 1.0));
            }
            _ => {}
        }
    }
    for node in &network.nodes {
        if let NodeKind::Tank(tank) = &node.kind {
            use_curve(tank.volume_curve, (units.elevation, units.volume));
        }
    }
    network
        .curves
        .iter()
        .zip(scales)
        .map(|(curve, scale)| {
            let (x_factor, y_factor) = scale.unwrap_or((1.0, 1.0));
            HydCurve {
                id: curve.id.clone(),
                kind: curve.kind,
                x: curve.points.iter().map(|p| p.0 / x_factor).collect(),
                y: curve.points.iter().map(|p| p.1 / y_factor).collect(),
            }
        })
        .collect()
}

/// A simple control with EPANET's conventions (`controldata`, `convertunits`): a node
/// condition becomes a grade (junction pressure or tank level plus elevation); OPEN/CLOSED
/// set a pump's speed to 1/0 and clear a valve's setting; a number sets a pump's speed (its
/// status follows) or makes a valve active at that setting.
fn compile_control(
    network: &Network,
    junctions: usize,
    links: &[HydLink],
    control: &crate::model::Control,
    units: &UnitFactors,
) -> Result<HydControl, SolverError> {
    let link = links
        .get(control.link)
        .ok_or_else(|| undefined("link of a control", control.link))?;
    let grade_of = |node: usize, value: f64| {
        let kind = &network
            .nodes
            .get(node)
            .ok_or_else(|| undefined("node of a control", node))?
            .kind;
        let elevation = match kind {
            NodeKind::Junction(j) => j.elevation,
            NodeKind::Reservoir(r) => r.head,
            NodeKind::Tank(t) => t.elevation,
        } / units.elevation;
        Ok(if node < junctions {
            elevation + value / units.pressure
        } else {
            elevation + value / units.elevation
        })
    };
    let (kind, node, time, grade) = match control.condition {
        ControlCondition::NodeAbove { node, value } => {
            (ControlKind::HiLevel, Some(node), 0, grade_of(node, value)?)
        }
        ControlCondition::NodeBelow { node, value } => {
            (ControlKind::LowLevel, Some(node), 0, grade_of(node, value)?)
        }
        ControlCondition::AtTime(t) => (
            ControlKind::Timer,
            None,
            i64::try_from(t).unwrap_or(i64::MAX),
            0.0,
        ),
        ControlCondition::AtClockTime(t) => (
            ControlKind::TimeOfDay,
            None,
            i64::try_from(t).unwrap_or(i64::MAX),
            0.0,
        ),
    };
    let gpv_curve = (link.link_type == LinkType::Gpv).then_some(link.initial_setting);
    let (status, setting) = match control.action {
        LinkAction::Open => match link.link_type {
            LinkType::Pump => (Status::Open, Some(1.0)),
            _ => (Status::Open, gpv_curve),
        },
        LinkAction::Closed => match link.link_type {
            LinkType::Pump => (Status::Closed, Some(0.0)),
            _ => (Status::Closed, gpv_curve),
        },
        LinkAction::Setting(value) => match link.link_type {
            LinkType::Pump | LinkType::Pipe | LinkType::CvPipe => (
                if value == 0.0 {
                    Status::Closed
                } else {
                    Status::Open
                },
                Some(value),
            ),
            other => (Status::Active, Some(valve_setting(other, value, units))),
        },
        LinkAction::Active => (Status::Active, None),
    };
    Ok(HydControl {
        link: control.link,
        node,
        kind,
        time,
        grade,
        status: Some(status),
        setting,
        enabled: control.enabled,
    })
}

#[cfg(test)]
mod tests;
