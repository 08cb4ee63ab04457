//! The embedded MQTT broker driven by real peers: Mosquitto's `mosquitto_pub` /
//! `mosquitto_sub` and Python paho-mqtt (`tests/peers/paho_publish.py`).

mod gateway_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use actors::devices::{key_digest, LorawanSession};
use actors::gateway::mqtt_broker::{
    start_mqtt_broker, BrokerHandle, BrokerOptions, HealthSensors, IntegrationUser,
};
use actors::ingest::{Gateway, RejectReason};
use base64::Engine as _;
use gateway_support::*;
use twin::Reading;

const LIMIT: Duration = Duration::from_secs(20);

fn devices() -> Vec<actors::devices::Device> {
    vec![
        device("dev-1", "town", &["p1", "f1", "dev-1.battery"]),
        device("dev-2", "town", &["p2"]),
        device("dev-x", "village", &["px"]),
        lorawan_device(
            "lora-1",
            &["lp1", "lf1"],
            LorawanSession {
                dev_eui: Some([0x70, 0xB3, 0xD5, 0x7E, 0xD0, 0, 0, 1]),
                dev_addr: 0x2601_1234,
                nwk_s_key: [1; 16],
                app_s_key: [2; 16],
            },
        ),
    ]
}

async fn start(twin: &FakeTwin, options: BrokerOptions) -> BrokerHandle {
    start_mqtt_broker(localhost(0), twin.ingest.clone(), options)
        .await
        .unwrap()
}

/// `mosquitto_pub` as `user` with `<user>-key`, QoS 1.
fn mosquitto_pub(broker: &BrokerHandle, user: &str, topic: &str, message: &str) -> Command {
    mosquitto_pub_with_password(broker, user, &format!("{user}-key"), topic, message)
}

