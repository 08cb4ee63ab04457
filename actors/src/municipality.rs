//! The municipality supervisor: spawns and supervises the `NetworkActor`, the `AlertManager`,
//! and the shards hosting one `SensorActor` entity per sensor and one `PipeActor` entity per
//! pipe (see `crate::shard`).
//!
//! A failed child (the network actor, the alert manager, or a shard whose entity exhausted its
//! own restart budget) is restarted with its state reloaded from the store, within the
//! municipality's restart budget; once that is exhausted the municipality stops its children
//! and fails itself, which escalates to the root (that restarts the municipality as a whole).
//!
//! [`MunicipalityContext`] is what every child shares and what outlives restarts: the
//! configuration, the store, the writer, the broadcast channels and the [`Directory`] of the
//! current children (updated on every respawn, read by the ingest dispatcher and by the
//! children to reach each other).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hydraulics::model::LinkKind;
use hydraulics::Network;
use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorRuntime, SpawnErr,
    SupervisionEvent,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use twin::detect::WatchConfig;
use twin::live::{PeriodState, TwinClock};
use twin::store::journal::ReadingJournal;
use twin::store::{Order, TenantKeys};
use twin::{NetworkUnits, QualityConfig, Sensor};

use crate::alerts::{AlertManager, AlertMsg};
use crate::config::{MunicipalityConfig, RestartBudget};
use crate::escalation::EscalationPolicy;
use crate::messages::{Alert, EncodedState};
use crate::metrics::Metrics;
use crate::network::{NetworkActor, NetworkArgs, NetworkMsg, STATE};
use crate::pipe::{PipeActor, PipeMsg};
use crate::rules::{RuleBook, RulesError};
use crate::sensor::{SensorActor, SensorMsg};
use crate::shard::{Entity, EntityRef, Envelope, Shard, ShardArgs, Sharding};
use crate::supervision::RestartTracker;
use crate::writer::{StoredReadings, WriterHandle};

/// Subscribers may lag this many states or alerts before they miss some.
const BROADCAST_CAPACITY: usize = 64;

/// Subscribers may lag this many stored parts (one sensor's readings of one request) before
/// they miss some: readings come far more often than states.
pub(crate) const READINGS_CAPACITY: usize = 1024;

/// The actor of one shard of entities `E`.
type ShardRef<E> = ActorRef<Envelope<<E as Entity>::Msg>>;

/// The current children of a municipality.
#[derive(Debug, Default)]
struct Members {
    municipality: Option<ActorRef<MunicipalityMsg>>,
    network: Option<ActorRef<NetworkMsg>>,
    alerts: Option<ActorRef<AlertMsg>>,
    sensor_shards: Vec<Option<ShardRef<SensorActor>>>,
    pipe_shards: Vec<Option<ShardRef<PipeActor>>>,
    sensors: Sharding,
    pipes: Sharding,
}

/// Where a municipality's children are right now.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    members: RwLock<Members>,
}

/// The entity `index` in `shards`, if its shard runs.
fn entity<M: Send + 'static>(
    shards: &[Option<ActorRef<Envelope<M>>>],
    sharding: Sharding,
    index: usize,
) -> Option<EntityRef<M>> {
    let shard = shards.get(sharding.shard_of(index))?.clone()?;
    Some(EntityRef::new(shard, index))
}

impl Directory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Members> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Members> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The supervisor.
    pub(crate) fn municipality(&self) -> Option<ActorRef<MunicipalityMsg>> {
        self.read().municipality.clone()
    }

    /// The network actor.
    pub(crate) fn network(&self) -> Option<ActorRef<NetworkMsg>> {
        self.read().network.clone()
    }

    /// The alert manager.
    pub(crate) fn alerts(&self) -> Option<ActorRef<AlertMsg>> {
        self.read().alerts.clone()
    }

    /// The entity of sensor `index`.
    pub(crate) fn sensor(&self, index: usize) -> Option<EntityRef<SensorMsg>> {
        let members = self.read();
        entity(&members.sensor_shards, members.sensors, index)
    }

    /// Every sensor entity, by sensor index.
    pub(crate) fn sensors(&self) -> Vec<Option<EntityRef<SensorMsg>>> {
        let members = self.read();
        (0..members.sensors.entities())
            .map(|index| entity(&members.sensor_shards, members.sensors, index))
            .collect()
    }

    /// The entity of pipe `index`.
    pub(crate) fn pipe(&self, index: usize) -> Option<EntityRef<PipeMsg>> {
        let members = self.read();
        entity(&members.pipe_shards, members.pipes, index)
    }

    /// Every pipe entity, by pipe index.
    pub(crate) fn pipes(&self) -> Vec<Option<EntityRef<PipeMsg>>> {
        let members = self.read();
        (0..members.pipes.entities())
            .map(|index| entity(&members.pipe_shards, members.pipes, index))
            .collect()
    }
}

