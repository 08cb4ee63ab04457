//! The readings route of `aquatwin serve` driven over HTTP with `curl`: readings posted by a
//! device come back as JSON and as CSV (parsed by Python's `csv` module, times by its
//! `datetime`), downsampled into steps whose statistics match those computed here from what
//! was posted, and paged with `limit` and `next_from` (or the CSV `Link` header) so that every
//! row comes exactly once; malformed parameters are 422 naming the parameter. Also `GET /ready`
//! and the municipalities list of a super_admin against a viewer's.

mod serve_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use serve_support::*;

/// A second municipality on the same network, with sensors of its own.
const SOUTH: &str = "south";

/// Readings posted per ingest request (the test configuration's body limit is 4 KiB).
const PER_BATCH: usize = 50;

/// The server with `north` and `south`, and an access token of a viewer of `north`.
fn start(dir: &TempDir) -> (Serve, String) {
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    std::fs::write(
        dir.path().join("south-sensors.toml"),
        "[[sensor]]\nid = \"S-P-10\"\nkind = \"pressure\"\nnode = \"10\"\nunit = \"psi\"\n\n\
         [[sensor]]\nid = \"S-P-15\"\nkind = \"pressure\"\nnode = \"15\"\nunit = \"psi\"\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[municipality]]\nid = \"{SOUTH}\"\nnetwork = \"{ROOT}/hydraulics/networks/Net3.inp\"\n\
         sensors = \"south-sensors.toml\"\nperiod_seconds = 0.5\n"
    ));
    std::fs::write(&config, text).unwrap();
    create_viewer(&dir.path().join("data"), NORTH_VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    let token = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    (serve, token)
}

/// `count` readings of P-123 from `start_ms`, 1.7 s apart, values from a fixed pseudo-random
/// sequence in a plausible pressure range; posted in batches.
fn post_readings(serve: &Serve, start_ms: i64, count: usize) -> Vec<(i64, f64)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let readings: Vec<(i64, f64)> = (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Multiples of 1/64: exact in binary, so the sums below are exact too.
            let value = 40.0 + (state % 2560) as f64 / 64.0;
            (start_ms + i as i64 * 1700, value)
        })
        .collect();
    for chunk in readings.chunks(PER_BATCH) {
        post_batch(
            &serve.url("/api/v1/ingest"),
            DEVICE_A,
            &readings_batch("P-123", chunk.iter().copied()),
        );
    }
    readings
}

fn readings_path(query: &str) -> String {
    format!("/api/v1/municipalities/{MUNICIPALITY}/sensors/P-123/readings?{query}")
}

