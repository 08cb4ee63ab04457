//! Notifications delivered to real receivers: a Python webhook receiver that verifies the
//! HMAC signature with Python's `hmac` module (`tests/peers/webhook_receiver.py`), a Python
//! SMTP server (`aiosmtpd`, `tests/peers/smtp_receiver.py`) that parses the email with Python's
//! `email` package, a TCP receiver that never answers, and the webhook receiver over HTTPS
//! (Python's `ssl` module) with a certificate of a private CA made by `openssl` at test time.

mod serve_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::messages::{Alert, AlertChange, AlertKind, AlertLocation, Severity};
use aquatwin::notify::email::SmtpConfig;
use aquatwin::notify::retry::RetryPolicy;
use aquatwin::notify::secret::SecretRef;
use aquatwin::notify::subscriptions::{EventFilter, WebhookFormat};
use aquatwin::notify::webhook::read_ca_file;
use aquatwin::notify::{
    EventKind, Notification, Notifier, NotifierConfig, Subscription, SubscriptionStore, Target,
};
use serde_json::Value;
use serve_support::{KilledOnDrop, TempDir, TestCa};
use twin::store::MemoryStore;

/// A Python peer, killed when dropped (even when it fails to start), logging to a file.
struct Peer {
    _child: KilledOnDrop,
    port: u16,
    log: PathBuf,
}

impl Peer {
    fn start(script: &str, dir: &Path, args: &[&str]) -> Peer {
        let log = dir.join(format!("{script}.{}.log", args.len()));
        let mut child = KilledOnDrop(
            Command::new("python3")
                .arg(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/peers")
                        .join(script),
                )
                .arg("--log")
                .arg(&log)
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs"),
        );
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
            .parse()
            .unwrap();
        Peer {
            _child: child,
            port,
            log,
        }
    }

    /// The requests or messages received so far.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn at(&self, path: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|record| record["path"] == path)
            .collect()
    }
}

/// A `file:` secret reference holding `secret`, in `dir/name`.
fn secret_file(dir: &TempDir, name: &str, secret: &str) -> SecretRef {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    SecretRef::parse(&format!("file:{}", path.display())).unwrap()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alert(id: u64, open: bool) -> Alert {
    Alert {
        id,
        kind: AlertKind::Burst,
        severity: Severity::Critical,
        location: AlertLocation::Link("P-12".into()),
        estimated_flow: Some(12.5),
        raised_ms: 1_763_800_000_000,
        last_seen_ms: 1_763_800_060_000,
        occurrences: 1,
        message: "pressure drop at 3 sensors & inlet flow rise".into(),
        open,
        change: if open {
            AlertChange::Raised
        } else {
            AlertChange::Resolved
        },
        acknowledged: None,
        resolved_by: None,
        comments: Vec::new(),
        escalations: 0,
        last_escalated_ms: None,
    }
}

fn notification(event: EventKind, municipality: &str, alert: Alert) -> Notification {
    Notification {
        event,
        municipality: municipality.into(),
        alert,
    }
}

fn webhook(
    id: &str,
    events: &[&str],
    url: String,
    secret: Option<SecretRef>,
    format: WebhookFormat,
) -> Subscription {
    Subscription {
        id: id.into(),
        events: events
            .iter()
            .map(|event| EventFilter::try_from(event.to_string()).unwrap())
            .collect(),
        target: Target::Webhook {
            url,
            secret,
            format,
        },
    }
}

fn fast_retries(attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        timeout,
    }
}

