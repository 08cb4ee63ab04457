//! Reading the risk input files, and the errors for input that cannot be used: bad CSV,
//! records that do not fit together, and data that cannot identify the model.

// In a module named `risk` so that `cargo test -p twin risk` selects these tests.
mod risk {
    use twin::risk::{
        fit, parse_assets, parse_breaks, parse_twin_stats, Asset, CsvError, DataError, Dataset,
        Date, Factor, FitError, FitOptions, ScoreOptions, TwinStats, WeibullPh, Window,
    };

    fn window() -> Window {
        Window::new(
            Date::new(2001, 1, 1).expect("date"),
            Date::new(2020, 12, 31).expect("date"),
        )
        .expect("window")
    }

    fn message(error: impl std::fmt::Display) -> String {
        error.to_string()
    }

    #[test]
    fn assets_read_in_any_column_order_with_quotes_comments_and_extra_columns() {
        let text = "\
# exported from the GIS
Material, Length_M ,pipe_id,install_year,diameter_mm,zone,owner

CI,120.5,P1,1952,150,north,\"Smith, J\"
\"P,V\"\"C\",80,P2,2004,200,,city
";
        let assets = parse_assets(text, "assets.csv").expect("valid file");
        assert_eq!(
            assets,
            [
                Asset {
                    id: "P1".into(),
                    install_year: 1952,
                    material: "CI".into(),
                    diameter_mm: 150.0,
                    length_m: 120.5,
                    zone: Some("north".into()),
                },
                Asset {
                    id: "P2".into(),
                    install_year: 2004,
                    material: "P,V\"C".into(),
                    diameter_mm: 200.0,
                    length_m: 80.0,
                    zone: None,
                },
            ]
        );
    }

    #[test]
    fn assets_errors_name_file_line_and_column() {
        let header = "pipe_id,install_year,material,diameter_mm,length_m\n";
        let cases = [
        (
            "",
            "assets.csv: empty file, expected a header line naming the columns",
        ),
        (
            "pipe_id,install_year,diameter_mm,length_m\nP1,1950,150,10\n",
            "assets.csv: line 1: the header has no column `material`",
        ),
        (
            "pipe_id,install_year,material,Material,diameter_mm,length_m\n",
            "assets.csv: line 1, column 4: column `Material` appears twice in the header",
        ),
        (
            "P1,19x0,CI,150,10\n",
            "assets.csv: line 2, column 2 (`install_year`): not a year between 1800 and 2100: `19x0`",
        ),
        (
            "P1,1950,CI,-150,10\n",
            "assets.csv: line 2, column 4 (`diameter_mm`): not a positive number: `-150`",
        ),
        (
            "P1,1950,CI,150,NaN\n",
            "assets.csv: line 2, column 5 (`length_m`): not a positive number: `NaN`",
        ),
        (
            "P1,1950,,150,10\n",
            "assets.csv: line 2, column 3 (`material`): empty value: ``",
        ),
        (
            "P1,1950,CI,150\n",
            "assets.csv: line 2: 4 fields, but the header has 5",
        ),
        (
            "P1,1950,\"CI,150,10\n",
            "assets.csv: line 2, column 3: unterminated quoted field",
        ),
        (
            "P1,1950,CI,150,10\n\nP1,1960,DI,100,20\n",
            "assets.csv: line 4: pipe `P1` already given on line 2",
        ),
    ];
        for (body, expected) in cases {
            let text = if body.starts_with("pipe_id") || body.is_empty() {
                body.to_string()
            } else {
                format!("{header}{body}")
            };
            let error = parse_assets(&text, "assets.csv").expect_err(expected);
            assert_eq!(message(&error), expected);
        }
    }

    #[test]
    fn breaks_need_real_dates() {
        let error =
            parse_breaks("pipe_id,date\nP1,2020-02-30\n", "breaks.csv").expect_err("bad day");
        assert_eq!(
            error,
            CsvError::BadValue {
                file: "breaks.csv".into(),
                line: 2,
                column: 2,
                name: "date",
                value: "2020-02-30".into(),
                problem: "not a date written YYYY-MM-DD",
            }
        );
        for bad in ["2020/01/02", "20-01-02", "2020-1-2", "2020-13-01"] {
            let text = format!("pipe_id,date\nP1,{bad}\n");
            assert!(parse_breaks(&text, "breaks.csv").is_err(), "{bad}");
        }
        let breaks = parse_breaks("date,pipe_id\n2020-02-29,P1\n", "breaks.csv").expect("leap day");
        assert_eq!(breaks[0].date, Date::new(2020, 2, 29).expect("date"));
        assert_eq!(breaks[0].line, 2);
    }

    #[test]
    fn twin_stats_are_checked() {
        let header = "pipe_id,mean_pressure_m,max_pressure_m,transients_per_year\n";
        let error =
            parse_twin_stats(&format!("{header}P1,40,55,-1\n"), "twin.csv").expect_err("<0");
        assert_eq!(
            message(error),
            "twin.csv: line 2, column 4 (`transients_per_year`): not a number >= 0: `-1`"
        );
        let stats =
            parse_twin_stats(&format!("{header}P1,40,55,2.5\n"), "twin.csv").expect("valid");
        let assets = parse_assets(
            "pipe_id,install_year,material,diameter_mm,length_m\nP2,1950,CI,150,10\n",
            "assets.csv",
        )
        .expect("assets");
        let error = Dataset::new(assets, &[], window())
            .expect("no breaks is consistent")
            .with_twin_stats(stats)
            .expect_err("stats for another pipe");
        assert_eq!(
            error,
            DataError::TwinStatsMismatch {
                missing: vec!["P2".into()],
                unknown: vec!["P1".into()],
            }
        );
    }

