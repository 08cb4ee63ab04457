//! `aquatwin fleet` as users run it: provisioning (secrets stay out of serve's configuration),
//! the reference run against a raw Mosquitto broker, every transport into a provisioned
//! `serve` (counted there as stored), and `aquatwin demo`.

mod serve_support;

use std::process::Command;

use serve_support::*;

fn aquatwin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(args)
        .output()
        .unwrap()
}

fn provision(dir: &std::path::Path, sensors: &str) -> std::path::PathBuf {
    let twin = dir.join("twin");
    let output = aquatwin(&[
        "fleet",
        "--provision",
        twin.to_str().unwrap(),
        "--network",
        &format!("{ROOT}/hydraulics/networks/Net3.inp"),
        "--sensors",
        sensors,
        "--connections",
        "3",
        "--municipality",
        MUNICIPALITY,
    ]);
    assert!(output.status.success(), "{output:?}");
    let config = twin.join("aquatwin.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = ["127.0.0.1:8080", "127.0.0.1:1883", "127.0.0.1:1700"]
        .iter()
        .fold(text, |text, address| text.replace(address, "127.0.0.1:0"));
    std::fs::write(&config, text).unwrap();
    twin
}

#[test]
fn provisioning_keeps_device_secrets_out_of_the_serve_configuration() {
    let dir = TempDir::new("fleet-provision");
    let twin = provision(dir.path(), "30");
    let fleet: toml::Table =
        toml::from_str(&std::fs::read_to_string(twin.join("fleet.toml")).unwrap()).unwrap();
    let serve_config = std::fs::read_to_string(twin.join("aquatwin.toml")).unwrap();
    let devices = fleet["device"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let mut sensors = 0;
    for device in devices {
        let key = device["key"].as_str().unwrap();
        assert!(
            !serve_config.contains(key),
            "a device key in the serve configuration"
        );
        assert!(
            serve_config.contains(&sha256_hex(key)),
            "its digest is there"
        );
        for secret in ["nwk_s_key", "app_s_key"] {
            assert!(!serve_config.contains(device[secret].as_str().unwrap()));
        }
        sensors += device["sensors"].as_array().unwrap().len();
    }
    assert_eq!(sensors, 30, "every sensor has a device");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(twin.join("fleet.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the fleet file holds keys: owner only");
    }
    let parsed =
        twin::sensors_file::parse(&std::fs::read_to_string(twin.join("sensors.toml")).unwrap())
            .unwrap();
    assert_eq!(parsed.len(), 30);
}

#[test]
fn every_transport_reaches_a_provisioned_serve() {
    let dir = TempDir::new("fleet-transports");
    let twin = provision(dir.path(), "24");
    let serve = Serve::start(&twin.join("aquatwin.toml"), &[]);
    let fleet_file = twin.join("fleet.toml");
    let mut acked = Vec::new();
    for (transport, target, gateway, count) in [
        ("mqtt", serve.mqtt.unwrap().to_string(), "mqtt", 300),
        ("mqtt-batch", serve.mqtt.unwrap().to_string(), "mqtt", 1000),
        ("http", serve.http.to_string(), "http", 1000),
        ("lorawan", serve.lorawan.to_string(), "lorawan_udp", 240),
    ] {
        let series = format!("aquatwin_readings_accepted_total{{gateway=\"{gateway}\"}}");
        let before = serve.metric(&series);
        let log = dir.path().join(format!("acked-{transport}.csv"));
        let output = aquatwin(&[
            "fleet",
            "--config",
            fleet_file.to_str().unwrap(),
            "--transport",
            transport,
            "--target",
            &target,
            "--count",
            &count.to_string(),
            "--batch",
            "20",
            "--acked-log",
            log.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{transport}: {output:?}");
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["sent"], count, "{transport}: {summary}");
        assert_eq!(summary["acknowledged"], count, "{transport}: {summary}");
        // LoRaWAN's PUSH_ACK says "received": storage follows shortly.
        assert!(
            serve.wait_for(std::time::Duration::from_secs(5), || {
                serve.metric(&series) - before == count as f64
            }),
            "{transport}: serve stored {} of {count}",
            serve.metric(&series) - before
        );
        acked.extend(std::fs::read_to_string(&log).unwrap().lines().map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let value: f64 = fields[2].parse().unwrap();
            (
                fields[0].to_string(),
                fields[1].parse::<i64>().unwrap(),
                value.to_bits(),
            )
        }));
    }
    // Every reading the fleet recorded as acknowledged is stored as it was sent.
    assert_eq!(acked.len(), 300 + 1000 + 1000 + 240);
    let mut stored = std::collections::HashMap::new();
    for (sensor, ts, bits) in &acked {
        let points = stored.entry(sensor.clone()).or_insert_with(|| {
            serve
                .readings(sensor)
                .into_iter()
                .map(|(ts, value)| (ts, value.to_bits()))
                .collect::<std::collections::HashSet<_>>()
        });
        assert!(
            points.contains(&(*ts, *bits)),
            "{sensor} at {ts} not stored as sent"
        );
    }
}

#[test]
fn reference_run_against_a_raw_mosquitto() {
    let output = aquatwin(&[
        "fleet",
        "--against-mosquitto",
        "--network",
        &format!("{ROOT}/hydraulics/networks/Net3.inp"),
        "--sensors",
        "20",
        "--count",
        "500",
        "--json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["acknowledged"], 500, "{summary}");
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn demo_runs_the_live_twin_of_net3() {
    let output = aquatwin(&["demo", "--duration", "3"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let periods: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains(" yes ") && line.contains("P-"))
        .collect();
    assert!(
        periods.len() >= 2,
        "periods with measured pressures:\n{stdout}"
    );
    let fleet = stdout.lines().find(|l| l.starts_with("fleet:")).unwrap();
    let numbers: Vec<u64> = fleet
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        numbers[0] > 0 && numbers[0] == numbers[1],
        "all sent were stored: {fleet}"
    );
}
