//! Networks, planning jobs and the risk ranking of `aquatwin serve`, driven with curl as a
//! user drives them:
//! - a modified Net3 is uploaded, listed, read back as `.inp` (the same model) and GeoJSON
//!   (the change shows); a malformed one is refused naming its line and section; a viewer may
//!   not upload; a version is deleted once no queued or running job uses it (409 naming the
//!   job until then; never the live one), is gone after, its number not given again;
//! - the elements of the live network carry the same state as `GET .../state` of the same
//!   period, and pages of them follow each other;
//! - a burst scenario job on the upload gives byte for byte the report `aquatwin scenario`
//!   writes as a process on the same files; bad scenarios are 422 naming the field; a viewer
//!   may not submit; a criticality job's progress is seen moving and its report is the
//!   command line's; a risk job's ranking is the command line's and becomes `GET .../risk`;
//! - a queued job and a running one are cancelled; after a restart results are kept and the
//!   job that was running is failed, interrupted by the restart.

mod serve_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_support::*;

const NET3: &str = "hydraulics/networks/Net3.inp";
const NEW_DIAMETER: &str = "20";

/// Net3 with pipe 60 (24 in) narrowed to [`NEW_DIAMETER`] in.
fn modified_net3() -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(NET3)).unwrap();
    let mut in_pipes = false;
    let mut changed = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with('[') {
                in_pipes = line.trim() == "[PIPES]";
            }
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            if in_pipes && fields.first() == Some(&"60") {
                assert_eq!(fields[4], "24");
                fields[4] = NEW_DIAMETER;
                changed += 1;
                return fields.join("\t");
            }
            line.to_string()
        })
        .collect();
    assert_eq!(changed, 1);
    lines.join("\n") + "\n"
}

fn route(rest: &str) -> String {
    format!("/api/v1/municipalities/{MUNICIPALITY}{rest}")
}

/// Uploads the network `text` as `token`: status and answer.
fn upload(serve: &Serve, token: &str, text: &str) -> (u16, String) {
    serve.send("POST", &route("/networks"), Some(token), "text/plain", text)
}

/// Submits the job `body` as `token`: status and answer.
fn post_job(serve: &Serve, token: &str, body: &Value) -> (u16, String) {
    serve.send_json("POST", &route("/jobs"), token, &body.to_string())
}

/// Cancels job `id` as the admin: status and answer.
fn cancel(serve: &Serve, id: u64) -> (u16, String) {
    let path = route(&format!("/jobs/{id}/cancel"));
    serve.send_json("POST", &path, &serve.token, "")
}

/// Submits a job as the admin; its id.
fn submit(serve: &Serve, job: &Value) -> u64 {
    let (status, body) = post_job(serve, &serve.token, job);
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let id = answer["id"].as_u64().unwrap();
    assert_eq!(answer["status_url"], route(&format!("/jobs/{id}")));
    id
}

fn job(serve: &Serve, id: u64) -> Value {
    let (status, record) = serve.get(&route(&format!("/jobs/{id}")));
    assert_eq!(status, 200, "{record}");
    record
}

