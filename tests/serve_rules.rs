//! Threshold rules and subscriptions over the API, driven as a user drives them: `aquatwin
//! serve` as a process, readings published with `mosquitto_pub`, a webhook subscription created
//! over HTTP whose receiver (Python, checking the HMAC with the secret the server generated)
//! hears of the threshold alert and of its resolution; a rule edit applies without a restart
//! and survives one; bad rules are 422 naming the field, viewers may not edit (403); a
//! receiver that is down shows its failed attempts and retries in the delivery history, and
//! the history lists only the newest `[notify] history_per_subscription` attempts.

mod serve_support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use serve_support::*;

/// Validates answers against the 200 schema of their GET operation: arguments are the OpenAPI
/// document, then `PATH=ANSWER_FILE` pairs.
const SCHEMA_CHECK: &str = r#"
import json, sys
import jsonschema
document = json.load(open(sys.argv[1]))
for pair in sys.argv[2:]:
    path, answer = pair.split("=", 1)
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    root = dict(schema, components=document["components"])
    jsonschema.Draft202012Validator(root).validate(json.load(open(answer)))
"#;

/// `mosquitto_pub -q 1` of `readings` (`[(ts, value)]`, one JSON array) for `sensor` as
/// device A.
fn publish(serve: &Serve, sensor: &str, readings: &[(i64, f64)]) {
    let items: Vec<Value> = readings
        .iter()
        .map(|(ts, value)| json!({"ts": ts, "value": value}))
        .collect();
    let port = serve.mqtt.expect("embedded broker").port();
    let topic = sensor_topic(sensor, "data");
    let message = Value::Array(items).to_string();
    let output = mosquitto_pub(port, Some(DEVICE_A), &topic, &message);
    assert!(output.status.success(), "{output:?}");
}

/// Reading times one second apart, each after the last (so none is out of order).
struct Clock(i64);

impl Clock {
    /// Starts an hour ago: the readings of the test never reach the future.
    fn new() -> Self {
        Clock(now_ms() - 3_600_000)
    }

    /// `values` at the next times.
    fn timed(&mut self, values: &[f64]) -> Vec<(i64, f64)> {
        values
            .iter()
            .map(|&v| {
                self.0 += 1000;
                (self.0, v)
            })
            .collect()
    }
}

/// From `from` to `to` in steps of `step` (signed), both ends included: a slow ramp, which the
/// quality checks take as plausible (no spike, never stuck).
fn ramp(from: f64, to: f64, step: f64) -> Vec<f64> {
    let steps = ((to - from) / step).round() as i64;
    (0..=steps).map(|i| from + step * i as f64).collect()
}

/// The threshold alerts at `node`, oldest first.
fn threshold_alerts(serve: &Serve, node: &str) -> Vec<Value> {
    let (status, body) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/alerts"));
    assert_eq!(status, 200, "{body}");
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "threshold" && a["location"]["node"] == node)
        .cloned()
        .collect()
}

/// Waits for `condition` on the threshold alerts at `node`; the alerts then.
fn wait_alerts(serve: &Serve, node: &str, what: &str, condition: impl Fn(&[Value]) -> bool) {
    let met = serve.wait_for(Duration::from_secs(15), || {
        condition(&threshold_alerts(serve, node))
    });
    assert!(
        met,
        "{what}: {:#?}\nserve log:\n{}",
        threshold_alerts(serve, node),
        serve.log()
    );
}

/// The first value of `values` that makes the `count`-th in a row past `limit` (`below`: under
/// it): the reading a rule with `for_readings = count` opens its alert at.
fn opening_value(values: &[f64], limit: f64, below: bool, count: usize) -> f64 {
    let mut streak = 0;
    for &value in values {
        let past = if below { value < limit } else { value > limit };
        streak = if past { streak + 1 } else { 0 };
        if streak == count {
            return value;
        }
    }
    panic!("{values:?} never stay past {limit} {count} times");
}

fn rules_path() -> String {
    format!("/api/v1/municipalities/{MUNICIPALITY}/alert-rules")
}

