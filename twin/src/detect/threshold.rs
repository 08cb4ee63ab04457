//! Threshold rules on one sensor's values: a lower and/or an upper limit that must be crossed
//! for a number of consecutive readings and for a minimum duration before the condition
//! counts, and a hysteresis band the value must get back through before it clears, so a value
//! hovering at the limit does not open and close the condition on every reading.
//!
//! Pure and deterministic: [`ThresholdTracker::observe`] takes one value at a time (the caller
//! converts it to the rule's unit first) and says when the condition starts and ends.

use serde::{Deserialize, Serialize};

/// Limits on one sensor's value, in the unit the caller compares in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// The value is too low below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// The value is too high above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Consecutive readings past the limit before the condition starts (at least 1).
    #[serde(default = "one_reading")]
    pub for_readings: u32,
    /// Seconds past the limit (from the first of those readings) before the condition starts.
    #[serde(default)]
    pub for_seconds: f64,
    /// How far back inside the limit the value must come before the condition clears.
    #[serde(default)]
    pub hysteresis: f64,
}

fn one_reading() -> u32 {
    1
}

/// A field of a [`Limit`] that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {cause}")]
pub struct LimitError {
    /// The field (`below`, `above`, `for_readings`, `for_seconds`, `hysteresis`).
    pub field: &'static str,
    /// What is wrong.
    pub cause: String,
}

/// Which limit a value crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Below `below`.
    Below,
    /// Above `above`.
    Above,
}

impl Side {
    /// `below` or `above`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Below => "below",
            Side::Above => "above",
        }
    }
}

impl Limit {
    /// Checks the fields; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), LimitError> {
        let error = |field, cause: String| Err(LimitError { field, cause });
        for (field, value) in [("below", self.below), ("above", self.above)] {
            if value.is_some_and(|v| !v.is_finite()) {
                return error(field, "not a finite number".into());
            }
        }
        let (below, above) = match (self.below, self.above) {
            (None, None) => return error("below", "a rule needs `below`, `above` or both".into()),
            (Some(below), Some(above)) if below >= above => {
                return error("below", format!("{below} is not below `above` ({above})"))
            }
            pair => pair,
        };
        if self.for_readings == 0 {
            return error("for_readings", "at least 1 reading".into());
        }
        if !(self.for_seconds.is_finite() && self.for_seconds >= 0.0) {
            return error(
                "for_seconds",
                format!("{} is not a duration (0 or more seconds)", self.for_seconds),
            );
        }
        if !(self.hysteresis.is_finite() && self.hysteresis >= 0.0) {
            return error(
                "hysteresis",
                format!("{} is not 0 or more", self.hysteresis),
            );
        }
        if let (Some(below), Some(above)) = (below, above) {
            // Clearing one side must not land on the other.
            if below + self.hysteresis >= above - self.hysteresis {
                return error(
                    "hysteresis",
                    format!(
                        "{} leaves no value between the limits {below} and {above}",
                        self.hysteresis
                    ),
                );
            }
        }
        Ok(())
    }

    /// The limit of `side`, when the rule has one.
    pub fn threshold(&self, side: Side) -> Option<f64> {
        match side {
            Side::Below => self.below,
            Side::Above => self.above,
        }
    }

    /// The side `value` is past, if any.
    pub fn crossed(&self, value: f64) -> Option<Side> {
        if self.below.is_some_and(|below| value < below) {
            Some(Side::Below)
        } else if self.above.is_some_and(|above| value > above) {
            Some(Side::Above)
        } else {
            None
        }
    }

    /// Whether `value` ends a condition of `side` (a side without a limit any more ends it).
    fn clears(&self, side: Side, value: f64) -> bool {
        match side {
            Side::Below => self
                .below
                .is_none_or(|below| value >= below + self.hysteresis),
            Side::Above => self
                .above
                .is_none_or(|above| value <= above - self.hysteresis),
        }
    }
}

/// When a condition starts or ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The value has been past the limit of `side` long enough.
    Breached {
        /// Which limit.
        side: Side,
        /// Its value.
        threshold: f64,
    },
    /// The value came back through the hysteresis band.
    Cleared {
        /// The limit the condition was about.
        side: Side,
    },
}

/// Readings past one limit in a row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Streak {
    side: Side,
    readings: u32,
    since_ms: i64,
}

/// One sensor's condition under a [`Limit`], fed one value at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThresholdTracker {
    active: Option<Side>,
    streak: Option<Streak>,
}

impl ThresholdTracker {
    /// The side of the condition in force, if any.
    pub fn active(&self) -> Option<Side> {
        self.active
    }

    /// Forgets the readings counted toward a condition that has not started yet (the rule
    /// changed); a condition in force stays until a value clears it under the new limit.
    pub fn restart_counting(&mut self) {
        self.streak = None;
    }

