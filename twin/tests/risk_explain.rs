//! Likelihood of failure and its explanation on a three-pipe network small enough to check by
//! hand.

// In a module named `risk` so that `cargo test -p twin risk` selects these tests.
mod risk {
    use twin::risk::{
        parse_assets, parse_breaks, Covariate, Dataset, Date, Factor, ScoreOptions, WeibullPh,
        Window,
    };

    const ASSETS: &str = "\
pipe_id,install_year,material,diameter_mm,length_m
A,1970,CI,150,100
B,2000,PVC,150,100
C,1990,PVC,150,100
";

    const BREAKS: &str = "\
pipe_id,date
B,2010-06-15
";

    /// k = 2, lambda = 100 years, CI 0.5 against PVC, 1.0 per ln(1 + previous breaks).
    fn model() -> WeibullPh {
        WeibullPh::with_parameters(
            2.0,
            100.0,
            vec![
                (Covariate::Material("CI".into()), 0.5),
                (Covariate::PreviousBreaks, 1.0),
            ],
            Some("PVC".into()),
        )
    }

    fn data() -> Dataset {
        let window = Window::new(
            Date::new(2000, 1, 1).expect("date"),
            Date::new(2019, 12, 31).expect("date"),
        )
        .expect("window");
        let assets = parse_assets(ASSETS, "assets.csv").expect("assets");
        let breaks = parse_breaks(BREAKS, "breaks.csv").expect("breaks");
        Dataset::new(assets, &breaks, window).expect("records")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn probabilities_and_ranking_match_the_hand_computation() {
        // Scored from 2020.0 (the window's end) over 10 years, the baseline cumulative hazard
        // added is ((a + 10)^2 - a^2) / 100^2 = (20 a + 100) / 10^4 at age a:
        // A (age 50, CI, no break):    0.11 * e^0.5
        // B (age 20, PVC, one break):  0.05 * e^ln2 = 0.10
        // C (age 30, PVC, no break):   0.07
        let options = ScoreOptions {
            horizon_years: 10.0,
            ..ScoreOptions::default()
        };
        let ranking = model().score(&data(), &options).expect("scores");
        let ids: Vec<&str> = ranking.iter().map(|r| r.pipe_id.as_str()).collect();
        assert_eq!(ids, ["A", "B", "C"]);
        let expected = [0.11 * 0.5f64.exp(), 0.10, 0.07];
        for (risk, dh) in ranking.iter().zip(expected) {
            assert!(close(risk.probability, 1.0 - (-dh).exp()), "{risk:?}");
        }
        assert!(close(ranking[0].age_years, 50.0));
        assert_eq!(ranking[1].previous_breaks, 1);

        // The mean pipe: age 100/3, CI share 1/3, ln(1 + breaks) mean ln2 / 3.
        let mean_dh0: f64 = (20.0 * 100.0 / 3.0 + 100.0) / 1e4;
        let ln2 = 2f64.ln();
        let a = &ranking[0];
        let factors: Vec<(Factor, &str)> = a
            .factors
            .iter()
            .map(|f| (f.factor, f.value.as_str()))
            .collect();
        assert_eq!(
            factors,
            [
                (Factor::Age, "50 years"),
                (Factor::Material, "CI"),
                (Factor::PreviousBreaks, "0 breaks")
            ]
        );
        assert!(close(a.factors[0].log_ratio, (0.11 / mean_dh0).ln()));
        assert!(close(a.factors[1].log_ratio, 0.5 * (2.0 / 3.0)));
        assert!(close(a.factors[2].log_ratio, -ln2 / 3.0));
        // The factors add up to the pipe's expected breaks against the mean pipe's.
        let mean_pipe = mean_dh0 * (0.5 / 3.0 + ln2 / 3.0).exp();
        assert!(close(a.relative_risk, 0.11 * 0.5f64.exp() / mean_pipe));

        // B: its break outweighs its youth.
        let b = &ranking[1];
        assert_eq!(b.factors[0].factor, Factor::PreviousBreaks);
        assert!(close(b.factors[0].log_ratio, ln2 * 2.0 / 3.0));
        assert_eq!(b.factors[1].factor, Factor::Age);
        assert!(close(b.factors[1].log_ratio, (0.05 / mean_dh0).ln()));
        assert_eq!(b.factors[2].value, "PVC");
        assert!(close(b.factors[2].log_ratio, -0.5 / 3.0));
    }

    #[test]
    fn explanations_keep_the_requested_number_of_factors() {
        let options = ScoreOptions {
            top_factors: 1,
            ..ScoreOptions::default()
        };
        let ranking = model().score(&data(), &options).expect("scores");
        assert!(ranking.iter().all(|r| r.factors.len() == 1));
    }

    #[test]
    fn a_later_start_counts_age_and_breaks_up_to_it() {
        // Scored from mid-2005 the break of 2010 has not happened yet.
        let options = ScoreOptions {
            as_of: Some(2005.5),
            horizon_years: 10.0,
            top_factors: 3,
        };
        let ranking = model().score(&data(), &options).expect("scores");
        let b = ranking
            .iter()
            .find(|r| r.pipe_id == "B")
            .expect("pipe B scored");
        assert_eq!(b.previous_breaks, 0);
        assert!(close(b.age_years, 5.5));
        assert!(close(
            b.probability,
            1.0 - (-(15.5f64.powi(2) - 5.5f64.powi(2)) / 1e4).exp()
        ));
    }
}
