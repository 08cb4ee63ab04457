//! The reader agrees with EPANET 2.3.5 on every shared network: node and link order, ids,
//! types and the options EPANET reports (`shared/reference/<name>.steady.json`).

use hydraulics::inp::read_file;
use hydraulics::model::{DemandModel, HeadlossFormula};
use hydraulics::results::{link_type, node_type};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn order_ids_types_and_options_match_epanet() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(shared().join("reference"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for reference in entries {
        let file = reference.file_name().unwrap().to_str().unwrap().to_string();
        let Some(name) = file.strip_suffix(".steady.json") else {
            continue;
        };
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
        let net = read_file(&shared().join(format!("networks/{name}.inp"))).unwrap();
        let node_ids: Vec<&str> = net.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(node_ids, strings(&r["node_ids"]), "{name}: node order");
        let link_ids: Vec<&str> = net.links.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(link_ids, strings(&r["link_ids"]), "{name}: link order");
        let node_types: Vec<&str> = net.nodes.iter().map(|n| node_type(&n.kind)).collect();
        assert_eq!(node_types, strings(&r["node_types"]), "{name}: node types");
        let link_types: Vec<&str> = net.links.iter().map(|l| link_type(&l.kind)).collect();
        assert_eq!(link_types, strings(&r["link_types"]), "{name}: link types");

        let o = &r["options"];
        let opts = &net.options;
        assert_eq!(
            r["units"]["flow"].as_str().unwrap(),
            opts.flow_units.name(),
            "{name}"
        );
        let headloss = match opts.headloss {
            HeadlossFormula::HazenWilliams => "H-W",
            HeadlossFormula::DarcyWeisbach => "D-W",
            HeadlossFormula::ChezyManning => "C-M",
        };
        assert_eq!(o["headloss"].as_str().unwrap(), headloss, "{name}");
        let model = if opts.demand_model == DemandModel::Pda {
            "PDA"
        } else {
            "DDA"
        };
        assert_eq!(o["demand_model"].as_str().unwrap(), model, "{name}");
        if let Some(pda) = o["pda_pmin_preq_pexp"].as_array() {
            let values: Vec<f64> = pda.iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(
                values,
                vec![
                    opts.minimum_pressure,
                    opts.required_pressure,
                    opts.pressure_exponent
                ],
                "{name}"
            );
        }
        assert_eq!(
            o["duration_s"].as_u64().unwrap(),
            net.times.duration,
            "{name}"
        );
        assert_eq!(
            o["pattern_step_s"].as_u64().unwrap(),
            net.times.pattern_step,
            "{name}"
        );
        assert_eq!(
            o["trials"].as_u64().unwrap(),
            u64::from(opts.trials),
            "{name}"
        );
        assert_eq!(o["accuracy"].as_f64().unwrap(), opts.accuracy, "{name}");
        assert_eq!(
            o["demand_multiplier"].as_f64().unwrap(),
            opts.demand_multiplier,
            "{name}"
        );
        assert_eq!(
            o["specific_gravity"].as_f64().unwrap(),
            opts.specific_gravity,
            "{name}"
        );
        assert_eq!(o["viscosity"].as_f64().unwrap(), opts.viscosity, "{name}");
        // EPANET never lets the hydraulic step exceed the pattern or report step.
        let t = &net.times;
        let report_step = if t.report_step == 0 {
            t.pattern_step
        } else {
            t.report_step
        };
        assert_eq!(o["report_step_s"].as_u64().unwrap(), report_step, "{name}");
        let hyd_step = t.hydraulic_step.min(t.pattern_step).min(report_step);
        assert_eq!(o["hyd_step_s"].as_u64().unwrap(), hyd_step, "{name}");
        checked += 1;
    }
    assert!(checked >= 45, "checked {checked}");
}
