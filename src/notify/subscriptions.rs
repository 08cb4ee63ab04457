//! Subscriptions and their delivery history, kept under the tenant prefix:
//!
//! - `(tenant, "subscriptions", id)` -> [`Subscription`] (JSON);
//! - `(tenant, "subscription_secrets", id)` -> the secret the server generated for a
//!   subscription created over the API (its record says `secret = "generated"`);
//! - `(tenant, "deliveries", subscription_id, time_ms, delivery_id, attempt)` ->
//!   [`DeliveryAttempt`] (JSON), so one subscription's history is a range in time order; the
//!   notifier keeps the newest attempts of each subscription only ([`SubscriptionStore::prune_history`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use twin::store::tuple::Element;
use twin::store::{Durability, KeyRange, Order, Store, StoreError, TenantKeys, WriteBatch};
use utoipa::ToSchema;

use super::secret::SecretRef;
use super::webhook::WebhookUrl;
use super::EventKind;

const SUBSCRIPTIONS: &str = "subscriptions";
const SECRETS: &str = "subscription_secrets";
const DELIVERIES: &str = "deliveries";

/// Bytes of a generated secret (shown as twice as many hex digits).
const GENERATED_SECRET_BYTES: usize = 32;

/// Errors of the subscription store.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// A field of a subscription is not acceptable.
    #[error("{field}: {cause}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        cause: String,
    },
    /// A stored record does not decode.
    #[error("corrupt {what} record: {cause}")]
    Corrupt {
        /// Which record family.
        what: &'static str,
        /// The decoder's message.
        cause: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which events a subscription receives: one kind, or `*` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventFilter {
    /// Every event kind (`*`).
    Any,
    /// One event kind.
    Kind(EventKind),
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(self, event: EventKind) -> bool {
        match self {
            EventFilter::Any => true,
            EventFilter::Kind(kind) => kind == event,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventFilter::Any => f.write_str("*"),
            EventFilter::Kind(kind) => f.write_str(kind.name()),
        }
    }
}

impl TryFrom<String> for EventFilter {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "*" => Ok(EventFilter::Any),
            "raised" => Ok(EventFilter::Kind(EventKind::Raised)),
            "escalated" => Ok(EventFilter::Kind(EventKind::Escalated)),
            "resolved" => Ok(EventFilter::Kind(EventKind::Resolved)),
            other => Err(format!(
                "unknown event {other:?} (raised, escalated, resolved or *)"
            )),
        }
    }
}

impl From<EventFilter> for String {
    fn from(filter: EventFilter) -> Self {
        filter.to_string()
    }
}

/// The body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Our notification JSON (`event`, `municipality`, `alert`).
    Json,
    /// Slack's incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// Where a subscription's notifications go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An HTTP(S) POST.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// The signing key (`env:VAR` or `file:PATH`); required for the `json` format, optional
        /// for `slack` (Slack's URL is itself the secret and Slack ignores signatures).
        #[serde(default)]
        secret: Option<SecretRef>,
        /// The body format.
        format: WebhookFormat,
    },
    /// Email to these addresses, over the notifier's SMTP server.
    Email {
        /// Recipient addresses.
        recipients: Vec<String>,
    },
}

/// A municipality's subscription to some alert events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Unique within the municipality.
    pub id: String,
    /// Which events it receives.
    pub events: Vec<EventFilter>,
    /// Where they go.
    pub target: Target,
}

impl Subscription {
    /// Whether this subscription receives `event`.
    pub fn wants(&self, event: EventKind) -> bool {
        self.events.iter().any(|filter| filter.matches(event))
    }

