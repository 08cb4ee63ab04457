//! `aquatwin risk` on the shipped synthetic Net3 example (`twin/data/net3_*.csv`): a ranked
//! file where every row names its factors, risk = probability x consequence, and each pipe's
//! consequence is what `aquatwin criticality --kind segment` reports for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const NET3: &str = "hydraulics/networks/Net3.inp";

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("risk_cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn aquatwin(args: &[&str]) -> std::process::Output {
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(args)
        .output()
        .expect("the aquatwin binary runs");
    assert!(
        run.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

#[test]
fn net3_example_ranks_pipes_by_risk_with_named_factors() {
    let dir = scratch();
    let out = dir.join("risk.json");
    aquatwin(&[
        "risk",
        NET3,
        "--assets",
        "twin/data/net3_assets.csv",
        "--breaks",
        "twin/data/net3_breaks.csv",
        "--duration",
        "6",
        "--demand-per-customer",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(rows.len(), 117);
    let risk: Vec<f64> = rows
        .iter()
        .map(|r| r["risk_m3"].as_f64().unwrap())
        .collect();
    assert!(risk.windows(2).all(|w| w[0] >= w[1]), "not ranked by risk");
    assert!(risk[0] > 0.0);
    let known = [
        "age=",
        "material=",
        "diameter=",
        "length=",
        "previous_breaks=",
    ];
    for row in &rows {
        let p = row["probability"].as_f64().unwrap();
        let c = row["consequence_m3"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!((row["risk_m3"].as_f64().unwrap() - p * c).abs() <= 1e-12 * (p * c).max(1.0));
        let factors: Vec<&str> = row["factors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(factors.len() >= 2, "{row}");
        assert!(
            factors[..factors.len() - 1]
                .iter()
                .all(|f| known.iter().any(|k| f.starts_with(k))),
            "{factors:?}"
        );
        assert!(factors.last().unwrap().starts_with("consequence:"));
        assert!(!row["valves"].as_array().unwrap().is_empty());
        assert!(
            row["cut_off_if_a_valve_fails"].as_u64().unwrap()
                >= row["cut_off_junctions"].as_u64().unwrap()
        );
    }

    // The consequence is the segment-closure criticality of the pipe.
    let crit = dir.join("segment.csv");
    aquatwin(&[
        "criticality",
        NET3,
        "--kind",
        "segment",
        "--duration",
        "6",
        "--out",
        crit.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&crit).unwrap();
    let unmet: HashMap<&str, f64> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1], f[2].parse::<f64>().unwrap())
        })
        .collect();
    for row in &rows {
        let pipe = row["pipe"].as_str().unwrap();
        let expected = unmet[pipe].max(0.0);
        let got = row["consequence_m3"].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected.max(1.0),
            "{pipe}: {got} vs {expected}"
        );
    }
}

#[test]
fn risk_csv_output_and_bad_assets() {
    let dir = scratch();
    let out = dir.join("risk.csv");
    aquatwin(&[
        "risk",
        NET3,
        "--assets",
        "twin/data/net3_assets.csv",
        "--breaks",
        "twin/data/net3_breaks.csv",
        "--duration",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("rank,pipe,probability"));
    assert_eq!(lines.count(), 117);

    let bad = dir.join("bad_assets.csv");
    std::fs::write(
        &bad,
        "pipe_id,install_year,material,diameter_mm,length_m\nno_such_pipe,1950,CI,150,100\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args([
            "risk",
            NET3,
            "--assets",
            bad.to_str().unwrap(),
            "--breaks",
            "twin/data/net3_breaks.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no_such_pipe"), "{stderr}");
}