fn subscriptions_path() -> String {
    format!("/api/v1/municipalities/{MUNICIPALITY}/subscriptions")
}

/// Creates a JSON webhook subscription to `port` for every event; its id and secret.
fn subscribe(serve: &Serve, port: u16) -> (String, String) {
    let body = json!({
        "events": ["*"],
        "target": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook"),
                   "format": "json"},
    });
    let (status, text) = serve.send_json(
        "POST",
        &subscriptions_path(),
        &serve.token,
        &body.to_string(),
    );
    assert_eq!(status, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["subscription"]["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64, "{text}");
    (id, secret)
}

/// Delivery attempts kept per subscription in the test's configuration.
const HISTORY_KEPT: usize = 3;

/// The delivery history of subscription `id` (asking for more than is kept).
fn deliveries(serve: &Serve, id: &str) -> Vec<Value> {
    let (status, body) = serve.get(&format!(
        "{}/{id}/deliveries?limit=1000",
        subscriptions_path()
    ));
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

#[test]
fn threshold_rules_raise_resolve_notify_and_persist() {
    let dir = TempDir::new("serve-rules");
    let log = dir.path().join("webhook.jsonl");
    let notify = format!("[notify]\nhistory_per_subscription = {HISTORY_KEPT}");
    let config = write_config(dir.path(), &format!("{EMBEDDED_MQTT}\n{notify}"));
    create_viewer(&config.with_file_name("data"), NORTH_VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    let viewer = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    let mut clock = Clock::new();

    // Pressure in Net3's unit (psi), like P-123's readings.
    let (limit, hysteresis, count) = (30.0, 2.0, 3);
    let low_rule = json!({"rules": [{"sensor_kind": "pressure", "below": limit,
        "for_readings": count, "hysteresis": hysteresis, "severity": "critical"}]});

    // Viewers read the rules but may not change them; nothing changed.
    let (status, text) = serve.send_json("PUT", &rules_path(), &viewer, &low_rule.to_string());
    assert_eq!(status, 403, "{text}");
    let (status, rules) = serve.get_as(&viewer, &rules_path());
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["rules"], json!([]));

    // Invalid rule sets are refused, naming the field.
    let p123 = json!({"sensor_kind": "pressure", "sensor_id": "P-123", "below": 10});
    for (rules, field) in [
        (
            json!([p123, {"sensor_kind": "level", "below": 5, "above": 5}]),
            "rules[1].below",
        ),
        (
            json!([{"sensor_kind": "pressure", "sensor_id": "P-999", "below": 1}]),
            "rules[0].sensor_id",
        ),
        (
            json!([{"sensor_kind": "flow", "sensor_id": "P-123", "below": 1}]),
            "rules[0].sensor_id",
        ),
        (
            json!([p123, p123, {"sensor_kind": "flow", "above": 1, "for_seconds": -5}]),
            "rules[1].sensor_id",
        ),
        (
            json!([{"sensor_kind": "flow", "above": 1, "for_seconds": -5}]),
            "rules[0].for_seconds",
        ),
        (
            json!([p123, {"sensor_kind": "salinity", "below": 1}]),
            "rules[1].sensor_kind",
        ),
        (json!([{"sensor_kind": "pressure"}]), "rules[0].below"),
    ] {
        let body = json!({ "rules": rules }).to_string();
        let (status, text) = serve.send_json("PUT", &rules_path(), &serve.token, &body);
        assert_eq!(status, 422, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(
            error["detail"].as_str().unwrap().contains(field),
            "{body}: {text} does not name {field}"
        );
    }

    // Unusable subscriptions are refused, naming the field.
    for (body, field) in [
        (
            json!({"events": ["*"], "target": {"type": "webhook", "url": "ftp://x/", "format": "json"}}),
            "target.url",
        ),
        (
            json!({"events": [], "target": {"type": "email", "recipients": ["ops@example.org"]}}),
            "events",
        ),
        (
            json!({"events": ["opened"], "target": {"type": "email", "recipients": []}}),
            "events",
        ),
    ] {
        let (status, text) = serve.send_json(
            "POST",
            &subscriptions_path(),
            &serve.token,
            &body.to_string(),
        );
        assert_eq!(status, 422, "{body}: {text}");
        assert!(text.contains(field), "{body}: {text} does not name {field}");
    }

    // A webhook subscribed over HTTP; the secret is shown once and never listed.
    let port = free_port();
    let (hook, secret) = subscribe(&serve, port);
    let (status, listed) = serve.get(&subscriptions_path());
    assert_eq!(status, 200, "{listed}");
    assert!(!listed.to_string().contains(&secret), "{listed}");
    assert_eq!(
        listed["subscriptions"][0]["target"]["signed"], true,
        "{listed}"
    );
    let _receiver = WebhookReceiver::start(port, &secret, &log);

    let (status, text) = serve.send_json("PUT", &rules_path(), &serve.token, &low_rule.to_string());
    assert_eq!(status, 200, "{text}");

    // Down below the limit: the alert opens at the third reading under it.
    let down = ramp(45.0, 21.0, -2.0);
    publish(&serve, "P-123", &clock.timed(&down));
    let opened_at = opening_value(&down, limit, true, count);
    wait_alerts(&serve, "123", "no threshold alert", |alerts| {
        alerts.iter().any(|a| a["open"] == true)
    });
    let alert = threshold_alerts(&serve, "123").pop().unwrap();
    assert_eq!(alert["severity"], "critical", "{alert}");
    let message = alert["message"].as_str().unwrap();
    for part in ["P-123", &opened_at.to_string(), &limit.to_string(), "below"] {
        assert!(message.contains(part), "{message} lacks {part}");
    }

    // Back up: resolved by itself once through the hysteresis band, by nobody.
    let up = ramp(23.0, 37.0, 2.0);
    publish(&serve, "P-123", &clock.timed(&up));
    let cleared_at = *up.iter().find(|&&v| v >= limit + hysteresis).unwrap();
    wait_alerts(&serve, "123", "not resolved", |alerts| {
        alerts.iter().all(|a| a["open"] == false)
    });
    let resolved = threshold_alerts(&serve, "123").pop().unwrap();
    assert_eq!(resolved["id"], alert["id"]);
    assert_eq!(resolved["resolved_by"], Value::Null, "{resolved}");
    let message = resolved["message"].as_str().unwrap();
    assert!(message.contains(&cleared_at.to_string()), "{message}");

    // The receiver heard of both, signed with the generated secret.
    let heard = serve.wait_for(Duration::from_secs(15), || {
        webhook_requests(&log).len() >= 2
    });
    assert!(heard, "{:?}\n{}", webhook_requests(&log), serve.log());
    let calls = webhook_requests(&log);
    let events: Vec<(String, Value)> = calls
        .iter()
        .map(|call| {
            assert_eq!(call["signature_ok"], true, "{call}");
            let body: Value = serde_json::from_str(call["body"].as_str().unwrap()).unwrap();
            (
                body["event"].as_str().unwrap().to_string(),
                body["alert"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("raised".to_string(), alert["id"].clone()),
            ("resolved".to_string(), alert["id"].clone())
        ]
    );
    let history = deliveries(&serve, &hook);
    assert_eq!(history.len(), 2, "{history:?}");
    for attempt in &history {
        assert_eq!(attempt["status"], 200, "{attempt}");
        assert_eq!(attempt["delivered"], true, "{attempt}");
        assert_eq!(attempt["next_retry_ms"], Value::Null, "{attempt}");
    }

    // An edit applies at once: P-149 alone now alarms above 50 psi, the kind's rule is gone.
    let high_rule = json!({"rules": [{"sensor_kind": "pressure", "sensor_id": "P-149",
        "above": 50.0}]});
    let (status, text) =
        serve.send_json("PUT", &rules_path(), &serve.token, &high_rule.to_string());
    assert_eq!(status, 200, "{text}");
    let rise = ramp(40.0, 56.0, 2.0);
    publish(&serve, "P-149", &clock.timed(&rise));
    publish(&serve, "P-123", &clock.timed(&ramp(37.0, 21.0, -2.0)));
    wait_alerts(&serve, "149", "no alert after the edit", |alerts| {
        alerts.iter().any(|a| a["open"] == true)
    });
    let above = threshold_alerts(&serve, "149").pop().unwrap();
    let opened_at = opening_value(&rise, 50.0, false, 1);
    assert!(
        above["message"]
            .as_str()
            .unwrap()
            .contains(&opened_at.to_string()),
        "{above}"
    );
    assert!(
        threshold_alerts(&serve, "123")
            .iter()
            .all(|a| a["open"] == false),
        "P-123 has no rule any more"
    );

    // The alerts and sensors answers match their OpenAPI schemas (checked by Python's
    // jsonschema), an acknowledged and commented alert included.
    let alert_path = format!(
        "/api/v1/municipalities/{MUNICIPALITY}/alerts/{}",
        above["id"]
    );
    for (action, body) in [
        ("acknowledge", "{}"),
        ("comments", r#"{"text": "crew sent"}"#),
    ] {
        let path = format!("{alert_path}/{action}");
        let (status, text) = serve.send_json("POST", &path, &serve.token, body);
        assert_eq!(status, 200, "{text}");
    }
    let (_, document) = curl(&[&serve.url("/api/v1/openapi.json")]);
    std::fs::write(dir.path().join("openapi.json"), &document).unwrap();
    let schemas = &serde_json::from_str::<Value>(&document).unwrap()["components"]["schemas"];
    let required = schemas["Alert"]["required"].to_string();
    for field in ["kind", "severity", "location", "open", "message"] {
        assert!(
            required.contains(field),
            "Alert lacks {field}: {}",
            schemas["Alert"]
        );
    }
    assert!(
        schemas["AlertKind"]["enum"]
            .to_string()
            .contains("threshold"),
        "{}",
        schemas["AlertKind"]
    );
    assert!(
        schemas["SensorSummary"]["required"]
            .to_string()
            .contains("usable"),
        "{}",
        schemas["SensorSummary"]
    );
    let mut checks = Vec::new();
    for route in ["alerts", "sensors"] {
        let path = format!("/api/v1/municipalities/{{municipality}}/{route}");
        let (status, body) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/{route}"));
        assert_eq!(status, 200, "{body}");
        let file = dir.path().join(format!("{route}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        checks.push(format!("{path}={}", file.display()));
    }
    let validate = Command::new("python3")
        .args(["-c", SCHEMA_CHECK])
        .arg(dir.path().join("openapi.json"))
        .args(&checks)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );

    // A receiver that is down: every attempt is listed with its error and next retry.
    let down_port = free_port();
    let (dead_hook, _) = subscribe(&serve, down_port);
    publish(&serve, "P-149", &clock.timed(&ramp(54.0, 40.0, -2.0)));
    let retried = serve.wait_for(Duration::from_secs(15), || {
        deliveries(&serve, &dead_hook).len() >= 2
    });
    assert!(retried, "{:?}", deliveries(&serve, &dead_hook));
    let attempts = deliveries(&serve, &dead_hook);
    for (i, attempt) in attempts.iter().take(2).enumerate() {
        assert_eq!(attempt["attempt"], i as u64 + 1, "{attempt}");
        assert_eq!(attempt["delivered"], false, "{attempt}");
        assert_eq!(attempt["status"], Value::Null, "{attempt}");
        assert!(
            attempt["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{attempt}"
        );
        let next = attempt["next_retry_ms"].as_i64().expect("a retry is due");
        assert!(next > attempt["time_ms"].as_i64().unwrap(), "{attempt}");
    }
    assert!(
        attempts[1]["time_ms"].as_i64().unwrap() >= attempts[0]["next_retry_ms"].as_i64().unwrap(),
        "the retry came before its time: {attempts:?}"
    );
    // The first receiver heard of four alert events by now (two at P-123, two at P-149): its
    // history lists the newest three attempts, the last three calls it logged.
    let newest_kept = || {
        let calls = webhook_requests(&log);
        let listed: Vec<(Value, Value)> = deliveries(&serve, &hook)
            .iter()
            .map(|attempt| (attempt["event"].clone(), attempt["alert_id"].clone()))
            .collect();
        let called: Vec<(Value, Value)> = calls
            .iter()
            .skip(calls.len().saturating_sub(HISTORY_KEPT))
            .map(|call| {
                let body: Value = serde_json::from_str(call["body"].as_str().unwrap()).unwrap();
                (body["event"].clone(), body["alert"]["id"].clone())
            })
            .collect();
        calls.len() > HISTORY_KEPT && listed == called
    };
    assert!(
        serve.wait_for(Duration::from_secs(15), newest_kept),
        "{:?}\n{:?}",
        deliveries(&serve, &hook),
        webhook_requests(&log)
    );
    let dead_path = format!("{}/{dead_hook}", subscriptions_path());
    let (status, text) = serve.send_json("DELETE", &dead_path, &serve.token, "");
    assert_eq!(status, 204, "{text}");
    let (status, _) = serve.get(&dead_path);
    assert_eq!(status, 404);

    // Every change is in the audit log (written in the background).
    let audited_routes = || -> Vec<String> {
        let (status, audit) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/audit"));
        assert_eq!(status, 200, "{audit}");
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["method"].as_str().unwrap(),
                    e["route"].as_str().unwrap()
                )
            })
            .collect()
    };
    let changes = [
        "PUT /api/v1/municipalities/{municipality}/alert-rules",
        "POST /api/v1/municipalities/{municipality}/subscriptions",
        "DELETE /api/v1/municipalities/{municipality}/subscriptions/{subscription}",
    ];
    let audited = serve.wait_for(Duration::from_secs(10), || {
        let routes = audited_routes();
        changes
            .iter()
            .all(|change| routes.iter().any(|r| r == change))
    });
    assert!(audited, "not every change audited: {:?}", audited_routes());

    // After a restart the edited rules are in force.
    let serve = serve.restart(&config, &[]);
    let (status, rules) = serve.get(&rules_path());
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["rules"][0]["sensor_id"], "P-149", "{rules}");
    assert_eq!(rules["rules"][0]["above"], 50.0, "{rules}");
    let before = threshold_alerts(&serve, "149").len();
    publish(&serve, "P-149", &clock.timed(&ramp(44.0, 58.0, 2.0)));
    wait_alerts(&serve, "149", "no alert after the restart", |alerts| {
        alerts.len() > before && alerts.last().is_some_and(|a| a["open"] == true)
    });
}

/// Rules in the configuration are in force from the start, until a set is stored over the API,
/// which then wins over them, across restarts too.
#[test]
fn configured_rules_apply_until_rules_are_set_over_the_api() {
    let dir = TempDir::new("serve-configured-rules");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[[municipality.alert_rules]]\nsensor_kind = \"pressure\"\n\
             sensor_id = \"P-123\"\nbelow = 30.0\nfor_readings = 2\n"
        ),
    )
    .unwrap();
    let serve = Serve::start(&config, &[]);
    let (status, rules) = serve.get(&rules_path());
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["rules"][0]["sensor_id"], "P-123", "{rules}");
    assert_eq!(rules["rules"][0]["below"], 30.0, "{rules}");

    let mut clock = Clock::new();
    let down = ramp(40.0, 24.0, -2.0);
    publish(&serve, "P-123", &clock.timed(&down));
    let opened_at = opening_value(&down, 30.0, true, 2);
    wait_alerts(
        &serve,
        "123",
        "the configured rule raised nothing",
        |alerts| alerts.iter().any(|a| a["open"] == true),
    );
    let alert = threshold_alerts(&serve, "123").pop().unwrap();
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains(&opened_at.to_string()), "{message}");

    // An empty set stored over the API replaces the configured one, after a restart too.
    let (status, text) = serve.send_json("PUT", &rules_path(), &serve.token, r#"{"rules": []}"#);
    assert_eq!(status, 200, "{text}");
    let serve = serve.restart(&config, &[]);
    let (status, rules) = serve.get(&rules_path());
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["rules"], serde_json::json!([]), "{rules}");
}
