//! Restart budgets: a supervisor restarts a failed child while the budget allows, and escalates
//! (fails itself) once it is exhausted, so a persistent fault cannot become a crash loop.
//!
//! ractor does not restart children by itself: every supervisor here handles
//! `SupervisionEvent::ActorFailed` and respawns, asking its [`RestartTracker`] first. Entities
//! (sensors and pipes hosted by a shard, see `crate::shard`) have a tracker of their own, kept
//! by their shard only while they have restarts within the window.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::RestartBudget;

/// The restarts a supervisor made within its budget's window.
#[derive(Debug, Clone)]
pub(crate) struct RestartTracker {
    budget: RestartBudget,
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker with no restart yet.
    pub(crate) fn new(budget: RestartBudget) -> Self {
        Self {
            budget,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the budget allows one; `false` means escalate.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.budget.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.budget.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Whether every restart recorded has left the window at `now`: the tracker then allows
    /// as much as a new one and can be dropped.
    pub(crate) fn is_quiet(&self, now: Instant) -> bool {
        self.recent
            .back()
            .is_none_or(|t| now.duration_since(*t) > self.budget.window)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn budget_is_a_sliding_window() {
        let mut tracker = RestartTracker::new(RestartBudget {
            max_restarts: 2,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(tracker.allow(t0));
        assert!(tracker.allow(t0 + Duration::from_secs(1)));
        assert!(!tracker.allow(t0 + Duration::from_secs(2)));
        // The first restart left the window: one more is allowed, then none again.
        assert!(tracker.allow(t0 + Duration::from_secs(11)));
        assert!(!tracker.allow(t0 + Duration::from_secs(11)));
        assert!(!tracker.is_quiet(t0 + Duration::from_secs(20)));
        assert!(tracker.is_quiet(t0 + Duration::from_secs(22)));
    }
}