    /// Takes the value observed at `time_ms`; says whether a condition starts or ends with it.
    pub fn observe(&mut self, limit: &Limit, time_ms: i64, value: f64) -> Option<Transition> {
        if let Some(side) = self.active {
            if !limit.clears(side, value) {
                return None;
            }
            self.active = None;
            self.streak = None;
            return Some(Transition::Cleared { side });
        }
        let Some(side) = limit.crossed(value) else {
            self.streak = None;
            return None;
        };
        let streak = match self.streak {
            Some(streak) if streak.side == side => Streak {
                readings: streak.readings.saturating_add(1),
                since_ms: streak.since_ms.min(time_ms),
                side,
            },
            _ => Streak {
                side,
                readings: 1,
                since_ms: time_ms,
            },
        };
        let lasted_ms = time_ms.saturating_sub(streak.since_ms) as f64;
        if streak.readings >= limit.for_readings && lasted_ms >= limit.for_seconds * 1e3 {
            self.active = Some(side);
            self.streak = None;
            return Some(Transition::Breached {
                side,
                threshold: limit.threshold(side).unwrap_or(value),
            });
        }
        self.streak = Some(streak);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(below: Option<f64>, above: Option<f64>) -> Limit {
        Limit {
            below,
            above,
            for_readings: 1,
            for_seconds: 0.0,
            hysteresis: 0.0,
        }
    }

    /// Feeds `values` one second apart; the transitions with the index of their reading.
    fn run(limit: &Limit, values: &[f64]) -> Vec<(usize, Transition)> {
        let mut tracker = ThresholdTracker::default();
        values
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| Some((i, tracker.observe(limit, i as i64 * 1000, v)?)))
            .collect()
    }

    #[test]
    fn a_low_value_opens_and_a_recovered_one_clears() {
        let rule = limit(Some(30.0), None);
        let seen = run(&rule, &[40.0, 29.0, 25.0, 31.0, 20.0]);
        let opened = Transition::Breached {
            side: Side::Below,
            threshold: 30.0,
        };
        let cleared = Transition::Cleared { side: Side::Below };
        assert_eq!(seen, [(1, opened), (3, cleared), (4, opened)]);
    }

    #[test]
    fn consecutive_readings_and_duration_are_both_required() {
        let mut rule = limit(None, Some(10.0));
        rule.for_readings = 3;
        // Two high readings, one normal: the count starts again.
        let seen = run(&rule, &[11.0, 12.0, 9.0, 11.0, 11.0, 11.0]);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 5);
        rule.for_readings = 1;
        rule.for_seconds = 2.5;
        // One second apart: the fourth high reading is 3 s after the first.
        let seen = run(&rule, &[11.0, 11.0, 11.0, 11.0]);
        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn hysteresis_stops_a_value_hovering_at_the_limit_from_flapping() {
        let hovering: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 29.9 } else { 30.1 })
            .collect();
        let plain = run(&limit(Some(30.0), None), &hovering);
        assert_eq!(plain.len(), 40, "without hysteresis every reading flips");
        let mut rule = limit(Some(30.0), None);
        rule.hysteresis = 1.0;
        let damped = run(&rule, &hovering);
        assert_eq!(damped.len(), 1, "{damped:?}");
        let mut tail = hovering.clone();
        tail.push(31.0);
        let cleared = run(&rule, &tail);
        assert_eq!(
            cleared.last(),
            Some(&(40, Transition::Cleared { side: Side::Below }))
        );
    }

    #[test]
    fn a_jump_across_both_limits_clears_then_counts_afresh() {
        let rule = limit(Some(10.0), Some(20.0));
        let seen = run(&rule, &[5.0, 25.0, 25.0]);
        let sides: Vec<Transition> = seen.into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            sides,
            [
                Transition::Breached {
                    side: Side::Below,
                    threshold: 10.0
                },
                Transition::Cleared { side: Side::Below },
                Transition::Breached {
                    side: Side::Above,
                    threshold: 20.0
                },
            ]
        );
    }

    #[test]
    fn a_removed_limit_clears_its_condition() {
        let mut tracker = ThresholdTracker::default();
        let low = limit(Some(30.0), None);
        assert!(tracker.observe(&low, 0, 10.0).is_some());
        let only_high = limit(None, Some(50.0));
        assert_eq!(
            tracker.observe(&only_high, 1000, 10.0),
            Some(Transition::Cleared { side: Side::Below })
        );
        assert_eq!(tracker.active(), None);
    }

    #[test]
    fn bad_limits_name_their_field() {
        let field = |limit: Limit| limit.validate().unwrap_err().field;
        assert_eq!(field(limit(None, None)), "below");
        assert_eq!(field(limit(Some(5.0), Some(5.0))), "below");
        assert_eq!(field(limit(Some(f64::NAN), None)), "below");
        assert_eq!(field(limit(None, Some(f64::INFINITY))), "above");
        let mut rule = limit(Some(1.0), Some(3.0));
        rule.for_readings = 0;
        assert_eq!(field(rule), "for_readings");
        rule.for_readings = 2;
        rule.for_seconds = -1.0;
        assert_eq!(field(rule), "for_seconds");
        rule.for_seconds = 60.0;
        rule.hysteresis = 1.0;
        assert_eq!(field(rule), "hysteresis");
        rule.hysteresis = 0.5;
        assert_eq!(rule.validate(), Ok(()));
    }
}
