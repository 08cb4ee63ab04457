//! The running twin: [`TwinRuntime::start`] builds the supervision tree
//! `Root -> Municipality -> {NetworkActor, AlertManager, shards -> SensorActor entity per
//! sensor, shards -> PipeActor entity per pipe}` (entities hosted by shard actors: see
//! `crate::shard`), the ingest dispatcher, the batching writer and the periodic journal
//! compaction, and answers the queries the API needs.
//!
//! The live path of a request: gateway -> [`IngestHandle`] channel (bounded) -> dispatcher
//! (checks the municipality and sensors, splits by sensor) -> the `SensorActor` entity's shard
//! (quality, unit conversion) -> writer (group commit) -> acknowledgement; accepted values go on
//! from the `SensorActor` to the `NetworkActor`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use twin::live::{NetworkTwin, PeriodState, TwinError};
use twin::store::journal::ReadingJournal;
use twin::store::{Point, SeriesStore, Store, StoreError};
use twin::Reading;

use crate::alerts::AlertMsg;
use crate::config::RuntimeConfig;
use crate::devices::DeviceRegistry;
use crate::ingest::{IngestError, IngestHandle, IngestRequest, RejectReason};
use crate::messages::{
    Alert, AlertAction, AlertOperation, AlertOperationError, AlertRules, PipeState, RuleError,
    SensorSummary,
};
use crate::metrics::Metrics;
use crate::municipality::{
    ActorCount, ContextError, Municipality, MunicipalityContext, MunicipalityMsg,
    MunicipalityStatus, READINGS_CAPACITY,
};
use crate::network::NetworkMsg;
use crate::pipe::PipeMsg;
use crate::rules::RulesError;
use crate::sensor::{SensorBatch, SensorMsg};
use crate::supervision::RestartTracker;
pub use crate::writer::StoredReadings;
use crate::writer::{Completion, ReadingsPublishers, Writer};

/// How long a query waits for an actor's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests the dispatcher takes from the channel in one go.
const DISPATCH_BATCH: usize = 1024;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Two municipalities share an id.
    #[error("municipality {0} is defined twice")]
    DuplicateMunicipality(String),
    /// A municipality's sensors do not fit its network.
    #[error("municipality {municipality}: {source}")]
    Twin {
        /// The municipality.
        municipality: String,
        /// What is wrong.
        source: TwinError,
    },
    /// A municipality's configuration is inconsistent.
    #[error("municipality {municipality}: {source}")]
    Context {
        /// The municipality.
        municipality: String,
        /// What is wrong.
        source: ContextError,
    },
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An actor could not be started.
    #[error("actor could not start: {0}")]
    Spawn(String),
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such municipality.
    #[error("no municipality {0}")]
    UnknownMunicipality(String),
    /// No such sensor in the municipality.
    #[error("no sensor {0}")]
    UnknownSensor(String),
    /// No such pipe in the municipality's network.
    #[error("no pipe {0}")]
    UnknownPipe(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The actor that knows is not running (restarting, or the twin is stopping).
    #[error("the twin cannot answer now; retry")]
    Unavailable,
}

/// Which actor a chaos test makes panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChaosTarget {
    /// The `SensorActor` entity of a sensor id (restarted alone; its shard goes on).
    Sensor(String),
    /// The `PipeActor` entity of a pipe id (restarted alone; its shard goes on).
    Pipe(String),
    /// The `NetworkActor`.
    Network,
    /// The `AlertManager`.
    Alerts,
}

/// The root supervisor: restarts a municipality that escalated a failure (within the restart
/// budget) and counts the escalation.
#[derive(Debug, Clone, Copy, Default)]
struct Root;

/// The root has no messages of its own: it only supervises.
#[derive(Debug)]
enum RootMsg {}

