use super::darcy_weisbach::{friction_factor, RE_LAMINAR, RE_TURBULENT};
use super::*;
use std::f64::consts::PI;

#[test]
fn swamee_jain_friction_factor_matches_hand_value() {
    // Re = 1e5 (w = Re pi / 4), relative roughness 1e-4.
    let s = 1.0;
    let w = 1.0e5 * PI / 4.0;
    let (f, dfdq) = friction_factor(w, 1.0e-4 / 3.7, s);
    // f = 0.25 / log10(e/3.7 + 5.74/Re^0.9)^2
    let expected = 0.25 / (1.0e-4 / 3.7 + 5.74 / 1.0e5f64.powf(0.9)).log10().powi(2);
    assert!((f - expected).abs() < 1e-12, "{f} vs {expected}");
    // The derivative matches a finite difference.
    let h = 1e-3;
    let numeric = (friction_factor(w + h, 1.0e-4 / 3.7, s).0
        - friction_factor(w - h, 1.0e-4 / 3.7, s).0)
        / (2.0 * h);
    assert!((dfdq - numeric).abs() < 1e-9 * dfdq.abs().max(1e-12) + 1e-15);
}

#[test]
fn dunlop_interpolation_joins_laminar_and_turbulent() {
    let s = 1.0;
    let roughness_term = 1.0e-3 / 3.7;
    // At Re 2000 the cubic gives the laminar 64/Re.
    let (f_2000, _) = friction_factor(RE_LAMINAR, roughness_term, s);
    assert!((f_2000 - 64.0 / 2000.0).abs() < 1e-12);
    // At Re 4000 it meets Swamee-Jain.
    let (f_below, _) = friction_factor(RE_TURBULENT * (1.0 - 1e-12), roughness_term, s);
    let (f_above, _) = friction_factor(RE_TURBULENT, roughness_term, s);
    assert!((f_below - f_above).abs() < 1e-9);
}

#[test]
fn open_valve_without_minor_loss_is_a_small_resistance() {
    assert_eq!(
        valve_coeff(0.0, 2.0, Status::Open, 1e-7),
        (1.0 / CSMALL, 2.0)
    );
    assert_eq!(
        valve_coeff(5.0, 2.0, Status::Closed, 1e-7),
        (1.0 / CBIG, 2.0)
    );
    let (p, y) = valve_coeff(5.0, 2.0, Status::Active, 1e-7);
    assert_eq!(p, 1.0 / 20.0);
    assert_eq!(y, 1.0); // hloss/hgrad = km q^2 / (2 km q) = q/2
}

#[test]
fn pbv_forces_its_setting_unless_minor_loss_exceeds_it() {
    let mut link = HydLink {
        id: "v".into(),
        from: 0,
        to: 1,
        link_type: LinkType::Pbv,
        diameter: 1.0,
        length: 0.0,
        roughness: 0.0,
        minor_loss: 1.0,
        resistance: CSMALL,
        initial_status: Status::Active,
        initial_setting: 10.0,
        leak_area: 0.0,
        leak_expansion: 0.0,
        pump: None,
        curve: None,
    };
    assert_eq!(
        pbv_coeff(&link, 2.0, Status::Active, 10.0, 1e-7),
        (CBIG, 10.0 * CBIG)
    );
    link.minor_loss = 5.0; // 5 * 2^2 = 20 > 10
    assert_eq!(
        pbv_coeff(&link, 2.0, Status::Active, 10.0, 1e-7),
        valve_coeff(5.0, 2.0, Status::Active, 1e-7)
    );
}

/// A square grid of `side` x `side` junctions fed by one reservoir, its pipes
/// alternating Hazen-Williams roughness and carrying minor losses every third pipe.
fn grid_network(side: usize) -> HydNetwork {
    let mut text = String::from("[JUNCTIONS]\n");
    for i in 0..side * side {
        text += &format!("J{i} {} 1\n", i % 7);
    }
    text += "[RESERVOIRS]\nR 200\n[PIPES]\nP R J0 100 24 120 0 OPEN\n";
    let mut pipe = 0;
    for row in 0..side {
        for col in 0..side {
            let node = row * side + col;
            let neighbours = [(col + 1 < side, node + 1), (row + 1 < side, node + side)];
            for (exists, other) in neighbours {
                if exists {
                    let roughness = 90 + 10 * (pipe % 5);
                    let minor_loss = if pipe % 3 == 0 { 0.5 } else { 0.0 };
                    text +=
                        &format!("P{pipe} J{node} J{other} 300 8 {roughness} {minor_loss} OPEN\n");
                    pipe += 1;
                }
            }
        }
    }
    text += "[END]\n";
    let model = crate::inp::read_str(&text, "grid.inp").unwrap();
    crate::solver::compile(&model).unwrap()
}

