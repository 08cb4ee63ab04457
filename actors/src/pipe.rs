//! `PipeActor`: one entity per pipe, hosted by a shard (see `crate::shard` for why pipes are
//! entities rather than ractor actors of their own). Receives its flow, velocity, headloss and
//! the pressure range of its end nodes every period from the `NetworkActor` and answers queries
//! about them. On (re)start its state comes from the latest stored period.

use std::sync::Arc;

use ractor::{ActorProcessingErr, RpcReplyPort};
use twin::live::PeriodState;

use crate::messages::PipeState;
use crate::municipality::MunicipalityContext;
use crate::shard::Entity;

/// Messages of a [`PipeActor`].
#[derive(Debug)]
pub enum PipeMsg {
    /// The pipe's share of a solved period.
    Update(PipeState),
    /// The latest state, if any period was solved.
    Get(RpcReplyPort<Option<PipeState>>),
    /// Chaos testing only: makes the actor panic. No network API sends it.
    InjectPanic,
}

/// The entity of one pipe: its share of the latest period, if any was solved.
#[derive(Debug)]
pub struct PipeActor(Option<PipeState>);

/// The pipe's share of `period`: `index` is the pipe's index among the municipality's pipes.
/// `None` when the state does not cover the pipe (a state of another network layout).
pub(crate) fn pipe_state(
    context: &MunicipalityContext,
    index: usize,
    period: &PeriodState,
) -> Option<PipeState> {
    let link_index = *context.pipes.get(index)?;
    let link = context.network.links.get(link_index)?;
    let from = *period.pressure.get(link.from)?;
    let to = *period.pressure.get(link.to)?;
    Some(PipeState {
        timestamp_ms: period.timestamp_ms,
        flow: *period.flow.get(link_index)?,
        velocity: *period.velocity.get(link_index)?,
        headloss: *period.headloss.get(link_index)?,
        pressure_min: from.min(to),
        pressure_max: from.max(to),
    })
}

impl Entity for PipeActor {
    type Msg = PipeMsg;
    /// The latest stored period, read once for a whole shard.
    type Seed = Option<Arc<PeriodState>>;
    const KIND: &'static str = "PipeActor";

    fn seed(context: &MunicipalityContext) -> Result<Option<Arc<PeriodState>>, ActorProcessingErr> {
        context.stored_state()
    }

    fn load(
        context: &MunicipalityContext,
        index: usize,
        last_state: &Option<Arc<PeriodState>>,
    ) -> Result<PipeActor, ActorProcessingErr> {
        Ok(PipeActor(
            last_state
                .as_ref()
                .and_then(|period| pipe_state(context, index, period)),
        ))
    }

    fn handle(&mut self, _context: &MunicipalityContext, _index: usize, message: PipeMsg) {
        match message {
            PipeMsg::Update(update) => self.0 = Some(update),
            PipeMsg::Get(reply) => {
                let _ = reply.send(self.0);
            }
            PipeMsg::InjectPanic => panic!("chaos: injected panic in a pipe actor"),
        }
    }

    fn id(context: &MunicipalityContext, index: usize) -> &str {
        context
            .pipes
            .get(index)
            .and_then(|&link| context.network.links.get(link))
            .map_or("?", |link| link.id.as_str())
    }
}
