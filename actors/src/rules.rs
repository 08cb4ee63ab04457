//! A municipality's threshold rules at run time: kept in the store under `(tenant,
//! "alert_rules")` (loaded when the twin starts), shared by the municipality's `SensorActor`
//! entities, which evaluate them on every usable reading ([`ThresholdWatch`]) and are told of
//! every replacement by a message (on which they read the rules in force, so replacements
//! racing each other end with the last one stored), so an edit applies at once and survives
//! restarts.

use std::sync::{Arc, RwLock};

use twin::detect::threshold::{Side, ThresholdTracker, Transition};
use twin::store::tuple::Element;
use twin::store::{Store, StoreError, TenantKeys};
use twin::{NetworkUnits, Sensor, SensorKind, Unit};

use crate::alerts::AlertMsg;
use crate::messages::{AlertInput, AlertKind, AlertLocation, AlertRule, AlertRules, Severity};

/// Record of a tenant's rule set.
const ALERT_RULES: &str = "alert_rules";

/// Why the stored rules cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored record does not decode.
    #[error("stored alert rules do not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The rule set of one municipality, as the twin applies it now.
#[derive(Debug, Default)]
pub(crate) struct RuleBook {
    current: RwLock<Arc<AlertRules>>,
}

fn key(tenant: &TenantKeys) -> Vec<u8> {
    tenant.key(&[Element::from(ALERT_RULES)])
}

impl RuleBook {
    /// The rules `store` keeps for `tenant`; none stored: `configured` (else no rules). The
    /// configured set is not stored, so it applies until a set is stored over the API.
    pub(crate) fn load(
        tenant: &TenantKeys,
        store: &dyn Store,
        configured: Option<AlertRules>,
    ) -> Result<Self, RulesError> {
        let rules = match store.get(&key(tenant))? {
            Some(value) => serde_json::from_slice(&value)?,
            None => configured.unwrap_or_default(),
        };
        Ok(Self {
            current: RwLock::new(Arc::new(rules)),
        })
    }

    /// The rules in force.
    pub(crate) fn current(&self) -> Arc<AlertRules> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stores `rules` durably for `tenant`, then puts them in force; the rules in force.
    pub(crate) fn replace(
        &self,
        tenant: &TenantKeys,
        store: &dyn Store,
        rules: AlertRules,
    ) -> Result<Arc<AlertRules>, RulesError> {
        // Held while storing, so the rules in force are the ones stored last.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        store.put(&key(tenant), &serde_json::to_vec(&rules)?)?;
        *current = Arc::new(rules);
        Ok(current.clone())
    }
}

/// Where a sensor's alerts are: its node or link, or its device.
pub(crate) fn sensor_location(sensor: &Sensor) -> AlertLocation {
    match sensor.kind.target_kind() {
        twin::reading::TargetKind::Node => AlertLocation::Node(sensor.target.clone()),
        twin::reading::TargetKind::Link => AlertLocation::Link(sensor.target.clone()),
        twin::reading::TargetKind::Device => AlertLocation::Device(sensor.target.clone()),
    }
}

/// The unit `sensor`'s values are compared in: the network's unit of its kind (what
/// `Sensor::to_network` converts to).
fn compared_unit(sensor: &Sensor, units: &NetworkUnits) -> Unit {
    match sensor.kind {
        SensorKind::Pressure => units.pressure_unit,
        SensorKind::Head | SensorKind::Level => units.length_unit(),
        SensorKind::Flow | SensorKind::Demand => Unit::Flow(units.flow_units),
        SensorKind::ValvePosition => Unit::Percent,
        SensorKind::PumpStatus | SensorKind::Battery | SensorKind::Signal => sensor.unit,
    }
}

/// One sensor's threshold condition under its rule; its answers are for the AlertManager.
#[derive(Debug)]
pub(crate) struct ThresholdWatch {
    rule: Option<AlertRule>,
    /// Name of the unit values are compared in (for messages).
    unit: &'static str,
    tracker: ThresholdTracker,
    /// Whether the AlertManager's view is known: after a (re)load an alert of an earlier life
    /// may be open, so the first value inside the limits resolves it, once.
    synced: bool,
}

