//! The [`Notifier`]: its own tokio tasks, fed by a bounded queue, so that a slow or dead
//! receiver never holds up the live path.
//!
//! [`Notifier::send`] only appends to a bounded queue (dropping and counting the oldest entry
//! when it is full). A dispatcher task reads each notification's municipality's subscriptions
//! from the store and hands the notification to one worker task per subscription, each with
//! its own bounded queue: deliveries to different subscriptions run concurrently, and one
//! stuck receiver only fills its own queue. A worker delivers its notifications in order, each
//! with retries ([`RetryPolicy`]), and records every attempt in the delivery history, of which
//! it keeps the newest [`NotifierConfig::history_per_subscription`] attempts. Subscriptions are
//! read from the store for every notification, so one created over the API receives the next
//! one; the worker of a deleted subscription is stopped at the next notification of its
//! municipality.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actors::messages::Alert;
use rand::Rng;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::TrustAnchor;
use tokio_rustls::rustls::{self, ClientConfig};

use super::email::{self, EmailError, Mailer, SmtpConfig};
use super::queue::DropOldestQueue;
use super::retry::RetryPolicy;
use super::secret::SecretRef;
use super::subscriptions::{
    DeliveryAttempt, Subscription, SubscriptionStore, Target, WebhookFormat,
};
use super::webhook::{self, Headers, WebhookUrl};
use super::{EventKind, Notification};

/// Why a notifier cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The TLS settings of webhooks could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The SMTP settings are not usable.
    #[error(transparent)]
    Email(#[from] EmailError),
}

/// Delivery attempts kept per subscription unless configured otherwise.
pub const DEFAULT_HISTORY_PER_SUBSCRIPTION: usize = 1_000;

/// Settings of a [`Notifier`].
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Notifications waiting for the dispatcher at most.
    pub queue_capacity: usize,
    /// Notifications waiting for one subscription's worker at most.
    pub subscription_queue_capacity: usize,
    /// Timeouts and retries of each delivery.
    pub retry: RetryPolicy,
    /// The SMTP server of email subscriptions (without it, their deliveries fail).
    pub smtp: Option<SmtpConfig>,
    /// The platform's URL, for links to alerts in messages.
    pub link_base: Option<String>,
    /// Delivery attempts kept per subscription (the newest; older ones are deleted).
    pub history_per_subscription: usize,
    /// Certificate authorities that webhook receivers' certificates may chain to besides
    /// Mozilla's roots ([`webhook::read_ca_file`]): none unless the operator names some.
    pub extra_trust_anchors: Vec<TrustAnchor<'static>>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            subscription_queue_capacity: 1_000,
            retry: RetryPolicy::default(),
            smtp: None,
            link_base: None,
            history_per_subscription: DEFAULT_HISTORY_PER_SUBSCRIPTION,
            extra_trust_anchors: Vec::new(),
        }
    }
}

/// Aborts its task when dropped, so a dropped notifier leaves no task behind.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends notifications to the subscriptions kept in the store, in the background.
#[derive(Debug)]
pub struct Notifier {
    queue: Arc<DropOldestQueue<Notification>>,
    dropped: Arc<AtomicU64>,
    history_per_subscription: usize,
    _dispatcher: AbortOnDrop,
}

impl Notifier {
    /// Starts the notifier's tasks on the current tokio runtime.
    pub fn spawn(
        config: NotifierConfig,
        subscriptions: SubscriptionStore,
    ) -> Result<Self, NotifierError> {
        let mailer = config
            .smtp
            .as_ref()
            .map(|smtp| Mailer::new(smtp, config.retry.timeout))
            .transpose()?;
        let delivery = Arc::new(Delivery {
            subscriptions,
            retry: config.retry,
            tls: webhook::tls_config(&config.extra_trust_anchors)?,
            mailer,
            link_base: config.link_base,
            history_per_subscription: config.history_per_subscription.max(1),
        });
        let history_per_subscription = delivery.history_per_subscription;
        let dropped = Arc::new(AtomicU64::new(0));
        let queue = Arc::new(DropOldestQueue::new(config.queue_capacity, dropped.clone()));
        let dispatcher = tokio::spawn(dispatch(
            queue.clone(),
            delivery,
            config.subscription_queue_capacity,
            dropped.clone(),
        ));
        Ok(Self {
            queue,
            dropped,
            history_per_subscription,
            _dispatcher: AbortOnDrop(dispatcher),
        })
    }

