use super::*;
use crate::inp::read_str;

#[test]
fn fits_a_three_point_power_curve() {
    // h = 100 - 0.0025 q^2 through (0,100), (100,75), (200,0).
    let (a, b, c) = power_curve(100.0, 75.0, 0.0, 100.0, 200.0).unwrap();
    assert_eq!(a, 100.0);
    assert!((c - 2.0).abs() < 1e-12);
    assert!((b + 0.0025).abs() < 1e-12);
}

#[test]
fn fits_a_one_point_curve_like_epanet() {
    // One design point (q1, h1): shutoff 1.33334 h1, zero head at 2 q1.
    let (a, b, c) = power_curve(1.33334 * 60.0, 60.0, 0.0, 500.0, 1000.0).unwrap();
    assert!((a - 80.0004).abs() < 1e-9);
    let head_at_design = a + b * 500f64.powf(c);
    assert!((head_at_design - 60.0).abs() < 1e-9);
}

#[test]
fn rejects_a_rising_curve() {
    assert!(power_curve(50.0, 60.0, 0.0, 100.0, 200.0).is_none());
}

const SI_NETWORK: &str = "
[JUNCTIONS]
J1 10 5
J2 20 2 P2
J3 15 0
J4 15 0
J5 15 0
J6 15 0
[RESERVOIRS]
R1 100
[TANKS]
T1 50 3 1 6 10 0
[PIPES]
P1 R1 J1 1000 300 0.5 2 OPEN
P2 J1 T1 500 200 0.1 0 CV
P3 J2 J3 100 100 0.1 0 OPEN
P4 J4 J5 100 100 0.1 0 OPEN
[VALVES]
V1 J1 J2 150 PRV 30 0
V2 J3 J4 100 FCV 4 0
V3 J5 J6 100 TCV 5 0
[EMITTERS]
J6 0.8
[PATTERNS]
1 1.0 2.0
P2 3.0
[CONTROLS]
LINK V1 40 IF NODE T1 ABOVE 4
LINK P1 CLOSED IF NODE J2 BELOW 25
[OPTIONS]
UNITS LPS
HEADLOSS D-W
EMITTER EXPONENT 0.5
[END]
";

fn compiled() -> HydNetwork {
    compile(&read_str(SI_NETWORK, "si.inp").unwrap()).unwrap()
}

#[test]
fn converts_lengths_diameters_and_roughness() {
    let network = compiled();
    let pipe = &network.links[0];
    assert!((pipe.length - 1000.0 / 0.3048).abs() < 1e-9);
    assert!((pipe.diameter - 0.3 / 0.3048).abs() < 1e-12);
    // Darcy-Weisbach roughness in mm becomes feet.
    assert!((pipe.roughness - 0.5 / 304.8).abs() < 1e-15);
    assert!((pipe.minor_loss - 0.02517 * 2.0 / pipe.diameter.powi(4)).abs() < 1e-12);
    let expected_r =
        pipe.length / 2.0 / 32.2 / pipe.diameter / (PI * pipe.diameter.powi(2) / 4.0).powi(2);
    assert!((pipe.resistance - expected_r).abs() < 1e-12 * expected_r);
    assert_eq!(network.links[1].link_type, LinkType::CvPipe);
}

#[test]
fn converts_demands_with_the_default_pattern() {
    let network = compiled();
    let j1 = &network.nodes[0];
    assert!((j1.demands[0].base - 5.0 / 28.317).abs() < 1e-12);
    // No pattern named: pattern "1" is the default.
    assert_eq!(j1.demands[0].pattern, Some(0));
    assert_eq!(network.nodes[1].demands[0].pattern, Some(1));
}

#[test]
fn converts_valve_settings_by_type() {
    let network = compiled();
    let (prv, fcv, tcv) = (&network.links[4], &network.links[5], &network.links[6]);
    assert_eq!(prv.initial_status, Status::Active);
    assert!((prv.initial_setting - 30.0 / 0.3048).abs() < 1e-9);
    assert!((fcv.initial_setting - 4.0 / 28.317).abs() < 1e-12);
    assert_eq!(tcv.initial_setting, 5.0);
    assert_eq!(network.valves, vec![4, 5, 6]);
}

#[test]
fn stores_emitters_as_head_loss_coefficients() {
    let network = compiled();
    // qexp = 1 / 0.5; ke = (qcf^qexp / pcf) / c^qexp.
    let expected = 28.317f64.powi(2) / 0.3048 / 0.8f64.powi(2);
    assert!((network.nodes[5].emitter_coeff - expected).abs() < 1e-9 * expected);
    assert_eq!(network.options.emitter_exponent, 2.0);
}