/// Children running per municipality, summed for the `aquatwin_actors` gauge.
#[derive(Debug, Default)]
pub(crate) struct ActorCount {
    per_municipality: Mutex<HashMap<Arc<str>, usize>>,
}

impl ActorCount {
    /// Sets `municipality`'s count; returns the total.
    fn set(&self, municipality: &Arc<str>, children: usize) -> usize {
        let mut counts = self
            .per_municipality
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.insert(municipality.clone(), children);
        counts.values().sum()
    }
}

/// What a municipality's actors share (configuration, store, writer, broadcast channels,
/// directory of the current children); outlives their restarts. Opaque outside the crate.
#[derive(Debug)]
pub struct MunicipalityContext {
    pub(crate) id: Arc<str>,
    pub(crate) tenant: TenantKeys,
    pub(crate) network: Network,
    pub(crate) units: NetworkUnits,
    pub(crate) sensors: Vec<Sensor>,
    pub(crate) sensor_ids: Vec<Arc<str>>,
    pub(crate) sensor_index: HashMap<String, usize>,
    pub(crate) quality: Vec<QualityConfig>,
    /// Link index of every pipe (pumps and valves have no actor).
    pub(crate) pipes: Vec<usize>,
    pub(crate) pipe_index: HashMap<String, usize>,
    /// How the `SensorActor` entities are split into shards.
    pub(crate) sensor_sharding: Sharding,
    /// How the `PipeActor` entities are split into shards.
    pub(crate) pipe_sharding: Sharding,
    pub(crate) period: Duration,
    pub(crate) clock: TwinClock,
    pub(crate) detection: Option<WatchConfig>,
    pub(crate) escalation: Option<EscalationPolicy>,
    /// Threshold rules in force (stored; replaced at run time).
    pub(crate) rules: RuleBook,
    pub(crate) budget: RestartBudget,
    pub(crate) journal: Arc<ReadingJournal>,
    pub(crate) writer: WriterHandle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) directory: Directory,
    /// Children running per municipality (the `aquatwin_actors` gauge).
    pub(crate) actor_count: Arc<ActorCount>,
    pub(crate) states: broadcast::Sender<Arc<PeriodState>>,
    pub(crate) alerts: broadcast::Sender<Alert>,
    /// Readings once durably stored (published by the writer).
    pub(crate) readings: broadcast::Sender<Arc<StoredReadings>>,
}

