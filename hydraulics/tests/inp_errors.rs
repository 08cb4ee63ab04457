//! Error paths: every EPANET error code the reader reports, with file, line and section.

use hydraulics::inp::{read_file, read_str, InpError, InpProblem};
use std::path::Path;

fn problems_of(result: Result<hydraulics::Network, InpError>) -> Vec<InpProblem> {
    match result {
        Err(InpError::Invalid(problems)) => problems,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the file was accepted"),
    }
}

/// (line, section, code) of every problem.
fn located(problems: &[InpProblem]) -> Vec<(usize, String, u32)> {
    problems
        .iter()
        .map(|p| (p.line, p.section.clone(), p.code))
        .collect()
}

fn shared_network(name: &str) -> Vec<InpProblem> {
    problems_of(read_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../shared/networks/{name}.inp")),
    ))
}

#[test]
fn net1broken_has_duplicate_ids() {
    let problems = shared_network("Net1broken");
    assert_eq!(
        located(&problems),
        vec![(24, "RESERVOIRS".into(), 215), (28, "TANKS".into(), 215)]
    );
    assert_eq!(problems[0].message, "duplicate ID label '2'");
    assert!(problems[0].file.ends_with("Net1broken.inp"));
    let shown = InpError::Invalid(problems).to_string();
    assert!(
        shown.contains("Net1broken.inp:24: [RESERVOIRS] duplicate ID label '2' (EPANET error 215)"),
        "{shown}"
    );
}

#[test]
fn bad_syntax_has_an_unknown_section() {
    let problems = shared_network("bad_syntax");
    assert_eq!(located(&problems), vec![(330, "FOO".into(), 299)]);
    assert!(problems[0].message.contains("[FOO]"));
}

#[test]
fn bad_values_refers_to_an_undefined_node() {
    let problems = shared_network("bad_values");
    assert_eq!(located(&problems), vec![(56, "PIPES".into(), 203)]);
    assert_eq!(problems[0].message, "undefined node 'node1'");
}

const BASE: &str = "[JUNCTIONS]
 J1 10 1
 J2 10 1
 J3 10 1
[RESERVOIRS]
 R1 100
[TANKS]
 T1 50 3 1 6 20
[PIPES]
 P1 R1 J1 100 10 100
 P2 J1 J2 100 10 100
 P3 J2 J3 100 10 100 0 CV
 P4 J3 T1 100 10 100
[PATTERNS]
 pat 1 2
[CURVES]
 c1 10 50
";

/// The codes of `BASE` with `extra` appended (a section heading and lines).
fn codes(extra: &str) -> Vec<u32> {
    problems_of(read_str(&format!("{BASE}{extra}"), "t.inp"))
        .iter()
        .map(|p| p.code)
        .collect()
}

#[test]
fn base_network_is_valid() {
    read_str(BASE, "t.inp").unwrap();
}

#[test]
fn syntax_and_value_errors() {
    assert_eq!(codes("[PIPES]\n P9 J1 J2 abc\n"), vec![202]);
    assert_eq!(codes("[PIPES]\n P9 J1 J2 -5\n"), vec![202]);
    assert_eq!(codes("[PIPES]\n P9 J1 J2 1 1 1 0 SHUT\n"), vec![213]);
    assert_eq!(codes("[JUNCTIONS]\n J9 x\n"), vec![202]);
    assert_eq!(codes("[TANKS]\n T9 1 2 3 4\n"), vec![201]);
    assert_eq!(codes("[TANKS]\n T9 1 -2 0 4 5\n"), vec![209]);
    assert_eq!(codes("[TANKS]\n T9 1 2 0 4 5 0 * MAYBE\n"), vec![213]);
    assert_eq!(codes("[OPTIONS]\n UNITS XYZ\n"), vec![213]);
    assert_eq!(codes("[OPTIONS]\n TRIALS 0\n"), vec![213]);
    assert_eq!(codes("[OPTIONS]\n BOGUS 5\n"), vec![201]);
    assert_eq!(codes("[TIMES]\n DURATION later\n"), vec![213]);
    assert_eq!(codes("[TIMES]\n PATTERN FOO 1\n"), vec![213]);
    assert_eq!(codes("[EMITTERS]\n J1 -1\n"), vec![209]);
}

