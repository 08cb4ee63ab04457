//! From a sensor's readings to a signed webhook: `aquatwin serve` as a process with a webhook
//! subscription in its configuration; a device sends readings that are out of range until the
//! twin raises a sensor fault, and a receiver (Python, checking the HMAC with its own `hmac`
//! module) gets the alert, signed, naming the sensor; it is the alert the API lists. Nobody
//! acknowledges it: after the municipality's escalation delay it is escalated once (its
//! severity one step up), and a second receiver subscribed to `escalated` only gets that, and
//! nothing more while the limit of one escalation holds. Over HTTPS (Python's `ssl`), a
//! receiver whose certificate a private CA signed gets the alert when the configuration names
//! that CA (`[notify] extra_ca_file`); one of another CA does not, and the delivery history
//! says why.

mod serve_support;

use std::time::Duration;

use serve_support::*;

const SECRET: &str = "webhook-secret-of-the-notify-test";
/// The escalation delay of the test (minutes), and in ms.
const ESCALATION_MINUTES: f64 = 0.02;
const ESCALATION_MS: i64 = (ESCALATION_MINUTES * 60_000.0) as i64;

/// The severity one step above `severity` (critical stays critical), as the API names them.
fn one_step_up(severity: &str) -> &'static str {
    match severity {
        "info" => "warning",
        "warning" | "critical" => "critical",
        other => panic!("unknown severity {other}"),
    }
}

/// The notifications a receiver logged, parsed, oldest first (each checked signed and 200).
fn notifications(log: &std::path::Path) -> Vec<serde_json::Value> {
    webhook_requests(log)
        .iter()
        .map(|record| {
            assert_eq!(record["signature_ok"], true, "{record}");
            assert_eq!(record["status"], 200, "{record}");
            serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn a_sensor_fault_reaches_a_signed_webhook() {
    let dir = TempDir::new("serve-notify");
    let log = dir.path().join("webhook.jsonl");
    let receiver = WebhookReceiver::start(0, SECRET, &log);
    let port = receiver.port;
    let escalation_log = dir.path().join("escalation.jsonl");
    let escalation_receiver = WebhookReceiver::start(0, SECRET, &escalation_log);
    let trusted_ca = TestCa::make(&dir.path().join("ca"));
    let trusted_log = dir.path().join("trusted.jsonl");
    let trusted_receiver = WebhookReceiver::start_tls(SECRET, &trusted_log, &trusted_ca);
    let other_ca = TestCa::make(&dir.path().join("other-ca"));
    let untrusted_log = dir.path().join("untrusted.jsonl");
    let untrusted_receiver = WebhookReceiver::start_tls(SECRET, &untrusted_log, &other_ca);
    let config = write_config(
        dir.path(),
        &format!("{EMBEDDED_MQTT}\n\n[notify]\nextra_ca_file = \"ca/ca.pem\""),
    );
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        "period_seconds = 0.5",
        &format!(
            "period_seconds = 0.5\nescalation = {{ unacknowledged_after_minutes = \
             {ESCALATION_MINUTES}, max_escalations = 1 }}"
        ),
    );
    for (id, events, scheme, port) in [
        ("ops-hook", "*", "http", port),
        (
            "escalation-hook",
            "escalated",
            "http",
            escalation_receiver.port,
        ),
        ("trusted-tls-hook", "raised", "https", trusted_receiver.port),
        (
            "untrusted-tls-hook",
            "raised",
            "https",
            untrusted_receiver.port,
        ),
    ] {
        text.push_str(&format!(
            "\n[[municipality.subscriptions]]\nid = \"{id}\"\nevents = [\"{events}\"]\n\
             target = {{ type = \"webhook\", url = \"{scheme}://127.0.0.1:{port}/hook\", \
             secret = \"file:hook.secret\", format = \"json\" }}\n"
        ));
    }
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

    // Over HTTPS: the receiver of the configured CA gets the same alert, signed; the one of
    // another CA gets nothing, and the delivery history names the TLS failure.
    let over_tls = serve.wait_for(Duration::from_secs(15), || {
        !webhook_requests(&trusted_log).is_empty()
    });
    assert!(
        over_tls,
        "no HTTPS webhook call; serve log:\n{}",
        serve.log()
    );
    let trusted = &notifications(&trusted_log)[0];
    assert_eq!(trusted["event"], "raised", "{trusted}");
    assert_eq!(trusted["alert"]["id"], notification["alert"]["id"]);
    let deliveries = format!(
        "/api/v1/municipalities/{MUNICIPALITY}/subscriptions/untrusted-tls-hook/deliveries"
    );
    let attempted = serve.wait_for(Duration::from_secs(15), || {
        serve.get(&deliveries).1["deliveries"]
            .as_array()
            .is_some_and(|attempts| !attempts.is_empty())
    });
    assert!(attempted, "no attempt to the untrusted receiver");
    let (status, history) = serve.get(&deliveries);
    assert_eq!(status, 200);
    let attempt = &history["deliveries"][0];
    assert_eq!(attempt["delivered"], false, "{attempt}");
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("tls: ") && error.contains("certificate"),
        "{attempt}"
    );
    assert!(webhook_requests(&untrusted_log).is_empty());

    // Unacknowledged: escalated once after the delay, one severity step up, to both receivers.
    let raised = &notification["alert"];
    let escalated = serve.wait_for(Duration::from_secs(15), || {
        !webhook_requests(&escalation_log).is_empty()
    });
    assert!(
        escalated,
        "no escalation after {ESCALATION_MS} ms; serve log:\n{}",
        serve.log()
    );
    let escalation = &notifications(&escalation_log)[0];
    assert_eq!(escalation["event"], "escalated", "{escalation}");
    let alert = &escalation["alert"];
    assert_eq!(alert["id"], raised["id"], "{escalation}");
    assert_eq!(alert["escalations"], 1, "{escalation}");
    assert_eq!(
        alert["severity"],
        one_step_up(raised["severity"].as_str().unwrap()),
        "{escalation}"
    );
    let waited_ms =
        alert["last_escalated_ms"].as_i64().unwrap() - alert["raised_ms"].as_i64().unwrap();
    assert!(
        waited_ms >= ESCALATION_MS,
        "escalated after {waited_ms} ms: {escalation}"
    );
    let everything = serve.wait_for(Duration::from_secs(10), || {
        notifications(&log).contains(escalation)
    });
    assert!(everything, "{:#?}", notifications(&log));

    // At most one escalation: nothing more comes in three more delays.
    std::thread::sleep(Duration::from_millis(3 * ESCALATION_MS as u64));
    let escalations = notifications(&escalation_log);
    assert!(
        escalations
            .iter()
            .all(|n| n["event"] == "escalated" && n["alert"]["escalations"] == 1),
        "{escalations:#?}"
    );
    let mut alert_ids: Vec<u64> = escalations
        .iter()
        .map(|n| n["alert"]["id"].as_u64().unwrap())
        .collect();
    alert_ids.sort_unstable();
    let mut distinct = alert_ids.clone();
    distinct.dedup();
    assert_eq!(alert_ids.len(), distinct.len(), "{escalations:#?}");
}
