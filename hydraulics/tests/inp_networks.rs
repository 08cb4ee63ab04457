//! Every shared network: read, validate node order, write and read back.

use hydraulics::inp::{read_file, read_str, write_string, InpError};
use hydraulics::model::NodeKind;
use std::path::{Path, PathBuf};

const INVALID: [&str; 3] = ["Net1broken", "bad_syntax", "bad_values"];

fn networks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/networks")
}

fn valid_networks() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(networks_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "inp"))
        .filter(|p| !INVALID.contains(&p.file_stem().unwrap().to_str().unwrap()))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_valid_network_reads() {
    let paths = valid_networks();
    assert!(paths.len() >= 45, "found {} networks", paths.len());
    let mut failures = Vec::new();
    for path in &paths {
        match read_file(path) {
            Ok(net) => {
                let first_source = net
                    .nodes
                    .iter()
                    .position(|n| !matches!(n.kind, NodeKind::Junction(_)));
                let junctions = net.junction_count();
                assert_eq!(
                    first_source.unwrap_or(net.nodes.len()),
                    junctions,
                    "{}",
                    path.display()
                );
                assert!(!net.links.is_empty());
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_valid_network_round_trips() {
    for path in valid_networks() {
        let net = read_file(&path).unwrap();
        let text = write_string(&net);
        let again = match read_str(&text, "written") {
            Ok(n) => n,
            Err(e) => panic!("{}: written text does not read: {e}", path.display()),
        };
        assert!(again == net, "{}: round trip differs", path.display());
        assert_eq!(write_string(&again), text);
    }
}

#[test]
fn invalid_networks_are_rejected() {
    for name in INVALID {
        let path = networks_dir().join(format!("{name}.inp"));
        assert!(
            matches!(read_file(&path), Err(InpError::Invalid(_))),
            "{name}"
        );
    }
}