#[test]
fn threaded_link_coefficients_equal_sequential_ones() {
    let network = grid_network(75);
    let links = network.links.len();
    assert!(links >= PARALLEL_MIN_LINKS);
    let state = HydState {
        // Flows of both signs and sizes, some near zero (the linear law).
        flow: (0..links)
            .map(|k| ((k % 13) as f64 - 6.0) * 10f64.powi(k as i32 % 9 - 6))
            .collect(),
        status: vec![Status::Open; links],
        setting: vec![0.0; links],
        ..HydState::default()
    };
    let mut work = Workspace::new(&network);
    headloss_coeffs(&network, &state, &mut work);
    let (mut p, mut y) = (vec![0.0; links], vec![0.0; links]);
    let pipes = &work.pipe_arrays;
    link_coeffs(&network, &state, pipes.part(0, links), &mut p, &mut y);
    for k in 0..links {
        assert_eq!(work.p[k].to_bits(), p[k].to_bits(), "P of link {k}");
        assert_eq!(work.y[k].to_bits(), y[k].to_bits(), "Y of link {k}");
    }
}

#[test]
fn barriers_vanish_far_inside_the_limits() {
    let (mut h, mut g) = (1.0, 2.0);
    add_lower_barrier(1.0, &mut h, &mut g);
    add_upper_barrier(-1.0, &mut h, &mut g);
    assert!((h - 1.0).abs() < 1e-12 && (g - 2.0).abs() < 1e-12);
}

#[test]
fn power_is_bit_identical_to_powf() {
    // Magnitudes from 1e-300 to 1e300 (zero, subnormals, signs, infinities, NaN included),
    // each against the C library's pow for the exponents the solver uses.
    let mut values = vec![0.0, -0.0, f64::MIN_POSITIVE / 3.0, f64::INFINITY, f64::NAN];
    let mut x = 1.0e-300_f64;
    while x < 1.0e300 {
        values.extend([x, -x, x * 1.000_000_1]);
        x *= 1.37;
    }
    for exponent in [1.0, 0.852, 0.5, -0.5, 2.0, -1.0 / 3.0, 0.0] {
        for &x in &values {
            assert_eq!(
                power(x, exponent).to_bits(),
                x.powf(exponent).to_bits(),
                "{x}^{exponent}"
            );
        }
    }
}

#[test]
fn hazen_williams_coefficients_have_the_bits_of_epanets_scalar_formula() {
    let network = grid_network(30);
    let links = network.links.len();
    // Flows of both signs from 1e-12 to 1e4 cfs, exact zeros, and every seventh link closed.
    let flow: Vec<f64> = (0..links)
        .map(|k| {
            let magnitude = 10f64.powf(-12.0 + 16.0 * ((k * 7919) % 1000) as f64 / 1000.0);
            match k % 4 {
                0 => magnitude,
                1 => -magnitude,
                2 => magnitude * 1.000_000_3,
                _ if k % 8 == 3 => 0.0,
                _ => -magnitude * 0.999_999_7,
            }
        })
        .collect();
    let status = (0..links)
        .map(|k| {
            if k % 7 == 0 {
                Status::Closed
            } else {
                Status::Open
            }
        })
        .collect();
    let state = HydState {
        flow,
        status,
        setting: vec![0.0; links],
        ..HydState::default()
    };
    let mut work = Workspace::new(&network);
    headloss_coeffs(&network, &state, &mut work);
    let (hexp, rqtol) = (network.options.hexp, network.options.rqtol);
    for (k, link) in network.links.iter().enumerate() {
        let flow = state.flow[k];
        // EPANET's `pipecoeff`, one link at a time with the C library's `pow`.
        let (p, y) = if state.status[k].is_closed() {
            (1.0 / CBIG, flow)
        } else {
            let q = flow.abs();
            let mut hgrad = hexp * link.resistance * q.powf(hexp - 1.0);
            let mut hloss = if hgrad < rqtol {
                hgrad = rqtol / hexp;
                hgrad * q
            } else {
                hgrad * q / hexp
            };
            if link.minor_loss > 0.0 {
                hloss += link.minor_loss * q * q;
                hgrad += 2.0 * link.minor_loss * q;
            }
            let sign = if flow > 0.0 {
                1.0
            } else if flow < 0.0 {
                -1.0
            } else {
                0.0
            };
            (1.0 / hgrad, hloss * sign / hgrad)
        };
        assert_eq!(
            work.p[k].to_bits(),
            p.to_bits(),
            "P of link {k}, flow {flow}"
        );
        assert_eq!(
            work.y[k].to_bits(),
            y.to_bits(),
            "Y of link {k}, flow {flow}"
        );
    }
}
