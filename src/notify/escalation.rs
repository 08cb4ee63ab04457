//! Escalation of alerts nobody acknowledges: after a municipality's delay without an
//! acknowledgement, the alert's severity is raised one step and it is notified again
//! ([`EventKind::Escalated`](super::EventKind::Escalated)), up to a number of times.
//!
//! Pure: the caller (the AlertManager) keeps, per open alert, whether it is acknowledged and
//! its [`EscalationState`], and asks [`next_escalation`] on a timer.

use actors::messages::{Alert, Severity};
use serde::{Deserialize, Serialize};

/// A municipality's escalation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Minutes an open alert may stay unacknowledged (since it was raised, then since its
    /// latest escalation) before it is escalated.
    pub unacknowledged_after_minutes: u32,
    /// How many times one alert is escalated at most.
    pub max_escalations: u32,
}

impl EscalationPolicy {
    /// Checks the fields; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.unacknowledged_after_minutes == 0 {
            return Err("unacknowledged_after_minutes must be at least 1".into());
        }
        Ok(())
    }
}

/// What escalation did to one alert so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationState {
    /// Escalations so far.
    pub escalations: u32,
    /// When the latest one happened (Unix ms).
    pub last_escalated_ms: Option<i64>,
}

/// An escalation to apply now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// The alert's new severity (one step up, at most critical).
    pub severity: Severity,
    /// The alert's escalation state after this one.
    pub state: EscalationState,
}

/// The severity one step above `severity` (critical stays critical).
pub fn raised(severity: Severity) -> Severity {
    match severity {
        Severity::Info => Severity::Warning,
        Severity::Warning | Severity::Critical => Severity::Critical,
    }
}

/// The escalation due at `now_ms` for `alert`, if any: it is open, not acknowledged, below
/// the policy's number of escalations, and unacknowledged for the policy's delay since it was
/// raised or last escalated. One call escalates at most once, whatever the time elapsed, so a
/// restart after a long outage does not fire a burst of notifications.
pub fn next_escalation(
    policy: &EscalationPolicy,
    alert: &Alert,
    acknowledged: bool,
    state: &EscalationState,
    now_ms: i64,
) -> Option<Escalation> {
    if !alert.open || acknowledged || state.escalations >= policy.max_escalations {
        return None;
    }
    let since = state.last_escalated_ms.unwrap_or(alert.raised_ms);
    let delay_ms = i64::from(policy.unacknowledged_after_minutes) * 60_000;
    if now_ms.saturating_sub(since) < delay_ms {
        return None;
    }
    Some(Escalation {
        severity: raised(alert.severity),
        state: EscalationState {
            escalations: state.escalations + 1,
            last_escalated_ms: Some(now_ms),
        },
    })
}

#[cfg(test)]
mod tests {
    use actors::messages::{AlertChange, AlertKind, AlertLocation};

    use super::*;

    const MINUTE: i64 = 60_000;

    fn alert(severity: Severity) -> Alert {
        Alert {
            id: 1,
            kind: AlertKind::Leak,
            severity,
            location: AlertLocation::Link("P1".into()),
            estimated_flow: Some(2.0),
            raised_ms: 1_000_000,
            last_seen_ms: 1_000_000,
            occurrences: 1,
            message: "leak".into(),
            open: true,
            change: AlertChange::Raised,
            acknowledged: None,
            resolved_by: None,
            comments: Vec::new(),
        }
    }

    /// Runs the policy every minute for `minutes`, applying each escalation like the
    /// AlertManager would; returns (minute, new severity) of each.
    fn run(
        policy: &EscalationPolicy,
        mut alert: Alert,
        ack_at: Option<i64>,
        minutes: i64,
    ) -> Vec<(i64, Severity)> {
        let mut state = EscalationState::default();
        let mut seen = Vec::new();
        for minute in 0..=minutes {
            let now = alert.raised_ms + minute * MINUTE;
            let acknowledged = ack_at.is_some_and(|at| minute >= at);
            if let Some(escalation) = next_escalation(policy, &alert, acknowledged, &state, now) {
                alert.severity = escalation.severity;
                state = escalation.state;
                seen.push((minute, escalation.severity));
            }
        }
        seen
    }

    #[test]
    fn unacknowledged_alerts_escalate_every_period_up_to_the_limit() {
        let policy = EscalationPolicy {
            unacknowledged_after_minutes: 15,
            max_escalations: 3,
        };
        assert_eq!(
            run(&policy, alert(Severity::Info), None, 120),
            [
                (15, Severity::Warning),
                (30, Severity::Critical),
                (45, Severity::Critical)
            ]
        );
    }

    #[test]
    fn acknowledgement_or_resolution_stops_escalation() {
        let policy = EscalationPolicy {
            unacknowledged_after_minutes: 10,
            max_escalations: 5,
        };
        assert_eq!(
            run(&policy, alert(Severity::Warning), Some(25), 120),
            [(10, Severity::Critical), (20, Severity::Critical)]
        );
        assert_eq!(run(&policy, alert(Severity::Info), Some(0), 120), []);
        let mut closed = alert(Severity::Info);
        closed.open = false;
        assert_eq!(run(&policy, closed, None, 120), []);
    }

    #[test]
    fn a_long_gap_escalates_once() {
        let policy = EscalationPolicy {
            unacknowledged_after_minutes: 5,
            max_escalations: 10,
        };
        let alert = alert(Severity::Info);
        let state = EscalationState::default();
        let late = alert.raised_ms + 600 * MINUTE;
        let first = next_escalation(&policy, &alert, false, &state, late).unwrap();
        assert_eq!(first.state.escalations, 1);
        assert_eq!(
            next_escalation(&policy, &alert, false, &first.state, late + MINUTE),
            None
        );
        assert!(EscalationPolicy {
            unacknowledged_after_minutes: 0,
            max_escalations: 1
        }
        .validate()
        .is_err());
    }
}
