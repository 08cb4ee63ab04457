//! The Weibull proportional-hazards fit against break histories simulated from known
//! parameters, and the generator of the synthetic Net3 example in `twin/data/`.
//!
//! Regenerate the example files with
//! `AQUATWIN_WRITE_DATA=1 cargo test -p twin --test risk_synthetic net3`.

// In a module named `risk` so that `cargo test -p twin risk` selects these tests.
mod risk {
    use std::path::{Path, PathBuf};

    use hydraulics::model::LinkKind;
    use twin::risk::{
        fit, parse_assets, parse_breaks, Asset, Break, Covariate, Dataset, Date, FitOptions,
        ScoreOptions, TwinStats, WeibullPh, Window,
    };

    /// SplitMix64: a small seeded generator, enough for simulation.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Uniform in (lo, hi).
        fn between(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.uniform()
        }

        /// Uniform integer in `lo..=hi`.
        fn int(&mut self, lo: i32, hi: i32) -> i32 {
            lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next_u64() % items.len() as u64) as usize]
        }
    }

    /// The true model of a simulation: shape, scale (years) and coefficients per raw unit.
    struct Truth {
        shape: f64,
        scale: f64,
        beta: Vec<(Covariate, f64)>,
    }

    impl Truth {
        /// `beta . x` for a pipe after `previous` breaks.
        fn eta(&self, asset: &Asset, stats: Option<&TwinStats>, previous: usize) -> f64 {
            self.beta
                .iter()
                .map(|(c, b)| {
                    let x = match c {
                        Covariate::Material(m) => f64::from(u8::from(asset.material == *m)),
                        Covariate::LogDiameter => asset.diameter_mm.ln(),
                        Covariate::LogLength => asset.length_m.ln(),
                        Covariate::PreviousBreaks => (previous as f64).ln_1p(),
                        Covariate::MeanPressure => stats.map_or(0.0, |s| s.mean_pressure_m),
                        Covariate::MaxPressure => stats.map_or(0.0, |s| s.max_pressure_m),
                        Covariate::Transients => stats.map_or(0.0, |s| s.transients_per_year),
                    };
                    b * x
                })
                .sum()
        }

        /// Draws the breaks of every pipe over `window` by inverting the cumulative hazard between
        /// breaks (the break count, a covariate, changes at each break).
        fn simulate(
            &self,
            assets: &[Asset],
            stats: Option<&[TwinStats]>,
            window: Window,
            rng: &mut Rng,
        ) -> Vec<Break> {
            let (w0, w1) = (window.start().start(), window.end().end());
            let mut breaks = Vec::new();
            for (i, asset) in assets.iter().enumerate() {
                let install = f64::from(asset.install_year);
                let stats = stats.map(|s| &s[i]);
                let (mut age, exit) = ((w0 - install).max(0.0), w1 - install);
                let mut previous = 0;
                while age < exit {
                    let exposure = -rng.uniform().ln() / self.eta(asset, stats, previous).exp();
                    let h = (age / self.scale).powf(self.shape) + exposure;
                    age = self.scale * h.powf(1.0 / self.shape);
                    if age >= exit {
                        break;
                    }
                    breaks.push(Break {
                        pipe_id: asset.id.clone(),
                        date: Date::from_decimal_year(install + age),
                        line: 0,
                    });
                    previous += 1;
                }
            }
            breaks
        }
    }

    fn window(start: (i32, u8, u8), end: (i32, u8, u8)) -> Window {
        let day = |(y, m, d)| Date::new(y, m, d).expect("valid date");
        Window::new(day(start), day(end)).expect("start before end")
    }

    /// A few thousand pipes of mixed eras, materials, sizes and pressures.
    fn synthetic_network(pipes: usize, rng: &mut Rng) -> (Vec<Asset>, Vec<TwinStats>) {
        let mut assets = Vec::with_capacity(pipes);
        let mut stats = Vec::with_capacity(pipes);
        for i in 0..pipes {
            let install_year = rng.int(1920, 2018);
            let material = match install_year {
                ..1960 => rng.pick(&["CI", "CI", "CI", "AC"]),
                1960..1985 => rng.pick(&["CI", "AC", "DI"]),
                1985..2000 => rng.pick(&["DI", "DI", "PVC"]),
                _ => rng.pick(&["PVC", "DI"]),
            };
            let mean_pressure_m = rng.between(25.0, 80.0);
            assets.push(Asset {
                id: format!("P{i}"),
                install_year,
                material: material.to_string(),
                diameter_mm: *[100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 600.0]
                    .get((rng.next_u64() % 7) as usize)
                    .unwrap_or(&150.0),
                length_m: rng.between(3.0, 6.5).exp(),
                zone: None,
            });
            stats.push(TwinStats {
                pipe_id: format!("P{i}"),
                mean_pressure_m,
                max_pressure_m: mean_pressure_m + rng.between(5.0, 40.0),
                transients_per_year: rng.between(0.0, 12.0),
            });
        }
        (assets, stats)
    }

    fn full_truth() -> Truth {
        Truth {
            shape: 1.6,
            scale: 250.0,
            beta: vec![
                (Covariate::Material("AC".into()), -0.3),
                (Covariate::Material("DI".into()), -0.6),
                (Covariate::Material("PVC".into()), -0.9),
                (Covariate::LogDiameter, -0.6),
                (Covariate::LogLength, 0.9),
                (Covariate::PreviousBreaks, 0.7),
                (Covariate::MeanPressure, 0.015),
                (Covariate::MaxPressure, 0.01),
                (Covariate::Transients, 0.06),
            ],
        }
    }

    /// Simulates 3000 pipes over 20 years from `truth` and fits them.
    fn simulate_and_fit(seed: u64) -> (Truth, WeibullPh) {
        let mut rng = Rng(seed);
        let truth = full_truth();
        let (assets, stats) = synthetic_network(3000, &mut rng);
        let window = window((2001, 1, 1), (2020, 12, 31));
        let breaks = truth.simulate(&assets, Some(&stats), window, &mut rng);
        let data = Dataset::new(assets, &breaks, window)
            .and_then(|d| d.with_twin_stats(stats))
            .expect("consistent records");
        let model = fit(&data, &FitOptions::default()).expect("the model fits");
        (truth, model)
    }

    /// `(name, true, estimate, standard error)` for every parameter.
    fn compare(truth: &Truth, model: &WeibullPh) -> Vec<(String, f64, f64, f64)> {
        let mut rows = vec![
            (
                "shape k".to_string(),
                truth.shape,
                model.shape.value,
                model.shape.std_error,
            ),
            (
                "scale lambda (years)".to_string(),
                truth.scale,
                model.scale.value,
                model.scale.std_error,
            ),
        ];
        for (covariate, beta) in &truth.beta {
            let fitted = model
                .coefficients
                .iter()
                .find(|c| c.covariate == *covariate)
                .expect("every true covariate is in the model");
            rows.push((
                covariate.name(),
                *beta,
                fitted.estimate.value,
                fitted.estimate.std_error,
            ));
        }
        rows
    }

    #[test]
    fn fit_recovers_the_parameters_of_simulated_breaks() {
        let (truth, model) = simulate_and_fit(20_261_122);
        assert_eq!(model.reference_material.as_deref(), Some("CI"));
        assert_eq!(model.coefficients.len(), truth.beta.len());
        assert!(model.breaks > 2000, "{} breaks", model.breaks);
        println!(
            "{} pipes, {} breaks, {:.0} pipe-years, {} iterations, log-likelihood {:.2}",
            model.pipes, model.breaks, model.pipe_years, model.iterations, model.log_likelihood
        );
        println!("| parameter | true | estimate | SE | (est - true) / SE |");
        println!("|---|---|---|---|---|");
        for (name, truth, estimate, se) in compare(&truth, &model) {
            let z = (estimate - truth) / se;
            println!("| {name} | {truth} | {estimate:.4} | {se:.4} | {z:+.2} |");
            assert!(se.is_finite() && se > 0.0, "{name}: standard error {se}");
            assert!(
                z.abs() < 3.0,
                "{name}: true {truth}, estimate {estimate} +- {se}"
            );
        }
    }

    /// Over many seeds, about 95% of the `estimate +- 1.96 SE` intervals hold the truth: the
    /// standard errors are honest. Slow (half a minute in a debug build): run with `--ignored`.
    #[test]
    #[ignore]
    fn standard_errors_are_calibrated() {
        let seeds = 40;
        let mut inside = 0;
        let mut total = 0;
        for seed in 0..seeds {
            let (truth, model) = simulate_and_fit(1000 + seed);
            for (_, truth, estimate, se) in compare(&truth, &model) {
                total += 1;
                inside += usize::from((estimate - truth).abs() < 1.96 * se);
            }
        }
        let coverage = inside as f64 / total as f64;
        println!("coverage of the 95% intervals: {coverage:.3} ({inside} of {total})");
        assert!((0.92..=0.98).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn recurrent_breaks_raise_the_hazard_in_the_fit() {
        // Without pressure data: the fit uses only what the data has.
        let mut rng = Rng(99);
        let mut truth = full_truth();
        truth.beta.truncate(6);
        let (assets, _) = synthetic_network(2000, &mut rng);
        let window = window((2001, 1, 1), (2020, 12, 31));
        let breaks = truth.simulate(&assets, None, window, &mut rng);
        let data = Dataset::new(assets, &breaks, window).expect("consistent records");
        let model = fit(&data, &FitOptions::default()).expect("the model fits");
        assert_eq!(model.coefficients.len(), 6);
        for (name, truth, estimate, se) in compare(&truth, &model) {
            assert!(
                (estimate - truth).abs() < 3.0 * se,
                "{name}: true {truth}, estimate {estimate} +- {se}"
            );
        }
    }

    // --- The synthetic Net3 example ---------------------------------------------------------

    const NET3_SEED: u64 = 3;

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
    }

    /// The model the Net3 breaks are drawn from.
    fn net3_truth() -> Truth {
        Truth {
            shape: 1.8,
            scale: 110.0,
            beta: vec![
                (Covariate::Material("AC".into()), -0.2),
                (Covariate::Material("DI".into()), -0.8),
                (Covariate::Material("PVC".into()), -0.6),
                (Covariate::LogDiameter, -0.5),
                (Covariate::LogLength, 0.8),
                (Covariate::PreviousBreaks, 0.3),
            ],
        }
    }

    fn net3_window() -> Window {
        window((2006, 1, 1), (2025, 12, 31))
    }

    /// The assets and breaks CSV texts of the synthetic Net3 example.
    fn net3_example() -> (String, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hydraulics/networks/Net3.inp");
        let network = hydraulics::read_file(&path).expect("Net3 reads");
        let us = network.options.flow_units.is_us();
        let (to_mm, to_m) = if us { (25.4, 0.3048) } else { (1.0, 1.0) };
        let mut rng = Rng(NET3_SEED);
        // Zones by map position: north and south of the median node.
        let mut ys: Vec<f64> = network
            .nodes
            .iter()
            .filter_map(|n| n.coordinates.map(|c| c.1))
            .collect();
        ys.sort_by(f64::total_cmp);
        let median_y = ys.get(ys.len() / 2).copied().unwrap_or(0.0);
        let mut assets = Vec::new();
        for link in &network.links {
            let LinkKind::Pipe(pipe) = &link.kind else {
                continue;
            };
            let diameter_mm = (pipe.diameter * to_mm * 10.0).round() / 10.0;
            // The trunk mains were laid first; distribution pipes over the whole century.
            let install_year = if diameter_mm >= 600.0 {
                rng.int(1910, 1965)
            } else {
                rng.int(1920, 2020)
            };
            let material = match install_year {
                ..1950 => "CI",
                1950..1975 => rng.pick(&["CI", "AC", "AC"]),
                1975..1995 => "DI",
                _ if diameter_mm >= 400.0 => "DI",
                _ => "PVC",
            };
            let y = |node: usize| network.nodes[node].coordinates.map_or(median_y, |c| c.1);
            let zone = if y(link.from) + y(link.to) >= 2.0 * median_y {
                "north"
            } else {
                "south"
            };
            assets.push(Asset {
                id: link.id.clone(),
                install_year,
                material: material.to_string(),
                diameter_mm,
                length_m: (pipe.length * to_m * 10.0).round() / 10.0,
                zone: Some(zone.to_string()),
            });
        }
        let mut breaks = net3_truth().simulate(&assets, None, net3_window(), &mut rng);
        breaks.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.pipe_id.cmp(&b.pipe_id)));

        let mut assets_csv = String::from(
            "# Synthetic asset register for EPANET's Net3 (see README.md); not real data.\n\
         pipe_id,install_year,material,diameter_mm,length_m,zone\n",
        );
        for a in &assets {
            let zone = a.zone.as_deref().unwrap_or("");
            assets_csv.push_str(&format!(
                "{},{},{},{:.1},{:.1},{zone}\n",
                a.id, a.install_year, a.material, a.diameter_mm, a.length_m
            ));
        }
        let mut breaks_csv = String::from(
        "# Synthetic break history for EPANET's Net3, 2006-01-01 to 2025-12-31 (see README.md).\n\
         pipe_id,date\n",
    );
        for b in &breaks {
            breaks_csv.push_str(&format!("{},{}\n", b.pipe_id, b.date));
        }
        (assets_csv, breaks_csv)
    }

    #[test]
    fn net3_example_files_match_their_generator() {
        let (assets, breaks) = net3_example();
        let dir = data_dir();
        if std::env::var_os("AQUATWIN_WRITE_DATA").is_some() {
            std::fs::create_dir_all(&dir).expect("data dir");
            std::fs::write(dir.join("net3_assets.csv"), &assets).expect("write assets");
            std::fs::write(dir.join("net3_breaks.csv"), &breaks).expect("write breaks");
        }
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("example file");
        assert_eq!(
            read("net3_assets.csv"),
            assets,
            "regenerate: see the file's doc"
        );
        assert_eq!(
            read("net3_breaks.csv"),
            breaks,
            "regenerate: see the file's doc"
        );
    }

    #[test]
    fn net3_example_fits_and_ranks_with_explanations() {
        let dir = data_dir();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("example file");
        let assets = parse_assets(&read("net3_assets.csv"), "net3_assets.csv").expect("assets");
        let breaks = parse_breaks(&read("net3_breaks.csv"), "net3_breaks.csv").expect("breaks");
        assert_eq!(assets.len(), 117);
        let data = Dataset::new(assets, &breaks, net3_window()).expect("consistent records");
        let model = fit(&data, &FitOptions::default()).expect("the model fits");
        let truth = net3_truth();
        println!(
            "Net3: {} pipes, {} breaks, reference material {:?}",
            model.pipes, model.breaks, model.reference_material
        );
        println!("| parameter | true | estimate | SE |");
        println!("|---|---|---|---|");
        for (name, truth, estimate, se) in compare(&truth, &model) {
            println!("| {name} | {truth} | {estimate:.3} | {se:.3} |");
        }
        let ranking = model
            .score(&data, &ScoreOptions::default())
            .expect("scores");
        assert_eq!(ranking.len(), 117);
        for pair in ranking.windows(2) {
            assert!(pair[0].probability >= pair[1].probability);
        }
        for risk in ranking.iter().take(10) {
            let factors: Vec<String> = risk
                .factors
                .iter()
                .map(|f| format!("{} {} ({:+.2})", f.factor, f.value, f.log_ratio))
                .collect();
            println!(
                "{:>5} p5y {:.3} x{:.2}: {}",
                risk.pipe_id,
                risk.probability,
                risk.relative_risk,
                factors.join(", ")
            );
            assert_eq!(risk.factors.len(), 3);
            assert!(risk.probability > 0.0 && risk.probability < 1.0);
        }
    }
}