/// Why a municipality's configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Two sensors share an id.
    #[error("sensor {0} is defined twice")]
    DuplicateSensor(String),
    /// A quality override names no configured sensor.
    #[error("quality settings for sensor {0}, which is not configured")]
    UnknownQualitySensor(String),
    /// The stored threshold rules cannot be read.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl MunicipalityContext {
    /// The shared context of `config`; `readings` is the broadcast the writer publishes the
    /// municipality's stored readings on.
    pub(crate) fn new(
        config: MunicipalityConfig,
        budget: RestartBudget,
        journal: Arc<ReadingJournal>,
        writer: WriterHandle,
        readings: broadcast::Sender<Arc<StoredReadings>>,
        metrics: Arc<Metrics>,
        actor_count: Arc<ActorCount>,
    ) -> Result<Self, ContextError> {
        let MunicipalityConfig {
            id,
            network,
            sensors,
            period,
            clock,
            mut quality,
            detection,
            escalation,
            alert_rules,
        } = config;
        let mut sensor_index = HashMap::with_capacity(sensors.len());
        for (index, sensor) in sensors.iter().enumerate() {
            if sensor_index.insert(sensor.id.clone(), index).is_some() {
                return Err(ContextError::DuplicateSensor(sensor.id.clone()));
            }
        }
        let qualities = sensors
            .iter()
            .map(|s| {
                quality
                    .remove(&s.id)
                    .unwrap_or_else(|| QualityConfig::for_kind(s.kind))
            })
            .collect();
        if let Some(unknown) = quality.into_keys().next() {
            return Err(ContextError::UnknownQualitySensor(unknown));
        }
        let pipes: Vec<usize> = network
            .links
            .iter()
            .enumerate()
            .filter(|(_, link)| matches!(link.kind, LinkKind::Pipe(_)))
            .map(|(index, _)| index)
            .collect();
        let pipe_index = pipes
            .iter()
            .enumerate()
            .map(|(pipe, &link)| (network.links[link].id.clone(), pipe))
            .collect();
        let sensor_sharding = Sharding::new(sensors.len());
        let pipe_sharding = Sharding::new(pipes.len());
        let directory = Directory::default();
        {
            let mut members = directory.write();
            members.sensors = sensor_sharding;
            members.pipes = pipe_sharding;
            members.sensor_shards = vec![None; members.sensors.shards()];
            members.pipe_shards = vec![None; members.pipes.shards()];
        }
        let tenant = TenantKeys::new(&id);
        let rules = RuleBook::load(&tenant, journal.store().as_ref(), alert_rules)?;
        Ok(Self {
            tenant,
            rules,
            id: id.into(),
            units: NetworkUnits::new(&network.options),
            network,
            sensor_ids: sensors.iter().map(|s| Arc::from(s.id.as_str())).collect(),
            sensors,
            sensor_index,
            quality: qualities,
            sensor_sharding,
            pipe_sharding,
            pipes,
            pipe_index,
            period,
            clock,
            detection,
            escalation,
            budget,
            journal,
            writer,
            metrics,
            directory,
            actor_count,
            states: broadcast::channel(BROADCAST_CAPACITY).0,
            alerts: broadcast::channel(BROADCAST_CAPACITY).0,
            readings,
        })
    }

    /// Records that the municipality has `children` running and publishes the total.
    pub(crate) fn record_children(&self, children: usize) {
        let total = self.actor_count.set(&self.id, children);
        self.metrics.set_gauge(
            "aquatwin_actors",
            "Actors running: sensor and pipe entities (hosted by shards), networks and alert \
             managers of every municipality.",
            total as f64,
        );
    }

    /// The latest estimated state in the store.
    pub(crate) fn stored_state(&self) -> Result<Option<Arc<PeriodState>>, ActorProcessingErr> {
        let range = self
            .tenant
            .space()
            .subspace(&[twin::store::tuple::Element::from(STATE)])
            .range();
        let Some((_, value)) = self
            .journal
            .store()
            .scan(&range, Order::Reverse, Some(1))?
            .pop()
        else {
            return Ok(None);
        };
        Ok(Some(Arc::new(EncodedState(value).decode()?)))
    }
}

/// Which child an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Network,
    Alerts,
    /// The shard of this number hosting sensor entities.
    Sensors(usize),
    /// The shard of this number hosting pipe entities.
    Pipes(usize),
}

/// Messages of a [`Municipality`].
#[derive(Debug)]
pub enum MunicipalityMsg {
    /// How many children are alive.
    Status(ractor::RpcReplyPort<MunicipalityStatus>),
}

/// A municipality's children at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MunicipalityStatus {
    /// Children alive: network, alert manager, and the sensor and pipe entities of the shards
    /// that run.
    pub children: usize,
    /// Sensors configured.
    pub sensors: usize,
    /// Pipes of the network.
    pub pipes: usize,
}

/// The supervisor of one municipality.
#[derive(Debug, Clone, Copy, Default)]
pub struct Municipality;

/// The state of a [`Municipality`].
#[derive(Debug)]
pub struct MunicipalityState {
    context: Arc<MunicipalityContext>,
    children: HashMap<ActorId, Child>,
    /// Actors and entities of `children` (a shard counts its entities).
    alive: usize,
    tracker: RestartTracker,
}

/// An actor starting in the background; resolves once its `pre_start` ran.
type Starting = JoinHandle<Result<JoinHandle<()>, SpawnErr>>;

impl MunicipalityState {
    /// Starts `child` linked to `supervisor` and records it in the directory at once; its
    /// `pre_start` runs in the background (messages sent meanwhile wait in its mailbox).
    fn launch(
        &mut self,
        supervisor: ActorCell,
        child: Child,
        last_state: Option<Arc<PeriodState>>,
    ) -> Result<Starting, SpawnErr> {
        let context = self.context.clone();
        let (id, starting) = match child {
            Child::Network => {
                let args = NetworkArgs {
                    context: context.clone(),
                    last_state,
                };
                let (actor, starting) =
                    ActorRuntime::spawn_linked_instant(None, NetworkActor, args, supervisor)?;
                let id = actor.get_id();
                context.directory.write().network = Some(actor);
                (id, starting)
            }
            Child::Alerts => {
                let (actor, starting) = ActorRuntime::spawn_linked_instant(
                    None,
                    AlertManager,
                    context.clone(),
                    supervisor,
                )?;
                let id = actor.get_id();
                context.directory.write().alerts = Some(actor);
                (id, starting)
            }
            Child::Sensors(shard) => {
                let range = context.sensor_sharding.range(shard);
                let (actor, starting) =
                    launch_shard::<SensorActor>(&context, range, (), supervisor)?;
                let id = actor.get_id();
                context.directory.write().sensor_shards[shard] = Some(actor);
                (id, starting)
            }
            Child::Pipes(shard) => {
                let range = context.pipe_sharding.range(shard);
                let (actor, starting) =
                    launch_shard::<PipeActor>(&context, range, last_state, supervisor)?;
                let id = actor.get_id();
                context.directory.write().pipe_shards[shard] = Some(actor);
                (id, starting)
            }
        };
        self.children.insert(id, child);
        self.alive += self.size(child);
        Ok(starting)
    }