    /// Checks every field; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        let invalid = |field, cause: &str| SubscriptionError::Invalid {
            field,
            cause: cause.to_string(),
        };
        if self.id.is_empty() || self.id.len() > 128 || self.id.chars().any(char::is_control) {
            return Err(invalid("id", "1 to 128 printable characters"));
        }
        if self.events.is_empty() {
            return Err(invalid("events", "at least one event kind or *"));
        }
        match &self.target {
            Target::Webhook {
                url,
                secret,
                format,
            } => {
                WebhookUrl::parse(url).map_err(|err| invalid("target.url", &err.to_string()))?;
                if *format == WebhookFormat::Json && secret.is_none() {
                    return Err(invalid("target.secret", "a json webhook is signed"));
                }
            }
            Target::Email { recipients } => {
                if recipients.is_empty() {
                    return Err(invalid("target.recipients", "at least one address"));
                }
                for recipient in recipients {
                    recipient.parse::<lettre::Address>().map_err(|err| {
                        invalid("target.recipients", &format!("{recipient}: {err}"))
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// One attempt at delivering one notification to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// The delivery (the same for every attempt of it).
    pub delivery_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The alert notified.
    pub alert_id: u64,
    /// The event notified.
    pub event: EventKind,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt started (Unix ms).
    pub time_ms: i64,
    /// How long it took until the answer or the error (ms).
    pub latency_ms: f64,
    /// The HTTP status or the SMTP reply code, when the peer answered.
    pub status: Option<u16>,
    /// Why it failed without an answer (connection refused, timeout, ...).
    pub error: Option<String>,
    /// Whether the notification was accepted.
    pub delivered: bool,
    /// When the next attempt is due (Unix ms), when one will be made.
    #[serde(default)]
    pub next_retry_ms: Option<i64>,
}

/// Subscriptions and delivery history in a store.
#[derive(Clone)]
pub struct SubscriptionStore {
    store: Arc<dyn Store>,
}

impl fmt::Debug for SubscriptionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubscriptionStore")
    }
}

impl SubscriptionStore {
    /// Subscriptions kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Adds or replaces a subscription of `municipality`, after validating it.
    pub fn put(
        &self,
        municipality: &str,
        subscription: &Subscription,
    ) -> Result<(), SubscriptionError> {
        subscription.validate()?;
        let key = TenantKeys::new(municipality).key(&[
            Element::from(SUBSCRIPTIONS),
            Element::from(subscription.id.as_str()),
        ]);
        self.store.put(&key, &encode(subscription)?)?;
        Ok(())
    }

    /// One subscription of `municipality`.
    pub fn get(
        &self,
        municipality: &str,
        id: &str,
    ) -> Result<Option<Subscription>, SubscriptionError> {
        let key =
            TenantKeys::new(municipality).key(&[Element::from(SUBSCRIPTIONS), Element::from(id)]);
        self.store
            .get(&key)?
            .map(|value| decode(SUBSCRIPTIONS, &value))
            .transpose()
    }

    /// Every subscription of `municipality`, by id.
    pub fn list(&self, municipality: &str) -> Result<Vec<Subscription>, SubscriptionError> {
        let range = TenantKeys::new(municipality)
            .space()
            .subspace(&[Element::from(SUBSCRIPTIONS)])
            .range();
        self.store
            .scan(&range, Order::Forward, None)?
            .iter()
            .map(|(_, value)| decode(SUBSCRIPTIONS, value))
            .collect()
    }

    /// Stores a new subscription of `municipality` whose secret the server generates (when
    /// its target is a webhook: the subscription's `secret` becomes `generated`); the
    /// subscription as stored and the secret, to be shown once.
    pub fn create_with_generated_secret(
        &self,
        municipality: &str,
        mut subscription: Subscription,
    ) -> Result<(Subscription, Option<String>), SubscriptionError> {
        let secret = match &mut subscription.target {
            Target::Webhook { secret, .. } => {
                *secret = Some(SecretRef::Generated);
                Some(hex::encode(rand::random::<[u8; GENERATED_SECRET_BYTES]>()))
            }
            Target::Email { .. } => None,
        };
        subscription.validate()?;
        let tenant = TenantKeys::new(municipality);
        let id = Element::from(subscription.id.as_str());
        let mut batch = WriteBatch::new();
        if let Some(secret) = &secret {
            batch.put(
                tenant.key(&[Element::from(SECRETS), id.clone()]),
                secret.as_bytes(),
            );
        }
        batch.put(
            tenant.key(&[Element::from(SUBSCRIPTIONS), id]),
            encode(&subscription)?,
        );
        self.store.write(batch, Durability::Durable)?;
        Ok((subscription, secret))
    }

    /// The generated secret of subscription `id`, if it has one.
    pub fn generated_secret(
        &self,
        municipality: &str,
        id: &str,
    ) -> Result<Option<String>, SubscriptionError> {
        let key = TenantKeys::new(municipality).key(&[Element::from(SECRETS), Element::from(id)]);
        self.store
            .get(&key)?
            .map(|value| {
                String::from_utf8(value).map_err(|err| SubscriptionError::Corrupt {
                    what: SECRETS,
                    cause: err.to_string(),
                })
            })
            .transpose()
    }

    /// Removes a subscription with its generated secret and its delivery history; whether it
    /// existed.
    pub fn delete(&self, municipality: &str, id: &str) -> Result<bool, SubscriptionError> {
        let tenant = TenantKeys::new(municipality);
        let key = tenant.key(&[Element::from(SUBSCRIPTIONS), Element::from(id)]);
        let existed = self.store.get(&key)?.is_some();
        let mut batch = WriteBatch::new();
        batch.delete(key);
        batch.delete(tenant.key(&[Element::from(SECRETS), Element::from(id)]));
        for (history_key, _) in
            self.store
                .scan(&history_range(&tenant, id), Order::Forward, None)?
        {
            batch.delete(history_key);
        }
        self.store.write(batch, Durability::Durable)?;
        Ok(existed)
    }

    /// Deletes the attempts of subscription `id` older than its newest `keep`; how many.
    pub fn prune_history(
        &self,
        municipality: &str,
        id: &str,
        keep: usize,
    ) -> Result<usize, SubscriptionError> {
        let range = history_range(&TenantKeys::new(municipality), id);
        let mut batch = WriteBatch::new();
        for (key, _) in self
            .store
            .scan(&range, Order::Reverse, None)?
            .into_iter()
            .skip(keep)
        {
            batch.delete(key);
        }
        let pruned = batch.len();
        if pruned > 0 {
            self.store.write(batch, Durability::Durable)?;
        }
        Ok(pruned)
    }

    /// Appends an attempt to its subscription's history.
    pub fn record(
        &self,
        municipality: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<(), SubscriptionError> {
        let key = TenantKeys::new(municipality).key(&[
            Element::from(DELIVERIES),
            Element::from(attempt.subscription_id.as_str()),
            Element::Int(attempt.time_ms),
            Element::from(attempt.delivery_id.as_str()),
            Element::Int(i64::from(attempt.attempt)),
        ]);
        self.store.put(&key, &encode(attempt)?)?;
        Ok(())
    }

    /// Up to `limit` latest attempts of one subscription, oldest first.
    pub fn history(
        &self,
        municipality: &str,
        subscription_id: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, SubscriptionError> {
        let range = history_range(&TenantKeys::new(municipality), subscription_id);
        let mut attempts = self
            .store
            .scan(&range, Order::Reverse, Some(limit))?
            .iter()
            .map(|(_, value)| decode(DELIVERIES, value))
            .collect::<Result<Vec<DeliveryAttempt>, _>>()?;
        attempts.reverse();
        Ok(attempts)
    }
}

/// The delivery history of subscription `id`.
fn history_range(tenant: &TenantKeys, id: &str) -> KeyRange {
    tenant
        .space()
        .subspace(&[Element::from(DELIVERIES), Element::from(id)])
        .range()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, SubscriptionError> {
    serde_json::to_vec(value).map_err(|err| SubscriptionError::Corrupt {
        what: "encoded",
        cause: err.to_string(),
    })
}

fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    value: &[u8],
) -> Result<T, SubscriptionError> {
    serde_json::from_slice(value).map_err(|err| SubscriptionError::Corrupt {
        what,
        cause: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use twin::store::MemoryStore;

    use super::*;

    fn webhook(id: &str, events: &[&str]) -> Subscription {
        Subscription {
            id: id.into(),
            events: events
                .iter()
                .map(|e| EventFilter::try_from(e.to_string()).unwrap())
                .collect(),
            target: Target::Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: Some(SecretRef::parse("env:HOOK").unwrap()),
                format: WebhookFormat::Json,
            },
        }
    }

    #[test]
    fn subscriptions_stay_inside_their_municipality() {
        let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
        store.put("town", &webhook("a", &["*"])).unwrap();
        store.put("town", &webhook("b", &["resolved"])).unwrap();
        store.put("townhall", &webhook("c", &["raised"])).unwrap();
        let ids: Vec<String> = store
            .list("town")
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(store.get("townhall", "a").unwrap().is_none());
        assert!(store.delete("town", "a").unwrap());
        assert!(!store.delete("town", "a").unwrap());
        assert_eq!(store.list("town").unwrap().len(), 1);
        assert_eq!(store.list("townhall").unwrap().len(), 1);
    }

    #[test]
    fn event_filters_select_kinds() {
        let all = webhook("a", &["*"]);
        let resolved = webhook("b", &["resolved"]);
        for kind in [EventKind::Raised, EventKind::Escalated, EventKind::Resolved] {
            assert!(all.wants(kind));
            assert_eq!(resolved.wants(kind), kind == EventKind::Resolved);
        }
        assert!(EventFilter::try_from("opened".to_string()).is_err());
    }

    #[test]
    fn invalid_subscriptions_name_their_field() {
        let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
        let mut unsigned = webhook("a", &["*"]);
        if let Target::Webhook { secret, .. } = &mut unsigned.target {
            *secret = None;
        }
        let field = |s: &Subscription| match store.put("t", s) {
            Err(SubscriptionError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(field(&unsigned), "target.secret");
        let mut ftp = webhook("a", &["*"]);
        if let Target::Webhook { url, .. } = &mut ftp.target {
            *url = "ftp://example.org/".into();
        }
        assert_eq!(field(&ftp), "target.url");
        let email = Subscription {
            id: "m".into(),
            events: vec![EventFilter::Any],
            target: Target::Email {
                recipients: vec!["ops@example.org".into(), "not an address".into()],
            },
        };
        assert_eq!(field(&email), "target.recipients");
        assert_eq!(field(&webhook("", &["*"])), "id");
        assert_eq!(field(&webhook("a", &[])), "events");
        assert!(store.list("t").unwrap().is_empty());
    }

    #[test]
    fn history_is_per_subscription_in_time_order() {
        let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
        let attempt = |sub: &str, time_ms, attempt| DeliveryAttempt {
            delivery_id: "d1".into(),
            subscription_id: sub.into(),
            alert_id: 7,
            event: EventKind::Raised,
            attempt,
            time_ms,
            latency_ms: 1.5,
            status: Some(500),
            error: None,
            delivered: false,
            next_retry_ms: None,
        };
        for (i, time) in [30, 10, 20].into_iter().enumerate() {
            store
                .record("t", &attempt("a", time, i as u32 + 1))
                .unwrap();
        }
        store.record("t", &attempt("ab", 15, 1)).unwrap();
        let times: Vec<i64> = store
            .history("t", "a", 10)
            .unwrap()
            .iter()
            .map(|a| a.time_ms)
            .collect();
        assert_eq!(times, [10, 20, 30]);
        let latest: Vec<i64> = store
            .history("t", "a", 2)
            .unwrap()
            .iter()
            .map(|a| a.time_ms)
            .collect();
        assert_eq!(latest, [20, 30]);
        assert_eq!(store.history("t", "ab", 10).unwrap().len(), 1);
        assert!(store.history("u", "a", 10).unwrap().is_empty());

        // Pruning keeps the newest; deleting takes the rest of the history with it.
        assert_eq!(store.prune_history("t", "a", 2).unwrap(), 1);
        assert_eq!(store.prune_history("t", "a", 2).unwrap(), 0);
        let kept: Vec<i64> = store
            .history("t", "a", 10)
            .unwrap()
            .iter()
            .map(|a| a.time_ms)
            .collect();
        assert_eq!(kept, [20, 30]);
        store.put("t", &webhook("a", &["*"])).unwrap();
        assert!(store.delete("t", "a").unwrap());
        assert!(store.history("t", "a", 10).unwrap().is_empty());
        assert_eq!(store.history("t", "ab", 10).unwrap().len(), 1);
        assert!(!store.delete("t", "a").unwrap());
    }

    #[test]
    fn generated_secrets_are_kept_apart_and_go_with_their_subscription() {
        let store = SubscriptionStore::new(Arc::new(MemoryStore::new()));
        let mut new = webhook("hook", &["*"]);
        if let Target::Webhook { secret, .. } = &mut new.target {
            *secret = None;
        }
        let (stored, secret) = store
            .create_with_generated_secret("town", new.clone())
            .unwrap();
        let secret = secret.unwrap();
        assert_eq!(secret.len(), 2 * GENERATED_SECRET_BYTES);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
        let listed = store.get("town", "hook").unwrap().unwrap();
        assert_eq!(listed, stored);
        assert!(matches!(
            listed.target,
            Target::Webhook {
                secret: Some(SecretRef::Generated),
                ..
            }
        ));
        assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
        assert_eq!(
            store.generated_secret("town", "hook").unwrap(),
            Some(secret.clone())
        );
        assert_eq!(store.generated_secret("other", "hook").unwrap(), None);
        let (_, second) = store.create_with_generated_secret("town", new).unwrap();
        assert_ne!(second.unwrap(), secret, "every creation draws a new secret");
        let email = Subscription {
            id: "mail".into(),
            events: vec![EventFilter::Any],
            target: Target::Email {
                recipients: vec!["ops@example.org".into()],
            },
        };
        let (_, none) = store.create_with_generated_secret("town", email).unwrap();
        assert_eq!(none, None);
        assert!(store.delete("town", "hook").unwrap());
        assert_eq!(store.generated_secret("town", "hook").unwrap(), None);
    }
}
