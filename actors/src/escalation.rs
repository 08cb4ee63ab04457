//! Escalation of alerts nobody acknowledges: after a municipality's delay without an
//! acknowledgement, the alert's severity is raised one step and it is published again as
//! [`AlertChange::Escalated`](crate::messages::AlertChange::Escalated) (which notifies its
//! subscribers), up to a number of times.
//!
//! Pure: the AlertManager asks [`next_escalation`] on a timer; what escalation did so far is
//! kept in the alert itself (`escalations`, `last_escalated_ms`), so it survives restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::messages::{Alert, Severity};

/// A municipality's escalation policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Minutes an open alert may stay unacknowledged (since it was raised, then since its
    /// latest escalation) before it is escalated.
    pub unacknowledged_after_minutes: f64,
    /// How many times one alert is escalated at most.
    pub max_escalations: u32,
}

impl EscalationPolicy {
    /// Checks the fields; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let minutes = self.unacknowledged_after_minutes;
        if !(minutes.is_finite() && minutes > 0.0) {
            return Err(format!(
                "unacknowledged_after_minutes: {minutes} is not a positive number of minutes"
            ));
        }
        Ok(())
    }

    /// The delay as a duration.
    pub fn delay(&self) -> Duration {
        Duration::from_secs_f64(self.unacknowledged_after_minutes.max(0.0) * 60.0)
    }
}

/// The severity one step above `severity` (critical stays critical).
pub fn raised(severity: Severity) -> Severity {
    match severity {
        Severity::Info => Severity::Warning,
        Severity::Warning | Severity::Critical => Severity::Critical,
    }
}

/// The severity `alert` is escalated to at `now_ms`, if an escalation is due: it is open, not
/// acknowledged, below the policy's number of escalations, and unacknowledged for the
/// policy's delay since it was raised or last escalated. The caller applies one escalation per
/// call, so a restart after a long outage does not fire a burst of notifications.
pub fn next_escalation(policy: &EscalationPolicy, alert: &Alert, now_ms: i64) -> Option<Severity> {
    if !alert.open || alert.acknowledged.is_some() || alert.escalations >= policy.max_escalations {
        return None;
    }
    let since = alert.last_escalated_ms.unwrap_or(alert.raised_ms);
    let delay_ms = policy.delay().as_millis() as i64;
    if now_ms.saturating_sub(since) < delay_ms {
        return None;
    }
    Some(raised(alert.severity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{AlertAction, AlertInput, AlertKind, AlertLocation};

    const MINUTE: i64 = 60_000;

    fn alert(severity: Severity) -> Alert {
        Alert::opened(
            1,
            AlertInput {
                kind: AlertKind::Leak,
                severity,
                location: AlertLocation::Link("P1".into()),
                estimated_flow: Some(2.0),
                time_ms: 1_000_000,
                message: "leak".into(),
            },
        )
    }

    /// Runs the policy every minute for `minutes`, applying each escalation as the
    /// AlertManager does; returns (minute, new severity) of each.
    fn run(
        policy: &EscalationPolicy,
        mut alert: Alert,
        ack_at: Option<i64>,
        minutes: i64,
    ) -> Vec<(i64, Severity)> {
        let mut seen = Vec::new();
        for minute in 0..=minutes {
            let now = alert.raised_ms + minute * MINUTE;
            if ack_at == Some(minute) {
                alert.acknowledged = Some(AlertAction {
                    by: "ann".into(),
                    at_ms: now,
                });
            }
            if let Some(severity) = next_escalation(policy, &alert, now) {
                alert.severity = severity;
                alert.escalations += 1;
                alert.last_escalated_ms = Some(now);
                seen.push((minute, severity));
            }
        }
        seen
    }

    fn policy(minutes: f64, max_escalations: u32) -> EscalationPolicy {
        EscalationPolicy {
            unacknowledged_after_minutes: minutes,
            max_escalations,
        }
    }

    #[test]
    fn unacknowledged_alerts_escalate_every_period_up_to_the_limit() {
        assert_eq!(
            run(&policy(15.0, 3), alert(Severity::Info), None, 120),
            [
                (15, Severity::Warning),
                (30, Severity::Critical),
                (45, Severity::Critical)
            ]
        );
    }

    #[test]
    fn acknowledgement_or_resolution_stops_escalation() {
        assert_eq!(
            run(&policy(10.0, 5), alert(Severity::Warning), Some(25), 120),
            [(10, Severity::Critical), (20, Severity::Critical)]
        );
        assert_eq!(
            run(&policy(10.0, 5), alert(Severity::Info), Some(0), 120),
            []
        );
        let mut closed = alert(Severity::Info);
        closed.open = false;
        assert_eq!(run(&policy(10.0, 5), closed, None, 120), []);
    }

    #[test]
    fn a_long_gap_escalates_once_and_bad_policies_are_named() {
        let mut alert = alert(Severity::Info);
        let late = alert.raised_ms + 600 * MINUTE;
        assert_eq!(
            next_escalation(&policy(5.0, 10), &alert, late),
            Some(Severity::Warning)
        );
        alert.escalations = 1;
        alert.last_escalated_ms = Some(late);
        assert_eq!(
            next_escalation(&policy(5.0, 10), &alert, late + MINUTE),
            None
        );
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(policy(bad, 1)
                .validate()
                .unwrap_err()
                .contains("unacknowledged_after_minutes"));
        }
    }
}