#[test]
fn computes_tank_levels_area_and_volumes() {
    let network = compiled();
    let reservoir = &network.tanks[0];
    assert!(reservoir.is_reservoir());
    assert!((reservoir.h0 - 100.0 / 0.3048).abs() < 1e-9);
    let tank = &network.tanks[1];
    let diameter = 10.0 / 0.3048;
    assert!((tank.area - PI * diameter * diameter / 4.0).abs() < 1e-9);
    assert!((tank.hmin - 51.0 / 0.3048).abs() < 1e-9);
    assert!((tank.hmax - 56.0 / 0.3048).abs() < 1e-9);
    let area_m2 = PI * 100.0 / 4.0;
    let m3_per_ft3 = 0.3048f64.powi(3);
    assert!((tank.v0 - area_m2 * 3.0 / m3_per_ft3).abs() < 1e-6);
    assert!((tank.vmax - area_m2 * 6.0 / m3_per_ft3).abs() < 1e-6);
}

#[test]
fn converts_control_grades_and_settings() {
    let network = compiled();
    let level = &network.controls[0];
    assert_eq!(level.kind, ControlKind::HiLevel);
    // A tank's level plus its elevation.
    assert!((level.grade - 54.0 / 0.3048).abs() < 1e-9);
    assert_eq!(level.status, Some(Status::Active));
    assert!((level.setting.unwrap() - 40.0 / 0.3048).abs() < 1e-9);
    let pressure = &network.controls[1];
    assert_eq!(pressure.kind, ControlKind::LowLevel);
    // A junction's pressure (metres of water) plus its elevation.
    assert!((pressure.grade - 45.0 / 0.3048).abs() < 1e-9);
    assert_eq!(
        (pressure.status, pressure.setting),
        (Some(Status::Closed), None)
    );
}

#[test]
fn fits_pump_curves_in_file_units_then_converts() {
    let text = "
[JUNCTIONS]
J1 0 0
[RESERVOIRS]
R1 0
[PUMPS]
PU1 R1 J1 HEAD C1
PU2 R1 J1 HEAD C3
PU3 R1 J1 POWER 10
[STATUS]
PU2 CLOSED
[CURVES]
C1 500 60
C3 0 100
C3 100 90
C3 200 70
C3 300 30
[OPTIONS]
UNITS GPM
[END]
";
    let network = compile(&read_str(text, "pumps.inp").unwrap()).unwrap();
    let one_point = &network.pumps[0];
    assert_eq!(one_point.pump_type, PumpType::PowerFunc);
    assert!((one_point.hmax - 1.33334 * 60.0).abs() < 1e-9);
    assert!((one_point.q0 - 500.0 / 448.831).abs() < 1e-12);
    assert!((one_point.qmax - 1000.0 / 448.831).abs() < 1e-9);
    let custom = &network.pumps[1];
    assert_eq!(custom.pump_type, PumpType::Custom);
    assert!((custom.q0 - 150.0 / 448.831).abs() < 1e-12);
    assert_eq!(custom.hmax, 100.0);
    // A pump closed in [STATUS] also gets speed 0 (EPANET 2.3.5).
    assert_eq!(network.links[1].initial_status, Status::Closed);
    assert_eq!(network.links[1].initial_setting, 0.0);
    let constant = &network.pumps[2];
    assert_eq!(constant.pump_type, PumpType::ConstHp);
    assert!((constant.r + 88.14).abs() < 1e-12);
    // Head curves keep their file units.
    assert_eq!(network.curves[1].x[1], 100.0);
}

#[test]
fn closing_a_compiled_link_is_closing_it_in_the_status_section() {
    let network = read_str(SI_NETWORK, "si.inp").unwrap();
    let pumped = crate::inp::read_file(std::path::Path::new("../../shared/networks/Net3.inp"))
        .expect("Net3 is in the shared networks");
    for network in [network, pumped] {
        let compiled = compile(&network).unwrap();
        for link in 0..network.links.len() {
            let mut closed_in_file = network.clone();
            closed_in_file.links[link].initial_status = Some(crate::model::StatusSpec::Closed);
            let mut closed_after = compiled.clone();
            close_link(&mut closed_after, link);
            assert_eq!(
                format!("{:?}", compile(&closed_in_file).unwrap()),
                format!("{closed_after:?}"),
                "link {}",
                network.links[link].id
            );
        }
    }
}
