//! Puts the current frame on screen: advances playback, then rewrites vertex colours, arrow
//! directions, tank levels and valve colours in place, only when the frame or the colouring
//! changed (nothing is allocated per frame).

use bevy::mesh::VertexAttributeValues;
use bevy::prelude::*;

use super::scene::{Palette, SceneMeshes, SensorPin, TankFill, ValveMarker};
use super::{Model, Timeline, ViewState};
use crate::colour::{ColourScale, Quantity, NO_DATA};
use crate::frames::Frames;
use crate::geometry::NodeShape;
use crate::meshes::orient_arrows;

/// Colour of closed links (they carry nothing, whatever the quantity).
const CLOSED: [f32; 3] = [0.22, 0.22, 0.24];
/// Colour of junctions while colouring by a link quantity.
const NEUTRAL: [f32; 3] = [0.80, 0.80, 0.82];
/// Flows below this (file units) draw no arrow.
const STILL: f32 = 1e-6;

pub struct ColouringPlugin;

impl Plugin for ColouringPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (
                follow_timeline,
                (recolour, orient, fill_tanks, colour_valves, colour_sensors)
                    .run_if(|view: Res<ViewState>| view.dirty),
                clear_dirty,
            )
                .chain(),
        );
    }
}

fn follow_timeline(
    time: Res<Time>,
    model: Res<Model>,
    mut timeline: ResMut<Timeline>,
    mut view: ResMut<ViewState>,
) {
    let times = model.frames.times();
    timeline.advance(time.delta_secs_f64(), times);
    let step = model.frames.step_at(timeline.time);
    if step != view.step {
        view.step = step;
        view.dirty = true;
    }
}

fn clear_dirty(mut view: ResMut<ViewState>) {
    if view.dirty {
        view.dirty = false;
    }
}

/// Linear RGBA of an sRGB palette colour (vertex colours are linear).
fn linear(srgb: [f32; 3]) -> [f32; 4] {
    Color::srgb(srgb[0], srgb[1], srgb[2])
        .to_linear()
        .to_f32_array()
}

/// The value a link is coloured by: its own for link quantities, the mean of its ends' for
/// node quantities.
pub fn link_value(
    frames: &Frames,
    model: &Model,
    quantity: Quantity,
    step: usize,
    link: usize,
) -> f32 {
    if quantity.on_links() {
        let value = frames
            .values(quantity, step)
            .and_then(|values| values.get(link).copied())
            .unwrap_or(f32::NAN);
        return if quantity == Quantity::Flow {
            value.abs()
        } else {
            value
        };
    }
    let Some(values) = frames.values(quantity, step) else {
        return f32::NAN;
    };
    let geometry = &model.geometry.links[link];
    (values[geometry.from] + values[geometry.to]) / 2.0
}

/// The sRGB colour of link `link` at `step`.
pub fn link_colour(model: &Model, view: &ViewState, link: usize) -> [f32; 3] {
    let frames = &model.frames;
    let closed = frames
        .status(view.step)
        .is_some_and(|status| status.get(link) == Some(&0));
    if closed {
        return CLOSED;
    }
    scale_colour(
        &view.scale,
        link_value(frames, model, view.quantity, view.step, link),
    )
}

fn scale_colour(scale: &ColourScale, value: f32) -> [f32; 3] {
    if value.is_finite() {
        scale.colour(value)
    } else {
        NO_DATA
    }
}

fn write_colours(
    mesh: &mut Mesh,
    ranges: &[std::ops::Range<u32>],
    colour: impl Fn(usize) -> [f32; 4],
) {
    let Some(VertexAttributeValues::Float32x4(colours)) = mesh.attribute_mut(Mesh::ATTRIBUTE_COLOR)
    else {
        return;
    };
    for (index, range) in ranges.iter().enumerate() {
        if range.is_empty() {
            continue;
        }
        let value = colour(index);
        colours[range.start as usize..range.end as usize].fill(value);
    }
}

