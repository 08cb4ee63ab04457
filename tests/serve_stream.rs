//! The live WebSocket stream `GET /api/v1/stream` and the network route of `aquatwin serve`,
//! driven by real peers: a Python `websockets` client (`tests/peers/ws_client.py`), readings
//! published with `mosquitto_pub` and `curl`, and the network read back with the hydraulics
//! reader.
//!
//! - A viewer streams its municipality: `hello` names the network's elements (as the .inp file
//!   does), readings of the subscribed sensor arrive within 1 s of being published, states have
//!   arrays as long as the ids, an alert arrives within 1 s of the readings that raise it, and
//!   malformed subscription requests are answered without closing the stream; stopping the
//!   server closes the streams.
//! - Refusals come before the upgrade, as HTTP answers.
//! - A client that stops reading while readings flow is closed with 1008 and the reason; the
//!   server stays healthy and other clients keep receiving.
//! - A stream whose session is ended (logout over the HTTP API) is closed with 1008 and the
//!   reason within the server's re-check interval; a stream of another session of the same
//!   user goes on.
//! - The network as `.inp` and GeoJSON.

mod serve_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::*;

/// The Python `websockets` client, killed on drop.
struct Peer {
    _child: KilledOnDrop,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
}

impl Peer {
    /// Starts `ws_client.py URL ARGS...`; its stdout lines arrive as events.
    fn start(url: &str, args: &[&str]) -> Peer {
        let mut child = Command::new("python3")
            .arg(format!("{ROOT}/tests/peers/ws_client.py"))
            .arg(url)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with websockets (pip install websockets)");
        let stdout = child.stdout.take().unwrap();
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("not an event of the peer: {line}"));
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        Peer {
            stdin: child.stdin.take(),
            _child: KilledOnDrop(child),
            events,
        }
    }

    /// Every event until the first that `wanted` accepts (included), within `limit`.
    fn until(&self, limit: Duration, mut wanted: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let done = wanted(&event);
                    seen.push(event);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("nothing wanted within {limit:?}; events: {seen:#?}"),
            }
        }
    }

    /// The first event `wanted` accepts, within `limit`.
    /// Asserts that the stream stays open and carries only states until one arrives after
    /// `at_ms` (Unix ms).
    fn only_states_past(&self, at_ms: i64) {
        let events = self.until(Duration::from_secs(10), |event| {
            event["at_ms"].as_i64().is_some_and(|at| at > at_ms)
        });
        assert!(
            events
                .iter()
                .all(|e| e["event"] == "message" && e["data"]["type"] == "state"),
            "{events:#?}"
        );
    }

    fn wait_for(&self, limit: Duration, wanted: impl FnMut(&Value) -> bool) -> Value {
        self.until(limit, wanted).pop().unwrap()
    }

    /// The first server message of type `kind` (and `more`), within `limit`.
    fn message(&self, limit: Duration, kind: &str, mut more: impl FnMut(&Value) -> bool) -> Value {
        self.wait_for(limit, |event| {
            event["event"] == "message" && event["data"]["type"] == kind && more(&event["data"])
        })
    }

    /// Sends `line` to the peer's stdin (a text message, or `resume`).
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends the peer's input: it closes the connection normally.
    fn close(&mut self) {
        self.stdin = None;
    }
}

fn stream_url(serve: &Serve, query: &str) -> String {
    format!("ws://{}/api/v1/stream?{query}", serve.http)
}

fn net3() -> hydraulics::Network {
    hydraulics::read_file(&Path::new(ROOT).join("hydraulics/networks/Net3.inp")).unwrap()
}