    /// Queues `notification`; never waits. When the queue is full its oldest entry is dropped.
    pub fn send(&self, notification: Notification) {
        self.queue.push(notification);
    }

    /// Notifications dropped so far because a queue was full (or a follower lagged).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Delivery attempts kept per subscription: the newest; older ones are deleted.
    pub fn history_per_subscription(&self) -> usize {
        self.history_per_subscription
    }

    /// Notifies what a municipality's AlertManager publishes on `alerts` (see
    /// [`EventKind::of_published`]) until the channel closes; the task's handle.
    pub fn follow(
        &self,
        municipality: &str,
        mut alerts: broadcast::Receiver<Alert>,
    ) -> JoinHandle<()> {
        let queue = self.queue.clone();
        let dropped = self.dropped.clone();
        let municipality = municipality.to_string();
        tokio::spawn(async move {
            loop {
                match alerts.recv().await {
                    Ok(alert) => {
                        if let Some(event) = EventKind::of_published(&alert) {
                            queue.push(Notification {
                                event,
                                municipality: municipality.clone(),
                                alert,
                            });
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        dropped.fetch_add(missed, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}

/// One notification for one subscription.
struct Job {
    notification: Notification,
    subscription: Subscription,
}

/// A subscription's worker: its queue and its task.
struct Worker {
    queue: Arc<DropOldestQueue<Job>>,
    _task: AbortOnDrop,
}

async fn dispatch(
    queue: Arc<DropOldestQueue<Notification>>,
    delivery: Arc<Delivery>,
    subscription_capacity: usize,
    dropped: Arc<AtomicU64>,
) {
    let mut workers: HashMap<(String, String), Worker> = HashMap::new();
    loop {
        let notification = queue.pop().await;
        let store = delivery.subscriptions.clone();
        let municipality = notification.municipality.clone();
        let subscriptions =
            match tokio::task::spawn_blocking(move || store.list(&municipality)).await {
                Ok(Ok(subscriptions)) => subscriptions,
                Ok(Err(err)) => {
                    let municipality = &notification.municipality;
                    tracing::error!(%municipality, "subscriptions not read: {err}");
                    continue;
                }
                Err(err) => {
                    tracing::error!("subscription read failed: {err}");
                    continue;
                }
            };
        // The workers of deleted subscriptions stop, pending deliveries and retries included.
        workers.retain(|(municipality, id), _| {
            *municipality != notification.municipality
                || subscriptions
                    .iter()
                    .any(|subscription| subscription.id == *id)
        });
        for subscription in subscriptions
            .into_iter()
            .filter(|subscription| subscription.wants(notification.event))
        {
            let key = (notification.municipality.clone(), subscription.id.clone());
            let worker = workers.entry(key).or_insert_with(|| {
                let queue = Arc::new(DropOldestQueue::new(subscription_capacity, dropped.clone()));
                let task = tokio::spawn(work(queue.clone(), delivery.clone()));
                Worker {
                    queue,
                    _task: AbortOnDrop(task),
                }
            });
            worker.queue.push(Job {
                notification: notification.clone(),
                subscription,
            });
        }
    }
}

async fn work(queue: Arc<DropOldestQueue<Job>>, delivery: Arc<Delivery>) {
    // The history is pruned every tenth of its bound: reading it back costs about ten records
    // per attempt, and it holds at most 10 % more than the bound.
    let prune_every = delivery.history_per_subscription.div_ceil(10);
    let mut recorded_since_prune = prune_every;
    loop {
        let job = queue.pop().await;
        recorded_since_prune += delivery.deliver(&job).await;
        if recorded_since_prune >= prune_every {
            recorded_since_prune = 0;
            delivery.prune(&job).await;
        }
    }
}

/// What deliveries need.
struct Delivery {
    subscriptions: SubscriptionStore,
    retry: RetryPolicy,
    tls: Arc<ClientConfig>,
    mailer: Option<Mailer>,
    link_base: Option<String>,
    history_per_subscription: usize,
}

/// The outcome of one attempt.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    delivered: bool,
    retryable: bool,
}

impl Outcome {
    /// A failure without an answer from the receiver.
    fn failed(error: impl ToString, retryable: bool) -> Self {
        Self {
            status: None,
            error: Some(error.to_string()),
            delivered: false,
            retryable,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

impl Delivery {
    /// Attempts `job` until it is delivered, refused for good, or out of attempts, recording
    /// every attempt; how many attempts were made.
    async fn deliver(&self, job: &Job) -> usize {
        let delivery_id = format!("{:016x}", rand::rng().random::<u64>());
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let time_ms = now_ms();
            let started = Instant::now();
            let outcome = self.attempt(job, &delivery_id).await;
            let retry_after = (!outcome.delivered && outcome.retryable && attempt < attempts)
                .then(|| self.retry.jittered_backoff(attempt));
            let record = DeliveryAttempt {
                delivery_id: delivery_id.clone(),
                subscription_id: job.subscription.id.clone(),
                alert_id: job.notification.alert.id,
                event: job.notification.event,
                attempt,
                time_ms,
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
                status: outcome.status,
                error: outcome.error,
                delivered: outcome.delivered,
                next_retry_ms: retry_after.map(|wait| now_ms() + wait.as_millis() as i64),
            };
            self.record(&job.notification.municipality, record).await;
            let Some(wait) = retry_after else {
                return attempt as usize;
            };
            tokio::time::sleep(wait).await;
        }
        attempts as usize
    }

    /// Deletes `job`'s subscription's attempts beyond the newest `history_per_subscription`.
    async fn prune(&self, job: &Job) {
        let store = self.subscriptions.clone();
        let municipality = job.notification.municipality.clone();
        let id = job.subscription.id.clone();
        let keep = self.history_per_subscription;
        let pruned =
            tokio::task::spawn_blocking(move || store.prune_history(&municipality, &id, keep))
                .await;
        match pruned {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!("delivery history not pruned: {err}"),
            Err(err) => tracing::warn!("delivery history not pruned: {err}"),
        }
    }

    async fn record(&self, municipality: &str, attempt: DeliveryAttempt) {
        let store = self.subscriptions.clone();
        let municipality = municipality.to_string();
        let written =
            tokio::task::spawn_blocking(move || store.record(&municipality, &attempt)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("delivery attempt not recorded: {err}"),
            Err(err) => tracing::warn!("delivery attempt not recorded: {err}"),
        }
    }

    /// The signing key of subscription `id`: resolved from its reference, or the generated
    /// one from the store.
    fn secret(
        &self,
        notification: &Notification,
        id: &str,
        secret: &SecretRef,
    ) -> Result<String, String> {
        match secret {
            SecretRef::Generated => self
                .subscriptions
                .generated_secret(&notification.municipality, id)
                .map_err(|err| err.to_string())?
                .ok_or_else(|| format!("no generated secret stored for subscription {id}")),
            reference => reference.resolve().map_err(|err| err.to_string()),
        }
    }

    async fn attempt(&self, job: &Job, delivery_id: &str) -> Outcome {
        let notification = &job.notification;
        let link_base = self.link_base.as_deref();
        match &job.subscription.target {
            Target::Webhook {
                url,
                secret,
                format,
            } => {
                let url = match WebhookUrl::parse(url) {
                    Ok(url) => url,
                    Err(err) => return Outcome::failed(err, false),
                };
                let body = match format {
                    WebhookFormat::Json => webhook::json_body(notification),
                    WebhookFormat::Slack => webhook::slack_body(notification, link_base),
                };
                let mut headers =
                    Headers(vec![(webhook::DELIVERY_HEADER, delivery_id.to_string())]);
                if let Some(secret) = secret {
                    let key = match self.secret(notification, &job.subscription.id, secret) {
                        Ok(key) => key,
                        Err(err) => return Outcome::failed(err, false),
                    };
                    let timestamp = now_ms() / 1000;
                    let signature = webhook::signature(key.as_bytes(), timestamp, &body);
                    headers
                        .0
                        .push((webhook::TIMESTAMP_HEADER, timestamp.to_string()));
                    headers.0.push((webhook::SIGNATURE_HEADER, signature));
                }
                match webhook::post(&url, &headers, body, &self.tls, self.retry.timeout).await {
                    Ok(status) => Outcome {
                        status: Some(status),
                        error: None,
                        delivered: (200..300).contains(&status),
                        // Server errors, throttling and timeouts pass; other refusals do not.
                        retryable: status >= 500 || status == 429 || status == 408,
                    },
                    Err(err) => Outcome::failed(err, true),
                }
            }
            Target::Email { recipients } => {
                let Some(mailer) = &self.mailer else {
                    return Outcome::failed("no SMTP server configured", false);
                };
                let content = email::render(notification, link_base);
                let message = match mailer.message(recipients, &content) {
                    Ok(message) => message,
                    Err(err) => return Outcome::failed(err, false),
                };
                match tokio::time::timeout(self.retry.timeout, mailer.send(message)).await {
                    Ok(Ok(code)) => Outcome {
                        status: Some(code),
                        error: None,
                        delivered: true,
                        retryable: false,
                    },
                    Ok(Err(failure)) => Outcome {
                        status: failure.code,
                        error: Some(failure.error),
                        delivered: false,
                        retryable: failure.retryable,
                    },
                    Err(_) => Outcome::failed(
                        format!("timed out after {} ms", self.retry.timeout.as_millis()),
                        true,
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use actors::messages::{Alert, AlertInput, AlertKind, AlertLocation, Severity};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use twin::store::MemoryStore;

    use super::*;
    use crate::notify::subscriptions::EventFilter;

    /// An HTTP receiver on a free port answering 200 to each request; counts them.
    async fn receiver() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let count = count.clone();
                tokio::spawn(async move {
                    // One request per connection; its end is the blank line plus the body,
                    // which is small enough to arrive with it.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !String::from_utf8_lossy(&request).contains("\r\n\r\n{") {
                        let read = socket.read(&mut buffer).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let answer =
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                    socket.write_all(answer).await.unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (port, answered)
    }

    #[tokio::test]
    async fn the_history_keeps_the_newest_attempts_of_each_subscription() {
        let (port, answered) = receiver().await;
        let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
        let subscription = Subscription {
            id: "slack".into(),
            events: vec![EventFilter::Any],
            target: Target::Webhook {
                url: format!("http://127.0.0.1:{port}/hook"),
                secret: None,
                format: WebhookFormat::Slack,
            },
        };
        store.put("town", &subscription).unwrap();
        let keep = 5;
        let config = NotifierConfig {
            history_per_subscription: keep,
            ..NotifierConfig::default()
        };
        let notifier = Notifier::spawn(config, store.clone()).unwrap();
        let sent = 23u64;
        for id in 1..=sent {
            let input = AlertInput {
                kind: AlertKind::Threshold,
                severity: Severity::Warning,
                location: AlertLocation::Node("J1".into()),
                estimated_flow: None,
                time_ms: id as i64,
                message: format!("alert {id}"),
            };
            notifier.send(Notification {
                event: EventKind::Raised,
                municipality: "town".into(),
                alert: Alert::opened(id, input),
            });
        }
        let newest: Vec<u64> = (sent - keep as u64 + 1..=sent).collect();
        let mut kept = Vec::new();
        for _ in 0..200 {
            kept = store
                .history("town", "slack", 1000)
                .unwrap()
                .iter()
                .map(|attempt| attempt.alert_id)
                .collect();
            if answered.load(Ordering::SeqCst) == sent as usize && kept == newest {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(answered.load(Ordering::SeqCst), sent as usize);
        assert_eq!(kept, newest);
    }
}
