//! `aquatwin-view --connect` against a running `aquatwin serve`, the way a user runs it: a
//! viewer-role account's token in a file, readings posted to the ingest route, an alert raised by
//! a faulty sensor before the viewer starts, and one frame rendered to a PNG with its map
//! (headless, then in an X window under Xvfb).
//!
//! The map is checked against the server's own answers, not the viewer's: every link on screen
//! carries the mean pressure of its end nodes in the state `GET .../state` served for the period
//! shown (the states are recorded while the viewer runs), the PNG shows those colours at the
//! links' places, and the alert listed by `GET .../alerts` has its marker.
//!
//! A viewer given an account (a password file) instead of a token follows a server that
//! restarts with a new signing key: the connection drops, every token issued before is refused
//! (checked here), and the viewer must log in again by itself and show a period the restarted
//! server served (the first server ends none). Refusals (a wrong token or password, no
//! password, an unknown municipality, a URL that is not http, a token and an account at once)
//! end the viewer with the cause and what to do, and never print a password.
//!
//! Needs the release build of the viewer next to `aquatwin` (`cargo test --release
//! --workspace`, or `cargo build --release -p viz`), `curl`, `python3` (the PNG is decoded by
//! a standard-library script), `xvfb-run` and a Vulkan driver (lavapipe).

mod serve_support;

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::*;

/// Longest a viewer run may take before the test kills it and fails.
const VIEWER_LIMIT: Duration = Duration::from_secs(60);
/// Largest difference between a link's value in the map and its mean end-node pressure (psi):
/// the viewer keeps values as `f32`.
const VALUE_TOLERANCE: f64 = 1e-3;
/// Largest per-channel difference between a link's pixel and the colour the map gave it.
const COLOUR_TOLERANCE: i32 = 40;
/// The account the viewer logs in as.
const VIEWER: (&str, &str) = ("viewer-north", "password-of-north-viewer");

/// `aquatwin-view`, built next to `aquatwin`.
fn viewer_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_aquatwin")).with_file_name("aquatwin-view");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p viz` (or run `cargo test \
         --release --workspace`)",
        path.display()
    );
    path
}

/// What a finished viewer run left.
struct Finished {
    status: ExitStatus,
    stderr: String,
}

/// A viewer started by [`start_viewer`]; killed (with Xvfb) when dropped before it ends.
struct RunningViewer {
    run: KilledOnDrop,
    log: PathBuf,
    args: Vec<String>,
    started: Instant,
}

impl RunningViewer {
    /// What it wrote to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for it to end; fails the test when it runs longer than [`VIEWER_LIMIT`].
    fn finish(mut self) -> Finished {
        let deadline = self.started + VIEWER_LIMIT;
        let status = loop {
            if let Some(status) = self.run.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "aquatwin-view {:?} still runs after {VIEWER_LIMIT:?}:\n{}",
                self.args,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            status,
            stderr: self.stderr(),
        }
    }
}

/// Runs the viewer with `args` (under `xvfb-run -a` when `windowed`), its stderr in
/// `dir/log`; fails the test when it takes longer than [`VIEWER_LIMIT`].
fn run_viewer(dir: &Path, log: &str, args: &[&str], windowed: bool) -> Finished {
    start_viewer(dir, log, args, windowed, &[]).finish()
}

/// Environment variables given to a viewer run (name, value).
type Envs<'a> = &'a [(&'a str, &'a str)];

/// Starts the viewer with `args` and the environment variables `envs` (under `xvfb-run -a`
/// when `windowed`), its stderr in `dir/log`.
fn start_viewer(dir: &Path, log: &str, args: &[&str], windowed: bool, envs: Envs) -> RunningViewer {
    let viewer = viewer_binary();
    let mut command = if windowed {
        let mut xvfb = Command::new("xvfb-run");
        xvfb.args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(&viewer);
        xvfb
    } else {
        Command::new(&viewer)
    };
    let log = dir.join(log);
    command
        .args(args)
        .env_remove("AQUATWIN_TOKEN")
        .env_remove("AQUATWIN_PASSWORD")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // A process group of its own: `xvfb-run` is a script, and killing it alone would leave Xvfb
    // and the viewer running; the guard kills the whole group.
    let run = KilledOnDrop(
        command
            .process_group(0)
            .spawn()
            .expect("xvfb-run must be installed (apt install xvfb xauth mesa-vulkan-drivers)"),
    );
    RunningViewer {
        run,
        log,
        args: args.iter().map(|arg| arg.to_string()).collect(),
        started: Instant::now(),
    }
}