fn recolour(
    model: Res<Model>,
    view: Res<ViewState>,
    scene: Res<SceneMeshes>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    if let Some(mut mesh) = meshes.get_mut(&scene.tubes) {
        write_colours(&mut mesh, &scene.tube_ranges, |link| {
            linear(link_colour(&model, &view, link))
        });
    }
    let node_values = if view.quantity.on_links() {
        None
    } else {
        model.frames.values(view.quantity, view.step)
    };
    if let Some(mut mesh) = meshes.get_mut(&scene.junctions) {
        write_colours(
            &mut mesh,
            &scene.junction_ranges,
            |node| match node_values {
                Some(values) => linear(scale_colour(&view.scale, values[node])),
                None => linear(NEUTRAL),
            },
        );
    }
}

fn orient(
    model: Res<Model>,
    view: Res<ViewState>,
    scene: Res<SceneMeshes>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    let Some(mut mesh) = meshes.get_mut(&scene.arrows) else {
        return;
    };
    let flows = model.frames.values(Quantity::Flow, view.step);
    let status = model.frames.status(view.step);
    let direction = |link: usize| -> i8 {
        let flow = flows.and_then(|f| f.get(link).copied()).unwrap_or(0.0);
        let closed = status.is_some_and(|s| s.get(link) == Some(&0));
        if closed || !flow.is_finite() || flow.abs() < STILL {
            0
        } else if flow > 0.0 {
            1
        } else {
            -1
        }
    };
    // Positions and normals are taken out and put back so both can be rewritten together.
    let Some(VertexAttributeValues::Float32x3(positions)) =
        mesh.remove_attribute(Mesh::ATTRIBUTE_POSITION)
    else {
        return;
    };
    let Some(VertexAttributeValues::Float32x3(normals)) =
        mesh.remove_attribute(Mesh::ATTRIBUTE_NORMAL)
    else {
        mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, positions);
        return;
    };
    let (mut positions, mut normals) = (positions, normals);
    orient_arrows(&model.geometry, &mut positions, &mut normals, direction);
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, positions);
    mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, normals);
}

fn fill_tanks(
    model: Res<Model>,
    view: Res<ViewState>,
    mut tanks: Query<(&TankFill, &mut Transform)>,
) {
    let heads = model.frames.values(Quantity::Head, view.step);
    for (tank, mut transform) in &mut tanks {
        let NodeShape::Tank { .. } = model.geometry.nodes[tank.node].shape else {
            continue;
        };
        let level = heads
            .and_then(|h| h.get(tank.node).copied())
            .filter(|h| h.is_finite())
            .map(|head| model.geometry.height_of(head))
            .unwrap_or(tank.bottom)
            .clamp(tank.bottom, tank.top);
        let height = (level - tank.bottom).max(0.01);
        transform.scale = Vec3::new(tank.radius, height, tank.radius);
        transform.translation.y = tank.bottom + height / 2.0;
    }
}

fn colour_valves(
    model: Res<Model>,
    view: Res<ViewState>,
    palette: Res<Palette>,
    mut valves: Query<(&ValveMarker, &mut MeshMaterial3d<StandardMaterial>)>,
) {
    let status = model.frames.status(view.step);
    for (valve, mut material) in &mut valves {
        let wanted = match status.and_then(|s| s.get(valve.link)) {
            Some(0) => &palette.valve_closed,
            Some(2) => &palette.valve_active,
            _ => &palette.valve_open,
        };
        if material.0 != *wanted {
            material.0 = wanted.clone();
        }
    }
}

fn colour_sensors(
    model: Res<Model>,
    view: Res<ViewState>,
    pins: Query<(&SensorPin, &MeshMaterial3d<StandardMaterial>)>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let residuals = (view.quantity == Quantity::Residual)
        .then(|| model.frames.values(Quantity::Residual, view.step))
        .flatten();
    for (pin, material) in &pins {
        let Some(mut material) = materials.get_mut(&material.0) else {
            continue;
        };
        let sensor = &model.sensors[pin.index];
        let colour = match (residuals, sensor.node) {
            (Some(values), Some(node)) => scale_colour(&view.scale, values[node]),
            _ => [1.0, 1.0, 1.0],
        };
        material.base_color = Color::srgb(colour[0], colour[1], colour[2]);
    }
}