fn mosquitto_pub_with_password(
    broker: &BrokerHandle,
    user: &str,
    password: &str,
    topic: &str,
    message: &str,
) -> Command {
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(broker.local_addr().port().to_string())
        .args([
            "-u", user, "-P", password, "-q", "1", "-t", topic, "-m", message,
        ]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_single_and_batch_readings_are_stored() {
    let twin = FakeTwin::new(devices());
    let broker = start(&twin, BrokerOptions::default()).await;
    let single = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": "2026-11-22T20:00:00.250Z", "value": 42.5, "unit": "m"}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(single.status.success(), "{single:?}");
    // mosquitto_pub exits after the PUBACK: the reading is stored by then.
    assert_eq!(
        twin.readings(),
        vec![Reading::new("p1", 1_795_377_600_250, 42.5).with_unit("m")]
    );
    let batch: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"ts": {}, "value": {}}}"#,
                1_000 + i,
                f64::from(i) * 0.5
            )
        })
        .collect();
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/f1/data",
            &format!("[{}]", batch.join(",")),
        ),
        LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let expected: Vec<Reading> = (0..50)
        .map(|i| Reading::new("f1", 1_000 + i64::from(i), f64::from(i) * 0.5))
        .collect();
    assert_eq!(twin.readings()[1..], expected[..]);
    assert_eq!(twin.metrics.accepted_count(Gateway::Mqtt), 51);
    // QoS 0: stored too, with nothing to wait for.
    let output = run(
        mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 5, "value": -5}"#,
        )
        .args(["-q", "0"]),
        LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        twin.wait_readings(52).await[51],
        Reading::new("p1", 5, -5.0)
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_and_the_broker_keeps_serving() {
    let twin = FakeTwin::new(devices());
    let broker = start(
        &twin,
        BrokerOptions {
            max_packet_size: 2048,
            ..BrokerOptions::default()
        },
    )
    .await;
    let count = |reason| twin.metrics.rejected_count(Gateway::Mqtt, reason);

    let wrong_key = run(
        &mut mosquitto_pub_with_password(
            &broker,
            "dev-1",
            "dev-2-key",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 1, "value": 1}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(!wrong_key.status.success());
    let unknown = run(
        &mut mosquitto_pub(&broker, "nobody", "aquatwin/town/sensors/p1/data", "{}"),
        LIMIT,
    )
    .await;
    assert!(!unknown.status.success());
    assert_eq!(count(RejectReason::Unauthenticated), 2);

    // Refused publishes are still acknowledged (MQTT 3.1.1 has no negative PUBACK).
    for (user, topic, message, reason, total) in [
        (
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            "{\"ts\": 1, \"value\": }",
            RejectReason::Malformed,
            1,
        ),
        (
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 1, "value": 1, "x": 0}"#,
            RejectReason::Malformed,
            2,
        ),
        (
            "dev-1",
            "aquatwin/village/sensors/px/data",
            r#"{"ts": 1, "value": 1}"#,
            RejectReason::Forbidden,
            1,
        ),
        (
            "dev-1",
            "aquatwin/town/sensors/p2/data",
            r#"{"ts": 1, "value": 1}"#,
            RejectReason::Forbidden,
            2,
        ),
        (
            "dev-1",
            "application/1/device/70b3d57ed0000001/event/up",
            "{}",
            RejectReason::Forbidden,
            3,
        ),
    ] {
        let output = run(&mut mosquitto_pub(&broker, user, topic, message), LIMIT).await;
        assert!(output.status.success(), "{topic} {message}: {output:?}");
        assert_eq!(count(reason), total, "{topic} {message}");
    }

    let too_large = format!(r#"{{"ts": 1, "value": 1, "unit": "{}"}}"#, "m".repeat(4000));
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            &too_large,
        ),
        LIMIT,
    )
    .await;
    assert!(!output.status.success());
    assert_eq!(count(RejectReason::TooLarge), 1);

    // Garbage instead of MQTT: the connection is dropped, counted.
    let mut raw = TcpStream::connect(broker.local_addr()).unwrap();
    raw.write_all(&[0x10, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .unwrap();
    let mut rest = Vec::new();
    raw.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = raw.read_to_end(&mut rest);
    assert!(rest.is_empty(), "answered garbage with {rest:?}");
    eventually("the malformed CONNECT to be counted", || {
        count(RejectReason::Malformed) == 3
    })
    .await;

    assert!(twin.readings().is_empty());
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 7, "value": 7}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(twin.readings(), vec![Reading::new("p1", 7, 7.0)]);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_receives_broker_publishes_inside_its_municipality_only() {
    let twin = FakeTwin::new(devices());
    let broker = start(&twin, BrokerOptions::default()).await;
    let port = broker.local_addr().port().to_string();
    let subscriber = ChildGuard::spawn(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "dev-2",
        "-P",
        "dev-2-key",
        "-q",
        "1",
        "-C",
        "2",
        "-v",
        "-t",
        "aquatwin/town/alerts",
        "-t",
        "aquatwin/town/sensors/+/data",
    ]));
    eventually("mosquitto_sub to subscribe", || {
        broker.publish("aquatwin/town/alerts", "warm-up") > 0
    })
    .await;
    let alert = r#"{"kind": "leak", "link": "P-12"}"#;
    assert_eq!(broker.publish("aquatwin/town/alerts", alert), 1);
    assert_eq!(broker.publish("aquatwin/village/alerts", "not for town"), 0);
    let output = subscriber.finish(LIMIT).await;
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], format!("aquatwin/town/alerts {alert}"));

    // Another municipality's topics are refused at SUBSCRIBE.
    let refused = run(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "dev-x",
            "-P",
            "dev-x-key",
            "-t",
            "aquatwin/town/alerts",
            "-W",
            "3",
        ]),
        LIMIT,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("denied"),
        "{refused:?}"
    );
    broker.shutdown().await;
}

