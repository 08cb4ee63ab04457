//! `AlertManager`: one per municipality. Receives alerts (from `SensorActor`s' health rule
//! now, from the detectors through the `NetworkActor` later), de-duplicates them (one open
//! alert per kind and location: repeats update it), stores every change under the tenant's
//! `"alerts"` family and broadcasts it to subscribers.
//!
//! On (re)start it reloads the recent alerts from the store, open ones included, so
//! de-duplication survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use twin::store::tuple::Element;
use twin::store::{KeyRange, Order};

use crate::escalation::next_escalation;
use crate::messages::{
    Alert, AlertAction, AlertChange, AlertComment, AlertInput, AlertKind, AlertLocation,
    AlertOperation, AlertOperationError, Severity, MAX_COMMENTS, MAX_COMMENT_CHARS,
};
use crate::municipality::MunicipalityContext;
use crate::runtime::now_ms;

/// Record family of alerts under a tenant.
const ALERTS: &str = "alerts";

/// Alerts kept in memory (and reloaded): the most recent ones.
const HISTORY: usize = 1000;
/// Bounds of the escalation timer's period.
const MIN_ESCALATION_TICK: Duration = Duration::from_millis(100);
const MAX_ESCALATION_TICK: Duration = Duration::from_secs(30);

/// Messages of an [`AlertManager`].
#[derive(Debug)]
pub enum AlertMsg {
    /// An observation: opens an alert or updates the open one of the same kind and location.
    Raise(AlertInput),
    /// The condition is over: closes the open alert of this kind and location, if any, with
    /// this observation's time and message (its severity and flow are ignored).
    Resolve(AlertInput),
    /// The recent alerts, oldest first.
    List(RpcReplyPort<Vec<Alert>>),
    /// A person (or the escalation policy) acts on alert `id`; answers the alert as it is
    /// afterwards.
    Operate {
        /// The alert.
        id: u64,
        /// What to do.
        operation: AlertOperation,
        /// Who and when.
        by: AlertAction,
        /// The answer.
        reply: RpcReplyPort<Result<Alert, AlertOperationError>>,
    },
    /// Escalates the open alerts the municipality's policy says are due.
    EscalationTick,
    /// Chaos testing only: makes the actor panic. No network API sends it.
    InjectPanic,
}

/// The alert manager of one municipality.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertManager;

/// The state of an [`AlertManager`].
#[derive(Debug)]
pub struct AlertState {
    context: Arc<MunicipalityContext>,
    history: BTreeMap<u64, Alert>,
    open: HashMap<(AlertKind, AlertLocation), u64>,
    next_id: u64,
}

fn alerts_range(context: &MunicipalityContext) -> KeyRange {
    context
        .tenant
        .space()
        .subspace(&[Element::from(ALERTS)])
        .range()
}

impl Actor for AlertManager {
    type Msg = AlertMsg;
    type State = AlertState;
    type Arguments = Arc<MunicipalityContext>;

