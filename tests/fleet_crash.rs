//! Crash safety end to end: `aquatwin fleet` publishes (MQTT QoS 1 and HTTP) to a provisioned
//! `aquatwin serve` and records every acknowledged reading; serve is killed with SIGKILL
//! mid-run and restarted on the same data directory: every acknowledged reading is there.

mod serve_support;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::*;

fn aquatwin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
}

/// `(sensor, timestamp, value)` of every line of an acknowledged-readings log.
fn acknowledged(path: &std::path::Path) -> Vec<(String, i64, f64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut fields = line.split(',');
            let sensor = fields.next().unwrap().to_string();
            let ts = fields.next().unwrap().parse().unwrap();
            let value = fields.next().unwrap().parse().unwrap();
            (sensor, ts, value)
        })
        .collect()
}

#[test]
fn every_acknowledged_reading_survives_kill_9() {
    let dir = TempDir::new("fleet-crash");
    let provisioned = dir.path().join("twin");
    let status = aquatwin()
        .args(["fleet", "--provision"])
        .arg(&provisioned)
        .args(["--network", &format!("{ROOT}/hydraulics/networks/Net3.inp")])
        .args([
            "--sensors",
            "40",
            "--connections",
            "4",
            "--municipality",
            MUNICIPALITY,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let config = provisioned.join("aquatwin.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some(("listen" | "udp_listen", _)) => {
                line.replace(line.split('"').nth(1).unwrap(), "127.0.0.1:0")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();

    // Two fleets, each with half of the devices: a sensor never hears from both.
    let fleet: toml::Table =
        toml::from_str(&std::fs::read_to_string(provisioned.join("fleet.toml")).unwrap()).unwrap();
    let devices = fleet["device"].as_array().unwrap();
    let half = |part: &[toml::Value], name: &str| {
        let mut file = fleet.clone();
        file.insert("device".into(), toml::Value::Array(part.to_vec()));
        let path = provisioned.join(name);
        std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
        path
    };
    let mqtt_fleet = half(&devices[..2], "fleet-mqtt.toml");
    let http_fleet = half(&devices[2..], "fleet-http.toml");

    let mut serve = Serve::start(&config, &[]);
    let run_fleet =
        |transport: &str, fleet_file: &std::path::Path, target: String, log: &std::path::Path| {
            aquatwin()
                .args(["fleet", "--config"])
                .arg(fleet_file)
                .args(["--transport", transport, "--target", &target])
                .args([
                    "--connections",
                    "2",
                    "--rate",
                    "3000",
                    "--duration",
                    "8",
                    "--batch",
                    "10",
                ])
                .arg("--acked-log")
                .arg(log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
    let mqtt_log = dir.path().join("acked-mqtt.csv");
    let http_log = dir.path().join("acked-http.csv");
    let mut fleets = [
        run_fleet(
            "mqtt",
            &mqtt_fleet,
            serve.mqtt.unwrap().to_string(),
            &mqtt_log,
        ),
        run_fleet("http", &http_fleet, serve.http.to_string(), &http_log),
    ];
    // Let both fleets get going, then pull the plug.
    std::thread::sleep(Duration::from_millis(2500));
    serve.child.kill().unwrap();
    serve.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for fleet in &mut fleets {
        loop {
            if fleet.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = fleet.kill();
                let _ = fleet.wait();
                panic!("a fleet did not end after serve died");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let acked: Vec<_> = acknowledged(&mqtt_log)
        .into_iter()
        .chain(acknowledged(&http_log))
        .collect();
    assert!(
        acknowledged(&mqtt_log).len() > 100 && acknowledged(&http_log).len() > 100,
        "both fleets had readings acknowledged before the kill"
    );

    let serve = Serve::start(&config, &[]);
    let sensors: HashSet<&str> = acked.iter().map(|(sensor, _, _)| sensor.as_str()).collect();
    let stored: HashMap<&str, HashMap<i64, f64>> = sensors
        .iter()
        .map(|sensor| (*sensor, serve.readings(sensor).into_iter().collect()))
        .collect();
    // Stored exactly as sent: same time, same bits.
    let missing: Vec<_> = acked
        .iter()
        .filter(|(sensor, ts, value)| {
            stored[sensor.as_str()]
                .get(ts)
                .is_none_or(|stored| stored.to_bits() != value.to_bits())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged readings lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