/// `GET` as the admin, with the answer's headers: status, headers (lower-case names), body.
fn get_with_headers(serve: &Serve, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let auth = format!("Authorization: Bearer {}", serve.token);
    let (status, text) = curl(&["-i", "-H", &auth, &serve.url(path)]);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The rows of `csv` parsed by Python's `csv` module, the first column (RFC 3339) turned into
/// Unix ms by its `datetime`; the header row first, as is.
fn python_csv(csv: &str) -> Vec<Vec<Value>> {
    const SCRIPT: &str = r#"
import csv, datetime, json, sys
rows = list(csv.reader(sys.stdin))
out = [rows[0]]
for row in rows[1:]:
    t = datetime.datetime.fromisoformat(row[0].replace("Z", "+00:00"))
    out.append([round(t.timestamp() * 1000)] + row[1:])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(csv.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Statistics per step of `step_ms` (aligned to the epoch), computed from the posted readings:
/// start -> (min, max, mean, count).
fn expected_steps(readings: &[(i64, f64)], step_ms: i64) -> BTreeMap<i64, (f64, f64, f64, u64)> {
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(ts, value) in readings {
        groups
            .entry(ts.div_euclid(step_ms) * step_ms)
            .or_default()
            .push(value);
    }
    groups
        .into_iter()
        .map(|(start, values)| {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (start, (min, max, mean, values.len() as u64))
        })
        .collect()
}

fn steps_of(body: &Value) -> BTreeMap<i64, (f64, f64, f64, u64)> {
    body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["ts"].as_i64().unwrap(),
                (
                    row["min"].as_f64().unwrap(),
                    row["max"].as_f64().unwrap(),
                    row["mean"].as_f64().unwrap(),
                    row["count"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn readings_as_json_csv_steps_and_pages() {
    let dir = TempDir::new("serve-readings");
    let (serve, _) = start(&dir);
    // Ten minutes ago, so that every reading is in the past.
    let start_ms = now_ms() - 600_000;
    let posted = post_readings(&serve, start_ms, 300);
    let range = format!("from={start_ms}&to={}", start_ms + 600_000);

    // JSON without new parameters: today's fields, every reading.
    let (status, json) = serve.get(&readings_path(&range));
    assert_eq!(status, 200, "{json}");
    assert_eq!(readings_of(&json), posted);
    assert!(json.get("next_from").is_none(), "{json}");
    let object = json.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["readings", "sensor_id"],
        "{json}"
    );

    // CSV: the same rows, as a download.
    let (status, headers, csv) =
        get_with_headers(&serve, &readings_path(&format!("{range}&format=csv")));
    assert_eq!(status, 200, "{csv}");
    assert!(
        headers["content-type"].starts_with("text/csv"),
        "{headers:?}"
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"P-123.csv\""
    );
    let rows = python_csv(&csv);
    assert_eq!(
        rows[0],
        ["timestamp", "sensor_id", "value", "flags"].map(Value::from)
    );
    let json_rows = json["readings"].as_array().unwrap();
    assert_eq!(rows.len() - 1, json_rows.len());
    for (row, reading) in rows[1..].iter().zip(json_rows) {
        assert_eq!(row[0].as_i64(), reading["ts"].as_i64(), "{row:?}");
        assert_eq!(row[1], "P-123");
        let value: f64 = row[2].as_str().unwrap().parse().unwrap();
        assert_eq!(Some(value), reading["value"].as_f64(), "{row:?}");
        let flags: Vec<&str> = reading["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(row[3].as_str().unwrap(), flags.join("|"));
    }

    // Downsampled: every step's statistics equal those of the posted readings.
    for step_seconds in [1, 7, 60] {
        let path = readings_path(&format!("{range}&step={step_seconds}"));
        let (status, body) = serve.get(&path);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["step_seconds"].as_i64(), Some(step_seconds));
        let got = steps_of(&body);
        let want = expected_steps(&posted, step_seconds * 1000);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (start, (min, max, mean, count)) in &want {
            let (got_min, got_max, got_mean, got_count) = got[start];
            assert_eq!(
                (got_min, got_max, got_count),
                (*min, *max, *count),
                "step {start}"
            );
            assert!((got_mean - mean).abs() <= 1e-9 * mean.abs(), "step {start}");
        }
        // CSV of the steps: the same rows.
        let (_, _, csv) = get_with_headers(&serve, &format!("{path}&format=csv"));
        let rows = python_csv(&csv);
        assert_eq!(
            rows[0],
            ["timestamp", "sensor_id", "min", "max", "mean", "count"].map(Value::from)
        );
        let from_csv: Vec<(i64, u64)> = rows[1..]
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().unwrap(),
                    r[5].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        let from_json: Vec<(i64, u64)> = got.iter().map(|(ts, s)| (*ts, s.3)).collect();
        assert_eq!(from_csv, from_json);
    }

    // Pages: following next_from gives every reading exactly once.
    for limit in [1, 7, 299, 300] {
        let mut seen = Vec::new();
        let mut from = start_ms;
        let mut pages = 0;
        loop {
            let (status, body) = serve.get(&readings_path(&format!("from={from}&limit={limit}")));
            assert_eq!(status, 200, "{body}");
            let page = readings_of(&body);
            assert!(page.len() <= limit, "limit {limit}: {}", page.len());
            seen.extend(page);
            pages += 1;
            match body["next_from"].as_i64() {
                Some(next) => from = next,
                None => break,
            }
        }
        assert_eq!(seen, posted, "limit {limit}");
        assert_eq!(pages, posted.len().div_ceil(limit), "limit {limit}");
    }
    // Steps paged through the CSV `Link` header: every step exactly once.
    let want = expected_steps(&posted, 60_000);
    let mut path = readings_path(&format!("{range}&step=60&format=csv&limit=2"));
    let mut starts = Vec::new();
    loop {
        let (status, headers, csv) = get_with_headers(&serve, &path);
        assert_eq!(status, 200, "{csv}");
        let rows = python_csv(&csv);
        assert!(rows.len() - 1 <= 2);
        starts.extend(rows[1..].iter().map(|r| r[0].as_i64().unwrap()));
        let Some(link) = headers.get("link") else {
            break;
        };
        path = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap()
            .to_string();
    }
    assert_eq!(starts, want.keys().copied().collect::<Vec<_>>());
}

#[test]
fn malformed_parameters_are_named() {
    let dir = TempDir::new("serve-readings-422");
    let (serve, _) = start(&dir);
    for (query, parameter) in [
        ("format=xml", "format"),
        ("step=0", "step"),
        ("step=-5", "step"),
        ("from=2000&to=1000", "from"),
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
    ] {
        let (status, body) = serve.get(&readings_path(query));
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"], "malformed", "{query}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("{parameter}:")),
            "{query}: {detail}"
        );
    }
    // Limits at the bounds are fine.
    for query in [
        "limit=1",
        "limit=100000",
        "from=5&to=5",
        "format=json&step=1",
    ] {
        let (status, body) = serve.get(&readings_path(query));
        assert_eq!(status, 200, "{query}: {body}");
    }
}

#[test]
fn ready_and_municipalities_by_role() {
    let dir = TempDir::new("serve-municipalities");
    let (serve, viewer) = start(&dir);
    let (status, text) = curl(&[&serve.url("/ready")]);
    assert_eq!(status, 200, "{text}");
    let ready: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));

    let network = hydraulics::read_file(std::path::Path::new(&format!(
        "{ROOT}/hydraulics/networks/Net3.inp"
    )))
    .unwrap();
    let sensors_in = |file: &str| {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap()
            .matches("[[sensor]]")
            .count()
    };
    // Both twins have estimated a state once one period has passed.
    let mut all = Value::Null;
    assert!(
        serve.wait_for(Duration::from_secs(10), || {
            all = serve.get("/api/v1/municipalities").1;
            all["municipalities"]
                .as_array()
                .is_some_and(|list| list.iter().all(|m| m["latest_state_ms"].is_i64()))
        }),
        "{all}"
    );
    let list = all["municipalities"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [MUNICIPALITY, SOUTH]);
    for (entry, sensors_file) in list.iter().zip(["sensors.toml", "south-sensors.toml"]) {
        assert_eq!(entry["nodes"].as_u64(), Some(network.nodes.len() as u64));
        assert_eq!(entry["links"].as_u64(), Some(network.links.len() as u64));
        assert_eq!(
            entry["network"].as_str(),
            network.title.first().map(String::as_str)
        );
        assert_eq!(
            entry["sensors"].as_u64(),
            Some(sensors_in(sensors_file) as u64)
        );
        assert!(entry["latest_state_ms"].as_i64().unwrap() <= now_ms() + 60_000);
    }

    let (status, own) = serve.get_as(&viewer, "/api/v1/municipalities");
    assert_eq!(status, 200, "{own}");
    let own = own["municipalities"].as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["id"], MUNICIPALITY);
    assert_eq!(own[0]["sensors"], list[0]["sensors"]);
    let (status, _) = curl(&[&serve.url("/api/v1/municipalities")]);
    assert_eq!(status, 401);
}
