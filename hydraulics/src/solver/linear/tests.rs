use super::*;
use crate::solver::fork_join::Helper;

/// A chain of three junctions: 0 - 1 - 2, with link 2 from junction 2 to a fixed node
/// and link 3 parallel to link 0.
fn chain() -> LinearSystem {
    LinearSystem::new(3, [(0, 1), (1, 2), (2, 3), (1, 0)].into_iter(), None).unwrap()
}

#[test]
fn solves_a_small_spd_system() {
    let mut system = chain();
    // A = [[3,-1,0],[-1,4,-2],[0,-2,5]] (parallel links 0 and 3 share one coefficient).
    system.clear();
    for (row, d) in [3.0, 4.0, 5.0].into_iter().enumerate() {
        system.add_diagonal(row, d);
    }
    system.add_off_diagonal(0, -0.5);
    system.add_off_diagonal(3, -0.5);
    system.add_off_diagonal(1, -2.0);
    system.add_off_diagonal(2, -7.0); // joins a fixed node: ignored
    let expected = [1.0, 2.0, 3.0];
    let rhs = [3.0 * 1.0 - 2.0, -1.0 + 8.0 - 6.0, -4.0 + 15.0];
    for (row, value) in rhs.into_iter().enumerate() {
        system.add_rhs(row, value);
    }
    let mut x = [0.0; 3];
    system.solve(&mut x, None).unwrap();
    for (got, want) in x.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

#[test]
fn reuses_the_symbolic_factorization() {
    let mut system = chain();
    for scale in [1.0, 10.0, 1e-3] {
        system.clear();
        for row in 0..3 {
            system.add_diagonal(row, 4.0 * scale);
            system.add_rhs(row, scale);
        }
        system.add_off_diagonal(0, -scale);
        system.add_off_diagonal(1, -scale);
        let mut x = [0.0; 3];
        system.solve(&mut x, None).unwrap();
        // Residual check of A x = F.
        let r0 = 4.0 * x[0] - x[1] - 1.0;
        let r1 = -x[0] + 4.0 * x[1] - x[2] - 1.0;
        let r2 = -x[1] + 4.0 * x[2] - 1.0;
        assert!(r0.abs() + r1.abs() + r2.abs() < 1e-12);
    }
}

#[test]
fn solves_again_with_the_kept_factor() {
    let mut system = chain();
    system.clear();
    for (row, d) in [3.0, 4.0, 5.0].into_iter().enumerate() {
        system.add_diagonal(row, d);
        system.add_rhs(row, 1.0);
    }
    system.add_off_diagonal(0, -1.0);
    system.add_off_diagonal(1, -2.0);
    let mut x = [0.0; 3];
    system.solve(&mut x, None).unwrap();
    let expected = [1.0, 2.0, 3.0];
    let b = [3.0 - 2.0, -1.0 + 8.0 - 6.0, -4.0 + 15.0];
    let mut values = vec![0.0; 3];
    for (junction, &position) in system.positions().iter().enumerate() {
        values[position] = b[junction];
    }
    system.solve_factored(&mut values);
    for (junction, &position) in system.positions().iter().enumerate() {
        x[junction] = values[position];
    }
    for (got, want) in x.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

#[test]
fn reports_a_non_positive_pivot() {
    let mut system = chain();
    system.clear();
    system.add_diagonal(0, 1.0);
    system.add_diagonal(1, -1.0);
    system.add_diagonal(2, 1.0);
    let mut x = [0.0; 3];
    assert_eq!(system.solve(&mut x, None), Err(1));
    assert_eq!(x, [0.0; 3], "the solution is left as it was");
    // A later, well-posed system still solves after the failed factorization.
    system.clear();
    for row in 0..3 {
        system.add_diagonal(row, 4.0);
        system.add_rhs(row, 4.0);
    }
    assert_eq!(system.solve(&mut x, None), Ok(()));
    assert_eq!(x, [1.0, 1.0, 1.0]);
}

#[test]
fn rejects_a_self_loop() {
    let result = LinearSystem::new(2, [(0, 1), (1, 1)].into_iter(), None);
    assert_eq!(result.err(), Some(SymbolicError::SelfLoop { link: 1 }));
}

/// A 5 x 5 grid with a diagonal-dominant Laplacian: fill-in appears, and the solution
/// must match a dense solve.
#[test]
fn solves_a_grid_with_fill_in() {
    let side = 5;
    let mut links = Vec::new();
    for r in 0..side {
        for c in 0..side {
            let node = r * side + c;
            if c + 1 < side {
                links.push((node, node + 1));
            }
            if r + 1 < side {
                links.push((node, node + side));
            }
        }
    }
    let n = side * side;
    let mut system = LinearSystem::new(n, links.iter().copied(), None).unwrap();
    let mut dense = vec![vec![0.0; n]; n];
    system.clear();
    for (k, &(a, b)) in links.iter().enumerate() {
        let p = 1.0 + (k % 3) as f64;
        system.add_off_diagonal(k, -p);
        system.add_diagonal(a, p);
        system.add_diagonal(b, p);
        dense[a][b] -= p;
        dense[b][a] -= p;
        dense[a][a] += p;
        dense[b][b] += p;
    }
    let expected: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
    for (i, row) in dense.iter_mut().enumerate() {
        system.add_diagonal(i, 0.1);
        row[i] += 0.1;
        let f: f64 = row.iter().zip(&expected).map(|(a, x)| a * x).sum();
        system.add_rhs(i, f);
    }
    let mut x = vec![0.0; n];
    system.solve(&mut x, None).unwrap();
    for (got, want) in x.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
}

/// Random sparse systems, some with pivots that fail: split in two parts (with a helper
/// thread and without one), they give the unsplit system's solution to the bit, report the
/// same failed junction EPANET would (the first failure in its order, which may be a
/// separator column), and solve again with the kept factor to the same bits.
#[test]
fn a_split_system_solves_and_fails_as_the_unsplit_one() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let helper = Helper::start().unwrap();
    let (mut split_cases, mut failures, mut separator_failures) = (0, 0, 0);
    for case in 0..1500 {
        let junctions = 20 + (next() % 150) as usize;
        // A random tree plus a few extra links and links to two fixed-head nodes.
        let mut links: Vec<(usize, usize)> = (1..junctions)
            .map(|j| ((next() % j as u64) as usize, j))
            .collect();
        for _ in 0..junctions / 8 {
            let (a, b) = (
                (next() % junctions as u64) as usize,
                (next() % junctions as u64) as usize,
            );
            if a != b {
                links.push((a, b));
            }
        }
        links.push((0, junctions));
        links.push(((next() % junctions as u64) as usize, junctions + 1));
        let plain = LinearSystem::new(junctions, links.iter().copied(), None).unwrap();
        let Ok(split) = LinearSystem::new(junctions, links.iter().copied(), Some(1)) else {
            panic!("case {case}: the split system does not build");
        };
        if !split.is_split() {
            continue;
        }
        split_cases += 1;
        let p: Vec<f64> = links
            .iter()
            .map(|_| 0.5 + (next() % 1000) as f64 / 100.0)
            .collect();
        let rhs: Vec<f64> = (0..junctions)
            .map(|_| (next() % 2001) as f64 / 10.0 - 100.0)
            .collect();
        // Every third case takes the diagonals of a separator junction and of a junction of
        // a part far below their links' sums: EPANET's order says which fails first.
        let mut weak = Vec::new();
        if case % 3 == 0 {
            let parts = split.parts.as_ref().unwrap();
            let separator = junctions - parts.separator_start;
            let in_separator = parts.separator_start + (next() % separator as u64) as usize;
            // The part's column EPANET factorizes last, after some separator columns when
            // the tree is uneven.
            let in_part = (0..parts.separator_start)
                .max_by_key(|&c| parts.epanet_position[c])
                .unwrap();
            weak = vec![split.junction_at[in_separator], split.junction_at[in_part]];
        }
        let assemble = |system: &mut LinearSystem| {
            system.clear();
            for (k, &(a, b)) in links.iter().enumerate() {
                system.add_off_diagonal(k, -p[k]);
                for node in [a, b] {
                    if node < junctions {
                        system.add_diagonal(node, p[k]);
                    }
                }
            }
            for (j, &f) in rhs.iter().enumerate() {
                system.add_node_term(j, 1e-3, f);
            }
            for &j in &weak {
                system.add_diagonal(j, -1e3);
            }
        };
        let mut expected = vec![0.0; junctions];
        let mut plain = plain;
        assemble(&mut plain);
        let want = plain.solve(&mut expected, None);
        for helper in [None, Some(&helper)] {
            let mut system = split.clone();
            assemble(&mut system);
            let mut x = vec![0.0; junctions];
            let got = system.solve(&mut x, helper);
            assert_eq!(got, want, "case {case}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x), bits(&expected), "case {case}");
            if got.is_ok() {
                let mut again = vec![0.0; junctions];
                let mut plain_again = vec![0.0; junctions];
                for (j, &f) in rhs.iter().enumerate() {
                    again[system.positions()[j]] = f;
                    plain_again[plain.positions()[j]] = f;
                }
                system.solve_factored(&mut again);
                plain.solve_factored(&mut plain_again);
                for j in 0..junctions {
                    let (a, b) = (
                        again[system.positions()[j]],
                        plain_again[plain.positions()[j]],
                    );
                    assert_eq!(a.to_bits(), b.to_bits(), "case {case}, junction {j}");
                }
            }
        }
        if let Err(junction) = want {
            failures += 1;
            let parts = split.parts.as_ref().unwrap();
            separator_failures += usize::from(split.position[junction] >= parts.separator_start);
        }
    }
    assert!(split_cases >= 1000, "only {split_cases} systems were split");
    assert!(
        failures >= 50 && separator_failures >= 5,
        "{failures} failures, {separator_failures} in a separator"
    );
}

/// Times factorization + solve on the benchmark networks' matrices and on a large grid
/// (`cargo test --release -p hydraulics --lib factorization_speed -- --ignored --nocapture`).
#[test]
#[ignore]
fn factorization_speed() {
    let networks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/networks");
    /// A matrix pattern: its name, junction count and link ends.
    type Case = (String, usize, Vec<(usize, usize)>);
    let mut cases: Vec<Case> = Vec::new();
    for name in ["Net6", "MICROPOLIS_v1", "BWSN_Network_1"] {
        let model = crate::inp::read_file(&networks.join(format!("{name}.inp"))).unwrap();
        let network = crate::solver::compile(&model).unwrap();
        let ends = network.links.iter().map(|l| (l.from, l.to)).collect();
        cases.push((name.to_string(), network.junctions, ends));
    }
    let side = 316;
    let mut grid = Vec::new();
    for r in 0..side {
        for c in 0..side {
            let node = r * side + c;
            if c + 1 < side {
                grid.push((node, node + 1));
            }
            if r + 1 < side {
                grid.push((node, node + side));
            }
        }
    }
    cases.push((format!("grid {side}x{side}"), side * side, grid));
    for (name, junctions, ends) in cases {
        let mut system = LinearSystem::new(junctions, ends.iter().copied(), None).unwrap();
        let mut heads = vec![0.0; junctions];
        let repeats = if junctions > 50_000 { 5 } else { 500 };
        let started = std::time::Instant::now();
        for _ in 0..repeats {
            system.clear();
            for (k, &(a, b)) in ends.iter().enumerate() {
                let p = 1.0 + (k % 7) as f64;
                system.add_off_diagonal(k, -p);
                for node in [a, b] {
                    if node < junctions {
                        system.add_diagonal(node, p);
                        system.add_rhs(node, 1.0);
                    }
                }
            }
            for junction in 0..junctions {
                system.add_diagonal(junction, 1e-3);
            }
            assert!(system.solve(&mut heads, None).is_ok());
        }
        let per_solve = started.elapsed() / repeats;
        println!(
            "{name}: {junctions} junctions, {} entries in L, {per_solve:?} per assembly + solve",
            system.pattern.entry_row.len()
        );
    }
}