    async fn pre_start(
        &self,
        _myself: ActorRef<AlertMsg>,
        context: Arc<MunicipalityContext>,
    ) -> Result<AlertState, ActorProcessingErr> {
        let stored =
            context
                .journal
                .store()
                .scan(&alerts_range(&context), Order::Reverse, Some(HISTORY))?;
        let mut history = BTreeMap::new();
        let mut open = HashMap::new();
        for (_, value) in stored {
            let alert: Alert = serde_json::from_slice(&value)?;
            if alert.open {
                open.insert((alert.kind, alert.location.clone()), alert.id);
            }
            history.insert(alert.id, alert);
        }
        let next_id = history.keys().next_back().map_or(1, |id| id + 1);
        Ok(AlertState {
            context,
            history,
            open,
            next_id,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<AlertMsg>,
        state: &mut AlertState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(policy) = state.context.escalation {
            // Often enough that an escalation is at most a quarter of the delay late.
            let tick = (policy.delay() / 4).clamp(MIN_ESCALATION_TICK, MAX_ESCALATION_TICK);
            // The timer ends with the actor (its sends fail once the mailbox is gone).
            myself.send_interval(tick, || AlertMsg::EscalationTick);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<AlertMsg>,
        message: AlertMsg,
        state: &mut AlertState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AlertMsg::Raise(input) => state.raise(input),
            AlertMsg::Resolve(cleared) => state.resolve(cleared),
            AlertMsg::List(reply) => {
                let _ = reply.send(state.history.values().cloned().collect());
            }
            AlertMsg::Operate {
                id,
                operation,
                by,
                reply,
            } => {
                let _ = reply.send(state.operate(id, operation, by));
            }
            AlertMsg::EscalationTick => state.escalate_due(now_ms()),
            AlertMsg::InjectPanic => panic!("chaos: injected panic in an alert manager"),
        }
        Ok(())
    }
}

impl AlertState {
    fn raise(&mut self, input: AlertInput) {
        let key = (input.kind, input.location.clone());
        let open = self.open.get(&key).and_then(|id| self.history.get_mut(id));
        let alert = match open {
            Some(alert) => {
                alert.change = AlertChange::Repeated;
                alert.severity = alert.severity.max(input.severity);
                alert.estimated_flow = input.estimated_flow.or(alert.estimated_flow);
                alert.last_seen_ms = alert.last_seen_ms.max(input.time_ms);
                alert.occurrences = alert.occurrences.saturating_add(1);
                alert.message = input.message;
                alert.clone()
            }
            None => {
                let alert = Alert::opened(self.next_id, input);
                self.next_id += 1;
                self.open.insert(key, alert.id);
                self.history.insert(alert.id, alert.clone());
                self.trim();
                alert
            }
        };
        self.publish(alert);
    }

    fn resolve(&mut self, cleared: AlertInput) {
        let Some(id) = self.open.remove(&(cleared.kind, cleared.location)) else {
            return;
        };
        let Some(alert) = self.history.get_mut(&id) else {
            return;
        };
        alert.open = false;
        alert.last_seen_ms = alert.last_seen_ms.max(cleared.time_ms);
        alert.message = cleared.message;
        alert.change = AlertChange::Resolved;
        let alert = alert.clone();
        self.publish(alert);
    }

    /// Applies a person's (or the escalation policy's) operation to alert `id`. Acknowledging
    /// twice changes nothing; anything but a comment on a resolved alert is refused.
    fn operate(
        &mut self,
        id: u64,
        operation: AlertOperation,
        by: AlertAction,
    ) -> Result<Alert, AlertOperationError> {
        let alert = self
            .history
            .get_mut(&id)
            .ok_or(AlertOperationError::NotFound(id))?;
        let closed = !alert.open;
        match operation {
            AlertOperation::Comment(text) => {
                let text = text.trim().to_string();
                if text.is_empty() || text.chars().count() > MAX_COMMENT_CHARS {
                    return Err(AlertOperationError::BadComment(format!(
                        "1 to {MAX_COMMENT_CHARS} characters"
                    )));
                }
                if alert.comments.len() >= MAX_COMMENTS {
                    return Err(AlertOperationError::BadComment(format!(
                        "an alert keeps at most {MAX_COMMENTS} comments"
                    )));
                }
                alert.comments.push(AlertComment {
                    by: by.by,
                    at_ms: by.at_ms,
                    text,
                });
                alert.change = AlertChange::Commented;
            }
            _ if closed => return Err(AlertOperationError::AlreadyResolved(id)),
            AlertOperation::Acknowledge => {
                if alert.acknowledged.is_some() {
                    return Ok(alert.clone());
                }
                alert.acknowledged = Some(by);
                alert.change = AlertChange::Acknowledged;
            }
            AlertOperation::Resolve => {
                alert.open = false;
                alert.resolved_by = Some(by);
                alert.change = AlertChange::Resolved;
                self.open.retain(|_, open_id| *open_id != id);
            }
        }
        let alert = alert.clone();
        self.publish(alert.clone());
        Ok(alert)
    }

    /// Escalates every open alert whose escalation is due at `now_ms` (one step each).
    fn escalate_due(&mut self, now_ms: i64) {
        let Some(policy) = self.context.escalation else {
            return;
        };
        let due: Vec<(u64, Severity)> = self
            .history
            .values()
            .filter_map(|alert| Some((alert.id, next_escalation(&policy, alert, now_ms)?)))
            .collect();
        for (id, severity) in due {
            let Some(alert) = self.history.get_mut(&id) else {
                continue;
            };
            alert.severity = severity;
            alert.escalations += 1;
            alert.last_escalated_ms = Some(now_ms);
            alert.change = AlertChange::Escalated;
            let alert = alert.clone();
            self.publish(alert);
        }
    }

    /// Drops the oldest closed alerts beyond the history size (they stay in the store).
    fn trim(&mut self) {
        while self.history.len() > HISTORY {
            let Some(oldest) = self
                .history
                .iter()
                .find(|(_, alert)| !alert.open)
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.history.remove(&oldest);
        }
    }

    /// Stores and broadcasts a new or changed alert.
    fn publish(&self, alert: Alert) {
        let key = self
            .context
            .tenant
            .key(&[Element::from(ALERTS), Element::Int(alert.id as i64)]);
        match serde_json::to_vec(&alert) {
            Ok(value) => {
                if let Err(err) = self.context.journal.store().put(&key, &value) {
                    tracing::error!(municipality = %self.context.id, "alert not stored: {err}");
                }
            }
            Err(err) => tracing::error!("alert not encoded: {err}"),
        }
        tracing::info!(
            municipality = %self.context.id,
            kind = ?alert.kind,
            open = alert.open,
            "alert {}: {}",
            alert.id,
            alert.message
        );
        let _ = self.context.alerts.send(alert);
    }
}