impl ThresholdWatch {
    /// The watch of `sensor` under `rules`, as after a (re)load.
    pub(crate) fn new(sensor: &Sensor, rules: &AlertRules, units: &NetworkUnits) -> Self {
        Self {
            rule: rules.for_sensor(sensor).cloned(),
            unit: compared_unit(sensor, units).name(),
            tracker: ThresholdTracker::default(),
            synced: false,
        }
    }

    /// Follows a new rule set. Readings counted toward a condition start again; a condition in
    /// force stays until a value clears it under the new rule, and ends at once (at
    /// `now_ms`) when the sensor has no rule any more.
    pub(crate) fn set_rules(
        &mut self,
        sensor: &Sensor,
        rules: &AlertRules,
        now_ms: i64,
    ) -> Option<AlertMsg> {
        let rule = rules.for_sensor(sensor).cloned();
        if rule == self.rule {
            return None;
        }
        self.rule = rule;
        self.tracker.restart_counting();
        if self.rule.is_some() {
            return None;
        }
        let was_active = self.tracker.active().is_some();
        self.tracker = ThresholdTracker::default();
        (was_active || !self.synced).then(|| {
            self.synced = true;
            AlertMsg::Resolve(alert_input(
                sensor,
                Severity::Warning,
                now_ms,
                format!("sensor {}: its threshold rule was removed", sensor.id),
            ))
        })
    }

    /// Takes a usable reading at `time_ms` (`value` in the network's unit of the sensor's
    /// kind).
    pub(crate) fn observe(
        &mut self,
        sensor: &Sensor,
        time_ms: i64,
        value: f64,
    ) -> Option<AlertMsg> {
        let unit = self.unit;
        let rule = self.rule.as_ref()?;
        let limit = rule.limit();
        let transition = self.tracker.observe(&limit, time_ms, value);
        let id = &sensor.id;
        match transition {
            Some(Transition::Breached { side, threshold }) => {
                self.synced = true;
                let (relation, since) = match side {
                    Side::Below => ("below", "under"),
                    Side::Above => ("above", "over"),
                };
                let message = format!(
                    "sensor {id} reads {} {unit}, {relation} the limit of {} {unit} \
                     ({} readings {since} it)",
                    shown(value),
                    shown(threshold),
                    limit.for_readings
                );
                Some(AlertMsg::Raise(alert_input(
                    sensor,
                    rule.severity,
                    time_ms,
                    message,
                )))
            }
            Some(Transition::Cleared { side }) => {
                self.synced = true;
                let limit_text = limit.threshold(side).map_or_else(
                    || "no limit".to_string(),
                    |t| format!("{} {unit}", shown(t)),
                );
                let message = format!(
                    "sensor {id} reads {} {unit}, back within its {} limit ({limit_text})",
                    shown(value),
                    side.name()
                );
                Some(AlertMsg::Resolve(alert_input(
                    sensor,
                    rule.severity,
                    time_ms,
                    message,
                )))
            }
            None if !self.synced && limit.crossed(value).is_none() => {
                self.synced = true;
                let message = format!(
                    "sensor {id} reads {} {unit}, within its limits",
                    shown(value)
                );
                Some(AlertMsg::Resolve(alert_input(
                    sensor,
                    rule.severity,
                    time_ms,
                    message,
                )))
            }
            None => None,
        }
    }
}

