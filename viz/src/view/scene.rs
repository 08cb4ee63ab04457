//! The drawn network: merged meshes for pipes, junctions and arrows; one entity per tank,
//! reservoir, pump, valve, sensor and alert (there are few of them).

use std::ops::Range;

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;

use super::{Layers, Model, ViewState};
use crate::geometry::{LinkShape, NodeShape};
use crate::meshes::{self, MeshData};

pub struct ScenePlugin;

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        bevy::asset::embedded_asset!(app, "data.wgsl");
        app.add_plugins(MaterialPlugin::<DataMaterial>::default())
            .add_systems(Startup, spawn_scene)
            .add_systems(Update, (spawn_new_alerts, pulse_alerts, apply_layers));
    }
}

/// The material of the merged data meshes: each vertex shows its own colour, unlit.
#[derive(Asset, TypePath, AsBindGroup, Clone, Default)]
pub struct DataMaterial {}

impl Material for DataMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://viz/view/data.wgsl".into()
    }
}

/// sRGB colour of open alerts' markers.
pub const ALERT_COLOUR: [f32; 3] = [1.0, 0.1, 0.35];

/// Which layer an entity belongs to (toggled from the keyboard).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Pipes,
    Junctions,
    Arrows,
    Sensors,
    Alerts,
    Facilities,
}

impl Layer {
    fn shown(self, layers: &Layers) -> bool {
        match self {
            Layer::Pipes => layers.pipes,
            Layer::Junctions => layers.junctions,
            Layer::Arrows => layers.arrows,
            Layer::Sensors => layers.sensors,
            Layer::Alerts => layers.alerts,
            Layer::Facilities => layers.facilities,
        }
    }
}

/// The merged meshes and which vertices belong to which element.
#[derive(Resource)]
pub struct SceneMeshes {
    pub tubes: Handle<Mesh>,
    pub tube_ranges: Vec<Range<u32>>,
    pub junctions: Handle<Mesh>,
    pub junction_ranges: Vec<Range<u32>>,
    pub arrows: Handle<Mesh>,
}

/// The water inside a tank (scaled to its level).
#[derive(Component)]
pub struct TankFill {
    pub node: usize,
    /// World y of the bottom and of the full level.
    pub bottom: f32,
    pub top: f32,
    pub radius: f32,
}

/// A valve's marker (coloured by its status).
#[derive(Component)]
pub struct ValveMarker {
    pub link: usize,
}

/// A sensor's pin (coloured by its residual when colouring by residual).
#[derive(Component)]
pub struct SensorPin {
    pub index: usize,
}

/// An alert's pulsing marker.
#[derive(Component)]
pub struct AlertPulse {
    pub index: usize,
    pub size: f32,
}

/// Shared materials for the per-entity markers.
#[derive(Resource)]
pub struct Palette {
    pub valve_open: Handle<StandardMaterial>,
    pub valve_closed: Handle<StandardMaterial>,
    pub valve_active: Handle<StandardMaterial>,
    pub alert: Handle<StandardMaterial>,
    pub alert_closed: Handle<StandardMaterial>,
}

fn to_mesh(data: MeshData) -> Mesh {
    let count = data.positions.len();
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, data.positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, data.normals)
    .with_inserted_attribute(Mesh::ATTRIBUTE_COLOR, vec![[1.0f32; 4]; count])
    .with_inserted_indices(Indices::U32(data.indices))
}

fn unlit(colour: Color) -> StandardMaterial {
    StandardMaterial {
        base_color: colour,
        unlit: true,
        ..default()
    }
}