#[test]
fn a_viewer_streams_readings_states_and_alerts() {
    let dir = TempDir::new("serve-stream");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_viewer(&config.with_file_name("data"), NORTH_VIEWER, MUNICIPALITY);
    let mut serve = Serve::start(&config, &[]);
    let token = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    // A browser's way: the token in the query.
    let mut peer = Peer::start(
        &stream_url(
            &serve,
            &format!("municipality={MUNICIPALITY}&access_token={token}"),
        ),
        &[],
    );
    assert_eq!(
        peer.wait_for(Duration::from_secs(10), |_| true)["event"],
        "open"
    );

    // hello: the network's ids in the file's order, its units (Net3 is in GPM, so psi and ft).
    let hello = peer.message(Duration::from_secs(5), "hello", |_| true)["data"].clone();
    let network = net3();
    let node_ids: Vec<&str> = network.nodes.iter().map(|n| n.id.as_str()).collect();
    let link_ids: Vec<&str> = network.links.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(hello["municipality"], MUNICIPALITY);
    assert_eq!(hello["node_ids"], serde_json::json!(node_ids));
    assert_eq!(hello["link_ids"], serde_json::json!(link_ids));
    assert_eq!(
        hello["units"],
        serde_json::json!({"flow": "GPM", "pressure": "psi", "head": "ft"})
    );

    // Subscribe to P-123's readings; a malformed request is answered, the stream goes on. The
    // answer to the second request also tells that the first one was applied (in order).
    peer.send(
        r#"{"subscribe": {"topics": ["state", "alerts", "readings"], "sensors": ["P-123"]}}"#,
    );
    peer.send(r#"{"subscribe": {"topics": ["weather"]}}"#);
    let error = peer.message(Duration::from_secs(5), "error", |_| true);
    let detail = error["data"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("subscribe.topics") && detail.contains("weather"),
        "{detail}"
    );

    // A state every period, its arrays as long as the ids of hello.
    let state = peer.message(Duration::from_secs(5), "state", |_| true)["data"].clone();
    assert_eq!(state["municipality"], MUNICIPALITY);
    assert_eq!(state["converged"], true, "{state}");
    for field in ["head", "pressure", "demand"] {
        assert_eq!(
            state[field].as_array().unwrap().len(),
            node_ids.len(),
            "{field}"
        );
    }
    for field in ["flow", "velocity", "headloss", "status"] {
        assert_eq!(
            state[field].as_array().unwrap().len(),
            link_ids.len(),
            "{field}"
        );
    }
    assert!(state["residuals"].is_array());
    // A streamed period is the one GET .../state shows (the one read right after it, unless a
    // period passed in between).
    let state_route = format!("/api/v1/municipalities/{MUNICIPALITY}/state");
    let same_period = (0..20).any(|_| {
        let streamed = peer.message(Duration::from_secs(5), "state", |_| true)["data"].clone();
        let (_, rest) = serve.get(&state_route);
        let same = rest["state"]["timestamp_ms"] == streamed["timestamp_ms"];
        if same {
            for field in [
                "sim_seconds",
                "converged",
                "head",
                "pressure",
                "flow",
                "status",
            ] {
                assert_eq!(rest["state"][field], streamed[field], "{field}");
            }
        }
        same
    });
    assert!(same_period, "no streamed period matched GET .../state");

    // Readings over MQTT: P-149 is not subscribed, P-123 is; mosquitto_pub returns after the
    // PUBACK, which comes once stored.
    let port = serve.mqtt.unwrap().port();
    let publish = |sensor: &str, message: &str| {
        let output = mosquitto_pub(port, Some(DEVICE_A), &sensor_topic(sensor, "data"), message);
        assert!(output.status.success(), "{output:?}");
    };
    let t = now_ms();
    publish("P-149", &format!(r#"{{"ts": {t}, "value": 55.25}}"#));
    let published = now_ms();
    publish("P-123", &format!(r#"{{"ts": {t}, "value": 61.5}}"#));
    let seen = peer.until(Duration::from_secs(5), |event| {
        event["data"]["type"] == "reading" && event["data"]["sensor_id"] == "P-123"
    });
    let reading = seen.last().unwrap();
    assert_eq!(reading["data"]["ts"], t);
    assert_eq!(reading["data"]["value"], 61.5);
    assert_eq!(reading["data"]["flags"], serde_json::json!([]));
    let latency = reading["at_ms"].as_i64().unwrap() - published;
    assert!(latency <= 1000, "the reading took {latency} ms");
    assert!(
        !seen
            .iter()
            .any(|e| e["data"]["type"] == "reading" && e["data"]["sensor_id"] == "P-149"),
        "P-149 is not subscribed: {seen:#?}"
    );

    // Readings far outside a pressure sensor's range raise a sensor fault.
    let sent = now_ms();
    post_batch(&serve.url("/api/v1/ingest"), DEVICE_A, &fault_batch(sent));
    let seen = peer.until(Duration::from_secs(5), |event| {
        event["data"]["type"] == "alert" && event["data"]["alert"]["kind"] == "sensor_fault"
    });
    let alert = seen.last().unwrap();
    let latency = alert["at_ms"].as_i64().unwrap() - sent;
    assert!(latency <= 1000, "the alert took {latency} ms");
    assert!(alert["data"]["alert"]["message"]
        .as_str()
        .unwrap()
        .contains("P-123"));
    // The faulty readings are streamed too, flagged (the alert may come first: the sensor
    // raises it before its readings are committed).
    let flagged = peer.message(Duration::from_secs(5), "reading", |r| r["value"] == 1e6);
    assert!(flagged["data"]["flags"]
        .as_array()
        .unwrap()
        .contains(&"range".into()));
    // The alert as GET .../alerts returns it.
    let (status, alerts) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/alerts"));
    assert_eq!(status, 200);
    let listed = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alert["data"]["alert"]["id"])
        .expect("the streamed alert is listed");
    assert_eq!(listed["kind"], alert["data"]["alert"]["kind"]);
    assert_eq!(listed["raised_ms"], alert["data"]["alert"]["raised_ms"]);

    // The client closes normally.
    peer.close();
    let closed = peer.wait_for(Duration::from_secs(5), |e| e["event"] == "closed");
    assert_eq!(closed["code"], 1000, "{closed}");

    // Stopping the server closes the open streams (1001, and why, first) and still stops the
    // twin cleanly: the streams do not keep it in use.
    let query = format!("municipality={MUNICIPALITY}&access_token={token}");
    let watcher = Peer::start(&stream_url(&serve, &query), &[]);
    watcher.message(Duration::from_secs(5), "hello", |_| true);
    serve.stop(Duration::from_secs(20));
    let closing = watcher.message(Duration::from_secs(5), "closing", |_| true);
    assert_eq!(closing["data"]["reason"], "server shutting down");
    let closed = watcher.wait_for(Duration::from_secs(5), |e| e["event"] == "closed");
    assert_eq!(closed["code"], 1001, "{closed}");
    assert!(!serve.log().contains("still in use"), "{}", serve.log());
}

#[test]
fn refusals_come_before_the_upgrade() {
    let dir = TempDir::new("serve-stream-refusals");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_viewer(&config.with_file_name("data"), SOUTH_VIEWER, "south");
    let serve = Serve::start(&config, &[]);
    let south = login(serve.http, SOUTH_VIEWER.0, SOUTH_VIEWER.1);
    let admin = serve.token.clone();
    let cases = [
        (format!("municipality={MUNICIPALITY}"), None, 401, ""),
        (
            format!("municipality={MUNICIPALITY}&access_token=not.a.token"),
            None,
            401,
            "",
        ),
        (
            format!("municipality={MUNICIPALITY}"),
            Some(south.as_str()),
            404,
            "",
        ),
        (
            format!("municipality={MUNICIPALITY}&access_token={south}"),
            None,
            404,
            "",
        ),
        (
            "municipality=nowhere".to_string(),
            Some(admin.as_str()),
            404,
            "",
        ),
        (String::new(), Some(admin.as_str()), 422, "municipality"),
        (
            format!("municipality={MUNICIPALITY}&topics=state,weather"),
            Some(admin.as_str()),
            422,
            "topics",
        ),
    ];
    for (query, bearer, status, named) in cases {
        let mut args = Vec::new();
        if let Some(token) = bearer {
            args.extend(["--bearer", token]);
        }
        let peer = Peer::start(&stream_url(&serve, &query), &args);
        let answer = peer.wait_for(Duration::from_secs(10), |_| true);
        assert_eq!(answer["event"], "refused", "{query}: {answer}");
        assert_eq!(answer["status"], status, "{query}: {answer}");
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert!(body["error"].is_string(), "{query}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with(named), "{query}: {detail}");
        assert!(!detail.contains("P-123"), "{query} leaks: {detail}");
    }
    // The admin's own header is accepted.
    let peer = Peer::start(
        &stream_url(&serve, &format!("municipality={MUNICIPALITY}")),
        &["--bearer", &admin],
    );
    assert_eq!(
        peer.wait_for(Duration::from_secs(10), |_| true)["event"],
        "open"
    );
}

#[test]
fn a_slow_consumer_is_closed_and_the_others_go_on() {
    let dir = TempDir::new("serve-stream-slow");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    // Batches of 10,000 readings (the most a request may hold) make the flood.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("body_limit_bytes = 4096", "body_limit_bytes = 8388608");
    std::fs::write(&config, text).unwrap();
    let serve = Serve::start(&config, &[]);
    let token = serve.token.clone();

    // The slow client: a small receive buffer, and it reads nothing after hello until told.
    let mut slow = Peer::start(
        &stream_url(
            &serve,
            &format!("municipality={MUNICIPALITY}&topics=readings&sensors=F-101"),
        ),
        &[
            "--bearer",
            &token,
            "--rcvbuf",
            "16384",
            "--paused",
            "--summary",
        ],
    );
    slow.message(Duration::from_secs(10), "hello", |_| true);
    // The other client follows states and P-149.
    let other = Peer::start(
        &stream_url(
            &serve,
            &format!("municipality={MUNICIPALITY}&topics=state,readings&sensors=P-149"),
        ),
        &["--bearer", &token],
    );
    other.message(Duration::from_secs(10), "hello", |_| true);

    let start = now_ms();
    let mut batches = 0;
    let flood_started = Instant::now();
    while !serve.log().contains("slow consumer") {
        // Time, not a batch count, bounds the flood: the server closes a client whose messages
        // wait over 2 s, and a fast machine sends many batches in 2 s.
        assert!(
            flood_started.elapsed() < Duration::from_secs(60),
            "no slow consumer after {batches} batches in {:?}:\n{}",
            flood_started.elapsed(),
            serve.log()
        );
        let first = start + batches * 10_000;
        let readings = (first..first + 10_000).map(|ts| (ts, 1000.0 + (ts % 97) as f64));
        post_batch(
            &serve.url("/api/v1/ingest"),
            DEVICE_B,
            &readings_batch("F-101", readings),
        );
        batches += 1;
        assert_eq!(curl(&[&serve.url("/health")]).0, 200);
    }
    eprintln!(
        "slow consumer detected after {batches} batches of 10,000 readings ({:?})",
        flood_started.elapsed()
    );

    // The slow client reads again: what was queued, then why it is closed.
    slow.send("resume");
    let summary = slow.wait_for(Duration::from_secs(30), |e| e["event"] == "summary");
    let closed = slow.wait_for(Duration::from_secs(5), |e| e["event"] == "closed");
    assert_eq!(closed["code"], 1008, "{closed} {summary}");
    let reason = closed["reason"].as_str().unwrap();
    assert!(reason.starts_with("slow consumer: "), "{reason}");
    assert_eq!(summary["closing"]["type"], "closing", "{summary}");
    assert_eq!(summary["closing"]["reason"], reason);
    let received = summary["counts"]["reading"].as_i64().unwrap_or(0);
    assert!(
        received < batches * 10_000,
        "the slow client got everything ({received}): it was not slow"
    );

    // The server is healthy and the other client still receives, states and readings alike.
    assert_eq!(curl(&[&serve.url("/health")]).0, 200);
    let t = now_ms();
    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &readings_batch("P-149", [(t, 52.5)]),
    );
    let reading = other.message(Duration::from_secs(5), "reading", |r| r["ts"] == t);
    assert_eq!(reading["data"]["value"], 52.5);
    other.message(Duration::from_secs(5), "state", |_| true);
}

/// How often the server checks an open stream's token again (`ACCESS_RECHECK` in
/// `src/serve/stream.rs`): the longest a stream may outlive its session.
const ACCESS_RECHECK_MS: i64 = 2_000;
/// Slack for the client's and a loaded machine's delays on top of it (still far below the
/// token's 15 min lifetime, the only other thing that would end the stream).
const CLOSE_SLACK_MS: i64 = 3_000;

#[test]
fn a_logout_closes_the_streams_of_its_session_only() {
    let dir = TempDir::new("serve-stream-logout");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_viewer(&config.with_file_name("data"), NORTH_VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    // Two logins of one user: two sessions. One streams with its token in the query, the
    // other in the header.
    let ending = login_session(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    let going_on = login_session(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    let query = format!("municipality={MUNICIPALITY}&topics=state");
    let ended = Peer::start(
        &stream_url(&serve, &format!("{query}&access_token={}", ending.access)),
        &[],
    );
    let other = Peer::start(&stream_url(&serve, &query), &["--bearer", &going_on.access]);
    for peer in [&ended, &other] {
        peer.message(Duration::from_secs(10), "hello", |_| true);
    }

    // Both stay open across several checks while their sessions last.
    let opened = now_ms();
    for peer in [&ended, &other] {
        peer.only_states_past(opened + 2 * ACCESS_RECHECK_MS);
    }

    // The first session logs out over the HTTP API: its stream is told why and closed.
    let before_logout = now_ms();
    assert_eq!(logout(serve.http, &ending), 204);
    let logged_out = now_ms();
    let closing = ended.message(
        Duration::from_millis((ACCESS_RECHECK_MS + CLOSE_SLACK_MS) as u64 + 1_000),
        "closing",
        |_| true,
    );
    let closed = ended.wait_for(Duration::from_secs(5), |e| e["event"] == "closed");
    assert_eq!(closed["code"], 1008, "{closed}");
    let reason = closed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("access withdrawn: ") && reason.contains("session"),
        "{reason}"
    );
    assert_eq!(closing["data"]["reason"], reason);
    let closed_at = closing["at_ms"].as_i64().unwrap();
    eprintln!(
        "the stream was closed {} ms after the logout returned",
        closed_at - logged_out
    );
    assert!(
        closed_at >= before_logout && closed_at - logged_out <= ACCESS_RECHECK_MS + CLOSE_SLACK_MS,
        "closed {} ms after the logout (bound {ACCESS_RECHECK_MS} ms)",
        closed_at - logged_out
    );
    // Nor can the ended session open a new stream.
    let refused = Peer::start(
        &stream_url(&serve, &format!("{query}&access_token={}", ending.access)),
        &[],
    );
    let answer = refused.wait_for(Duration::from_secs(10), |_| true);
    assert_eq!(
        (answer["event"].clone(), answer["status"].clone()),
        ("refused".into(), 401.into())
    );

    // The other session's stream goes on past the next checks.
    other.only_states_past(closed_at + 2 * ACCESS_RECHECK_MS);
}

#[test]
fn the_network_as_inp_and_geojson() {
    let dir = TempDir::new("serve-network");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_viewer(&config.with_file_name("data"), SOUTH_VIEWER, "south");
    let serve = Serve::start(&config, &[]);
    let route = format!("/api/v1/municipalities/{MUNICIPALITY}/network");
    let network = net3();

    // .inp (the default): reads back with the hydraulics reader to the same network.
    let (status, text) = serve.get_text(&route);
    assert_eq!(status, 200);
    let read_back = hydraulics::read_str(&text, "served.inp").unwrap();
    assert_eq!(read_back.nodes.len(), network.nodes.len());
    assert_eq!(read_back.links.len(), network.links.len());
    assert_eq!(read_back, network);
    let (status, same) = serve.get_text(&format!("{route}?format=inp"));
    assert_eq!((status, same), (200, text));

    // GeoJSON: a point per node with coordinates, a line per link whose ends have them.
    let (status, body) = serve.get_text(&format!("{route}?format=geojson"));
    assert_eq!(status, 200);
    let geojson: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(geojson["type"], "FeatureCollection");
    let features = geojson["features"].as_array().unwrap();
    let count = |geometry: &str| {
        features
            .iter()
            .filter(|f| f["geometry"]["type"] == geometry)
            .count()
    };
    let placed = |node: usize| network.nodes[node].coordinates.is_some();
    let nodes_placed = (0..network.nodes.len()).filter(|&n| placed(n)).count();
    let links_placed = network
        .links
        .iter()
        .filter(|l| placed(l.from) && placed(l.to))
        .count();
    assert_eq!(count("Point"), nodes_placed);
    assert_eq!(count("LineString"), links_placed);
    assert_eq!(
        geojson["missing_coordinates"],
        network.nodes.len() - nodes_placed
    );
    // Each line runs from its start node through its vertices to its end node.
    let link = network
        .links
        .iter()
        .find(|l| placed(l.from) && placed(l.to))
        .unwrap();
    let feature = features
        .iter()
        .find(|f| f["geometry"]["type"] == "LineString" && f["properties"]["id"] == link.id)
        .unwrap();
    let line = feature["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(line.len(), link.vertices.len() + 2);
    let (x, y) = network.nodes[link.from].coordinates.unwrap();
    assert_eq!(line[0], serde_json::json!([x, y]));

    // Unknown format: 422 naming the parameter; another municipality: 404.
    let (status, body) = serve.get(&format!("{route}?format=shp"));
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().starts_with("format"),
        "{body}"
    );
    let south = login(serve.http, SOUTH_VIEWER.0, SOUTH_VIEWER.1);
    assert_eq!(serve.get_as(&south, &route).0, 404);
    assert_eq!(curl(&[&serve.url(&route)]).0, 401);
}
