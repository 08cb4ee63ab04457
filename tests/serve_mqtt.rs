//! `aquatwin serve` over MQTT with real clients: Mosquitto's `mosquitto_pub` and Python
//! `paho-mqtt` through the embedded broker, and `mosquitto_pub` through an external Mosquitto
//! broker that serve subscribes to (`--mqtt-url`). Readings are stored and visible; bad
//! credentials and malformed payloads are refused and counted.

mod serve_support;

use std::process::Command;
use std::time::Duration;

use serve_support::*;

#[test]
fn embedded_broker_with_mosquitto_pub_and_paho() {
    let dir = TempDir::new("serve-mqtt");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let serve = Serve::start(&config, &[]);
    let port = serve.mqtt.expect("embedded broker").port();
    let publish = |login: (&str, &str), sensor: &str, message: &str| {
        let topic = sensor_topic(sensor, "data");
        mosquitto_pub(port, Some(login), &topic, message)
            .status
            .success()
    };
    let t = now_ms();

    assert!(publish(
        DEVICE_A,
        "P-123",
        &format!(r#"{{"ts": {t}, "value": 60.5}}"#)
    ));
    assert!(publish(
        DEVICE_A,
        "P-149",
        &format!(
            r#"[{{"ts": {t}, "value": 50.25, "unit": "psi"}}, {{"ts": {}, "value": 50.5}}]"#,
            t + 500
        )
    ));
    // QoS 1: mosquitto_pub exits after the PUBACK, which comes after durable storage.
    assert_eq!(serve.readings("P-123"), vec![(t, 60.5)]);
    assert_eq!(serve.readings("P-149"), vec![(t, 50.25), (t + 500, 50.5)]);

    // Refused: wrong password (CONNACK refused), malformed JSON, another device's sensor.
    assert!(!publish(
        (DEVICE_A.0, "wrong"),
        "P-123",
        r#"{"ts": 1, "value": 1}"#
    ));
    publish(DEVICE_A, "P-123", r#"{"ts": 1, "value": "#);
    publish(DEVICE_B, "P-123", r#"{"ts": 1, "value": 2}"#);
    let series = |reason: &str| {
        format!("aquatwin_messages_rejected_total{{gateway=\"mqtt\",reason=\"{reason}\"}}")
    };
    assert_eq!(serve.metric(&series("unauthenticated")), 1.0);
    assert_eq!(serve.metric(&series("malformed")), 1.0);
    assert_eq!(serve.metric(&series("forbidden")), 1.0);
    assert_eq!(
        serve.readings("P-123"),
        vec![(t, 60.5)],
        "nothing refused was stored"
    );

    // paho-mqtt, pipelined QoS 1: every message acknowledged and stored.
    let count = 200;
    let output = Command::new("python3")
        .arg(format!("{ROOT}/actors/tests/peers/paho_publish.py"))
        .args(["127.0.0.1", &port.to_string(), DEVICE_B.0, DEVICE_B.1])
        .args([&sensor_topic("F-101", "data"), &count.to_string(), "10"])
        .output()
        .expect("python3 with paho-mqtt");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["connected"], 0);
    let acked = report["acked"].as_array().unwrap();
    assert!(
        acked.iter().all(|a| a.is_number()),
        "every PUBACK: {report}"
    );
    // The script's message i is {"ts": 1700000000000 + i, "value": i}.
    let expected: Vec<(i64, f64)> = (0..count)
        .map(|i| (1_700_000_000_000 + i, i as f64))
        .collect();
    assert_eq!(serve.readings("F-101"), expected);
    assert_eq!(
        serve.metric("aquatwin_readings_accepted_total{gateway=\"mqtt\"}"),
        3.0 + count as f64
    );
}

#[test]
fn external_mosquitto_broker_with_mqtt_url() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("serve-external");
    // No [mqtt] section: --mqtt-url decides.
    let config = write_config(dir.path(), "");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let serve = Serve::start(&config, &["--mqtt-url", &url]);
    assert!(serve.mqtt.is_none(), "no embedded broker");
    let publish = |message: &str| {
        let topic = sensor_topic("L-T2", "data");
        mosquitto_pub(broker.port, None, &topic, message)
            .status
            .success()
    };
    let t = now_ms();
    // The external broker authenticates devices (here it allows anyone); serve maps the topic's
    // sensor to its device.
    assert!(publish(&format!(
        r#"[{{"ts": {t}, "value": 21.5}}, {{"ts": {}, "value": 21.75}}]"#,
        t + 1
    )));
    assert!(publish("not json"));
    assert!(
        serve.wait_for(Duration::from_secs(10), || serve.readings("L-T2").len()
            == 2),
        "{}",
        serve.log()
    );
    assert_eq!(serve.readings("L-T2"), vec![(t, 21.5), (t + 1, 21.75)]);
    assert!(serve.wait_for(Duration::from_secs(5), || {
        serve.metric("aquatwin_messages_rejected_total{gateway=\"mqtt\",reason=\"malformed\"}")
            == 1.0
    }));
}
