//! `aquatwin serve --config`: every configuration error names the file, the place and the cause,
//! and ends with exit status 2 before anything starts.

mod serve_support;

use std::process::Command;

use serve_support::*;

/// Runs serve on `config` with `edit` applied to the good test configuration; returns stderr.
fn refused(label: &str, edit: impl Fn(String) -> String) -> String {
    let dir = TempDir::new(label);
    let path = write_config(dir.path(), EMBEDDED_MQTT);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{label}: {stderr}");
    assert!(
        stderr.contains("aquatwin.toml"),
        "{label}: the file is named: {stderr}"
    );
    stderr
}

#[test]
fn a_literal_session_key_is_refused_with_its_place() {
    let stderr = refused("literal-key", |text| {
        text.replace(
            "nwk_s_key = \"file:c.nwk\"",
            &format!("nwk_s_key = \"{}\"", DEVICE_C.2),
        )
    });
    assert!(
        stderr.contains("municipality[0].devices[2].lorawan.nwk_s_key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("env:VAR") && stderr.contains("file:PATH"),
        "{stderr}"
    );
}

#[test]
fn a_missing_secret_variable_is_named() {
    let stderr = refused("missing-env", |text| {
        text.replace(
            "app_s_key = \"file:c.app\"",
            "app_s_key = \"env:AQUATWIN_TEST_SURELY_UNSET\"",
        )
    });
    assert!(stderr.contains("devices[2].lorawan.app_s_key"), "{stderr}");
    assert!(stderr.contains("AQUATWIN_TEST_SURELY_UNSET"), "{stderr}");
}

#[test]
fn a_device_key_must_be_a_digest() {
    let digest = sha256_hex(DEVICE_B.1);
    let stderr = refused("bad-digest", |text| text.replace(&digest, "not-hex"));
    assert!(
        stderr.contains("municipality[0].devices[1].key_sha256"),
        "{stderr}"
    );
    assert!(stderr.contains("64 hexadecimal digits"), "{stderr}");
}

#[test]
fn a_device_sensor_must_be_in_the_sensors_file() {
    let stderr = refused("unknown-sensor", |text| {
        text.replace("sensors = [\"F-101\"]", "sensors = [\"F-101\", \"F-999\"]")
    });
    assert!(
        stderr.contains("municipality[0].devices[1].sensors[1]"),
        "{stderr}"
    );
    assert!(stderr.contains("F-999"), "{stderr}");
}

#[test]
fn syntax_errors_give_the_line() {
    let stderr = refused("syntax", |text| {
        text.replace("period_seconds = 0.5", "period_seconds = =")
    });
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn unknown_fields_and_bad_addresses_are_refused() {
    let stderr = refused("unknown-field", |text| {
        text.replace("[http]", "[http]\nport = 3")
    });
    assert!(stderr.contains("port"), "{stderr}");
    let stderr = refused("bad-address", |text| {
        text.replace(
            "listen = \"127.0.0.1:0\"\nbody",
            "listen = \"localhost\"\nbody",
        )
    });
    assert!(stderr.contains("http.listen"), "{stderr}");
}

#[test]
fn a_network_that_does_not_read_is_named() {
    let stderr = refused("bad-network", |text| {
        text.replace(
            "hydraulics/networks/Net3.inp",
            "hydraulics/networks/NoSuch.inp",
        )
    });
    assert!(stderr.contains("municipality[0].network"), "{stderr}");
}

#[test]
fn bad_detection_and_subscription_settings_are_named() {
    let stderr = refused("training-days", |text| {
        text.replace(
            "period_seconds = 0.5",
            "period_seconds = 0.5\ndetection_training_days = -2",
        )
    });
    assert!(
        stderr.contains("municipality[0].detection_training_days"),
        "{stderr}"
    );
    let stderr = refused("subscription", |text| {
        format!(
            "{text}\n[[municipality.subscriptions]]\nid = \"hook\"\nevents = [\"raised\"]\n\
             target = {{ type = \"webhook\", url = \"ftp://nowhere\", format = \"slack\" }}\n"
        )
    });
    assert!(
        stderr.contains("municipality[0].subscriptions[0]"),
        "{stderr}"
    );
    let stderr = refused("generated-secret", |text| {
        format!(
            "{text}\n[[municipality.subscriptions]]\nid = \"hook\"\nevents = [\"raised\"]\n\
             target = {{ type = \"webhook\", url = \"http://127.0.0.1:9/\", format = \"json\", \
             secret = \"generated\" }}\n"
        )
    });
    assert!(
        stderr.contains("municipality[0].subscriptions[0].target.secret")
            && stderr.contains("over the API"),
        "{stderr}"
    );
    let stderr = refused("alert-rule", |text| {
        format!(
            "{text}\n[[municipality.alert_rules]]\nsensor_kind = \"pressure\"\n\
             below = 40.0\nabove = 30.0\n"
        )
    });
    assert!(
        stderr.contains("municipality[0].alert_rules[0].below"),
        "{stderr}"
    );
    let stderr = refused("reserved-id", |text| {
        text.replace("id = \"north\"", "id = \"_platform\"")
    });
    assert!(stderr.contains("municipality[0].id"), "{stderr}");
}

/// The configuration with `section`'s `key` set to `value` (a section of its own after
/// `data_dir`).
fn with_setting(text: &str, section: &str, key: &str, value: &str) -> String {
    text.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"data\"\n[{section}]\n{key} = {value}"),
    )
}

/// Each of `values` of `section`'s `key` is refused, naming the key and the value.
fn refused_values(section: &str, key: &str, values: &[&str]) {
    for value in values {
        let label = format!("{key}-{value}");
        let stderr = refused(&label, |text| with_setting(&text, section, key, value));
        assert!(
            stderr.contains(&format!("{section}.{key}")) && stderr.contains(value),
            "{label}: {stderr}"
        );
    }
}

#[test]
fn a_delivery_history_bound_must_be_usable() {
    refused_values("notify", "history_per_subscription", &["0", "10000001"]);
}

#[test]
fn an_access_token_lifetime_must_be_a_minute_to_a_day() {
    refused_values("auth", "access_token_minutes", &["0", "1441"]);
}

#[test]
fn access_tokens_live_as_long_as_configured() {
    let dir = TempDir::new("token-lifetime");
    let path = write_config(dir.path(), EMBEDDED_MQTT);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        with_setting(&text, "auth", "access_token_minutes", "2"),
    )
    .unwrap();
    let viewer = ("north-viewer", "password-of-the-north-viewer");
    create_viewer(&dir.path().join("data"), viewer, MUNICIPALITY);
    let serve = Serve::start(&path, &[]);
    let (status, answer) = try_login(serve.http, viewer.0, viewer.1);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["expires_in"], 120, "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    let sensors = format!("/api/v1/municipalities/{MUNICIPALITY}/sensors");
    let (status, body) = serve.get_as(token, &sensors);
    assert_eq!(status, 200, "{body}");
}