    const ASSETS: &str = "\
pipe_id,install_year,material,diameter_mm,length_m
P1,1950,CI,150,100
P2,1960,CI,200,150
P3,1995,PVC,150,90
P4,1975,DI,300,400
P5,1930,CI,100,60
";

    fn assets() -> Vec<Asset> {
        parse_assets(ASSETS, "assets.csv").expect("assets")
    }

    #[test]
    fn breaks_on_unknown_pipes_are_all_reported() {
        let breaks = parse_breaks(
            "pipe_id,date\nP1,2010-01-01\nX9,2011-05-05\nP2,2012-01-01\nY1,2013-03-03\n",
            "breaks.csv",
        )
        .expect("breaks");
        let error = Dataset::new(assets(), &breaks, window()).expect_err("unknown pipes");
        assert_eq!(
            message(error),
            "2 break(s) name pipes that are not in the assets: line 3 `X9`, line 5 `Y1`"
        );
    }

    #[test]
    fn breaks_before_installation_or_outside_the_window_are_rejected() {
        let before = parse_breaks("pipe_id,date\nP3,1994-12-31\n", "b.csv").expect("breaks");
        assert_eq!(
            message(Dataset::new(assets(), &before, window()).expect_err("before install")),
            "breaks line 2: pipe `P3` broke on 1994-12-31, before it was laid in 1995"
        );
        let outside = parse_breaks("pipe_id,date\nP1,2021-01-01\n", "b.csv").expect("breaks");
        assert_eq!(
            message(Dataset::new(assets(), &outside, window()).expect_err("outside")),
            "breaks line 2: pipe `P1` broke on 2021-01-01, outside the observation window \
         2001-01-01 to 2020-12-31"
        );
    }

    fn dataset(assets: &str, breaks: &str) -> Dataset {
        let assets = parse_assets(assets, "assets.csv").expect("assets");
        let breaks = parse_breaks(breaks, "breaks.csv").expect("breaks");
        Dataset::new(assets, &breaks, window()).expect("records")
    }

    #[test]
    fn no_breaks_cannot_be_fitted() {
        let data = dataset(ASSETS, "pipe_id,date\n");
        assert_eq!(
            fit(&data, &FitOptions::default()),
            Err(FitError::NoBreaks { pipes: 5 })
        );
    }

    #[test]
    fn constant_collinear_and_separating_covariates_are_named() {
        let breaks = "pipe_id,date\nP1,2005-01-01\nP2,2008-01-01\nP4,2010-01-01\nP5,2012-01-01\n\
                  P5,2015-06-01\nP1,2018-01-01\n";
        // Every pipe 150 mm: the diameter says nothing.
        let same_diameter = ASSETS
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                if f[0] != "pipe_id" {
                    f[3] = "150";
                }
                f.join(",")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let data = dataset(&same_diameter, breaks);
        let without_material = FitOptions {
            exclude: vec![Factor::Material],
            ..FitOptions::default()
        };
        assert_eq!(
            message(fit(&data, &without_material).expect_err("constant")),
            "covariate `ln_diameter_mm` has the same value on every pipe, so its effect cannot be \
         estimated; exclude its factor"
        );
        // Leaving out diameter too makes it fit.
        let options = FitOptions {
            exclude: vec![Factor::Diameter, Factor::Material],
            ..FitOptions::default()
        };
        let model = fit(&data, &options).expect("fits without diameter and material");
        let names: Vec<String> = model
            .coefficients
            .iter()
            .map(|c| c.covariate.name())
            .collect();
        assert_eq!(names, ["ln_length_m", "ln_1p_previous_breaks"]);
        assert_eq!((model.pipes, model.breaks), (5, 6));

        // Length proportional to the square of the diameter: ln length = c + 2 ln diameter.
        let collinear = "\
pipe_id,install_year,material,diameter_mm,length_m
P1,1950,CI,100,1000
P2,1960,CI,200,4000
P3,1995,CI,150,2250
P4,1975,CI,300,9000
P5,1930,CI,100,1000
";
        let error =
            fit(&dataset(collinear, breaks), &FitOptions::default()).expect_err("collinear");
        assert_eq!(
            error,
            FitError::Collinear {
                covariates: vec!["ln_diameter_mm".into(), "ln_length_m".into()]
            }
        );

        // No PVC pipe ever broke: its coefficient would run off to minus infinity.
        let error = fit(&dataset(ASSETS, breaks), &FitOptions::default()).expect_err("separation");
        assert_eq!(
        message(error),
        "every break happened at the lowest value of covariate `material=PVC`, so its effect is \
         unbounded and cannot be estimated; exclude its factor or merge materials"
    );
    }

    #[test]
    fn a_model_with_pressure_covariates_needs_twin_stats_to_score() {
        let model = WeibullPh::with_parameters(
            1.5,
            80.0,
            vec![(twin::risk::Covariate::MeanPressure, 0.01)],
            None,
        );
        let data = dataset(ASSETS, "pipe_id,date\n");
        assert_eq!(
            model.score(&data, &ScoreOptions::default()),
            Err(DataError::NoTwinStats)
        );
        let stats: Vec<TwinStats> = assets()
            .iter()
            .map(|a| TwinStats {
                pipe_id: a.id.clone(),
                mean_pressure_m: 50.0,
                max_pressure_m: 60.0,
                transients_per_year: 1.0,
            })
            .collect();
        let with_stats = data.with_twin_stats(stats).expect("stats for every pipe");
        assert_eq!(
            model
                .score(&with_stats, &ScoreOptions::default())
                .expect("scores")
                .len(),
            5
        );
    }
}