fn spawn_scene(
    mut commands: Commands,
    model: Res<Model>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut data_materials: ResMut<Assets<DataMaterial>>,
) {
    let geometry = &model.geometry;
    // Vertex colours carry the data, shown as they are: on screen the legend's colours.
    let vertex_coloured = data_materials.add(DataMaterial::default());

    let tube_data = meshes::tubes(geometry);
    let tube_ranges = tube_data.ranges.clone();
    let tubes = meshes.add(to_mesh(tube_data));
    commands.spawn((
        Mesh3d(tubes.clone()),
        MeshMaterial3d(vertex_coloured.clone()),
        Layer::Pipes,
    ));
    let junction_data = meshes::junction_markers(geometry);
    let junction_ranges = junction_data.ranges.clone();
    let junctions = meshes.add(to_mesh(junction_data));
    commands.spawn((
        Mesh3d(junctions.clone()),
        MeshMaterial3d(vertex_coloured.clone()),
        Layer::Junctions,
    ));
    let arrows = meshes.add(to_mesh(meshes::arrows(geometry)));
    commands.spawn((
        Mesh3d(arrows.clone()),
        MeshMaterial3d(vertex_coloured.clone()),
        Layer::Arrows,
    ));
    commands.insert_resource(SceneMeshes {
        tubes,
        tube_ranges,
        junctions,
        junction_ranges,
        arrows,
    });

    let shell = materials.add(StandardMaterial {
        base_color: Color::srgba(0.75, 0.78, 0.82, 0.35),
        alpha_mode: AlphaMode::Blend,
        ..default()
    });
    let water = materials.add(Color::srgb(0.16, 0.45, 0.85));
    let cylinder = meshes.add(Cylinder::new(1.0, 1.0));
    for (index, node) in geometry.nodes.iter().enumerate() {
        match node.shape {
            NodeShape::Junction => {}
            NodeShape::Reservoir => {
                commands.spawn((
                    Mesh3d(meshes.add(Cuboid::new(node.size * 2.0, node.size, node.size * 2.0))),
                    MeshMaterial3d(water.clone()),
                    Transform::from_translation(node.position - Vec3::Y * node.size * 0.5),
                    Layer::Facilities,
                ));
            }
            NodeShape::Tank {
                bottom_head,
                max_head,
                ..
            } => {
                let bottom = geometry.height_of(bottom_head);
                let top = geometry.height_of(max_head).max(bottom + node.size * 2.0);
                let radius = node.size;
                commands.spawn((
                    Mesh3d(cylinder.clone()),
                    MeshMaterial3d(shell.clone()),
                    Transform::from_translation(node.position.with_y((bottom + top) / 2.0))
                        .with_scale(Vec3::new(radius * 1.05, top - bottom, radius * 1.05)),
                    Layer::Facilities,
                ));
                commands.spawn((
                    Mesh3d(cylinder.clone()),
                    MeshMaterial3d(water.clone()),
                    Transform::from_translation(node.position.with_y(bottom))
                        .with_scale(Vec3::new(radius, 0.01, radius)),
                    TankFill {
                        node: index,
                        bottom,
                        top,
                        radius,
                    },
                    Layer::Facilities,
                ));
            }
        }
    }

    let palette = Palette {
        valve_open: materials.add(Color::srgb(0.20, 0.75, 0.35)),
        valve_closed: materials.add(Color::srgb(0.85, 0.15, 0.15)),
        valve_active: materials.add(Color::srgb(0.95, 0.70, 0.15)),
        alert: materials.add(unlit(Color::srgb(
            ALERT_COLOUR[0],
            ALERT_COLOUR[1],
            ALERT_COLOUR[2],
        ))),
        alert_closed: materials.add(unlit(Color::srgb(0.55, 0.45, 0.50))),
    };
    let pump_material = materials.add(Color::srgb(0.55, 0.35, 0.85));
    for (index, link) in geometry.links.iter().enumerate() {
        let (middle, direction) = link.point_along(0.5);
        let size = link.radius * 3.5;
        match link.shape {
            LinkShape::Pipe => {}
            LinkShape::Pump => {
                commands.spawn((
                    Mesh3d(meshes.add(Sphere::new(size))),
                    MeshMaterial3d(pump_material.clone()),
                    Transform::from_translation(middle),
                    Layer::Facilities,
                ));
            }
            LinkShape::Valve(_) => {
                let turn = Quat::from_rotation_arc(Vec3::X, direction.normalize_or(Vec3::X));
                commands.spawn((
                    Mesh3d(meshes.add(Cuboid::new(size * 1.6, size, size))),
                    MeshMaterial3d(palette.valve_open.clone()),
                    Transform::from_translation(middle).with_rotation(turn),
                    ValveMarker { link: index },
                    Layer::Facilities,
                ));
            }
        }
    }

    let pin = meshes.add(Cone::new(4.0, 10.0));
    for (index, sensor) in model.sensors.iter().enumerate() {
        commands.spawn((
            Mesh3d(pin.clone()),
            MeshMaterial3d(materials.add(unlit(Color::WHITE))),
            Transform::from_translation(sensor.position + Vec3::Y * 12.0)
                .with_rotation(Quat::from_rotation_x(std::f32::consts::PI)),
            SensorPin { index },
            Layer::Sensors,
        ));
    }
    commands.insert_resource(palette);
    commands.insert_resource(AlertMeshes {
        sphere: meshes.add(Sphere::new(1.0)),
    });
}

/// The shape of alert markers.
#[derive(Resource)]
struct AlertMeshes {
    sphere: Handle<Mesh>,
}

/// Alerts come and go while the viewer runs (live); each new one gets its marker.
fn spawn_new_alerts(
    mut commands: Commands,
    model: Res<Model>,
    shapes: Res<AlertMeshes>,
    palette: Res<Palette>,
    existing: Query<&AlertPulse>,
) {
    let known = existing.iter().count();
    for (index, alert) in model.alerts.iter().enumerate().skip(known) {
        commands.spawn((
            Mesh3d(shapes.sphere.clone()),
            MeshMaterial3d(if alert.open {
                palette.alert.clone()
            } else {
                palette.alert_closed.clone()
            }),
            Transform::from_translation(alert.position),
            AlertPulse { index, size: 9.0 },
            Layer::Alerts,
        ));
    }
}

/// Open alerts pulse; alerts raised after the time on screen are hidden.
fn pulse_alerts(
    time: Res<Time>,
    model: Res<Model>,
    timeline: Res<super::Timeline>,
    view: Res<ViewState>,
    palette: Res<Palette>,
    mut pulses: Query<(
        &AlertPulse,
        &mut Transform,
        &mut Visibility,
        &mut MeshMaterial3d<StandardMaterial>,
    )>,
) {
    let beat = (time.elapsed_secs() * 4.0).sin() * 0.35 + 1.0;
    for (pulse, mut transform, mut visibility, mut material) in &mut pulses {
        let Some(alert) = model.alerts.get(pulse.index) else {
            continue;
        };
        let raised = alert.shown_at(&timeline);
        let wanted = if raised && view.layers.alerts {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(wanted);
        let scale = if alert.open {
            pulse.size * beat
        } else {
            pulse.size * 0.7
        };
        transform.scale = Vec3::splat(scale);
        transform.translation = alert.position;
        let colour = if alert.open {
            &palette.alert
        } else {
            &palette.alert_closed
        };
        if material.0 != *colour {
            material.0 = colour.clone();
        }
    }
}

fn apply_layers(view: Res<ViewState>, mut items: Query<(&Layer, &mut Visibility)>) {
    if !view.is_changed() {
        return;
    }
    for (layer, mut visibility) in &mut items {
        if layer == &Layer::Alerts {
            continue;
        }
        let wanted = if layer.shown(&view.layers) {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(wanted);
    }
}