#[derive(Debug)]
struct RootState {
    municipalities: HashMap<ActorId, Arc<MunicipalityContext>>,
    trackers: HashMap<Arc<str>, RestartTracker>,
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = Vec<Arc<MunicipalityContext>>;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        contexts: Vec<Arc<MunicipalityContext>>,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut state = RootState {
            municipalities: HashMap::new(),
            trackers: HashMap::new(),
        };
        for context in contexts {
            state
                .trackers
                .insert(context.id.clone(), RestartTracker::new(context.budget));
            let (actor, _) =
                Actor::spawn_linked(None, Municipality, context.clone(), myself.get_cell()).await?;
            state.municipalities.insert(actor.get_id(), context);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RootMsg>,
        message: RootMsg,
        _state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(context) = state.municipalities.remove(&cell.get_id()) else {
                    return Ok(());
                };
                context
                    .metrics
                    .actor_escalations
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(municipality = %context.id, "municipality failed: {err}");
                // A municipality that panicked itself did not stop its children.
                cell.stop_children(Some("municipality failed".to_string()));
                context.record_children(0);
                let allowed = state
                    .trackers
                    .get_mut(&context.id)
                    .is_some_and(|t| t.allow(Instant::now()));
                if !allowed {
                    tracing::error!(
                        municipality = %context.id,
                        "restart budget exhausted: the municipality stays down"
                    );
                    return Ok(());
                }
                match Actor::spawn_linked(None, Municipality, context.clone(), myself.get_cell())
                    .await
                {
                    Ok((actor, _)) => {
                        context
                            .metrics
                            .actor_restarts
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(municipality = %context.id, "municipality restarted");
                        state.municipalities.insert(actor.get_id(), context);
                    }
                    Err(err) => tracing::error!(
                        municipality = %context.id,
                        "municipality could not restart; it stays down: {err}"
                    ),
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.municipalities.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

/// The running live twin.
#[derive(Debug)]
pub struct TwinRuntime {
    municipalities: HashMap<String, Arc<MunicipalityContext>>,
    root: ActorRef<RootMsg>,
    root_task: JoinHandle<()>,
    journal: Arc<ReadingJournal>,
    dispatcher_stop: oneshot::Sender<()>,
    dispatcher: JoinHandle<()>,
    in_flight: Arc<Semaphore>,
    capacity: usize,
    writer: Writer,
    compactor_stop: oneshot::Sender<()>,
    compactor: JoinHandle<()>,
}

impl TwinRuntime {
    /// Starts the twin of `config` on `store`; returns it and the handle gateways submit to.
    pub async fn start(
        config: RuntimeConfig,
        store: Arc<dyn Store>,
        devices: Arc<DeviceRegistry>,
        metrics: Arc<Metrics>,
    ) -> Result<(TwinRuntime, IngestHandle), RuntimeError> {
        let journal = Arc::new(ReadingJournal::open(store, SeriesStore::default())?);
        let readings: Vec<_> = config
            .municipalities
            .iter()
            .map(|_| broadcast::channel(READINGS_CAPACITY).0)
            .collect();
        let publishers: ReadingsPublishers = config
            .municipalities
            .iter()
            .zip(&readings)
            .map(|(m, sender)| (Arc::from(m.id.as_str()), sender.clone()))
            .collect();
        let (writer, writer_handle) = Writer::start(
            journal.clone(),
            metrics.clone(),
            publishers,
            config.commit_linger,
            config.commit_max_readings,
        );
        let mut municipalities = HashMap::new();
        let mut contexts = Vec::new();
        let actor_count = Arc::new(ActorCount::default());
        for (municipality, readings) in config.municipalities.into_iter().zip(readings) {
            let id = municipality.id.clone();
            if municipalities.contains_key(&id) {
                return Err(RuntimeError::DuplicateMunicipality(id));
            }
            // Sensors must name elements of the network: check before any actor starts.
            NetworkTwin::new(
                municipality.network.clone(),
                municipality.sensors.clone(),
                municipality.clock,
            )
            .map_err(|source| RuntimeError::Twin {
                municipality: id.clone(),
                source,
            })?;
            let context = Arc::new(
                MunicipalityContext::new(
                    municipality,
                    config.restart_budget,
                    journal.clone(),
                    writer_handle.clone(),
                    readings,
                    metrics.clone(),
                    actor_count.clone(),
                )
                .map_err(|source| RuntimeError::Context {
                    municipality: id.clone(),
                    source,
                })?,
            );
            municipalities.insert(id, context.clone());
            contexts.push(context);
        }
        let (root, root_task) = Actor::spawn(None, Root, contexts)
            .await
            .map_err(|e| RuntimeError::Spawn(e.to_string()))?;

        let capacity = config.ingest_capacity.max(1);
        let (requests, receiver) = mpsc::channel(capacity);
        let in_flight = Arc::new(Semaphore::new(capacity));
        let (dispatcher_stop, stopped) = oneshot::channel();
        let dispatcher = tokio::spawn(dispatch(
            receiver,
            stopped,
            municipalities.clone(),
            in_flight.clone(),
            metrics.clone(),
        ));
        let (compactor_stop, compactor_stopped) = oneshot::channel();
        let compactor = tokio::spawn(compact_periodically(
            journal.clone(),
            config.compaction_interval,
            compactor_stopped,
        ));
        let handle = IngestHandle::new(requests, devices, metrics);
        Ok((
            TwinRuntime {
                municipalities,
                root,
                root_task,
                journal,
                dispatcher_stop,
                dispatcher,
                in_flight,
                capacity,
                writer,
                compactor_stop,
                compactor,
            },
            handle,
        ))
    }

    fn context(&self, municipality: &str) -> Result<&Arc<MunicipalityContext>, QueryError> {
        self.municipalities
            .get(municipality)
            .ok_or_else(|| QueryError::UnknownMunicipality(municipality.to_string()))
    }

    /// Ids of the municipalities served.
    pub fn municipalities(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.municipalities.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Sensors configured in `municipality`.
    pub fn sensor_count(&self, municipality: &str) -> Result<usize, QueryError> {
        Ok(self.context(municipality)?.sensors.len())
    }

    /// Stored readings of `sensor` with `from <= timestamp < to` (Unix ms), in the sensor's
    /// unit, with their quality flags.
    pub async fn readings(
        &self,
        municipality: &str,
        sensor: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, QueryError> {
        let context = self.context(municipality)?;
        if !context.sensor_index.contains_key(sensor) {
            return Err(QueryError::UnknownSensor(sensor.to_string()));
        }
        let journal = self.journal.clone();
        let (tenant, sensor) = (context.id.clone(), sensor.to_string());
        tokio::task::spawn_blocking(move || journal.range(&tenant, &sensor, from, to))
            .await
            .map_err(|_| QueryError::Unavailable)?
            .map_err(QueryError::from)
    }

    /// The latest estimated state (none before the first period).
    pub async fn latest_state(
        &self,
        municipality: &str,
    ) -> Result<Option<Arc<PeriodState>>, QueryError> {
        let network = self
            .context(municipality)?
            .directory
            .network()
            .ok_or(QueryError::Unavailable)?;
        ask(&network, NetworkMsg::Latest).await
    }

    /// Every sensor: last value, time, flags and count.
    pub async fn sensor_summary(
        &self,
        municipality: &str,
    ) -> Result<Vec<SensorSummary>, QueryError> {
        let sensors = self.context(municipality)?.directory.sensors();
        // Every question is sent before the first answer is awaited: shards answer theirs
        // concurrently.
        let mut answers = Vec::with_capacity(sensors.len());
        for sensor in sensors {
            let sensor = sensor.ok_or(QueryError::Unavailable)?;
            let (reply, answer) = ractor::concurrency::oneshot();
            sensor
                .cast(SensorMsg::Summary(reply.into()))
                .map_err(|_| QueryError::Unavailable)?;
            answers.push(answer);
        }
        let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
        let mut summaries = Vec::with_capacity(answers.len());
        for answer in answers {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(summary)) => summaries.push(summary),
                _ => return Err(QueryError::Unavailable),
            }
        }
        Ok(summaries)
    }

    /// The latest state of pipe `pipe` (none before the first period).
    pub async fn pipe_state(
        &self,
        municipality: &str,
        pipe: &str,
    ) -> Result<Option<PipeState>, QueryError> {
        let context = self.context(municipality)?;
        let index = *context
            .pipe_index
            .get(pipe)
            .ok_or_else(|| QueryError::UnknownPipe(pipe.to_string()))?;
        let entity = context
            .directory
            .pipe(index)
            .ok_or(QueryError::Unavailable)?;
        entity
            .call(PipeMsg::Get, QUERY_TIMEOUT)
            .await
            .ok_or(QueryError::Unavailable)
    }

    /// The recent alerts, oldest first.
    pub async fn alerts(&self, municipality: &str) -> Result<Vec<Alert>, QueryError> {
        let alerts = self
            .context(municipality)?
            .directory
            .alerts()
            .ok_or(QueryError::Unavailable)?;
        ask(&alerts, AlertMsg::List).await
    }

    /// Applies `operation` by `by` to alert `id` of `municipality`; the alert afterwards, or
    /// why the operation was refused (`Ok(Err(..))`).
    pub async fn operate_alert(
        &self,
        municipality: &str,
        id: u64,
        operation: AlertOperation,
        by: AlertAction,
    ) -> Result<Result<Alert, AlertOperationError>, QueryError> {
        let alerts = self
            .context(municipality)?
            .directory
            .alerts()
            .ok_or(QueryError::Unavailable)?;
        ask(&alerts, |reply| AlertMsg::Operate {
            id,
            operation,
            by,
            reply,
        })
        .await
    }

    /// The threshold rules in force.
    pub fn alert_rules(&self, municipality: &str) -> Result<Arc<AlertRules>, QueryError> {
        Ok(self.context(municipality)?.rules.current())
    }

    /// Replaces the threshold rules of `municipality` by `rules` once they are valid
    /// (`Ok(Err(..))` names the wrong field): stored durably, then sent to every sensor, so
    /// they apply from the next reading on; the rules in force.
    pub async fn replace_alert_rules(
        &self,
        municipality: &str,
        rules: AlertRules,
    ) -> Result<Result<Arc<AlertRules>, RuleError>, QueryError> {
        let context = self.context(municipality)?.clone();
        if let Err(err) = rules.validate(&context.sensors) {
            return Ok(Err(err));
        }
        let stored = context.clone();
        let rules = tokio::task::spawn_blocking(move || {
            stored
                .rules
                .replace(&stored.tenant, stored.journal.store().as_ref(), rules)
        })
        .await
        .map_err(|_| QueryError::Unavailable)?
        .map_err(|err| match err {
            RulesError::Store(err) => QueryError::Store(err),
            RulesError::Corrupt(err) => QueryError::Store(StoreError::backend("alert rules", err)),
        })?;
        // A shard that is restarting loads the new rules from the context.
        for sensor in context.directory.sensors().into_iter().flatten() {
            let _ = sensor.cast(SensorMsg::RulesChanged);
        }
        Ok(Ok(rules))
    }

    /// Every estimated state from now on.
    pub fn subscribe_state(
        &self,
        municipality: &str,
    ) -> Result<broadcast::Receiver<Arc<PeriodState>>, QueryError> {
        Ok(self.context(municipality)?.states.subscribe())
    }

    /// Every new or changed alert from now on.
    pub fn subscribe_alerts(
        &self,
        municipality: &str,
    ) -> Result<broadcast::Receiver<Alert>, QueryError> {
        Ok(self.context(municipality)?.alerts.subscribe())
    }

    /// Every sensor's readings from now on, each part once durably stored. Publishing costs
    /// the ingest path nothing while no one subscribes.
    pub fn subscribe_readings(
        &self,
        municipality: &str,
    ) -> Result<broadcast::Receiver<Arc<StoredReadings>>, QueryError> {
        Ok(self.context(municipality)?.readings.subscribe())
    }

    /// The municipality supervisor's view of its children.
    pub async fn municipality_status(
        &self,
        municipality: &str,
    ) -> Result<MunicipalityStatus, QueryError> {
        let supervisor = self
            .context(municipality)?
            .directory
            .municipality()
            .ok_or(QueryError::Unavailable)?;
        ask(&supervisor, MunicipalityMsg::Status).await
    }

    /// Chaos testing only: makes one actor of `municipality` panic, so that tests can watch
    /// the supervision tree restart it. Never reachable from a network API.
    pub fn inject_panic(&self, municipality: &str, target: ChaosTarget) -> Result<(), QueryError> {
        let context = self.context(municipality)?;
        let directory = &context.directory;
        let sent = match target {
            ChaosTarget::Sensor(id) => {
                let index = *context
                    .sensor_index
                    .get(&id)
                    .ok_or(QueryError::UnknownSensor(id))?;
                directory
                    .sensor(index)
                    .map(|a| a.cast(SensorMsg::InjectPanic).is_ok())
            }
            ChaosTarget::Pipe(id) => {
                let index = *context
                    .pipe_index
                    .get(&id)
                    .ok_or(QueryError::UnknownPipe(id))?;
                directory
                    .pipe(index)
                    .map(|a| a.cast(PipeMsg::InjectPanic).is_ok())
            }
            ChaosTarget::Network => directory
                .network()
                .map(|a| a.cast(NetworkMsg::InjectPanic).is_ok()),
            ChaosTarget::Alerts => directory
                .alerts()
                .map(|a| a.cast(AlertMsg::InjectPanic).is_ok()),
        };
        match sent {
            Some(true) => Ok(()),
            _ => Err(QueryError::Unavailable),
        }
    }

    /// Stops the twin: gateways' submissions are refused from now on (channel closed), every
    /// request already received is answered (stored or refused), the journal is compacted and
    /// the actors stop.
    pub async fn shutdown(self) {
        let _ = self.dispatcher_stop.send(());
        if let Err(err) = self.dispatcher.await {
            tracing::error!("the ingest dispatcher ended abnormally: {err}");
        }
        // Every request holds a permit until answered: having them all means none is pending.
        let permits = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        if let Ok(all) = self.in_flight.acquire_many(permits).await {
            all.forget();
        }
        self.writer.flush_and_stop().await;
        let _ = self.compactor_stop.send(());
        let _ = self.compactor.await;
        let journal = self.journal.clone();
        match tokio::task::spawn_blocking(move || journal.compact()).await {
            Ok(Ok(moved)) => tracing::info!("final compaction moved {moved} readings"),
            Ok(Err(err)) => tracing::error!("final compaction failed: {err}"),
            Err(err) => tracing::error!("final compaction did not run: {err}"),
        }
        for municipality in self.root.get_children() {
            let _ = municipality
                .stop_children_and_wait(Some("shutdown".to_string()), Some(QUERY_TIMEOUT))
                .await;
        }
        self.root.stop_children(Some("shutdown".to_string()));
        self.root.stop(Some("shutdown".to_string()));
        let _ = self.root_task.await;
    }
}

/// Asks `actor` and waits (bounded) for the answer.
async fn ask<M, T>(
    actor: &ActorRef<M>,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
) -> Result<T, QueryError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(message, Some(QUERY_TIMEOUT)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
        _ => Err(QueryError::Unavailable),
    }
}

/// The wall clock, Unix ms.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Compacts the journal every `interval` until stopped.
async fn compact_periodically(
    journal: Arc<ReadingJournal>,
    interval: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut timer = tokio::time::interval(interval);
    timer.tick().await;
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = &mut stopped => return,
        }
        let journal = journal.clone();
        match tokio::task::spawn_blocking(move || journal.compact()).await {
            Ok(Ok(moved)) => tracing::debug!("compaction moved {moved} readings"),
            Ok(Err(err)) => tracing::error!("compaction failed: {err}"),
            Err(err) => tracing::error!("compaction did not run: {err}"),
        }
    }
}

