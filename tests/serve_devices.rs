//! Devices managed over the API of `aquatwin serve`, as an administrator and a device see it:
//! an admin registers a device (operators and viewers may not); `mosquitto_pub` publishes
//! with the key it was given and the reading is stored; the device shows `online` with the
//! time it was heard and over MQTT; a status message's battery and signal show. Rotating the
//! key makes `mosquitto_pub` with the old key fail (not authorized) and closes a connection
//! made with it, while the new key works; a deactivated device is refused until activated.
//! After a restart on the same data directory the device is still there, with its rotated key
//! and still deactivated, and still shows when and over which gateway it was last heard (not
//! `never`); a configured device's rotated key also overrides the configuration.

mod serve_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use serve_support::*;

const OPERATOR: (&str, &str) = ("north-operator", "password-of-the-north-operator");
const NEW_DEVICE: &str = "dev-new";
const WAIT: Duration = Duration::from_secs(10);

fn devices_path() -> String {
    format!("/api/v1/municipalities/{MUNICIPALITY}/devices")
}

fn device_path(device: &str) -> String {
    format!("{}/{device}", devices_path())
}

/// `curl -X POST` of `path` with a JSON `body` as `token`; status and parsed answer.
fn post(serve: &Serve, token: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = serve.send_json("POST", path, token, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `mosquitto_pub` of `message` on P-10's `kind` topic as `login` (device, key).
fn publish_p10(serve: &Serve, login: (&str, &str), kind: &str, message: &str) -> Output {
    let port = serve.mqtt.expect("embedded broker").port();
    mosquitto_pub(port, Some(login), &sensor_topic("P-10", kind), message)
}

/// Publishes a reading of P-10 at `ts`; whether `mosquitto_pub` succeeded.
fn publish_reading(serve: &Serve, login: (&str, &str), ts: i64, value: f64) -> bool {
    let message = format!(r#"{{"ts": {ts}, "value": {value}}}"#);
    publish_p10(serve, login, "data", &message).status.success()
}

/// `mosquitto_pub` is refused at CONNECT, saying it is not authorized.
fn assert_refused(serve: &Serve, login: (&str, &str), ts: i64) {
    let message = format!(r#"{{"ts": {ts}, "value": 1.0}}"#);
    let output = publish_p10(serve, login, "data", &message);
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(!output.status.success(), "{login:?} was accepted");
    assert!(stderr.contains("not authori"), "{stderr}");
    assert!(!stored(serve, ts), "a refused reading at {ts} was stored");
}

fn stored(serve: &Serve, ts: i64) -> bool {
    serve.readings("P-10").iter().any(|(t, _)| *t == ts)
}

/// Waits until the reading of P-10 at `ts` is readable with `value`.
fn assert_stored(serve: &Serve, ts: i64, value: f64) {
    assert!(
        serve.wait_for(WAIT, || serve.readings("P-10").contains(&(ts, value))),
        "reading ({ts}, {value}) not stored: {:?}",
        serve.readings("P-10")
    );
}

fn device(serve: &Serve, id: &str) -> Value {
    let (status, body) = serve.get(&device_path(id));
    assert_eq!(status, 200, "{body}");
    body
}

/// A raw MQTT 3.1.1 connection logged in as `device` with `key` (CONNACK accepted).
fn mqtt_connection(serve: &Serve, device: &str, key: &str) -> TcpStream {
    let string = |text: &str| {
        let mut bytes = (text.len() as u16).to_be_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes
    };
    // Protocol "MQTT" level 4, flags: user name, password, clean session; keep-alive 60 s.
    let mut body = string("MQTT");
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    body.extend(string(&format!("raw-{device}")));
    body.extend(string(device));
    body.extend(string(key));
    assert!(body.len() < 128, "one-byte remaining length");
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut stream = TcpStream::connect(serve.mqtt.unwrap()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK of {device}");
    stream
}

/// Sends HTTP ingest of one P-123 reading as configured device A with `key`; the status.
fn ingest_as_device_a(serve: &Serve, key: &str, ts: i64) -> u16 {
    let body = format!(r#"{{"sensor_id": "P-123", "ts": {ts}, "value": 55.5}}"#);
    let headers = [
        format!("X-Device-Id: {}", DEVICE_A.0),
        format!("Authorization: Bearer {key}"),
    ];
    curl_with_body("POST", &serve.url("/api/v1/ingest"), &headers, &body).0
}

#[test]
fn devices_are_registered_rotated_deactivated_and_kept_across_restarts() {
    let dir = TempDir::new("serve-devices");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    // Sensors no configured device reports for: a pressure, and the new device's health.
    let sensors = dir.path().join("sensors.toml");
    let mut text = std::fs::read_to_string(&sensors).unwrap();
    text.push_str(&format!(
        r#"
[[sensor]]
id = "P-10"
kind = "pressure"
node = "10"
unit = "psi"

[[sensor]]
id = "B-NEW"
kind = "battery"
device = "{NEW_DEVICE}"
unit = "V"

[[sensor]]
id = "S-NEW"
kind = "signal"
device = "{NEW_DEVICE}"
unit = "dBm"
"#
    ));
    std::fs::write(&sensors, text).unwrap();
    let data = dir.path().join("data");
    for (user, role) in [(OPERATOR, "operator"), (NORTH_VIEWER, "viewer")] {
        create_user(&data, user.0, user.1, role, Some(MUNICIPALITY));
    }
    let serve = Serve::start(&config, &[]);
    let admin = serve.token.clone();
    let registration = json!({"id": NEW_DEVICE, "sensors": ["P-10", "B-NEW", "S-NEW"]});
    let registration = registration.to_string();

    // Operators and viewers read devices but may not register them.
    for user in [OPERATOR, NORTH_VIEWER] {
        let token = login(serve.http, user.0, user.1);
        let (status, body) = post(&serve, &token, &devices_path(), &registration);
        assert_eq!(status, 403, "{user:?}: {body}");
        let (status, body) = serve.get_as(&token, &devices_path());
        assert_eq!(status, 200, "{body}");
    }
    // Unknown sensors and bad ids are named; taken sensors and used ids conflict.
    let (status, body) = post(
        &serve,
        &admin,
        &devices_path(),
        r#"{"id": "dev-x", "sensors": ["P-10", "P-404"]}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("sensors[1]"),
        "{body}"
    );
    let (status, body) = post(
        &serve,
        &admin,
        &devices_path(),
        r#"{"id": "dev x", "sensors": ["P-10"]}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("id"), "{body}");
    let (status, body) = post(
        &serve,
        &admin,
        &devices_path(),
        r#"{"id": "dev-x", "sensors": ["P-10", "F-101"]}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains(DEVICE_B.0),
        "{body}"
    );
    let (status, body) = post(
        &serve,
        &admin,
        &devices_path(),
        r#"{"id": "dev-a", "sensors": ["P-10"]}"#,
    );
    assert_eq!(status, 409, "{body}");

    // Registered: the key is answered once, and the device was never heard.
    let (status, body) = post(&serve, &admin, &devices_path(), &registration);
    assert_eq!(status, 201, "{body}");
    let first_key = body["key"].as_str().unwrap().to_string();
    assert!(first_key.len() >= 43, "{first_key}");
    assert_eq!(body["device"]["status"], "never", "{body}");
    assert_eq!(body["device"]["last_seen"], Value::Null, "{body}");
    let shown = device(&serve, NEW_DEVICE);
    assert_eq!(shown["sensors"], json!(["P-10", "B-NEW", "S-NEW"]));
    assert_eq!(shown["active"], true);
    assert!(
        !shown.to_string().contains(&first_key),
        "the key is shown again"
    );
    let (status, body) = post(&serve, &admin, &devices_path(), &registration);
    assert_eq!(status, 409, "registered twice: {body}");

    // Its key works over MQTT; the reading is stored; it is online, heard over MQTT.
    let before = now_ms();
    let t = before - 60_000;
    assert!(publish_reading(&serve, (NEW_DEVICE, &first_key), t, 42.5));
    assert_stored(&serve, t, 42.5);
    let after = now_ms();
    let shown = device(&serve, NEW_DEVICE);
    assert_eq!(shown["status"], "online", "{shown}");
    assert_eq!(shown["transport"], "mqtt", "{shown}");
    let seen = shown["last_seen"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&seen),
        "{before} <= {seen} <= {after}"
    );

    // A status message: battery and signal readings of its health sensors.
    let output = publish_p10(
        &serve,
        (NEW_DEVICE, &first_key),
        "status",
        r#"{"battery": 3.55, "signal": -91}"#,
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        serve.wait_for(WAIT, || {
            let shown = device(&serve, NEW_DEVICE);
            shown["battery"] == json!(3.55) && shown["signal"] == json!(-91.0)
        }),
        "{}",
        device(&serve, NEW_DEVICE)
    );

    // Rotation: the old key is refused, an open connection made with it is closed, and the
    // new key works.
    let mut open = mqtt_connection(&serve, NEW_DEVICE, &first_key);
    let (status, body) = post(
        &serve,
        &admin,
        &format!("{}/rotate-key", device_path(NEW_DEVICE)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    assert_ne!(key, first_key);
    let mut rest = Vec::new();
    let closed = open.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the old key's connection stayed open: {closed:?}"
    );
    assert_refused(&serve, (NEW_DEVICE, &first_key), t + 1000);
    assert!(publish_reading(&serve, (NEW_DEVICE, &key), t + 2000, 43.5));
    assert_stored(&serve, t + 2000, 43.5);

    // Deactivated: refused; activated: accepted again.
    let (status, body) = post(
        &serve,
        &admin,
        &format!("{}/deactivate", device_path(NEW_DEVICE)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    assert_refused(&serve, (NEW_DEVICE, &key), t + 3000);
    let (status, body) = post(
        &serve,
        &admin,
        &format!("{}/activate", device_path(NEW_DEVICE)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    assert!(publish_reading(&serve, (NEW_DEVICE, &key), t + 4000, 44.5));
    assert_stored(&serve, t + 4000, 44.5);

    // A configured device's key rotated through the API.
    assert_eq!(ingest_as_device_a(&serve, DEVICE_A.1, t), 200);
    let (status, body) = post(
        &serve,
        &admin,
        &format!("{}/rotate-key", device_path(DEVICE_A.0)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let key_a = body["key"].as_str().unwrap().to_string();
    assert_eq!(ingest_as_device_a(&serve, DEVICE_A.1, t + 1000), 401);
    assert_eq!(ingest_as_device_a(&serve, &key_a, t + 2000), 200);
    assert_eq!(device(&serve, DEVICE_A.0)["transport"], "http");

    // Every change is in the audit log (written a few milliseconds after the answer).
    let audited = |route: &str| {
        let (status, log) = serve.get("/api/v1/audit?limit=1000");
        assert_eq!(status, 200, "{log}");
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["route"].as_str().is_some_and(|r| r.ends_with(route)))
            .count()
    };
    assert!(serve.wait_for(WAIT, || audited("/devices/{device}/rotate-key") == 2));
    assert_eq!(audited("/devices/{device}/deactivate"), 1);
    // Registrations: 2 forbidden, 4 refused, 1 made, 1 made twice.
    assert_eq!(audited("/devices"), 8);

    // Deactivated again, then a restart on the same data directory.
    let (status, _) = post(
        &serve,
        &admin,
        &format!("{}/deactivate", device_path(NEW_DEVICE)),
        "",
    );
    assert_eq!(status, 200);
    let listed_before = serve.get(&devices_path()).1["devices"].clone();
    let heard = |shown: &Value| json!([shown["last_seen"], shown["transport"]]);
    let heard_before = [NEW_DEVICE, DEVICE_A.0].map(|id| heard(&device(&serve, id)));
    assert!(
        heard_before.iter().all(|h| h[0].is_i64()),
        "{heard_before:?}"
    );
    let serve = serve.restart(&config, &[]);
    let admin = serve.token.clone();
    let listed_after = serve.get(&devices_path()).1["devices"].clone();
    let identity = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| json!([d["id"], d["sensors"], d["active"], d["lorawan"]]))
            .collect()
    };
    assert_eq!(identity(&listed_after), identity(&listed_before));
    let shown = device(&serve, NEW_DEVICE);
    assert_eq!(shown["active"], false, "{shown}");
    // Heard before the restart: the same time and gateway, within the silence limit.
    let heard_after = [NEW_DEVICE, DEVICE_A.0].map(|id| heard(&device(&serve, id)));
    assert_eq!(heard_after, heard_before);
    assert_eq!(shown["status"], "online", "{shown}");
    assert_refused(&serve, (NEW_DEVICE, &key), t + 5000);
    let (status, _) = post(
        &serve,
        &admin,
        &format!("{}/activate", device_path(NEW_DEVICE)),
        "",
    );
    assert_eq!(status, 200);
    assert_refused(&serve, (NEW_DEVICE, &first_key), t + 6000);
    assert!(publish_reading(&serve, (NEW_DEVICE, &key), t + 7000, 45.5));
    assert_stored(&serve, t + 7000, 45.5);
    assert_eq!(ingest_as_device_a(&serve, DEVICE_A.1, t + 3000), 401);
    assert_eq!(ingest_as_device_a(&serve, &key_a, t + 4000), 200);

    // Another municipality's devices do not exist for anyone.
    let (status, _) = serve.get("/api/v1/municipalities/south/devices");
    assert_eq!(status, 404);
    let (status, _) = serve.get(&device_path("no-such-device"));
    assert_eq!(status, 404);
}
