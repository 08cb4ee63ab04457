//! From a sensor's readings to a signed webhook: `aquatwin serve` as a process with a webhook
//! subscription in its configuration; a device sends readings that are out of range until the
//! twin raises a sensor fault, and a receiver (Python, checking the HMAC with its own `hmac`
//! module) gets the alert, signed, naming the sensor; it is the alert the API lists.

mod serve_support;

use std::time::Duration;

use serve_support::*;

const SECRET: &str = "webhook-secret-of-the-notify-test";

#[test]
fn a_sensor_fault_reaches_a_signed_webhook() {
    let dir = TempDir::new("serve-notify");
    let log = dir.path().join("webhook.jsonl");
    let receiver = WebhookReceiver::start(0, SECRET, &log);
    let port = receiver.port;
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        "period_seconds = 0.5",
        "period_seconds = 0.5\nescalation = { unacknowledged_after_minutes = 0.02, max_escalations = 1 }",
    );
    text.push_str(&format!(
        "\n[[municipality.subscriptions]]\nid = \"ops-hook\"\nevents = [\"*\"]\n\
         target = {{ type = \"webhook\", url = \"http://127.0.0.1:{port}/hook\", \
         secret = \"file:hook.secret\", format = \"json\" }}\n"
    ));
    std::fs::write(&config, text).unwrap();
    let serve = Serve::start(&config, &[]);

    // Far out of any pressure sensor's range: flagged, and after enough of them a fault.
    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &fault_batch(now_ms()),
    );

    let delivered = serve.wait_for(Duration::from_secs(15), || {
        !webhook_requests(&log).is_empty()
    });
    assert!(delivered, "no webhook call; serve log:\n{}", serve.log());
    let record = &webhook_requests(&log)[0];
    assert_eq!(record["path"], "/hook");
    assert_eq!(record["signature_ok"], true, "{record}");
    assert_eq!(record["status"], 200);
    let notification: serde_json::Value =
        serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(notification["event"], "raised", "{notification}");
    assert_eq!(notification["municipality"], MUNICIPALITY);
    assert_eq!(
        notification["alert"]["kind"], "sensor_fault",
        "{notification}"
    );
    assert!(
        notification.to_string().contains("P-123"),
        "the alert names the sensor: {notification}"
    );
    // The alert the webhook announced is the one the API lists.
    let (status, alerts) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/alerts"));
    assert_eq!(status, 200);
    assert_eq!(
        alerts["alerts"][0]["id"], notification["alert"]["id"],
        "{alerts}"
    );
}