/// POST of readings `(sensor, ts, value)` to the ingest route as device A.
fn post_readings(serve: &Serve, readings: &[(&str, i64, f64)]) {
    let items: Vec<Value> = readings
        .iter()
        .map(|(sensor, ts, value)| serde_json::json!({"sensor_id": sensor, "ts": ts, "value": value}))
        .collect();
    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &Value::from(items).to_string(),
    );
}

/// A period's state as `GET .../state` serves it.
struct ServedState {
    node_ids: Vec<String>,
    pressure: Vec<Option<f64>>,
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every state `GET .../state` served while `viewing` ran, by its timestamp (ms).
fn record_states<T>(
    serve: &Serve,
    token: &str,
    viewing: impl FnOnce() -> T,
) -> (T, HashMap<i64, ServedState>) {
    let route = format!("/api/v1/municipalities/{MUNICIPALITY}/state");
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let recorder = scope.spawn(|| {
            let mut states = HashMap::new();
            while !done.load(Ordering::Relaxed) {
                let (status, body) = serve.get_as(token, &route);
                assert_eq!(status, 200, "{body}");
                let state = &body["state"];
                if let Some(timestamp) = state["timestamp_ms"].as_i64() {
                    states.entry(timestamp).or_insert_with(|| ServedState {
                        node_ids: serde_json::from_value(state["node_ids"].clone()).unwrap(),
                        pressure: serde_json::from_value(state["pressure"].clone()).unwrap(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            states
        });
        let viewed = {
            // Set on unwinding too: the scope waits for the recorder before a panic goes on.
            let _stop = StopOnDrop(&done);
            viewing()
        };
        (viewed, recorder.join().unwrap())
    })
}

/// Size, colours and chosen pixels of a PNG, decoded by Python's standard library (zlib) so
/// the check does not share the viewer's image code.
const PNG_PROBE: &str = r#"
import json, struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    pos += 12 + length
    if kind == b"IHDR":
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
assert (depth, colour, interlace) == (8, 2, 0), "expected 8-bit RGB, not interlaced"
raw = zlib.decompress(idat)
stride = width * 3
rows, previous = [], bytearray(stride)
for y in range(height):
    start = y * (stride + 1)
    kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
    for i in range(stride):
        a = line[i - 3] if i >= 3 else 0
        b = previous[i]
        c = previous[i - 3] if i >= 3 else 0
        if kind == 1:
            line[i] = (line[i] + a) & 255
        elif kind == 2:
            line[i] = (line[i] + b) & 255
        elif kind == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    previous = line
pixel = lambda x, y: tuple(rows[y][3 * x:3 * x + 3])
background = pixel(2, height // 2)
pixels = [pixel(x, y) for y in range(height) for x in range(width)]
points = json.loads(sys.argv[2])
print(json.dumps({
    "width": width,
    "height": height,
    "drawn": sum(1 for p in pixels if p != background),
    "colours": len(set(pixels)),
    "at": [pixel(min(max(round(x), 0), width - 1), min(max(round(y), 0), height - 1))
           for x, y in points],
}))
"#;

/// Decodes `png` and reads the pixels at `points`.
fn probe_png(png: &Path, points: &[(f64, f64)]) -> Value {
    let points: Vec<[f64; 2]> = points.iter().map(|&(x, y)| [x, y]).collect();
    // Run to its end here (`output`), so no failing assertion can leave it behind.
    let output = Command::new("python3")
        .args(["-c", PNG_PROBE])
        .arg(png)
        .arg(serde_json::to_string(&points).unwrap())
        .output()
        .expect("python3 is installed");
    assert!(
        output.status.success(),
        "{} does not decode: {}",
        png.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Checks one live screenshot and its map against the states the server served and the alert
/// it raised.
fn check_capture(png: &Path, map_path: &Path, states: &HashMap<i64, ServedState>, alert_id: u64) {
    let map: Value = serde_json::from_slice(&std::fs::read(map_path).unwrap()).unwrap();
    assert_eq!(map["quantity"], "pressure");

    // The period shown is one the server served, and every link on screen carries the mean
    // pressure of its ends in that period.
    let shown_ms = (map["time"].as_f64().unwrap() * 1000.0).round() as i64;
    let state = states.get(&shown_ms).unwrap_or_else(|| {
        let mut served: Vec<_> = states.keys().collect();
        served.sort();
        panic!("the viewer shows period {shown_ms}, the server served {served:?}")
    });
    let network =
        hydraulics::read_file(&Path::new(ROOT).join("hydraulics/networks/Net3.inp")).unwrap();
    let pressure_of = |node: usize| {
        let id = &network.nodes[node].id;
        let at = state.node_ids.iter().position(|n| n == id).unwrap();
        state.pressure[at]
    };
    let links = map["links"].as_array().unwrap();
    assert!(links.len() > 50, "{} links on screen", links.len());
    let mut compared = 0;
    for link in links {
        let id = link["id"].as_str().unwrap();
        let value = link["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("link {id} has no value: {link}"));
        let index = network.link_index(id).unwrap();
        let (from, to) = (network.links[index].from, network.links[index].to);
        if let (Some(from), Some(to)) = (pressure_of(from), pressure_of(to)) {
            let expected = (from + to) / 2.0;
            assert!(
                (value - expected).abs() <= VALUE_TOLERANCE * expected.abs().max(1.0),
                "link {id}: {value} on screen, {expected} served"
            );
            compared += 1;
        }
    }
    assert!(compared > 50, "only {compared} links compared");

    // The alert raised before the viewer started has its marker.
    let alerts = map["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("#{alert_id} "))),
        "alert {alert_id} is not on screen: {alerts:?}"
    );

    // The PNG is the frame mapped: not blank, and most links show the colour they were given
    // (markers, arrows and other pipes cover a few).
    let points: Vec<(f64, f64)> = links
        .iter()
        .map(|l| (l["x"].as_f64().unwrap(), l["y"].as_f64().unwrap()))
        .collect();
    let probe = probe_png(png, &points);
    assert_eq!(
        (probe["width"].as_u64(), probe["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let drawn = probe["drawn"].as_u64().unwrap();
    assert!(
        drawn > 20_000,
        "only {drawn} pixels differ from the background"
    );
    assert!(probe["colours"].as_u64().unwrap() > 50, "{probe}");
    let matching = links
        .iter()
        .zip(probe["at"].as_array().unwrap())
        .filter(|(link, seen)| {
            (0..3).all(|channel| {
                let given = (link["colour"][channel].as_f64().unwrap() * 255.0).round() as i32;
                let seen = seen[channel].as_i64().unwrap() as i32;
                (given - seen).abs() <= COLOUR_TOLERANCE
            })
        })
        .count();
    eprintln!(
        "{}: period {shown_ms}, {compared} links agree with the served pressures, {matching} of \
         {} show their colour, {drawn} pixels drawn",
        png.display(),
        links.len()
    );
    assert!(
        matching * 4 > links.len() * 3,
        "only {matching} of {} links show their colour",
        links.len()
    );
}

#[test]
fn the_viewer_shows_the_live_state_and_alerts() {
    let dir = TempDir::new("view-live");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    // Periods of a second: the recorder below reads every one served even on a loaded machine.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("period_seconds = 0.5"));
    std::fs::write(
        &config,
        text.replace("period_seconds = 0.5", "period_seconds = 1.0"),
    )
    .unwrap();
    let data = config.with_file_name("data");
    create_user(&data, VIEWER.0, VIEWER.1, "viewer", Some(MUNICIPALITY));
    let serve = Serve::start(&config, &[]);
    let token = login(serve.http, VIEWER.0, VIEWER.1);
    let token_file = dir.path().join("viewer.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();

    // Readings of the tank and two pressures; the twin publishes its periods.
    let t = now_ms();
    post_readings(
        &serve,
        &[("L-T2", t, 12.5), ("P-123", t, 62.0), ("P-149", t, 55.0)],
    );
    let state_route = format!("/api/v1/municipalities/{MUNICIPALITY}/state");
    assert!(
        serve.wait_for(Duration::from_secs(10), || {
            serve.get_as(&token, &state_route).1["state"]["timestamp_ms"].is_i64()
        }),
        "no state published:\n{}",
        serve.log()
    );

    let alert_id = raise_sensor_fault(&serve, &token);

    let connect = format!("http://{}", serve.http);
    for (windowed, name) in [(false, "headless"), (true, "xvfb")] {
        let png = dir.path().join(format!("live-{name}.png"));
        let map = dir.path().join(format!("live-{name}.json"));
        let mut args = vec![
            "--connect",
            connect.as_str(),
            "--token-file",
            token_file.to_str().unwrap(),
            "--municipality",
            MUNICIPALITY,
            "--color-by",
            "pressure",
            "--screenshot",
            png.to_str().unwrap(),
            "--map",
            map.to_str().unwrap(),
        ];
        if !windowed {
            args.push("--headless");
        }
        let (finished, states) = record_states(&serve, &token, || {
            run_viewer(dir.path(), &format!("viewer-{name}.log"), &args, windowed)
        });
        assert!(
            finished.status.success(),
            "aquatwin-view ({name}) failed ({}):\n{}",
            finished.status,
            finished.stderr
        );
        check_capture(&png, &map, &states, alert_id);
    }
}

/// Posts readings far outside a pressure sensor's range and waits until the alert list, read
/// with `token`, holds the sensor fault they raise; returns its id.
fn raise_sensor_fault(serve: &Serve, token: &str) -> u64 {
    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &fault_batch(now_ms()),
    );
    let alerts_route = format!("/api/v1/municipalities/{MUNICIPALITY}/alerts");
    let mut alert_id = None;
    assert!(
        serve.wait_for(Duration::from_secs(10), || {
            alert_id = serve.get_as(token, &alerts_route).1["alerts"]
                .as_array()
                .and_then(|alerts| alerts.iter().find(|a| a["kind"] == "sensor_fault"))
                .and_then(|alert| alert["id"].as_u64());
            alert_id.is_some()
        }),
        "no sensor fault raised:\n{}",
        serve.log()
    );
    alert_id.expect("checked above")
}

/// Longest wait for the viewer to follow the first server's stream.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// The HTTP listener of the test configuration, on a port picked by the system.
const ANY_HTTP_PORT: &str = "[http]\nlisten = \"127.0.0.1:0\"";

#[test]
fn the_viewer_logs_in_again_when_a_restarted_server_refuses_its_token() {
    let dir = TempDir::new("view-live-login-again");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    // One HTTP port for both servers: the viewer reconnects where it connected. The first
    // server ends no period, so whatever state the viewer shows, the restarted one served.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(ANY_HTTP_PORT) && text.contains("period_seconds = 0.5"));
    let port = free_port();
    let first_config = text
        .replace(
            ANY_HTTP_PORT,
            &format!("[http]\nlisten = \"127.0.0.1:{port}\""),
        )
        .replace("period_seconds = 0.5", "period_seconds = 3600.0");
    std::fs::write(&config, &first_config).unwrap();
    let data = config.with_file_name("data");
    create_viewer(&data, VIEWER, MUNICIPALITY);
    // The restarted server signs with another key: every token issued before is refused.
    let first_key = dir.path().join("jwt-first");
    let second_key = dir.path().join("jwt-second");
    std::fs::write(&first_key, "first-signing-secret-0123456789abcdef").unwrap();
    std::fs::write(&second_key, "second-signing-secret-0123456789abcdef").unwrap();
    let serve = Serve::start(&config, &["--jwt-secret-file", first_key.to_str().unwrap()]);

    // A sensor fault raised on the first server, listed over the HTTP API at each connection.
    let alert_id = raise_sensor_fault(&serve, &serve.token);
    // A token of the viewer's account issued now: what the viewer's first login got.
    let issued_before = login(serve.http, VIEWER.0, VIEWER.1);

    let password_file = dir.path().join("viewer.password");
    std::fs::write(&password_file, format!("{}\n", VIEWER.1)).unwrap();
    let png = dir.path().join("after-restart.png");
    let map = dir.path().join("after-restart.json");
    let connect = format!("http://127.0.0.1:{port}");
    let args = [
        "--connect",
        connect.as_str(),
        "--user",
        VIEWER.0,
        "--password-file",
        password_file.to_str().unwrap(),
        "--municipality",
        MUNICIPALITY,
        "--color-by",
        "pressure",
        "--headless",
        "--screenshot",
        png.to_str().unwrap(),
        "--map",
        map.to_str().unwrap(),
    ];
    let viewer = start_viewer(dir.path(), "viewer.log", &args, false, &[]);
    let deadline = Instant::now() + CONNECT_LIMIT;
    while !viewer.stderr().contains("connected to") {
        assert!(
            Instant::now() < deadline,
            "the viewer did not follow the stream within {CONNECT_LIMIT:?}:\n{}",
            viewer.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = viewer.stderr();
    assert!(
        before.contains(&format!("logged in as {}", VIEWER.0)),
        "{before}"
    );

    std::fs::write(
        &config,
        first_config.replace("period_seconds = 3600.0", "period_seconds = 1.0"),
    )
    .unwrap();
    let serve = serve.restart(
        &config,
        &["--jwt-secret-file", second_key.to_str().unwrap()],
    );
    let (finished, states) = record_states(&serve, &serve.token, || {
        let alerts_route = format!("/api/v1/municipalities/{MUNICIPALITY}/alerts");
        let (status, body) = serve.get_as(&issued_before, &alerts_route);
        assert_eq!(
            status, 401,
            "a token of the first server is refused: {body}"
        );
        let t = now_ms();
        post_readings(
            &serve,
            &[("L-T2", t, 12.5), ("P-123", t, 62.0), ("P-149", t, 55.0)],
        );
        viewer.finish()
    });
    assert!(
        finished.status.success(),
        "aquatwin-view failed ({}):\n{}",
        finished.status,
        finished.stderr
    );
    // It logged in again by itself, listed the alerts with its new token, connected, and the
    // replaced session was ended; the password never shows.
    let after = &finished.stderr[before.len()..];
    let again = after
        .find(&format!("logged in again as {}", VIEWER.0))
        .unwrap_or_else(|| panic!("no second login:\n{}", finished.stderr));
    assert!(after[again..].contains("connected to"), "{after}");
    for unexpected in [
        "earlier alerts unavailable",
        "replaced session stays",
        VIEWER.1,
    ] {
        assert!(
            !finished.stderr.contains(unexpected),
            "{unexpected}:\n{}",
            finished.stderr
        );
    }
    check_capture(&png, &map, &states, alert_id);
}

#[test]
fn refusals_name_their_cause() {
    let dir = TempDir::new("view-live-refusals");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_viewer(&config.with_file_name("data"), VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    let connect = format!("http://{}", serve.http);
    let good = dir.path().join("admin.token");
    std::fs::write(&good, &serve.token).unwrap();
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not.a.token").unwrap();
    const WRONG_PASSWORD: &str = "not-the-password-of-the-viewer";
    let wrong_password = dir.path().join("wrong.password");
    std::fs::write(&wrong_password, WRONG_PASSWORD).unwrap();
    let never = dir.path().join("never.png");
    let never = never.to_str().unwrap();
    let viewer_args = |url: &str, token: &Path, municipality: &str| -> Vec<String> {
        [
            "--connect",
            url,
            "--token-file",
            token.to_str().unwrap(),
            "--municipality",
            municipality,
            "--headless",
            "--screenshot",
            never,
        ]
        .map(String::from)
        .to_vec()
    };
    let account_args = |password_file: Option<&Path>, municipality: &str| -> Vec<String> {
        let mut args = ["--connect", &connect, "--user", VIEWER.0]
            .map(String::from)
            .to_vec();
        if let Some(file) = password_file {
            args.extend(["--password-file".into(), file.to_str().unwrap().into()]);
        }
        args.extend(
            [
                "--municipality",
                municipality,
                "--headless",
                "--screenshot",
                never,
            ]
            .map(String::from),
        );
        args
    };
    let password_env = [("AQUATWIN_PASSWORD", VIEWER.1)];
    let cases: [(&str, Vec<String>, Envs, &[&str]); 8] = [
        (
            "wrong-token",
            viewer_args(&connect, &wrong, MUNICIPALITY),
            &[],
            &["401", "--user NAME and --password-file"],
        ),
        (
            "unknown-municipality",
            viewer_args(&connect, &good, "nowhere"),
            &[],
            &["404"],
        ),
        (
            "not-http",
            viewer_args(&format!("ftp://{}", serve.http), &good, MUNICIPALITY),
            &[],
            &["is not an http:// URL"],
        ),
        (
            "no-token",
            [
                "--connect",
                &connect,
                "--municipality",
                MUNICIPALITY,
                "--headless",
            ]
            .map(String::from)
            .to_vec(),
            &[],
            &["needs a token", "--user NAME"],
        ),
        (
            "wrong-password",
            account_args(Some(&wrong_password), MUNICIPALITY),
            &[],
            &["login as viewer-north refused", "401"],
        ),
        (
            "no-password",
            account_args(None, MUNICIPALITY),
            &[],
            &["--user viewer-north needs a password"],
        ),
        (
            "account-of-another-municipality",
            account_args(None, "nowhere"),
            &password_env,
            &["logged in as viewer-north", "404"],
        ),
        (
            "token-and-account",
            [
                viewer_args(&connect, &good, MUNICIPALITY),
                vec!["--user".into(), VIEWER.0.into()],
            ]
            .concat(),
            &password_env,
            &["cannot be used with"],
        ),
    ];
    for (name, args, envs, named) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let finished =
            start_viewer(dir.path(), &format!("{name}.log"), &args, false, envs).finish();
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{name}: {}",
            finished.stderr
        );
        for words in named {
            assert!(
                finished.stderr.contains(words),
                "{name}: no {words:?} in {}",
                finished.stderr
            );
        }
        for secret in [VIEWER.1, WRONG_PASSWORD] {
            assert!(
                !finished.stderr.contains(secret),
                "{name}: {}",
                finished.stderr
            );
        }
    }
    assert!(!Path::new(never).exists());
}
