//! `mqtt_external` against a real Mosquitto broker started by the test (its own config file and
//! password file), fed by `mosquitto_pub`.

mod gateway_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use actors::devices::LorawanSession;
use actors::gateway::mqtt_external::{start_mqtt_external, ExternalHandle, ExternalOptions};
use actors::ingest::{Gateway, RejectReason};
use base64::Engine as _;
use gateway_support::*;
use twin::Reading;

const LIMIT: Duration = Duration::from_secs(20);

/// Mosquitto on a free port, with a password file holding the devices and aquatwin.
struct Mosquitto {
    _process: ChildGuard,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn add_user(passwords: &Path, user: &str, password: &str) {
    let status = Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(passwords)
        .args([user, password])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn start_mosquitto() -> Mosquitto {
    let port = free_tcp_port();
    let dir =
        std::env::temp_dir().join(format!("aquatwin-mosquitto-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "").unwrap();
    for user in ["dev-1", "dev-x", "chirpstack"] {
        add_user(&passwords, user, &format!("{user}-key"));
    }
    add_user(&passwords, "aquatwin", "aquatwin-key");
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             persistence false\nlog_dest none\nmax_inflight_messages 0\n",
            passwords.display()
        ),
    )
    .unwrap();
    let process = ChildGuard::spawn(Command::new("mosquitto").arg("-c").arg(&config));
    eventually("mosquitto to listen", || {
        std::net::TcpStream::connect(localhost(port)).is_ok()
    })
    .await;
    Mosquitto {
        _process: process,
        port,
        _dir: TempDir(dir),
    }
}

async fn connect(twin: &FakeTwin, broker: &Mosquitto) -> ExternalHandle {
    let mut options = ExternalOptions::new(format!("mqtt://127.0.0.1:{}", broker.port));
    options.client_id = "aquatwin-test".into();
    options.credentials = Some(("aquatwin".into(), "aquatwin-key".into()));
    let mut client = start_mqtt_external(options, twin.ingest.clone()).unwrap();
    tokio::time::timeout(LIMIT, client.subscribed())
        .await
        .unwrap();
    client
}

async fn publish(broker: &Mosquitto, user: &str, topic: &str, message: &str) {
    let output = run(
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port.to_string(),
                "-u",
                user,
            ])
            .args([
                "-P",
                &format!("{user}-key"),
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                message,
            ]),
        LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_from_an_external_broker_are_acknowledged_after_storage() {
    let twin = FakeTwin::new(vec![
        device("dev-1", "town", &["p1", "f1"]),
        device("dev-x", "village", &["px"]),
        lorawan_device(
            "lora-1",
            &["lp1"],
            LorawanSession {
                dev_eui: Some([0x70, 0xB3, 0xD5, 0x7E, 0xD0, 0, 0, 1]),
                dev_addr: 0x2601_1234,
                nwk_s_key: [1; 16],
                app_s_key: [2; 16],
            },
        ),
    ]);
    let broker = start_mosquitto().await;
    let client = connect(&twin, &broker).await;

    publish(
        &broker,
        "dev-1",
        "aquatwin/town/sensors/p1/data",
        r#"{"ts": 1000, "value": 1.5}"#,
    )
    .await;
    publish(
        &broker,
        "dev-1",
        "aquatwin/town/sensors/f1/data",
        r#"[{"ts": 2000, "value": 2}, {"ts": "1970-01-01T00:00:03Z", "value": 3}]"#,
    )
    .await;
    // Messages are stored concurrently: compare in time order.
    let mut readings = twin.wait_readings(3).await;
    readings.sort_by_key(|reading| reading.timestamp);
    assert_eq!(
        readings,
        vec![
            Reading::new("p1", 1000, 1.5),
            Reading::new("f1", 2000, 2.0),
            Reading::new("f1", 3000, 3.0),
        ]
    );
    // A ChirpStack v4 uplink event through the same broker.
    let data = base64::engine::general_purpose::STANDARD
        .encode([[0u8].as_slice(), &12.5f32.to_be_bytes()].concat());
    publish(
        &broker,
        "chirpstack",
        "application/4f1c/device/70b3d57ed0000001/event/up",
        &format!(
            r#"{{"deviceInfo": {{"devEui": "70b3d57ed0000001"}}, "fCnt": 1, "fPort": 1,
                "time": "1970-01-01T00:00:03.5Z", "data": "{data}"}}"#
        ),
    )
    .await;
    let readings = twin.wait_readings(4).await;
    assert_eq!(readings[3], Reading::new("lp1", 3500, 12.5));
    // The counter follows the store's answer: wait for it, do not race it.
    eventually("the ChirpStack reading counted", || {
        twin.metrics.accepted_count(Gateway::Chirpstack) == 1
    })
    .await;

    // The sensor of another municipality, an unknown sensor, malformed JSON: counted.
    publish(
        &broker,
        "dev-x",
        "aquatwin/town/sensors/px/data",
        r#"{"ts": 1, "value": 1}"#,
    )
    .await;
    publish(
        &broker,
        "dev-x",
        "aquatwin/village/sensors/nope/data",
        r#"{"ts": 1, "value": 1}"#,
    )
    .await;
    publish(&broker, "dev-1", "aquatwin/town/sensors/p1/data", "{").await;
    let count = |reason| twin.metrics.rejected_count(Gateway::Mqtt, reason);
    eventually("the refusals", || {
        count(RejectReason::Forbidden) == 1
            && count(RejectReason::UnknownSensor) == 1
            && count(RejectReason::Malformed) == 1
    })
    .await;

    // A message the twin never answers is never acknowledged: after a restart of our client
    // (same client id, persistent session) the broker delivers it again.
    twin.set_answer(Answer::Hold);
    publish(
        &broker,
        "dev-1",
        "aquatwin/town/sensors/p1/data",
        r#"{"ts": 4000, "value": 4}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.shutdown().await;
    twin.set_answer(Answer::Store);
    let client = connect(&twin, &broker).await;
    assert_eq!(
        twin.wait_readings(5).await[4],
        Reading::new("p1", 4000, 4.0)
    );
    // That one was acknowledged: another restart brings nothing new.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.shutdown().await;
    let client = connect(&twin, &broker).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twin.readings().len(), 5);
    client.shutdown().await;
}