/// Polls job `id` until `done` says so (at most `limit`); every record seen.
fn poll(serve: &Serve, id: u64, limit: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let record = job(serve, id);
        let finished = done(&record);
        seen.push(record);
        if finished {
            return seen;
        }
        assert!(Instant::now() < deadline, "job {id}: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finished(record: &Value) -> bool {
    ["done", "failed", "cancelled"].contains(&record["status"].as_str().unwrap())
}

fn result_text(serve: &Serve, id: u64) -> String {
    let (status, text) = serve.get_text(&route(&format!("/jobs/{id}/result")));
    assert_eq!(status, 200, "{text}");
    text
}

/// Runs `aquatwin ARGS` as a process; it must succeed.
fn aquatwin(args: &[&str]) {
    let run = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .current_dir(ROOT)
        .args(args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "aquatwin {args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn start(dir: &Path) -> (Serve, String) {
    let config = write_config(dir, EMBEDDED_MQTT);
    let data = dir.join("data");
    create_viewer(&data, NORTH_VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    let viewer = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    (serve, viewer)
}

#[test]
fn network_versions_are_uploaded_listed_and_served() {
    let dir = TempDir::new("serve-networks");
    let (serve, viewer) = start(dir.path());
    let text = modified_net3();
    let original = hydraulics::read_file(&Path::new(ROOT).join(NET3)).unwrap();
    let expected = hydraulics::read_str(&text, "modified.inp").unwrap();
    assert_ne!(original, expected);

    let (status, body) = upload(&serve, &serve.token, &text);
    assert_eq!(status, 201, "{body}");
    let uploaded: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(uploaded["version"], 1);
    assert_eq!(uploaded["uploaded_by"], ADMIN.0);
    assert_eq!(uploaded["sha256"], sha256_hex(&text));
    assert_eq!(uploaded["nodes"], expected.nodes.len());
    assert_eq!(uploaded["links"], expected.links.len());

    let (status, _) = upload(&serve, &viewer, &text);
    assert_eq!(status, 403);

    // A malformed file: the problem's line and section are named.
    let mut lines: Vec<&str> = text.lines().collect();
    let pipes = lines.iter().position(|l| l.trim() == "[PIPES]").unwrap();
    lines.insert(pipes + 2, "BROKEN\t3\tno-such-node\t100\t12\t100\t0\tOpen");
    let malformed = lines.join("\n");
    let (status, body) = upload(&serve, &serve.token, &malformed);
    assert_eq!(status, 422, "{body}");
    let detail = serde_json::from_str::<Value>(&body).unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains(&format!(":{}:", pipes + 3)), "{detail}");
    assert!(
        detail.contains("[PIPES]") && detail.contains("undefined node"),
        "{detail}"
    );

    let (status, list) = serve.get(&route("/networks"));
    assert_eq!(status, 200, "{list}");
    let versions = list["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{list}");
    assert_eq!(versions[0]["version"], 0);
    assert_eq!(versions[0]["live"], true);
    assert_eq!(versions[0]["nodes"], original.nodes.len());
    assert_eq!(versions[1], uploaded);

    let (status, inp) = serve.get_text(&route("/networks/1?format=inp"));
    assert_eq!(status, 200);
    assert_eq!(hydraulics::read_str(&inp, "back.inp").unwrap(), expected);
    let (status, live) = serve.get_text(&route("/networks/live"));
    assert_eq!(status, 200);
    assert_eq!(hydraulics::read_str(&live, "live.inp").unwrap(), original);
    let (status, _) = serve.get_text(&route("/networks/7"));
    assert_eq!(status, 404);

    let (status, geojson) = serve.get(&route("/networks/1?format=geojson"));
    assert_eq!(status, 200);
    assert_eq!(geojson["type"], "FeatureCollection");
    let pipe = geojson["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["id"] == "60" && f["properties"]["type"] == "pipe")
        .unwrap();
    assert_eq!(
        pipe["properties"]["diameter"].as_f64().unwrap(),
        NEW_DIAMETER.parse::<f64>().unwrap()
    );

    // Elements against the state of the same period.
    for (kind, ids, fields) in [
        ("nodes", "node_ids", ["head", "pressure", "demand"]),
        ("links", "link_ids", ["flow", "velocity", "headloss"]),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (elements, state) = loop {
            let (status, elements) = serve.get(&route(&format!("/network/elements?kind={kind}")));
            assert_eq!(status, 200, "{elements}");
            let (_, state) = serve.get(&route("/state"));
            let time = &state["state"]["timestamp_ms"];
            if !time.is_null() && elements["timestamp_ms"] == *time {
                break (elements, state["state"].clone());
            }
            assert!(Instant::now() < deadline, "{elements} / {state}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let listed = elements["elements"].as_array().unwrap();
        let ids = state[ids].as_array().unwrap();
        assert_eq!(listed.len(), ids.len());
        for (i, element) in listed.iter().enumerate() {
            assert_eq!(element["id"], ids[i]);
            for field in fields {
                assert_eq!(element[field], state[field][i], "{kind} {i} {field}");
            }
        }
        if kind == "links" {
            for (i, element) in listed.iter().enumerate() {
                assert_eq!(element["status"], state["status"][i]);
            }
        }
        // Pages of 40 list every element once, in order.
        let mut paged = Vec::new();
        let mut after = String::new();
        loop {
            let (status, page) = serve.get(&route(&format!(
                "/network/elements?kind={kind}&limit=40{after}"
            )));
            assert_eq!(status, 200, "{page}");
            let page_ids = page["elements"].as_array().unwrap();
            assert!(page_ids.len() <= 40);
            paged.extend(page_ids.iter().map(|e| e["id"].clone()));
            match page["next_after"].as_str() {
                Some(last) => after = format!("&after={last}"),
                None => break,
            }
        }
        assert_eq!(&paged, ids);
    }
    let (status, _) = serve.get(&route("/network/elements?kind=pumps"));
    assert_eq!(status, 422);

    // Deleting a version: refused while a job waits for it or runs on it, naming the job.
    let delete = |token: &str, version: &str| {
        let path = route(&format!("/networks/{version}"));
        serve.send("DELETE", &path, Some(token), "text/plain", "")
    };
    let (status, body) = upload(&serve, &serve.token, &text);
    assert_eq!(status, 201, "{body}");
    let long = |network: Value| {
        json!({"kind": "criticality", "network": network,
        "duration_hours": 24 * 60})
    };
    let on_live = submit(&serve, &long(json!("live")));
    let on_upload = submit(&serve, &long(json!(2)));
    poll(&serve, on_live, Duration::from_secs(60), |r| {
        r["status"] == "running"
    });
    let (status, body) = delete(&serve.token, "2");
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!("job {on_upload} (queued)")),
        "{body}"
    );
    assert_eq!(cancel(&serve, on_live).0, 202);
    poll(&serve, on_upload, Duration::from_secs(60), |r| {
        r["status"] == "running"
    });
    let (status, body) = delete(&serve.token, "2");
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!("job {on_upload} (running)")),
        "{body}"
    );
    assert_eq!(cancel(&serve, on_upload).0, 202);
    poll(&serve, on_upload, Duration::from_secs(60), finished);
    // Viewers may not delete; the live network is never deleted.
    let (status, _) = delete(&viewer, "2");
    assert_eq!(status, 403);
    for live in ["live", "0"] {
        let (status, body) = delete(&serve.token, live);
        assert_eq!(status, 409, "{body}");
    }
    let (status, body) = delete(&serve.token, "2");
    assert_eq!(status, 204, "{body}");
    assert!(body.is_empty(), "{body}");
    // Gone: not listed, not served, not deleted twice, not usable by a job.
    let (status, _) = serve.get_text(&route("/networks/2"));
    assert_eq!(status, 404);
    let (_, list) = serve.get(&route("/networks"));
    let listed: Vec<&Value> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(listed, [&json!(0), &json!(1)], "{list}");
    let (status, body) = delete(&serve.token, "2");
    assert_eq!(status, 404, "{body}");
    let (status, body) = post_job(&serve, &serve.token, &long(json!(2)));
    assert_eq!(status, 422, "{body}");
    // The next upload takes a new number.
    let (status, body) = upload(&serve, &serve.token, &text);
    assert_eq!(status, 201, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["version"], 3);

    // Every deletion is audited with its answer.
    let delete_route = "/api/v1/municipalities/{municipality}/networks/{version}";
    let deletions = || -> Vec<u64> {
        let (status, audit) = serve.get(&route("/audit?limit=1000"));
        assert_eq!(status, 200, "{audit}");
        let mut answers: Vec<u64> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "DELETE" && e["route"] == delete_route)
            .map(|e| e["status"].as_u64().unwrap())
            .collect();
        answers.sort();
        answers
    };
    let expected = [204, 403, 404, 409, 409, 409, 409];
    assert!(
        serve.wait_for(Duration::from_secs(10), || deletions() == expected),
        "{:?}",
        deletions()
    );
}

