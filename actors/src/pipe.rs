//! `PipeActor`: one per pipe. Receives its flow, velocity, headloss and the pressure range of
//! its end nodes every period from the `NetworkActor` and answers queries about them. On
//! (re)start its state comes from the latest stored period.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use twin::live::PeriodState;

use crate::messages::PipeState;
use crate::municipality::MunicipalityContext;

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

/// The actor of one pipe.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeActor;

/// What a [`PipeActor`] starts with.
#[derive(Debug)]
pub struct PipeArgs {
    pub(crate) context: Arc<MunicipalityContext>,
    /// Index among the municipality's pipes.
    pub(crate) index: usize,
    /// The latest stored period, read once by the municipality.
    pub(crate) last_state: Option<Arc<PeriodState>>,
}

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

impl Actor for PipeActor {
    type Msg = PipeMsg;
    type State = Option<PipeState>;
    type Arguments = PipeArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PipeMsg>,
        args: PipeArgs,
    ) -> Result<Option<PipeState>, ActorProcessingErr> {
        Ok(args
            .last_state
            .and_then(|period| pipe_state(&args.context, args.index, &period)))
    }

    async fn handle(
        &self,
        _myself: ActorRef<PipeMsg>,
        message: PipeMsg,
        state: &mut Option<PipeState>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PipeMsg::Update(update) => *state = Some(update),
            PipeMsg::Get(reply) => {
                let _ = reply.send(*state);
            }
            PipeMsg::InjectPanic => panic!("chaos: injected panic in a pipe actor"),
        }
        Ok(())
    }
}