/// `value` for people: at most three decimals, no trailing zeros (unit conversions leave
/// digits in the 15th place that mean nothing).
fn shown(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

fn alert_input(sensor: &Sensor, severity: Severity, time_ms: i64, message: String) -> AlertInput {
    AlertInput {
        kind: AlertKind::Threshold,
        severity,
        location: sensor_location(sensor),
        estimated_flow: None,
        time_ms,
        message,
    }
}

#[cfg(test)]
mod tests {
    use hydraulics::model::Options;
    use twin::store::MemoryStore;

    use super::*;
    use crate::messages::Severity;

    fn pressure_sensor(id: &str) -> Sensor {
        Sensor::new(id, SensorKind::Pressure, "J1", Unit::Psi).unwrap()
    }

    fn rules(json: serde_json::Value) -> AlertRules {
        serde_json::from_value(json).unwrap()
    }

    fn input(message: Option<AlertMsg>) -> (bool, AlertInput) {
        match message {
            Some(AlertMsg::Raise(input)) => (true, input),
            Some(AlertMsg::Resolve(input)) => (false, input),
            other => panic!("expected a raise or a resolve: {other:?}"),
        }
    }

    #[test]
    fn a_watch_raises_once_and_resolves_with_readable_values() {
        let sensor = pressure_sensor("P1");
        let units = NetworkUnits::new(&Options::default());
        let set = rules(serde_json::json!({"rules": [{"sensor_kind": "pressure",
            "below": 30.0, "for_readings": 2, "severity": "critical"}]}));
        let mut watch = ThresholdWatch::new(&sensor, &set, &units);
        // The first value inside the limits after a load resolves an alert of an earlier life.
        let (raise, first) = input(watch.observe(&sensor, 0, 40.0));
        assert!(!raise);
        assert_eq!(first.kind, AlertKind::Threshold);
        assert!(watch.observe(&sensor, 1000, 29.0).is_none());
        let (raise, opened) = input(watch.observe(&sensor, 2000, 28.000000000000004));
        assert!(raise);
        assert_eq!(opened.severity, Severity::Critical);
        assert_eq!(opened.location, AlertLocation::Node("J1".into()));
        assert_eq!(
            opened.message,
            "sensor P1 reads 28 psi, below the limit of 30 psi (2 readings under it)"
        );
        assert!(watch.observe(&sensor, 3000, 20.0).is_none());
        let (raise, cleared) = input(watch.observe(&sensor, 4000, 30.5));
        assert!(!raise);
        assert!(cleared.message.contains("30.5 psi"), "{}", cleared.message);
        assert!(watch.observe(&sensor, 5000, 31.0).is_none());
    }

    #[test]
    fn a_rule_change_keeps_or_ends_the_condition() {
        let sensor = pressure_sensor("P1");
        let units = NetworkUnits::new(&Options::default());
        let low = rules(serde_json::json!({"rules": [{"sensor_kind": "pressure", "below": 30.0}]}));
        let mut watch = ThresholdWatch::new(&sensor, &low, &units);
        assert!(input(watch.observe(&sensor, 0, 10.0)).0);
        // Another sensor's rule changes nothing for this one.
        let other = rules(serde_json::json!({"rules": [{"sensor_kind": "pressure",
            "below": 30.0}, {"sensor_kind": "pressure", "sensor_id": "P2", "above": 5.0}]}));
        assert!(watch.set_rules(&sensor, &other, 1000).is_none());
        // Without a rule the open condition ends at once.
        let (raise, ended) = input(watch.set_rules(&sensor, &AlertRules::default(), 2000));
        assert!(!raise);
        assert_eq!(ended.time_ms, 2000);
        assert!(watch.observe(&sensor, 3000, 10.0).is_none());
    }

    #[test]
    fn rules_are_stored_and_loaded_per_tenant() {
        let store = MemoryStore::new();
        let (north, south) = (TenantKeys::new("north"), TenantKeys::new("south"));
        let set = rules(serde_json::json!({"rules": [{"sensor_kind": "level", "above": 9.5}]}));
        let configured =
            rules(serde_json::json!({"rules": [{"sensor_kind": "pressure", "below": 20.0}]}));
        let book = RuleBook::load(&north, &store, None).unwrap();
        assert_eq!(*book.current(), AlertRules::default());
        // The configuration's set applies while none is stored ...
        let book = RuleBook::load(&north, &store, Some(configured.clone())).unwrap();
        assert_eq!(*book.current(), configured);
        // ... and a stored set wins over it from then on, an empty one too.
        book.replace(&north, &store, set.clone()).unwrap();
        assert_eq!(*book.current(), set);
        let load = |tenant, configured| RuleBook::load(tenant, &store, configured).unwrap();
        assert_eq!(*load(&north, Some(configured.clone())).current(), set);
        book.replace(&north, &store, AlertRules::default()).unwrap();
        assert_eq!(
            *load(&north, Some(configured.clone())).current(),
            AlertRules::default()
        );
        assert_eq!(*load(&south, None).current(), AlertRules::default());
    }
}
