//! Applies what the stream thread received: new frames, new or changed alerts, connection state.

use bevy::prelude::*;

use super::{AlertMarker, Model, ViewState, ALERT_LIFT};
use crate::live::{AlertPlace, AlertUpdate, LiveEvent, LiveFeed};

pub struct LivePlugin;

impl Plugin for LivePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, remember_source)
            .add_systems(PreUpdate, receive);
    }
}

/// The title's source part without the connection state.
#[derive(Resource)]
struct SourceLabel(String);

fn remember_source(mut commands: Commands, model: Res<Model>) {
    commands.insert_resource(SourceLabel(model.source.clone()));
}

fn receive(
    feed: Res<LiveFeed>,
    label: Option<Res<SourceLabel>>,
    mut model: ResMut<Model>,
    mut view: ResMut<ViewState>,
) {
    let events = feed.drain();
    if events.is_empty() {
        return;
    }
    let mut connection = None;
    for event in events {
        match event {
            LiveEvent::Connected { warning } => {
                connection = Some(match warning {
                    Some(warning) => format!("connected; {warning}"),
                    None => "connected".to_string(),
                })
            }
            LiveEvent::Disconnected(reason) => connection = Some(format!("reconnecting: {reason}")),
            LiveEvent::Refused(reason) => connection = Some(format!("refused: {reason}")),
            LiveEvent::State(frame) => {
                model.frames.push(frame);
                // Refit the colour scale while the history is short, then on doublings only:
                // refitting reads every stored value.
                let count = model.frames.len();
                if count <= 4 || count.is_power_of_two() {
                    let quantity = view.quantity;
                    view.colour_by(quantity, &model.frames);
                }
                view.dirty = true;
            }
            LiveEvent::Alert(update) => apply_alert(&mut model, update),
        }
    }
    if let (Some(state), Some(label)) = (connection, label) {
        model.source = format!("{} [{state}]", label.0);
        view.set_changed();
    }
}

fn apply_alert(model: &mut Model, update: AlertUpdate) {
    let geometry = &model.geometry;
    let position = match &update.place {
        AlertPlace::Node(id) => geometry.find_node(id).map(|i| geometry.nodes[i].position),
        AlertPlace::Link(id) => geometry
            .find_link(id)
            .map(|i| geometry.links[i].point_along(0.5).0),
        AlertPlace::Elsewhere => None,
    }
    .unwrap_or_else(|| geometry.centre().with_y(geometry.max.y))
        + Vec3::Y * ALERT_LIFT;
    let marker = AlertMarker {
        id: update.id,
        title: update.title,
        position,
        raised: update.raised,
        open: update.open,
    };
    match model.alerts.iter_mut().find(|a| a.id == marker.id) {
        Some(existing) => *existing = marker,
        None => model.alerts.push(marker),
    }
}
