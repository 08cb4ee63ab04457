//! Entity sharding: sensors and pipes are entities hosted by shard actors, not one ractor actor
//! each.
//!
//! Why: a bare ractor 0.16 actor costs about 7.6 KB (two unbounded tokio channels with 32-slot
//! blocks, plus its task), so one actor per `SensorActor` and per `PipeActor` made 1,000,000 of
//! them cost 8.1 GiB and 21-28 s to start. A [`Shard`] hosts up to 256 entities of one kind in
//! a `Vec` (see [`Sharding`]), so an entity costs its own state plus a few bytes of the shard's
//! actor.
//!
//! This is the entity model of Akka cluster sharding and Orleans virtual actors, kept to what the
//! twin needs:
//! - identity and placement: an entity is addressed by its index in the municipality's list; its
//!   shard follows from the index ([`Sharding`]). Placing shards of a municipality on other
//!   nodes later is placing their actors.
//! - message order: one shard handles its mailbox in order, so each entity sees its own
//!   messages in the order they were sent, as an actor would.
//! - no passivation: every entity of a shard is activated (loaded) when the shard starts, since
//!   every sensor reports and every pipe gets a state each period; an idle entity costs its
//!   state only.
//! - supervision per entity: an entity's handler runs under `catch_unwind`; a panicking entity
//!   is discarded and reloaded from the store alone (its siblings keep their state), within its
//!   own restart budget. An exhausted budget fails the shard: the municipality restarts the
//!   shard (which reloads all its entities) within its budget, and beyond that fails itself to
//!   the root, as for any other child.
//!
//! Logs and metrics keep calling entities `SensorActor` and `PipeActor`: they are the actors of
//! the supervision tree, hosted.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};

use crate::municipality::MunicipalityContext;
use crate::supervision::RestartTracker;

/// Entities one shard hosts at most: 1,000,000 entities make about 4,000 shards (30 MB of
/// actors), and a failed shard reloads at most this many entities.
const MAX_ENTITIES_PER_SHARD: usize = 256;

/// Shards a municipality's entities of one kind are spread over at least (when there are
/// enough entities): a handful of shards leaves the runtime's worker threads unevenly loaded
/// (measured with `runtime_throughput`, 1,000 sensors: 4 shards of 256 ingested 5-8 % fewer
/// batched readings per second than one actor per sensor, 16 shards of 63 as many).
const MIN_SHARDS: usize = 16;

/// Entities one shard hosts at least (unless there are fewer): below this an actor per entity
/// would cost more than it balances.
const MIN_ENTITIES_PER_SHARD: usize = 16;

/// How a municipality's entities of one kind are split into shards: contiguous index ranges of
/// one size, so the shard of an entity is a division (a fixed shard-id extractor: the
/// dispatcher needs no lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sharding {
    entities: usize,
    per_shard: usize,
}

impl Sharding {
    /// The sharding of `entities` entities.
    pub(crate) fn new(entities: usize) -> Self {
        let per_shard = entities
            .div_ceil(MIN_SHARDS)
            .clamp(MIN_ENTITIES_PER_SHARD, MAX_ENTITIES_PER_SHARD);
        Self {
            entities,
            per_shard,
        }
    }

    /// Entities in all.
    pub(crate) fn entities(&self) -> usize {
        self.entities
    }

    /// Shards needed.
    pub(crate) fn shards(&self) -> usize {
        self.entities.div_ceil(self.per_shard)
    }

    /// The shard that hosts entity `index`.
    pub(crate) fn shard_of(&self, index: usize) -> usize {
        index / self.per_shard
    }

    /// The entities shard `shard` hosts.
    pub(crate) fn range(&self, shard: usize) -> Range<usize> {
        let start = shard.saturating_mul(self.per_shard).min(self.entities);
        start..(start + self.per_shard).min(self.entities)
    }
}

/// One kind of entity: how it is loaded from the store and how it handles its messages.
pub(crate) trait Entity: Sized + Send + 'static {
    /// What the entity handles.
    type Msg: Send + 'static;
    /// What loading needs that is read once for a whole shard (the latest stored period for
    /// pipes), not once per entity.
    type Seed: Clone + Send + 'static;
    /// The entity's name in logs and metrics.
    const KIND: &'static str;

    /// Reads the seed from the store.
    fn seed(context: &MunicipalityContext) -> Result<Self::Seed, ActorProcessingErr>;

    /// Entity `index` as the store has it.
    fn load(
        context: &MunicipalityContext,
        index: usize,
        seed: &Self::Seed,
    ) -> Result<Self, ActorProcessingErr>;

    /// Handles one message; a panic restarts this entity only.
    fn handle(&mut self, context: &MunicipalityContext, index: usize, message: Self::Msg);

    /// The id of entity `index` (for logs).
    fn id(context: &MunicipalityContext, index: usize) -> &str;
}

/// A message for the entity of index `index` in its municipality.
#[derive(Debug)]
pub(crate) struct Envelope<M> {
    index: usize,
    message: M,
}

/// Where an entity is: its shard's actor and its index.
#[derive(Debug, Clone)]
pub(crate) struct EntityRef<M: Send + 'static> {
    shard: ActorRef<Envelope<M>>,
    index: usize,
}