/// Takes requests off the ingest channel and hands each sensor's part to its `SensorActor`
/// entity.
async fn dispatch(
    mut receiver: mpsc::Receiver<IngestRequest>,
    mut stopped: oneshot::Receiver<()>,
    municipalities: HashMap<String, Arc<MunicipalityContext>>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    let mut buffer = Vec::with_capacity(DISPATCH_BATCH);
    let mut stopping = false;
    loop {
        let received = if stopping {
            receiver.recv_many(&mut buffer, DISPATCH_BATCH).await
        } else {
            tokio::select! {
                n = receiver.recv_many(&mut buffer, DISPATCH_BATCH) => n,
                _ = &mut stopped => {
                    // Refuse new submissions; what is queued is still handled.
                    stopping = true;
                    receiver.close();
                    continue;
                }
            }
        };
        if received == 0 {
            return;
        }
        for request in buffer.drain(..) {
            // Back-pressure: at most `capacity` requests are in flight.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            route(request, &municipalities, permit, &metrics);
        }
    }
}

/// Checks `request` and sends each sensor's readings to its entity.
fn route(
    request: IngestRequest,
    municipalities: &HashMap<String, Arc<MunicipalityContext>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    metrics: &Arc<Metrics>,
) {
    let IngestRequest {
        device,
        readings,
        received,
        ack,
        ..
    } = request;
    let refuse = |ack: oneshot::Sender<_>, error: IngestError| {
        let _ = ack.send(Err(error));
    };
    let Some(context) = municipalities.get(&device.municipality) else {
        return refuse(
            ack,
            IngestError::new(
                RejectReason::Forbidden,
                format!("municipality {} is not served here", device.municipality),
            ),
        );
    };
    let parts = match split_by_sensor(context, readings) {
        Ok(parts) => parts,
        Err(unknown) => {
            return refuse(
                ack,
                IngestError::new(
                    RejectReason::UnknownSensor,
                    format!("sensor {unknown} is not configured"),
                ),
            )
        }
    };
    if parts.is_empty() {
        let _ = ack.send(Ok(0));
        return;
    }
    let count = parts.iter().map(|(_, r)| r.len()).sum();
    let completion = Arc::new(Completion::new(
        parts.len(),
        count,
        received,
        ack,
        metrics.clone(),
        permit,
    ));
    for (index, readings) in parts {
        let batch = SensorBatch {
            readings,
            completion: completion.clone(),
        };
        let sent = context
            .directory
            .sensor(index)
            .is_some_and(|actor| actor.cast(SensorMsg::Ingest(batch)).is_ok());
        if !sent {
            // The entity's shard is restarting (or the twin stopping): this part is not stored.
            completion.part_settled(false);
        }
    }
}

/// `readings` grouped by sensor index (one group in the common case of one sensor), or the id
/// of a sensor the municipality does not have.
fn split_by_sensor(
    context: &MunicipalityContext,
    readings: Vec<Reading>,
) -> Result<Vec<(usize, Vec<Reading>)>, String> {
    let mut indices = Vec::with_capacity(readings.len());
    for reading in &readings {
        match context.sensor_index.get(&reading.sensor_id) {
            Some(&index) => indices.push(index),
            None => return Err(reading.sensor_id.clone()),
        }
    }
    if indices.windows(2).all(|w| w[0] == w[1]) {
        return Ok(indices
            .first()
            .map(|&i| (i, readings))
            .into_iter()
            .collect());
    }
    let mut parts: Vec<(usize, Vec<Reading>)> = Vec::new();
    for (reading, index) in readings.into_iter().zip(indices) {
        match parts.iter_mut().find(|(i, _)| *i == index) {
            Some((_, part)) => part.push(reading),
            None => parts.push((index, vec![reading])),
        }
    }
    Ok(parts)
}