    /// The child of `id`, no longer counted as alive.
    fn forget(&mut self, id: ActorId) -> Option<Child> {
        let child = self.children.remove(&id)?;
        self.alive -= self.size(child);
        Some(child)
    }

    /// Actors and entities `child` counts for.
    fn size(&self, child: Child) -> usize {
        match child {
            Child::Network | Child::Alerts => 1,
            Child::Sensors(shard) => self.context.sensor_sharding.range(shard).len(),
            Child::Pipes(shard) => self.context.pipe_sharding.range(shard).len(),
        }
    }
}

/// Starts the shard hosting entities `range` linked to `supervisor`.
fn launch_shard<E: Entity>(
    context: &Arc<MunicipalityContext>,
    range: std::ops::Range<usize>,
    seed: E::Seed,
    supervisor: ActorCell,
) -> Result<(ShardRef<E>, Starting), SpawnErr> {
    let args = ShardArgs {
        context: context.clone(),
        range,
        seed,
    };
    ActorRuntime::spawn_linked_instant(None, Shard::<E>::default(), args, supervisor)
}

/// Waits until `starting` ran its `pre_start`.
async fn started(starting: Starting) -> Result<(), ActorProcessingErr> {
    starting.await??;
    Ok(())
}

impl Actor for Municipality {
    type Msg = MunicipalityMsg;
    type State = MunicipalityState;
    type Arguments = Arc<MunicipalityContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<MunicipalityMsg>,
        context: Arc<MunicipalityContext>,
    ) -> Result<MunicipalityState, ActorProcessingErr> {
        let last_state = context.stored_state()?;
        let mut state = MunicipalityState {
            tracker: RestartTracker::new(context.budget),
            children: HashMap::with_capacity(
                context.sensor_sharding.shards() + context.pipe_sharding.shards() + 2,
            ),
            alive: 0,
            context,
        };
        state.context.directory.write().municipality = Some(myself.clone());
        let cell = myself.get_cell();
        // Every child starts at once and runs its `pre_start` concurrently: starting them one
        // after the other dominated the start time of large municipalities.
        let mut children = vec![
            state.launch(cell.clone(), Child::Alerts, None)?,
            state.launch(cell.clone(), Child::Network, last_state.clone())?,
        ];
        for shard in 0..state.context.sensor_sharding.shards() {
            children.push(state.launch(cell.clone(), Child::Sensors(shard), None)?);
        }
        for shard in 0..state.context.pipe_sharding.shards() {
            children.push(state.launch(cell.clone(), Child::Pipes(shard), last_state.clone())?);
        }
        for starting in children {
            started(starting).await?;
        }
        state.context.record_children(state.alive);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<MunicipalityMsg>,
        message: MunicipalityMsg,
        state: &mut MunicipalityState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MunicipalityMsg::Status(reply) => {
                let _ = reply.send(MunicipalityStatus {
                    children: state.alive,
                    sensors: state.context.sensors.len(),
                    pipes: state.context.pipes.len(),
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<MunicipalityMsg>,
        event: SupervisionEvent,
        state: &mut MunicipalityState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(child) = state.forget(cell.get_id()) else {
                    return Ok(());
                };

                let municipality = state.context.id.clone();
                tracing::error!(%municipality, ?child, "actor failed: {err}");
                if !state.tracker.allow(Instant::now()) {
                    tracing::error!(%municipality, "restart budget exhausted: escalating");
                    myself.stop_children(Some("municipality escalates".to_string()));
                    return Err(format!(
                        "municipality {municipality}: restart budget exhausted ({child:?} failed)"
                    )
                    .into());
                }
                let last_state = match child {
                    Child::Network | Child::Pipes(_) => state.context.stored_state()?,
                    Child::Alerts | Child::Sensors(_) => None,
                };
                started(state.launch(myself.get_cell(), child, last_state)?).await?;
                state
                    .context
                    .metrics
                    .actor_restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                state.context.record_children(state.alive);
                tracing::info!(%municipality, ?child, "actor restarted");
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                let ours = state.forget(cell.get_id()).is_some();
                if ours {
                    state.context.record_children(state.alive);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