#[test]
fn short_lines() {
    for extra in [
        "[RESERVOIRS]\n R9\n",
        "[DEMANDS]\n J1\n",
        "[EMITTERS]\n J1\n",
        "[CONTROLS]\n LINK P1 OPEN\n",
        "[PATTERNS]\n pat\n",
        "[CURVES]\n c1 5\n",
        "[STATUS]\n P1\n",
        "[LEAKAGE]\n P1 1\n",
        "[ENERGY]\n GLOBAL\n",
        "[TIMES]\n DURATION\n",
        "[REPORT]\n NODES\n",
        "[RULES]\nRULE r\nIF NODE J1 PRESSURE\n",
    ] {
        assert_eq!(codes(extra), vec![201], "{extra}");
    }
    // EPANET 2.3.5 skips link lines too short to name both end nodes (or a valve type).
    for extra in [
        "[PIPES]\n P9 J1\n",
        "[PUMPS]\n PU J1\n",
        "[VALVES]\n V J1 J2 10\n",
    ] {
        let reading =
            hydraulics::inp::read_str_with_notes(&format!("{BASE}{extra}"), "t.inp").unwrap();
        assert_eq!(reading.network.links.len(), 4, "{extra}");
        assert_eq!(reading.notes.len(), 1, "{extra}");
    }
    read_str(&format!("{BASE}[OPTIONS]\n UNITS\n"), "t.inp").unwrap();
}

#[test]
fn ids_are_case_sensitive_keywords_are_not() {
    assert_eq!(codes("[PIPES]\n P9 j1 J2\n"), vec![203]);
    let net = read_str(
        &format!("{BASE}[junctions]\n j1 5\n[pipes]\n P9 j1 J2 100 10 100 0 cv\n"),
        "t.inp",
    )
    .unwrap();
    assert_eq!(net.nodes.len(), 6);
    assert!(read_str(&format!("\u{feff}{BASE}"), "bom.inp").is_ok());
}

#[test]
fn reference_errors() {
    assert_eq!(codes("[PIPES]\n P9 J1 J9\n"), vec![203]);
    assert_eq!(codes("[STATUS]\n P9 OPEN\n"), vec![204]);
    assert_eq!(codes("[JUNCTIONS]\n J9 1 1 nopat\n"), vec![205]);
    assert_eq!(codes("[PUMPS]\n PU J1 J2 HEAD nocurve\n"), vec![206]);
    assert_eq!(codes("[CONTROLS]\n LINK P3 OPEN AT TIME 1\n"), vec![207]);
    assert_eq!(codes("[STATUS]\n P3 CLOSED\n"), vec![207]);
    assert_eq!(codes("[CONTROLS]\n LINK P1 -1 AT TIME 1\n"), vec![211]);
    assert_eq!(codes("[STATUS]\n P1 -1\n"), vec![211]);
    assert_eq!(codes("[OPTIONS]\n QUALITY TRACE nowhere\n"), vec![212]);
    assert_eq!(codes("[ENERGY]\n PUMP P1 PRICE 1\n"), vec![216]);
    assert_eq!(codes("[ENERGY]\n GLOBAL PRICE -1\n"), vec![217]);
    assert_eq!(
        codes("[OPTIONS]\n MINIMUM PRESSURE 10\n REQUIRED PRESSURE 10\n"),
        vec![208]
    );
}

#[test]
fn identity_errors() {
    assert_eq!(codes("[JUNCTIONS]\n J1 5\n"), vec![215]);
    assert_eq!(codes("[PIPES]\n P1 J1 J2\n"), vec![215]);
    assert_eq!(codes("[PIPES]\n P9 J1 J1\n"), vec![222]);
    assert_eq!(
        codes("[JUNCTIONS]\n ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 5\n"),
        vec![252]
    );
    assert_eq!(codes("[NOTASECTION]\n whatever\n"), vec![299]);
    assert_eq!(
        codes(&format!("[JUNCTIONS]\n J9 1 {}\n", "0".repeat(1100))),
        vec![214]
    );
}

#[test]
fn valve_connections() {
    assert_eq!(codes("[VALVES]\n V1 R1 J1 10 PRV 50\n"), vec![219]);
    assert_eq!(codes("[VALVES]\n V1 J1 T1 10 FCV 50\n"), vec![219]);
    assert_eq!(
        codes("[VALVES]\n V1 J1 J2 10 PRV 50\n V2 J3 J2 10 PRV 50\n"),
        vec![220]
    );
    assert_eq!(
        codes("[VALVES]\n V1 J1 J2 10 PSV 50\n V2 J1 J3 10 PSV 50\n"),
        vec![220]
    );
    assert_eq!(
        codes("[VALVES]\n V1 J1 J2 10 PRV 50\n V2 J2 J3 10 PSV 50\n"),
        vec![220]
    );
    // A TCV may sit at a tank; a PRV after an unrelated PRV is fine.
    read_str(
        &format!("{BASE}[VALVES]\n V1 J1 T1 10 TCV 5\n V2 J1 J2 10 PRV 5\n V3 J2 J3 10 TCV 5\n"),
        "t.inp",
    )
    .unwrap();
}