/// Slack's documented shape of an incoming-webhook message with blocks: a `text` fallback
/// and `section` blocks whose `text` (at most 3000 characters) or `fields` (at most 10, each
/// at most 2000 characters) are `mrkdwn` or `plain_text` text objects.
fn check_slack_message(message: &Value) {
    assert!(message["text"]
        .as_str()
        .is_some_and(|text| !text.is_empty()));
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    let text_object = |object: &Value, max: usize| {
        assert!(matches!(
            object["type"].as_str(),
            Some("mrkdwn" | "plain_text")
        ));
        let text = object["text"].as_str().expect("text of a text object");
        assert!(!text.is_empty() && text.chars().count() <= max, "{text}");
    };
    for block in blocks {
        assert_eq!(block["type"], "section");
        let keys: Vec<&str> = block
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(keys
            .iter()
            .all(|key| ["type", "text", "fields", "block_id"].contains(key)));
        if let Some(text) = block.get("text") {
            text_object(text, 3000);
        }
        if let Some(fields) = block.get("fields") {
            let fields = fields.as_array().unwrap();
            assert!(!fields.is_empty() && fields.len() <= 10);
            fields.iter().for_each(|field| text_object(field, 2000));
        }
        assert!(block.get("text").is_some() || block.get("fields").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_reach_the_subscribers_of_their_municipality_and_event() {
    let scratch = TempDir::new("notify-signed");
    let receiver = Peer::start(
        "webhook_receiver.py",
        scratch.path(),
        &["--secret", "correct horse"],
    );
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", receiver.port);
    let secret = secret_file(&scratch, "hook.key", "correct horse");
    let wrong = secret_file(&scratch, "wrong.key", "battery staple");
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let json = WebhookFormat::Json;
    for subscription in [
        webhook("all", &["*"], url("/all"), Some(secret.clone()), json),
        webhook(
            "resolved",
            &["resolved"],
            url("/resolved"),
            Some(secret.clone()),
            json,
        ),
        webhook("wrong-key", &["raised"], url("/wrong"), Some(wrong), json),
        webhook(
            "slack",
            &["raised"],
            url("/slack"),
            None,
            WebhookFormat::Slack,
        ),
    ] {
        store.put("town", &subscription).unwrap();
    }
    let elsewhere = webhook("village", &["*"], url("/village"), Some(secret), json);
    store.put("village", &elsewhere).unwrap();
    let config = NotifierConfig {
        retry: fast_retries(3, Duration::from_secs(5)),
        link_base: Some("https://twin.example.org".into()),
        ..NotifierConfig::default()
    };
    let notifier = Notifier::spawn(config, store.clone()).unwrap();
    let raised = notification(EventKind::Raised, "town", alert(1, true));
    let resolved = notification(EventKind::Resolved, "town", alert(1, false));
    notifier.send(raised.clone());
    notifier.send(resolved.clone());

    wait_until("every delivery", Duration::from_secs(10), || {
        receiver.at("/all").len() == 2
            && receiver.at("/resolved").len() == 1
            && receiver.at("/wrong").len() == 1
            && receiver.at("/slack").len() == 1
            && store.history("town", "wrong-key", 10).unwrap().len() == 1
    })
    .await;
    // Nothing more arrives: no retry of the refused delivery, nothing for the other town.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.at("/village").is_empty());
    assert_eq!(receiver.records().len(), 5);

    let all = receiver.at("/all");
    for (record, sent) in all.iter().zip([&raised, &resolved]) {
        assert_eq!(record["signature_ok"], true, "{record}");
        assert_eq!(record["status"], 200);
        let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, serde_json::to_value(sent).unwrap());
    }
    assert_ne!(all[0]["delivery"], all[1]["delivery"]);
    let only_resolved = &receiver.at("/resolved")[0];
    assert_eq!(only_resolved["signature_ok"], true);
    let body: Value = serde_json::from_str(only_resolved["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "resolved");
    assert_eq!(body["alert"]["open"], false);

    // A signature made with another key is refused by the receiver, and not retried.
    let refused = &receiver.at("/wrong")[0];
    assert_eq!(
        (refused["signature_ok"].clone(), refused["status"].clone()),
        (false.into(), 401.into())
    );
    let history = store.history("town", "wrong-key", 10).unwrap();
    assert_eq!(
        (history[0].status, history[0].delivered),
        (Some(401), false)
    );

    let slack: Value =
        serde_json::from_str(receiver.at("/slack")[0]["body"].as_str().unwrap()).unwrap();
    check_slack_message(&slack);
    let shown = slack.to_string();
    for fact in [
        "Burst raised in town",
        "link P-12",
        "critical",
        "12.500",
        "&amp; inlet",
        "https://twin.example.org/alerts/town/1",
    ] {
        assert!(shown.contains(fact), "{fact} not in {shown}");
    }

    let delivered = store.history("town", "all", 10).unwrap();
    assert_eq!(delivered.len(), 2);
    assert!(delivered
        .iter()
        .all(|attempt| attempt.delivered && attempt.status == Some(200) && attempt.attempt == 1));
    assert_eq!(notifier.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_retries_until_it_is_up() {
    let scratch = TempDir::new("notify-retries");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = secret_file(&scratch, "hook.key", "s3cret");
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let url = format!("http://127.0.0.1:{port}/hook");
    store
        .put(
            "town",
            &webhook("ops", &["*"], url, Some(secret), WebhookFormat::Json),
        )
        .unwrap();
    let retry = RetryPolicy {
        attempts: 10,
        initial_delay: Duration::from_millis(150),
        max_delay: Duration::from_millis(800),
        timeout: Duration::from_secs(5),
    };
    let notifier = Notifier::spawn(
        NotifierConfig {
            retry,
            ..NotifierConfig::default()
        },
        store.clone(),
    )
    .unwrap();
    notifier.send(notification(EventKind::Raised, "town", alert(7, true)));

    // Down: connections are refused.
    wait_until("two refused attempts", Duration::from_secs(10), || {
        store.history("town", "ops", 20).unwrap().len() >= 2
    })
    .await;
    // Then up, but failing its first two requests with 500.
    let port_arg = port.to_string();
    let receiver = Peer::start(
        "webhook_receiver.py",
        scratch.path(),
        &[
            "--port",
            &port_arg,
            "--secret",
            "s3cret",
            "--fail-first",
            "2",
        ],
    );
    wait_until("the delivery", Duration::from_secs(20), || {
        store
            .history("town", "ops", 20)
            .unwrap()
            .iter()
            .any(|attempt| attempt.delivered)
    })
    .await;

    let history = store.history("town", "ops", 20).unwrap();
    let refused = history.len() - 3;
    assert!(refused >= 2, "{history:#?}");
    for (index, attempt) in history.iter().enumerate() {
        assert_eq!(attempt.attempt as usize, index + 1);
        assert_eq!(attempt.alert_id, 7);
        assert_eq!(attempt.delivery_id, history[0].delivery_id);
        if index < refused {
            assert_eq!(attempt.status, None);
            assert!(
                attempt
                    .error
                    .as_deref()
                    .is_some_and(|error| error.contains("connect")),
                "{attempt:?}"
            );
        }
    }
    let answered: Vec<(Option<u16>, bool)> = history[refused..]
        .iter()
        .map(|a| (a.status, a.delivered))
        .collect();
    assert_eq!(
        answered,
        [(Some(500), false), (Some(500), false), (Some(200), true)]
    );
    // Each retry waited at least half its exponential backoff (the jitter's lower bound).
    for pair in history.windows(2) {
        let waited = pair[1].time_ms - pair[0].time_ms;
        let least = retry.backoff(pair[0].attempt, 0.0).as_millis() as i64;
        assert!(
            waited >= least,
            "retry {} after {waited} ms < {least} ms",
            pair[1].attempt
        );
    }
    // The receiver saw the three answered attempts, each correctly signed, one delivery.
    let records = receiver.records();
    let statuses: Vec<i64> = records
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert!(records
        .iter()
        .all(|r| r["signature_ok"] == true && r["delivery"] == history[0].delivery_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_receiver_never_blocks_the_sender_nor_other_subscriptions() {
    let scratch = TempDir::new("notify-stuck");
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let hanging = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        }
    });
    let receiver = Peer::start("webhook_receiver.py", scratch.path(), &[]);
    let key = secret_file(&scratch, "hook.key", "k");
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let stuck_url = format!("http://127.0.0.1:{stuck_port}/hook");
    store
        .put(
            "town",
            &webhook(
                "stuck",
                &["raised"],
                stuck_url,
                Some(key.clone()),
                WebhookFormat::Json,
            ),
        )
        .unwrap();
    let ok_url = format!("http://127.0.0.1:{}/ok", receiver.port);
    store
        .put(
            "town",
            &webhook(
                "ok",
                &["resolved"],
                ok_url,
                Some(key.clone()),
                WebhookFormat::Json,
            ),
        )
        .unwrap();
    let config = NotifierConfig {
        queue_capacity: 1000,
        subscription_queue_capacity: 100,
        retry: fast_retries(3, Duration::from_secs(60)),
        ..NotifierConfig::default()
    };
    let notifier = Notifier::spawn(config, store.clone()).unwrap();

    const SENDS: usize = 10_000;
    let batch: Vec<Notification> = (0..SENDS as u64)
        .map(|id| notification(EventKind::Raised, "town", alert(id, true)))
        .collect();
    let start = Instant::now();
    for notification in batch {
        notifier.send(notification);
    }
    let elapsed = start.elapsed();
    println!(
        "{SENDS} sends with the receiver hanging: {:.2} ms",
        elapsed.as_secs_f64() * 1e3
    );
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");

    // Another subscription is served while the stuck one hangs.
    notifier.send(notification(EventKind::Resolved, "town", alert(1, false)));
    wait_until(
        "the other subscription's delivery",
        Duration::from_secs(10),
        || receiver.at("/ok").len() == 1,
    )
    .await;
    // Everything beyond one delivery in flight and the stuck subscription's full queue is
    // dropped and counted; the stuck receiver holds exactly one connection.
    let expected_drops = (SENDS - 1 - 100) as u64;
    wait_until("the drops", Duration::from_secs(10), || {
        notifier.dropped() == expected_drops
    })
    .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert!(store.history("town", "stuck", 10).unwrap().is_empty());
    hanging.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_the_smtp_server_as_html_with_a_text_alternative() {
    let scratch = TempDir::new("notify-email");
    let server = Peer::start("smtp_receiver.py", scratch.path(), &[]);
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let recipients = vec![
        "ops@example.org".to_string(),
        "oncall@example.org".to_string(),
    ];
    let subscription = Subscription {
        id: "mail".into(),
        events: vec![EventFilter::Kind(EventKind::Escalated)],
        target: Target::Email {
            recipients: recipients.clone(),
        },
    };
    store.put("town", &subscription).unwrap();
    let config = NotifierConfig {
        retry: fast_retries(3, Duration::from_secs(10)),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: server.port,
            starttls: false,
            username: None,
            password: None,
            from: "aquatwin <alerts@example.org>".into(),
        }),
        link_base: Some("https://twin.example.org".into()),
        ..NotifierConfig::default()
    };
    let notifier = Notifier::spawn(config, store.clone()).unwrap();
    notifier.send(notification(EventKind::Raised, "town", alert(3, true)));
    notifier.send(notification(EventKind::Escalated, "town", alert(3, true)));
    wait_until("the email", Duration::from_secs(10), || {
        !server.records().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let messages = server.records();
    assert_eq!(messages.len(), 1, "only the escalation is subscribed");
    let message = &messages[0];
    assert_eq!(message["mail_from"], "alerts@example.org");
    assert_eq!(message["rcpt_tos"], serde_json::json!(recipients));
    assert_eq!(
        message["subject"],
        "[aquatwin critical] Burst escalated in town at link P-12"
    );
    let types: Vec<&str> = message["content_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types, ["multipart/alternative", "text/plain", "text/html"]);
    let html = message["html"].as_str().unwrap();
    for fact in [
        "<h2>Burst escalated in town</h2>",
        "<td>critical</td>",
        "<td>link P-12</td>",
        "<td>Sat, 22 Nov 2025 08:26:40 GMT</td>",
        "<td>12.500</td>",
        "3 sensors &amp; inlet",
        "href=\"https://twin.example.org/alerts/town/3\"",
    ] {
        assert!(html.contains(fact), "{fact} not in {html}");
    }
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("Severity: critical")
            && text.contains("https://twin.example.org/alerts/town/3")
    );
    let history = store.history("town", "mail", 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].status, history[0].delivered, history[0].event),
        (Some(250), true, EventKind::Escalated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_alerts_notify_their_opening_and_resolution() {
    let scratch = TempDir::new("notify-follow");
    let receiver = Peer::start("webhook_receiver.py", scratch.path(), &[]);
    let key = secret_file(&scratch, "hook.key", "k");
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let url = format!("http://127.0.0.1:{}/all", receiver.port);
    store
        .put(
            "town",
            &webhook("all", &["*"], url, Some(key.clone()), WebhookFormat::Json),
        )
        .unwrap();
    let notifier = Notifier::spawn(NotifierConfig::default(), store).unwrap();
    let (alerts, subscriber) = tokio::sync::broadcast::channel(16);
    let follower = notifier.follow("town", subscriber);
    let mut repeat = alert(5, true);
    repeat.occurrences = 2;
    repeat.change = AlertChange::Repeated;
    for published in [alert(5, true), repeat, alert(5, false)] {
        alerts.send(published).unwrap();
    }
    drop(alerts);
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .unwrap()
        .unwrap();
    wait_until("two notifications", Duration::from_secs(10), || {
        receiver.at("/all").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<Value> = receiver
        .at("/all")
        .iter()
        .map(|record| {
            serde_json::from_str::<Value>(record["body"].as_str().unwrap()).unwrap()["event"]
                .clone()
        })
        .collect();
    assert_eq!(events, ["raised", "resolved"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_subscription_stops_its_retries() {
    let scratch = TempDir::new("notify-delete");
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let key = secret_file(&scratch, "hook.key", "k");
    let url = format!("http://127.0.0.1:{down}/hook");
    let doomed = webhook("doomed", &["*"], url, Some(key), WebhookFormat::Json);
    store.put("town", &doomed).unwrap();
    let retry = RetryPolicy {
        attempts: 1000,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
    };
    let config = NotifierConfig {
        retry,
        ..NotifierConfig::default()
    };
    let notifier = Notifier::spawn(config, store.clone()).unwrap();
    notifier.send(notification(EventKind::Raised, "town", alert(1, true)));
    wait_until("retries", Duration::from_secs(10), || {
        store.history("town", "doomed", 1000).unwrap().len() >= 3
    })
    .await;
    assert!(store.delete("town", "doomed").unwrap());
    // The next notification of the town makes the notifier see the deletion.
    notifier.send(notification(EventKind::Raised, "town", alert(2, true)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = store.history("town", "doomed", 1000).unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.history("town", "doomed", 1000).unwrap().len(),
        stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_of_a_private_ca_are_trusted_only_when_it_is_configured() {
    let scratch = TempDir::new("notify-tls");
    let ca = TestCa::make(&scratch.path().join("ca"));
    let (cert, key) = (ca.cert.to_str().unwrap(), ca.key.to_str().unwrap());
    let receiver = Peer::start(
        "webhook_receiver.py",
        scratch.path(),
        &[
            "--secret",
            "tls-secret",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", receiver.port);
    let secret = secret_file(&scratch, "hook.key", "tls-secret");
    let retry = fast_retries(2, Duration::from_secs(5));
    // One notifier told to trust the CA, one with Mozilla's roots only.
    let trusting = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let subscription = webhook(
        "hook",
        &["*"],
        url("/trusted"),
        Some(secret.clone()),
        WebhookFormat::Json,
    );
    trusting.put("town", &subscription).unwrap();
    let config = NotifierConfig {
        retry,
        extra_trust_anchors: read_ca_file(&ca.ca).unwrap(),
        ..NotifierConfig::default()
    };
    let with_ca = Notifier::spawn(config, trusting.clone()).unwrap();
    let default_roots = SubscriptionStore::new(Arc::new(MemoryStore::new()));
    let subscription = webhook(
        "hook",
        &["*"],
        url("/untrusted"),
        Some(secret),
        WebhookFormat::Json,
    );
    default_roots.put("town", &subscription).unwrap();
    let config = NotifierConfig {
        retry,
        ..NotifierConfig::default()
    };
    let without_ca = Notifier::spawn(config, default_roots.clone()).unwrap();

    let raised = notification(EventKind::Raised, "town", alert(4, true));
    with_ca.send(raised.clone());
    without_ca.send(raised.clone());
    wait_until("both deliveries' attempts", Duration::from_secs(15), || {
        receiver.at("/trusted").len() == 1
            && default_roots.history("town", "hook", 10).unwrap().len() == 2
    })
    .await;

    // Trusted: delivered over TLS, signed, the body intact.
    let record = &receiver.at("/trusted")[0];
    assert_eq!(record["signature_ok"], true, "{record}");
    assert_eq!(record["status"], 200);
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::to_value(&raised).unwrap());
    let delivered = trusting.history("town", "hook", 10).unwrap();
    assert_eq!(
        delivered
            .iter()
            .map(|a| (a.attempt, a.status, a.delivered))
            .collect::<Vec<_>>(),
        [(1, Some(200), true)]
    );

    // Untrusted: every attempt failed in the TLS handshake, recorded with the reason; the
    // receiver never saw a request.
    let refused = default_roots.history("town", "hook", 10).unwrap();
    eprintln!("without the CA: {:?}", refused[0].error);
    for attempt in &refused {
        assert!(
            !attempt.delivered && attempt.status.is_none(),
            "{attempt:?}"
        );
        let error = attempt.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("tls: ") && error.contains("certificate"),
            "{attempt:?}"
        );
    }
    assert!(receiver.at("/untrusted").is_empty());
    // The failures stopped nothing: the next notification is attempted too.
    without_ca.send(notification(EventKind::Resolved, "town", alert(4, false)));
    wait_until(
        "the next notification's attempts",
        Duration::from_secs(15),
        || default_roots.history("town", "hook", 10).unwrap().len() == 4,
    )
    .await;
    assert!(receiver.at("/untrusted").is_empty());
}
