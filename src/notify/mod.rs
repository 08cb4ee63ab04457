//! Notifications of alerts to the outside world: signed webhooks (our alert JSON or Slack's
//! incoming-webhook format) and email over SMTP, per municipality and event kind.
//!
//! - [`subscriptions`]: who wants what ([`Subscription`]), kept in the store under the tenant
//!   prefix, with the delivery history of every attempt.
//! - [`secret`]: secrets given as `env:VAR` or `file:PATH`, never literally.
//! - [`webhook`]: the HTTP POST, its HMAC-SHA256 signature and the body formats.
//! - [`email`]: the message (HTML and plain text) and the SMTP transport.
//! - [`retry`]: exponential backoff with jitter.
//! - [`notifier`]: the [`Notifier`] task, fed by a bounded queue that drops its oldest entry
//!   rather than block the live path.
//!
//! # Webhook signature scheme
//!
//! Each POST carries `X-Aquatwin-Timestamp: <unix seconds>` and
//! `X-Aquatwin-Signature: sha256=<hex>`, where `<hex>` is the lowercase hex HMAC-SHA256, keyed
//! with the subscription's secret, of the string `"<timestamp>.<body>"` (the raw body bytes).
//! A receiver recomputes it over the bytes it received, compares in constant time, and rejects
//! timestamps more than a few minutes from its clock, so a captured request cannot be replayed
//! later. `X-Aquatwin-Delivery` names the delivery (the same on every retry of it), so a
//! receiver can drop a retry of a delivery it already processed.

pub mod email;
mod facts;
pub mod notifier;
mod queue;
pub mod retry;
pub mod secret;
pub mod subscriptions;
pub mod webhook;

use actors::messages::{Alert, AlertChange};
use serde::{Deserialize, Serialize};

pub use notifier::{Notifier, NotifierConfig, NotifierError};
pub use subscriptions::{DeliveryAttempt, Subscription, SubscriptionStore, Target};

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new alert was opened.
    Raised,
    /// An alert stayed unacknowledged and its severity was raised.
    Escalated,
    /// An alert was closed.
    Resolved,
}

impl EventKind {
    /// The name used in bodies and subscriptions.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Escalated => "escalated",
            EventKind::Resolved => "resolved",
        }
    }

    /// The event an alert published by the AlertManager stands for: opened, escalated and
    /// resolved alerts are notified; repeats, acknowledgements and comments are not.
    pub fn of_published(alert: &Alert) -> Option<EventKind> {
        match alert.change {
            AlertChange::Raised => Some(EventKind::Raised),
            AlertChange::Escalated => Some(EventKind::Escalated),
            AlertChange::Resolved => Some(EventKind::Resolved),
            AlertChange::Repeated | AlertChange::Acknowledged | AlertChange::Commented => None,
        }
    }
}

/// One event to notify: an alert of a municipality and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// What happened.
    pub event: EventKind,
    /// The municipality (tenant) of the alert.
    pub municipality: String,
    /// The alert as it is now.
    pub alert: Alert,
}
