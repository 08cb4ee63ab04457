//! Every flow unit with every pressure unit, and the defaults that depend on them.

use hydraulics::inp::{read_str, write_string};
use hydraulics::model::*;

fn small_network(options: &str) -> String {
    format!(
        "[OPTIONS]\n{options}\n[JUNCTIONS]\n J1 10 1\n[RESERVOIRS]\n R1 100\n[PIPES]\n P1 R1 J1\n[END]\n"
    )
}

const FLOW_UNITS: [(&str, FlowUnits); 11] = [
    ("CFS", FlowUnits::Cfs),
    ("GPM", FlowUnits::Gpm),
    ("MGD", FlowUnits::Mgd),
    ("IMGD", FlowUnits::Imgd),
    ("AFD", FlowUnits::Afd),
    ("LPS", FlowUnits::Lps),
    ("LPM", FlowUnits::Lpm),
    ("MLD", FlowUnits::Mld),
    ("CMH", FlowUnits::Cmh),
    ("CMD", FlowUnits::Cmd),
    ("CMS", FlowUnits::Cms),
];

const PRESSURE_UNITS: [(&str, PressureUnits); 5] = [
    ("PSI", PressureUnits::Psi),
    ("KPA", PressureUnits::Kpa),
    ("METERS", PressureUnits::Meters),
    ("BAR", PressureUnits::Bar),
    ("FEET", PressureUnits::Feet),
];

#[test]
fn every_flow_unit_with_every_pressure_unit() {
    for (flow_word, flow) in FLOW_UNITS {
        for (pressure_word, pressure) in PRESSURE_UNITS {
            let text = small_network(&format!(
                " Units {}\n Pressure {}",
                flow_word.to_lowercase(),
                pressure_word
            ));
            let net = read_str(&text, "units.inp").unwrap();
            assert_eq!(net.options.flow_units, flow);
            assert_eq!(net.options.pressure_units, Some(pressure));
            assert_eq!(net.options.flow_units.name(), flow_word);
            assert_eq!(read_str(&write_string(&net), "again.inp").unwrap(), net);
        }
    }
}

#[test]
fn si_alias_and_default_pressure() {
    let net = read_str(&small_network(" UNITS SI"), "si.inp").unwrap();
    assert_eq!(
        (net.options.flow_units, net.options.pressure_units),
        (FlowUnits::Lps, None)
    );
}

#[test]
fn pipe_defaults_follow_units_and_formula_read_so_far() {
    let us = read_str(&small_network(" UNITS GPM"), "us.inp").unwrap();
    let LinkKind::Pipe(p) = &us.links[0].kind else {
        panic!()
    };
    assert_eq!((p.length, p.diameter, p.roughness), (330.0, 10.0, 130.0));

    let si = read_str(&small_network(" UNITS CMH\n HEADLOSS D-W"), "si.inp").unwrap();
    let LinkKind::Pipe(p) = &si.links[0].kind else {
        panic!()
    };
    assert_eq!((p.length, p.diameter, p.roughness), (100.0, 254.0, 0.0005));

    let manning = read_str(&small_network(" HEADLOSS C-M"), "cm.inp").unwrap();
    let LinkKind::Pipe(p) = &manning.links[0].kind else {
        panic!()
    };
    assert_eq!(p.roughness, 0.01);

    // Options after [PIPES] do not change defaults already applied (EPANET reads in order).
    let late =
        "[JUNCTIONS]\n J1 10\n[RESERVOIRS]\n R1 100\n[PIPES]\n P1 R1 J1\n[OPTIONS]\n UNITS LPS\n";
    let net = read_str(late, "late.inp").unwrap();
    let LinkKind::Pipe(p) = &net.links[0].kind else {
        panic!()
    };
    assert_eq!((net.options.flow_units, p.length), (FlowUnits::Lps, 330.0));
}

#[test]
fn absolute_viscosity_becomes_relative() {
    let us = read_str(&small_network(" UNITS GPM\n VISCOSITY 2.2e-5"), "v.inp").unwrap();
    assert!((us.options.viscosity - 2.0).abs() < 1e-12);
    let si = read_str(&small_network(" UNITS LPS\n VISCOSITY 1.02193e-6"), "v.inp").unwrap();
    assert!(
        (si.options.viscosity - 1.0).abs() < 1e-4,
        "{}",
        si.options.viscosity
    );
}

#[test]
fn accuracy_is_clamped_like_epanet() {
    let net = read_str(&small_network(" ACCURACY 1"), "a.inp").unwrap();
    assert_eq!(net.options.accuracy, 0.1);
    let net = read_str(&small_network(" ACCURACY 1e-9"), "a.inp").unwrap();
    assert_eq!(net.options.accuracy, 1e-5);
}

#[test]
fn minimum_pressure_moves_default_required_pressure() {
    let net = read_str(&small_network(" MINIMUM PRESSURE 5"), "p.inp").unwrap();
    assert_eq!(
        (net.options.minimum_pressure, net.options.required_pressure),
        (5.0, 5.1)
    );
    assert_eq!(read_str(&write_string(&net), "again.inp").unwrap(), net);
}