impl<M: Send + 'static> EntityRef<M> {
    /// The entity `index` hosted by `shard`.
    pub(crate) fn new(shard: ActorRef<Envelope<M>>, index: usize) -> Self {
        Self { shard, index }
    }

    /// Sends `message` to the entity; fails when its shard is not running.
    pub(crate) fn cast(&self, message: M) -> Result<(), MessagingErr<Envelope<M>>> {
        self.shard.cast(Envelope {
            index: self.index,
            message,
        })
    }

    /// Asks the entity and waits at most `timeout` for the answer.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
        timeout: std::time::Duration,
    ) -> Option<T> {
        let index = self.index;
        let call = self.shard.call(
            |reply| Envelope {
                index,
                message: message(reply),
            },
            Some(timeout),
        );
        match call.await {
            Ok(ractor::rpc::CallResult::Success(answer)) => Some(answer),
            _ => None,
        }
    }
}

/// The actor hosting the entities of one shard.
#[derive(Debug)]
pub(crate) struct Shard<E>(PhantomData<fn() -> E>);

impl<E> Default for Shard<E> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// What a [`Shard`] starts with.
#[derive(Debug)]
pub(crate) struct ShardArgs<E: Entity> {
    pub(crate) context: Arc<MunicipalityContext>,
    /// The entities it hosts.
    pub(crate) range: Range<usize>,
    pub(crate) seed: E::Seed,
}

/// The state of a [`Shard`].
#[derive(Debug)]
pub(crate) struct ShardState<E> {
    context: Arc<MunicipalityContext>,
    /// Index of the first entity hosted.
    first: usize,
    entities: Vec<E>,
    /// Restart budgets of the entities that restarted within the window (most entities never
    /// fail: a tracker each would cost more than the entity).
    restarts: HashMap<usize, RestartTracker>,
}

impl<E: Entity> Actor for Shard<E> {
    type Msg = Envelope<E::Msg>;
    type State = ShardState<E>;
    type Arguments = ShardArgs<E>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Envelope<E::Msg>>,
        args: ShardArgs<E>,
    ) -> Result<ShardState<E>, ActorProcessingErr> {
        let ShardArgs {
            context,
            range,
            seed,
        } = args;
        let first = range.start;
        let entities = range
            .map(|index| E::load(&context, index, &seed))
            .collect::<Result<Vec<E>, _>>()?;
        Ok(ShardState {
            context,
            first,
            entities,
            restarts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Envelope<E::Msg>>,
        envelope: Envelope<E::Msg>,
        state: &mut ShardState<E>,
    ) -> Result<(), ActorProcessingErr> {
        state.deliver(envelope)
    }
}

impl<E: Entity> ShardState<E> {
    /// Hands `envelope` to its entity; restarts the entity if it panics.
    fn deliver(&mut self, envelope: Envelope<E::Msg>) -> Result<(), ActorProcessingErr> {
        let Envelope { index, message } = envelope;
        let Some(entity) = index
            .checked_sub(self.first)
            .and_then(|slot| self.entities.get_mut(slot))
        else {
            // The directory routes by the same rule the shards are built with.
            tracing::error!(
                municipality = %self.context.id,
                "{} {index} is not hosted by the shard of {}: message dropped",
                E::KIND,
                self.first
            );
            return Ok(());
        };
        let context = &*self.context;
        match catch_unwind(AssertUnwindSafe(|| entity.handle(context, index, message))) {
            Ok(()) => Ok(()),
            Err(panic) => self.restart(index, panic_message(panic.as_ref())),
        }
    }

    /// Replaces the failed entity `index` by a fresh one loaded from the store, or fails the
    /// shard when the entity's restart budget is exhausted.
    fn restart(&mut self, index: usize, why: &str) -> Result<(), ActorProcessingErr> {
        let context = self.context.clone();
        let id = E::id(&context, index);
        tracing::error!(municipality = %context.id, entity = id, "{} failed: {why}", E::KIND);
        let now = Instant::now();
        self.restarts.retain(|_, tracker| !tracker.is_quiet(now));
        let allowed = self
            .restarts
            .entry(index)
            .or_insert_with(|| RestartTracker::new(context.budget))
            .allow(now);
        if !allowed {
            context
                .metrics
                .actor_escalations
                .fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "{} {id}: restart budget exhausted, escalating to its shard",
                E::KIND
            )
            .into());
        }
        let seed = E::seed(&context)?;
        self.entities[index - self.first] = E::load(&context, index, &seed)?;
        context
            .metrics
            .actor_restarts
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(municipality = %context.id, entity = id, "{} restarted", E::KIND);
        Ok(())
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_entity_once_in_order() {
        for entities in [0, 1, 15, 16, 17, 1000, 4096, 4097, 1_000_000] {
            let sharding = Sharding::new(entities);
            let hosted: Vec<usize> = (0..sharding.shards())
                .flat_map(|shard| sharding.range(shard))
                .collect();
            assert_eq!(hosted, (0..entities).collect::<Vec<_>>(), "{entities}");
            for index in 0..entities {
                assert!(sharding.range(sharding.shard_of(index)).contains(&index));
            }
            let largest = (0..sharding.shards())
                .map(|shard| sharding.range(shard).len())
                .max()
                .unwrap_or(0);
            assert!(largest <= MAX_ENTITIES_PER_SHARD, "{entities}");
            if entities >= MIN_SHARDS * MIN_ENTITIES_PER_SHARD {
                assert!(sharding.shards() >= MIN_SHARDS, "{entities}");
            } else {
                assert!(entities <= MIN_ENTITIES_PER_SHARD || largest >= MIN_ENTITIES_PER_SHARD);
            }
        }
    }

    #[test]
    fn panic_payloads_become_text() {
        let text = catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(text.as_ref()), "static text");
        let formatted = catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(formatted.as_ref()), "formatted 42");
    }
}
