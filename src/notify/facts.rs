//! The facts of a notification as people read them, shared by Slack messages and emails.

use std::time::{Duration, UNIX_EPOCH};

use actors::messages::{AlertKind, AlertLocation, Severity};

use super::Notification;

/// A notification's facts as text.
pub(crate) struct AlertFacts {
    /// "Burst raised in town" and the like.
    pub headline: String,
    pub kind: &'static str,
    pub severity: &'static str,
    pub location: String,
    /// When it was first observed (HTTP date, UTC).
    pub time: String,
    /// Estimated flow, or "unknown".
    pub flow: String,
    pub message: String,
    /// The alert's page, when a link base is configured.
    pub link: Option<String>,
}

impl AlertFacts {
    /// The facts of `notification`; `link_base` is the platform's URL (e.g.
    /// `https://twin.example.org`), under which `/alerts/<municipality>/<id>` is the alert.
    pub fn of(notification: &Notification, link_base: Option<&str>) -> Self {
        let alert = &notification.alert;
        let kind = match alert.kind {
            AlertKind::Leak => "Leak",
            AlertKind::Burst => "Burst",
            AlertKind::SensorFault => "Sensor fault",
            AlertKind::Transient => "Transient",
            AlertKind::Threshold => "Threshold",
        };
        let location = match &alert.location {
            AlertLocation::Node(id) => format!("node {id}"),
            AlertLocation::Link(id) => format!("link {id}"),
            AlertLocation::Device(id) => format!("device {id}"),
            AlertLocation::Network => "the network".to_string(),
        };
        let since_epoch = Duration::from_millis(u64::try_from(alert.raised_ms).unwrap_or(0));
        Self {
            headline: format!(
                "{kind} {} in {}",
                notification.event.name(),
                notification.municipality
            ),
            kind,
            severity: match alert.severity {
                Severity::Info => "info",
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            },
            location,
            time: httpdate::fmt_http_date(UNIX_EPOCH + since_epoch),
            flow: alert
                .estimated_flow
                .map_or_else(|| "unknown".to_string(), |flow| format!("{flow:.3}")),
            message: alert.message.clone(),
            link: link_base.map(|base| {
                format!(
                    "{}/alerts/{}/{}",
                    base.trim_end_matches('/'),
                    notification.municipality,
                    alert.id
                )
            }),
        }
    }

    /// Name and value of each fact shown in a table.
    pub fn fields(&self) -> [(&'static str, &str); 5] {
        [
            ("Kind", self.kind),
            ("Severity", self.severity),
            ("Location", &self.location),
            ("Raised", &self.time),
            ("Estimated flow", &self.flow),
        ]
    }
}
