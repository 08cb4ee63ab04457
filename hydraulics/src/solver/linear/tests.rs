use super::*;

/// A chain of three junctions: 0 - 1 - 2, with link 2 from junction 2 to a fixed node
/// and link 3 parallel to link 0.
fn chain() -> LinearSystem {
    LinearSystem::new(3, [(0, 1), (1, 2), (2, 3), (1, 0)].into_iter()).unwrap()
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
    system.solve(&mut x).unwrap();
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
        system.solve(&mut x).unwrap();
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
    system.solve(&mut x).unwrap();
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
    assert_eq!(system.solve(&mut x), Err(1));
    assert_eq!(x, [0.0; 3], "the solution is left as it was");
    // A later, well-posed system still solves after the failed factorization.
    system.clear();
    for row in 0..3 {
        system.add_diagonal(row, 4.0);
        system.add_rhs(row, 4.0);
    }
    assert_eq!(system.solve(&mut x), Ok(()));
    assert_eq!(x, [1.0, 1.0, 1.0]);
}

#[test]
fn rejects_a_self_loop() {
    let result = LinearSystem::new(2, [(0, 1), (1, 1)].into_iter());
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
    let mut system = LinearSystem::new(n, links.iter().copied()).unwrap();
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
    system.solve(&mut x).unwrap();
    for (got, want) in x.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
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
        let mut system = LinearSystem::new(junctions, ends.iter().copied()).unwrap();
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
            assert!(system.solve(&mut heads).is_ok());
        }
        let per_solve = started.elapsed() / repeats;
        println!(
            "{name}: {junctions} junctions, {} entries in L, {per_solve:?} per assembly + solve",
            system.entry_row.len()
        );
    }
}