/// Runs `paho_publish.py` and returns (CONNACK code, send times, PUBACK times).
async fn paho(
    broker: &BrokerHandle,
    user: &str,
    topic: &str,
    count: usize,
    wait_seconds: f64,
) -> (i64, Vec<f64>, Vec<Option<f64>>) {
    let output = run(
        Command::new("python3")
            .arg(peer_script("paho_publish.py"))
            .args(["127.0.0.1", &broker.local_addr().port().to_string(), user])
            .arg(format!("{user}-key"))
            .args([topic, &count.to_string(), &wait_seconds.to_string()]),
        LIMIT + Duration::from_secs_f64(wait_seconds),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let times = |key: &str| -> Vec<Option<f64>> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(serde_json::Value::as_f64)
            .collect()
    };
    let sent = times("sent").into_iter().map(Option::unwrap).collect();
    (report["connected"].as_i64().unwrap(), sent, times("acked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_pubacks_arrive_only_after_storage_in_order() {
    let twin = FakeTwin::new(devices());
    let delay = Duration::from_millis(300);
    twin.set_answer(Answer::StoreAfter(delay));
    let broker = start(&twin, BrokerOptions::default()).await;
    let count = 200;
    let (connected, sent, acked) = paho(
        &broker,
        "dev-1",
        "aquatwin/town/sensors/p1/data",
        count,
        10.0,
    )
    .await;
    assert_eq!(connected, 0);
    let acked: Vec<f64> = acked
        .into_iter()
        .map(|a| a.expect("every PUBACK arrives"))
        .collect();
    let stored = twin.stored();
    assert_eq!(stored.len(), count);
    let values: Vec<f64> = twin.readings().iter().map(|r| r.value).collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sorted, (0..count).map(|i| i as f64).collect::<Vec<_>>());
    for (i, (sent, acked)) in sent.iter().zip(&acked).enumerate() {
        let answered = stored
            .iter()
            .find(|s| s.readings[0].value == i as f64)
            .unwrap()
            .answered
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            *acked >= answered,
            "message {i}: PUBACK at {acked}, stored at {answered}"
        );
        assert!(acked - sent >= delay.as_secs_f64() * 0.99, "message {i}");
    }
    // Pipelined: 200 messages at 300 ms each took far less than 200 × 300 ms.
    let span = acked.last().unwrap() - sent[0];
    assert!(span < 5.0, "200 publishes took {span} s: not pipelined");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstored_publish_is_not_acknowledged_and_is_resent() {
    let twin = FakeTwin::new(devices());
    twin.set_answer(Answer::Unavailable);
    let broker = start(&twin, BrokerOptions::default()).await;
    let paho_run = paho(&broker, "dev-1", "aquatwin/town/sensors/p1/data", 1, 8.0);
    let heal = async {
        eventually("the refused attempt", || {
            twin.metrics
                .rejected_count(Gateway::Mqtt, RejectReason::Unavailable)
                > 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        twin.set_answer(Answer::Store);
    };
    let ((connected, _, acked), ()) = tokio::join!(paho_run, heal);
    assert_eq!(connected, 0);
    assert!(
        acked[0].is_some(),
        "paho resent after reconnecting and got its PUBACK"
    );
    assert_eq!(
        twin.readings(),
        vec![Reading::new("p1", 1_700_000_000_000, 0.0)]
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chirpstack_uplinks_and_device_status() {
    let twin = FakeTwin::new(devices());
    let mut health_sensors = std::collections::HashMap::new();
    health_sensors.insert(
        "dev-1".to_string(),
        HealthSensors {
            battery: Some("dev-1.battery".to_string()),
            signal: None,
        },
    );
    let broker = start(
        &twin,
        BrokerOptions {
            chirpstack_user: Some(IntegrationUser {
                user: "chirpstack".into(),
                key_sha256: key_digest("chirpstack-key"),
            }),
            health_sensors,
            ..BrokerOptions::default()
        },
    )
    .await;
    let record = |index: u8, value: f32| {
        let mut bytes = vec![index];
        bytes.extend(value.to_be_bytes());
        bytes
    };
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let topic = "application/4f1c/device/70b3d57ed0000001/event/up";
    let v4 = format!(
        r#"{{"deduplicationId": "3ac7e3c4", "time": "2026-11-22T20:00:01Z",
            "deviceInfo": {{"tenantId": "52f14cd4", "applicationId": "4f1c", "devEui": "70b3d57ed0000001"}},
            "devAddr": "26011234", "fCnt": 10, "fPort": 1, "confirmed": false, "data": "{}",
            "rxInfo": [{{"gatewayId": "0016c001ff10d3f6", "rssi": -57, "snr": 10}}]}}"#,
        b64(&[record(0, 3.25), record(1, -1.5)].concat())
    );
    let v3 = format!(
        r#"{{"applicationID": "1", "deviceName": "lora-1", "devEUI": "{}", "fCnt": 11, "fPort": 1,
            "data": "{}", "rxInfo": [{{"time": "2026-11-22T20:00:02Z", "rssi": -60}}]}}"#,
        b64(&[0x70, 0xB3, 0xD5, 0x7E, 0xD0, 0, 0, 1]),
        b64(&record(1, 8.0))
    );
    for event in [&v4, &v3] {
        let output = run(
            &mut mosquitto_pub(&broker, "chirpstack", topic, event),
            LIMIT,
        )
        .await;
        assert!(output.status.success(), "{output:?}");
    }
    let t0 = 1_795_377_600_000;
    assert_eq!(
        twin.readings(),
        vec![
            Reading::new("lp1", t0 + 1000, 3.25),
            Reading::new("lf1", t0 + 1000, -1.5),
            Reading::new("lf1", t0 + 2000, 8.0),
        ]
    );
    assert_eq!(twin.metrics.accepted_count(Gateway::Chirpstack), 3);
    for bad in [
        "not json",
        r#"{"devEUI": "70b3d57ed0000001", "fPort": 1, "data": "%%"}"#,
    ] {
        let output = run(&mut mosquitto_pub(&broker, "chirpstack", topic, bad), LIMIT).await;
        assert!(output.status.success());
    }
    assert_eq!(
        twin.metrics
            .rejected_count(Gateway::Chirpstack, RejectReason::Malformed),
        2
    );
    // The integration user publishes uplinks only.
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "chirpstack",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 1, "value": 1}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(output.status.success());
    assert_eq!(
        twin.metrics
            .rejected_count(Gateway::Mqtt, RejectReason::Forbidden),
        1
    );

    // Device health: a heartbeat updates last-seen, a status with a battery is a reading.
    assert!(broker.last_seen("dev-2").is_none());
    let output = run(
        &mut mosquitto_pub(&broker, "dev-2", "aquatwin/town/sensors/p2/heartbeat", ""),
        LIMIT,
    )
    .await;
    assert!(output.status.success());
    assert!(broker.last_seen("dev-2").is_some());
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/status",
            r#"{"ts": 5, "battery": 3.61, "signal": -97}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(output.status.success());
    assert_eq!(
        twin.readings().last(),
        Some(&Reading::new("dev-1.battery", 5, 3.61))
    );
    assert_eq!(broker.health_messages(), 2);
    broker.shutdown().await;
}

