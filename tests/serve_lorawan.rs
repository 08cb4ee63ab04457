//! `aquatwin serve` receiving LoRaWAN: over the Semtech UDP packet forwarder protocol, the
//! uplink built and encrypted by an independent implementation (Python `pamoja-lorawan`,
//! through the gateway's peer script `actors/tests/peers/lorawan_uplink.py`): the readings are
//! stored and used by the twin, a replayed frame and a frame with a bad MIC are refused and
//! counted; and as ChirpStack v4 uplink events published by the configured integration user
//! on the embedded broker (`mosquitto_pub`).

mod serve_support;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serve_support::*;

/// The PHYPayload (base64) of device C's uplink with `fcnt` carrying `payload` on FPort 1.
fn uplink(fcnt: u32, payload: &[u8]) -> String {
    let (_, dev_addr, nwk_s_key, app_s_key) = DEVICE_C;
    let output = Command::new("python3")
        .arg(format!("{ROOT}/actors/tests/peers/lorawan_uplink.py"))
        .args([dev_addr, nwk_s_key, app_s_key, &fcnt.to_string(), "1"])
        .arg(hex::encode(payload))
        .output()
        .expect("python3 with pamoja-lorawan");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Sends `phy` in a PUSH_DATA received at `time` (RFC 3339); returns whether PUSH_ACK came.
fn push_data(socket: &UdpSocket, token: u16, phy: &str, time: &str) -> bool {
    let size = base64::engine::general_purpose::STANDARD
        .decode(phy)
        .unwrap()
        .len();
    let json = format!(
        r#"{{"rxpk":[{{"tmst":1,"time":"{time}","chan":0,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/5","rssi":-57,"lsnr":8.5,"size":{size},"data":"{phy}"}}]}}"#
    );
    let mut datagram = vec![2, (token >> 8) as u8, token as u8, 0];
    datagram.extend_from_slice(&[0xAA, 0x55, 0x5A, 0, 0, 0, 0, 7]);
    datagram.extend_from_slice(json.as_bytes());
    socket.send(&datagram).unwrap();
    let mut answer = [0u8; 16];
    match socket.recv(&mut answer) {
        Ok(4) => answer[..4] == [2, (token >> 8) as u8, token as u8, 1],
        _ => false,
    }
}

fn records(values: &[(u8, f32)]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|(index, value)| {
            let mut record = vec![*index];
            record.extend_from_slice(&value.to_be_bytes());
            record
        })
        .collect()
}