#[test]
fn planning_jobs_run_cancel_and_survive_a_restart() {
    let dir = TempDir::new("serve-jobs");
    let (mut serve, viewer) = start(dir.path());
    let text = modified_net3();
    let network_file = dir.path().join("net3-narrow.inp");
    std::fs::write(&network_file, &text).unwrap();
    let (status, body) = upload(&serve, &serve.token, &text);
    assert_eq!(status, 201, "{body}");

    // A burst scenario on the upload, and the same file run by `aquatwin scenario`.
    let scenario = format!(
        "network = \"{}\"\nname = \"pipe 60 bursts\"\nduration_hours = 24\n\n\
         [[events]]\nkind = \"burst\"\npipe = \"60\"\narea = 0.05\nat_hours = 2\n\
         until_hours = 8\n",
        network_file.display()
    );
    let scenario_file = dir.path().join("burst.toml");
    std::fs::write(&scenario_file, &scenario).unwrap();
    let scenario_job = submit(
        &serve,
        &json!({"kind": "scenario", "network": 1, "scenario": scenario}),
    );
    let seen = poll(&serve, scenario_job, Duration::from_secs(120), finished);
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["progress"], 1.0);
    assert_eq!(last["kind"], "scenario");
    assert!(last["started_at_ms"].as_i64() >= last["submitted_at_ms"].as_i64());
    assert!(last["finished_at_ms"].as_i64() >= last["started_at_ms"].as_i64());
    let scenario_result = result_text(&serve, scenario_job);
    let cli_report = dir.path().join("impact.json");
    aquatwin(&[
        "scenario",
        scenario_file.to_str().unwrap(),
        "--out",
        cli_report.to_str().unwrap(),
    ]);
    assert_eq!(
        scenario_result,
        std::fs::read_to_string(&cli_report).unwrap()
    );

    // Bad scenarios: the field named; a viewer may not submit.
    for (event, field) in [
        (
            json!({"kind": "burst", "pipe": "no-such-pipe", "area": 0.05, "at_hours": 2}),
            "pipe",
        ),
        (
            json!({"kind": "burst", "pipe": "60", "area": 0.05, "at_hours": 30}),
            "at_hours",
        ),
        (
            json!({"kind": "burst", "pipe": "60", "area": -1, "at_hours": 2}),
            "area",
        ),
    ] {
        let bad = json!({"kind": "scenario", "network": 1,
            "scenario": {"duration_hours": 24, "events": [event]}});
        let (status, body) = post_job(&serve, &serve.token, &bad);
        assert_eq!(status, 422, "{body}");
        assert!(
            body.contains("events[0]") && body.contains(&format!("`{field}`")),
            "{body}"
        );
    }
    let (status, body) = post_job(
        &serve,
        &serve.token,
        &json!({"kind": "scenario", "network": 9, "scenario": scenario}),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("network"), "{body}");
    let (status, _) = post_job(
        &serve,
        &viewer,
        &json!({"kind": "scenario", "scenario": scenario}),
    );
    assert_eq!(status, 403);

    // A criticality sweep of the first pipes, long enough for its progress to be seen.
    let network = hydraulics::read_str(&text, "narrow.inp").unwrap();
    let first_pipes: Vec<String> = scenarios::criticality::pipes(&network)
        .into_iter()
        .take(6)
        .map(|l| network.links[l].id.clone())
        .collect();
    let hours = 24 * 60;
    let sweep = submit(
        &serve,
        &json!({"kind": "criticality", "network": 1,
        "duration_hours": hours, "pipes": first_pipes}),
    );
    let seen = poll(&serve, sweep, Duration::from_secs(300), finished);
    assert_eq!(seen.last().unwrap()["status"], "done", "{seen:?}");
    let progress: Vec<f64> = seen
        .iter()
        .map(|r| r["progress"].as_f64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(progress.iter().any(|&p| p > 0.0 && p < 1.0), "{progress:?}");
    let sweep_result = result_text(&serve, sweep);
    let cli_sweep = dir.path().join("criticality.json");
    aquatwin(&[
        "criticality",
        network_file.to_str().unwrap(),
        "--duration",
        &hours.to_string(),
        "--limit",
        "6",
        "--jobs",
        "1",
        "--out",
        cli_sweep.to_str().unwrap(),
    ]);
    assert_eq!(sweep_result, std::fs::read_to_string(&cli_sweep).unwrap());

    // Risk: none yet; then the ranking of the command line.
    let (status, body) = serve.get(&route("/risk"));
    assert_eq!(status, 404, "{body}");
    let read = |path: &str| std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    let risk_job = submit(
        &serve,
        &json!({"kind": "risk", "assets": read("twin/data/net3_assets.csv"),
        "breaks": read("twin/data/net3_breaks.csv"), "duration_hours": 6,
        "demand_per_customer": 0.5}),
    );
    let seen = poll(&serve, risk_job, Duration::from_secs(300), finished);
    assert_eq!(seen.last().unwrap()["status"], "done", "{seen:?}");
    let cli_risk = dir.path().join("risk.json");
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
        cli_risk.to_str().unwrap(),
    ]);
    let cli_ranking: Value =
        serde_json::from_str(&std::fs::read_to_string(&cli_risk).unwrap()).unwrap();
    assert_eq!(
        result_text(&serve, risk_job),
        std::fs::read_to_string(&cli_risk).unwrap()
    );
    let (status, latest) = serve.get(&route("/risk"));
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["job"]["id"], risk_job);
    assert_eq!(latest["ranking"], cli_ranking);

    // A long sweep, a job queued behind it: the queued one is cancelled at once, the running
    // one at its next simulation.
    let long = json!({"kind": "criticality", "duration_hours": hours});
    let running = submit(&serve, &long);
    let queued = submit(&serve, &json!({"kind": "scenario", "scenario": scenario}));
    let (status, body) = cancel(&serve, queued);
    assert_eq!(status, 200, "{body}");
    assert_eq!(job(&serve, queued)["status"], "cancelled");
    poll(&serve, running, Duration::from_secs(60), |r| {
        r["progress"].as_f64() > Some(0.0)
    });
    let (status, body) = cancel(&serve, running);
    assert_eq!(status, 202, "{body}");
    let seen = poll(&serve, running, Duration::from_secs(60), finished);
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "cancelled", "{last}");
    assert!(last["progress"].as_f64().unwrap() < 1.0, "{last}");
    let (status, _) = serve.get_text(&route(&format!("/jobs/{running}/result")));
    assert_eq!(status, 409);
    let (status, _) = cancel(&serve, running);
    assert_eq!(status, 409);

    // One more long sweep, running when the server stops.
    let interrupted = submit(&serve, &long);
    poll(&serve, interrupted, Duration::from_secs(60), |r| {
        r["status"] == "running"
    });
    let listed_before = serve.get(&route("/jobs")).1["jobs"].clone();
    assert!(
        serve.terminate(Duration::from_secs(30)).is_some(),
        "serve did not stop"
    );
    drop(serve);
    let config = dir.path().join("aquatwin.toml");
    let serve = Serve::start(&config, &[]);
    assert_eq!(result_text(&serve, scenario_job), scenario_result);
    assert_eq!(result_text(&serve, sweep), sweep_result);
    let after = job(&serve, interrupted);
    assert_eq!(after["status"], "failed", "{after}");
    assert_eq!(after["error"], "interrupted by a restart");
    let (status, list) = serve.get(&route("/jobs"));
    assert_eq!(status, 200);
    let ids: Vec<u64> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    let before: Vec<u64> = listed_before
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, before);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(job(&serve, queued)["status"], "cancelled");
    assert_eq!(serve.get(&route("/risk")).1["ranking"], cli_ranking);

    // Every submission, upload and cancel is in the audit log, refused ones too.
    let (status, audit) = serve.get(&route("/audit?limit=1000"));
    assert_eq!(status, 200, "{audit}");
    let recorded: Vec<(String, u64)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["route"].as_str().unwrap_or("").to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let jobs_route = "/api/v1/municipalities/{municipality}/jobs";
    let cancel_route = "/api/v1/municipalities/{municipality}/jobs/{job}/cancel";
    let count = |route: &str, status: u64| {
        recorded
            .iter()
            .filter(|(r, s)| r == route && *s == status)
            .count()
    };
    assert_eq!(
        count("/api/v1/municipalities/{municipality}/networks", 201),
        1
    );
    assert_eq!(count(jobs_route, 202), 6, "{recorded:?}");
    assert_eq!(count(jobs_route, 422), 4, "{recorded:?}");
    assert_eq!(count(jobs_route, 403), 1, "{recorded:?}");
    for status in [200, 202, 409] {
        assert_eq!(count(cancel_route, status), 1, "{recorded:?}");
    }
}