/// A raw MQTT connection logged in as `device`.
fn raw_client(broker: &BrokerHandle, device: &str, keep_alive: u16) -> TcpStream {
    use rumqttc::mqttbytes::v4::{Connect, Packet};
    let mut stream = TcpStream::connect(broker.local_addr()).unwrap();
    let mut connect = Connect::new(device);
    connect.keep_alive = keep_alive;
    connect.set_login(device, format!("{device}-key"));
    let mut bytes = bytes::BytesMut::new();
    Packet::Connect(connect)
        .write(&mut bytes, usize::MAX)
        .unwrap();
    stream.write_all(&bytes).unwrap();
    let mut connack = [0; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_silent_and_slow_clients_do_not_hurt_the_broker() {
    let twin = FakeTwin::new(devices());
    let broker = start(
        &twin,
        BrokerOptions {
            subscriber_queue: 8,
            ..BrokerOptions::default()
        },
    )
    .await;

    // Random bytes, before and after a valid CONNECT.
    let mut state = 0x9e37_79b9_u32;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect()
    };
    for round in 0..100 {
        let garbage = random(1 + round * 7);
        let mut stream = if round % 2 == 0 {
            TcpStream::connect(broker.local_addr()).unwrap()
        } else {
            raw_client(&broker, "dev-1", 0)
        };
        let _ = stream.write_all(&garbage);
    }

    // Silence past 1.5 × keep-alive closes the connection.
    let mut silent = raw_client(&broker, "dev-2", 1);
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );

    // A subscriber that never reads is dropped once its queue is full, not buffered forever.
    let mut slow = raw_client(&broker, "dev-2", 0);
    let subscribe = rumqttc::mqttbytes::v4::Subscribe::new(
        "aquatwin/town/alerts",
        rumqttc::mqttbytes::QoS::AtMostOnce,
    );
    let mut bytes = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Subscribe(subscribe)
        .write(&mut bytes, usize::MAX)
        .unwrap();
    slow.write_all(&bytes).unwrap();
    eventually("the subscription", || {
        broker.publish("aquatwin/town/alerts", "warm-up") == 1
    })
    .await;
    let big = vec![b'x'; 64 * 1024];
    let mut published = 0;
    while broker.publish("aquatwin/town/alerts", big.clone()) == 1 {
        published += 1;
        assert!(published < 10_000, "the slow subscriber was never dropped");
        if published % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(broker.publish("aquatwin/town/alerts", "after"), 0);

    // Through all of it, the broker kept serving.
    let output = run(
        &mut mosquitto_pub(
            &broker,
            "dev-1",
            "aquatwin/town/sensors/p1/data",
            r#"{"ts": 9, "value": 9}"#,
        ),
        LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(twin.readings(), vec![Reading::new("p1", 9, 9.0)]);
    assert!(
        twin.metrics
            .rejected_count(Gateway::Mqtt, RejectReason::Malformed)
            > 0
    );
    broker.shutdown().await;
}