#[test]
fn lorawan_uplinks_are_stored_and_replays_refused() {
    let dir = TempDir::new("serve-lorawan");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let serve = Serve::start(&config, &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(serve.lorawan).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // Device C reports P-123 (index 0) and L-T2 (index 1), values exact in f32.
    let t = now_ms() / 1000 * 1000;
    let time = |ms: i64| {
        let seconds = ms / 1000;
        let output = Command::new("date")
            .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let first = uplink(10, &records(&[(0, 62.25), (1, 19.5)]));
    assert!(push_data(&socket, 0x1234, &first, &time(t)));
    assert!(
        serve.wait_for(Duration::from_secs(5), || serve.readings("P-123").len()
            == 1),
        "{}",
        serve.log()
    );
    assert_eq!(serve.readings("P-123"), vec![(t, 62.25)]);
    assert_eq!(serve.readings("L-T2"), vec![(t, 19.5)]);
    let second = uplink(11, &records(&[(0, 62.75)]));
    assert!(push_data(&socket, 0x1235, &second, &time(t + 2000)));
    assert!(serve.wait_for(Duration::from_secs(5), || {
        serve.readings("P-123") == vec![(t, 62.25), (t + 2000, 62.75)]
    }));

    // The twin uses the LoRaWAN pressure: it is a residual of a later period.
    let state_path = format!("/api/v1/municipalities/{MUNICIPALITY}/state");
    assert!(serve.wait_for(Duration::from_secs(10), || {
        serve.get(&state_path).1["state"]["residuals"]
            .as_array()
            .is_some_and(|r| {
                r.iter().any(|r| {
                    r["sensor_id"] == "P-123"
                        && (r["measured"].as_f64().unwrap() - 62.75).abs() < 1e-9
                })
            })
    }));

    // A replayed frame and a frame whose MIC does not match are acknowledged by the packet
    // forwarder protocol (PUSH_ACK) but refused and counted.
    assert!(push_data(&socket, 0x1236, &first, &time(t + 4000)));
    let mut tampered = base64::engine::general_purpose::STANDARD
        .decode(uplink(12, &records(&[(0, 1.0)])))
        .unwrap();
    *tampered.last_mut().unwrap() ^= 0x01;
    let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
    assert!(push_data(&socket, 0x1237, &tampered, &time(t + 6000)));
    let series = |reason: &str| {
        format!("aquatwin_messages_rejected_total{{gateway=\"lorawan_udp\",reason=\"{reason}\"}}")
    };
    assert!(
        serve.wait_for(Duration::from_secs(5), || {
            serve.metric(&series("replay")) == 1.0 && serve.metric(&series("malformed")) == 1.0
        }),
        "replay {} malformed {}",
        serve.metric(&series("replay")),
        serve.metric(&series("malformed"))
    );
    assert_eq!(
        serve.readings("P-123").len(),
        2,
        "nothing refused was stored"
    );
    assert_eq!(
        serve.metric("aquatwin_readings_accepted_total{gateway=\"lorawan_udp\"}"),
        3.0
    );
}

#[test]
fn chirpstack_uplinks_through_the_embedded_broker() {
    let dir = TempDir::new("serve-chirpstack");
    let extra = format!(
        "{EMBEDDED_MQTT}\n\n[chirpstack]\nusername = \"chirpstack\"\nkey_sha256 = \"{}\"",
        sha256_hex("chirpstack-secret")
    );
    let config = write_config(dir.path(), &extra);
    let serve = Serve::start(&config, &[]);
    let port = serve.mqtt.unwrap().port();
    let topic = format!(
        "application/7/device/{}/event/up",
        DEVICE_C_EUI.to_lowercase()
    );
    let publish = |password: &str, event: &str| {
        mosquitto_pub(port, Some(("chirpstack", password)), &topic, event)
            .status
            .success()
    };
    let data = base64::engine::general_purpose::STANDARD.encode(records(&[(1, 18.25)]));
    let event = format!(
        r#"{{"deviceInfo": {{"devEui": "{}"}}, "fCnt": 4, "fPort": 1, "data": "{data}",
            "time": "2026-11-22T10:00:00.250Z"}}"#,
        DEVICE_C_EUI.to_lowercase()
    );
    assert!(publish("chirpstack-secret", &event));
    // 2026-11-22T10:00:00.250Z
    let t = 1_795_341_600_250;
    assert!(
        serve.wait_for(Duration::from_secs(5), || serve.readings("L-T2")
            == vec![(t, 18.25)]),
        "{:?}\n{}",
        serve.readings("L-T2"),
        serve.log()
    );
    assert!(
        !publish("wrong", &event),
        "the integration login is checked"
    );
    assert!(publish("chirpstack-secret", r#"{"deviceInfo": 5}"#));
    let series = |gateway: &str, reason: &str| {
        format!("aquatwin_messages_rejected_total{{gateway=\"{gateway}\",reason=\"{reason}\"}}")
    };
    assert!(serve.wait_for(Duration::from_secs(5), || {
        serve.metric(&series("chirpstack", "malformed")) == 1.0
    }));
    assert_eq!(serve.metric(&series("mqtt", "unauthenticated")), 1.0);
    assert_eq!(
        serve.metric("aquatwin_readings_accepted_total{gateway=\"chirpstack\"}"),
        1.0
    );
}