#[test]
fn rule_errors() {
    assert_eq!(
        codes("[RULES]\nRULE r\nTHEN LINK P1 STATUS IS OPEN\n"),
        vec![221]
    );
    assert_eq!(
        codes("[RULES]\nRULE r\nIF NODE J9 PRESSURE > 1\nTHEN LINK P1 STATUS IS OPEN\n"),
        vec![203]
    );
    assert_eq!(
        codes("[RULES]\nRULE r\nIF NODE J1 PRESSURE > 1\nTHEN LINK P9 STATUS IS OPEN\n"),
        vec![204]
    );
    assert_eq!(
        codes("[RULES]\nRULE r\nIF NODE J1 PRESSURE > x\nTHEN LINK P1 STATUS IS OPEN\n"),
        vec![202]
    );
    assert_eq!(
        codes("[RULES]\nRULE r\nIF NODE J1 FLOW > 1\nTHEN LINK P1 STATUS IS OPEN\n"),
        vec![201]
    );
    assert_eq!(
        codes("[RULES]\nRULE r\nIF NODE J1 PRESSURE > 1\nTHEN LINK P3 STATUS IS OPEN\n"),
        vec![207]
    );
    assert_eq!(codes("[RULES]\nRULE\n"), vec![201]);
    // After an error the rest of that rule is skipped; the next rule is read again.
    let text = "[RULES]\nRULE a\nTHEN LINK P1 STATUS IS OPEN\nAND LINK P9 STATUS IS OPEN\nRULE b\nIF NODE J9 HEAD > 1\n";
    assert_eq!(codes(text), vec![221, 203]);
}

#[test]
fn network_checks_after_reading() {
    let no_source = "[JUNCTIONS]\n J1 1\n J2 1\n[PIPES]\n P1 J1 J2\n";
    assert_eq!(
        problems_of(read_str(no_source, "t.inp"))
            .iter()
            .map(|p| p.code)
            .collect::<Vec<_>>(),
        vec![224]
    );
    let one_node = "[RESERVOIRS]\n R1 1\n";
    assert_eq!(
        problems_of(read_str(one_node, "t.inp"))
            .iter()
            .map(|p| p.code)
            .collect::<Vec<_>>(),
        vec![223]
    );
    assert_eq!(
        codes("[TANKS]\n T9 1 7 1 6 20\n[PIPES]\n P9 J1 T9\n"),
        vec![225]
    );
    assert_eq!(
        codes("[CURVES]\n v 0 0\n v 5 10\n[TANKS]\n T9 1 3 0 6 20 0 v\n[PIPES]\n P9 J1 T9\n"),
        vec![225]
    );
    assert_eq!(codes("[PUMPS]\n PU J1 J2\n"), vec![226]);
    assert_eq!(
        codes("[CURVES]\n up 1 10\n up 2 20\n[PUMPS]\n PU J1 J2 HEAD up\n"),
        vec![227]
    );
    assert_eq!(
        codes("[CURVES]\n bad 0 10\n bad 2 20\n bad 3 5\n[PUMPS]\n PU J1 J2 HEAD bad\n"),
        vec![227]
    );
    assert_eq!(codes("[CURVES]\n back 2 1\n back 1 2\n"), vec![230]);
    let problems = problems_of(read_str(
        &format!("{BASE}[JUNCTIONS]\n J8 1\n J9 1\n"),
        "t.inp",
    ));
    assert_eq!(
        located(&problems),
        vec![(19, "JUNCTIONS".into(), 233), (20, "JUNCTIONS".into(), 233)]
    );
    assert_eq!(problems[0].message, "network has unconnected node 'J8'");
}

#[test]
fn every_problem_is_listed() {
    let text = "[JUNCTIONS]\n J1 x\n J1 1\n[PIPES]\n P1 J1 J7\n P2 J1 J1\n";
    let problems = problems_of(read_str(text, "many.inp"));
    assert_eq!(
        located(&problems),
        vec![
            (2, "JUNCTIONS".into(), 202),
            (3, "JUNCTIONS".into(), 215),
            (5, "PIPES".into(), 203),
            (6, "PIPES".into(), 222)
        ]
    );
    assert!(problems.iter().all(|p| p.file == "many.inp"));
}

#[test]
fn garbage_never_panics() {
    let net1 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/networks/Net1.inp"),
    )
    .unwrap();
    let lines: Vec<&str> = net1.lines().collect();
    let junk = [
        "",
        "x",
        "-1",
        "[",
        "\"",
        ";",
        "1e999",
        "NaN",
        "9:99:99:99:99",
        "ABOVE",
        "[END]",
    ];
    for (i, _) in lines.iter().enumerate() {
        for j in &junk {
            let mut mutated = lines.clone();
            let replaced = format!("{} {j}", lines[i].split_whitespace().next().unwrap_or(""));
            mutated[i] = &replaced;
            let _ = read_str(&mutated.join("\n"), "mutated.inp");
            let truncated: String = lines[..i].join("\n");
            let _ = read_str(&truncated, "truncated.inp");
        }
    }
}
