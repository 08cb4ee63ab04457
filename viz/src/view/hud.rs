//! What is drawn over the scene and the commands behind it: title and layout notice, legend,
//! time and timeline bar (click or drag to scrub), inspector of the selected element, search by
//! id, help; keyboard and click handling.

use bevy::input::keyboard::{Key, KeyboardInput};
use bevy::input::ButtonState;
use bevy::prelude::*;
use bevy::ui::UiGlobalTransform;
use bevy::window::PrimaryWindow;

use super::camera::Orbit;
use super::capture::CaptureSettings;
use super::colouring::link_value;
use super::{Model, Timeline, ViewState};
use crate::colour::{format_value, Quantity};
use crate::geometry::NodeShape;
use crate::layout::LayoutSource;
use crate::pick::{pick, Selection};
use crate::playback::format_time;

/// Colour cells of the legend bar, top (max) to bottom (min).
const LEGEND_CELLS: usize = 32;
/// Height of one legend cell, pixels.
const LEGEND_CELL_HEIGHT: f32 = 8.0;
/// Tick labels of the legend.
const LEGEND_TICKS: usize = 5;
/// Cursor travel (pixels) below which a press and release is a click, not a drag.
const CLICK_SLOP: f32 = 4.0;

const HELP: &str = "\
Mouse: left drag orbit | right/middle or shift+left drag pan | wheel zoom | click select
Space play/pause   Left/Right step   Up/Down speed   Home/End first/last (End: live)
C / shift+C next/previous colour   1-8 pressure head demand flow velocity headloss risk residual
F fit   / search id (Enter go, Esc cancel)   Esc clear selection
Layers: P pipes  J junctions  A arrows  S sensors  L alerts  K tanks/pumps/valves   H help";

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PointerOverUi>()
            .init_resource::<ClickStart>()
            .add_systems(Startup, spawn_hud)
            .add_systems(
                Update,
                (
                    track_pointer,
                    keyboard,
                    click_select,
                    update_title,
                    update_legend,
                    update_time,
                    update_inspector,
                )
                    .chain(),
            );
    }
}

/// Whether the cursor is over the timeline bar (mouse drags scrub instead of orbiting).
#[derive(Resource, Default)]
pub struct PointerOverUi(pub bool);

/// Where the left button went down, to tell clicks from drags.
#[derive(Resource, Default)]
struct ClickStart(Option<Vec2>);

#[derive(Component)]
struct TitleText;
#[derive(Component)]
struct LegendTitle;
/// The legend's colour bar (its screen rectangle is part of the capture map).
#[derive(Component)]
pub struct LegendBar;
#[derive(Component)]
struct LegendCell(usize);
#[derive(Component)]
struct LegendTick(usize);
#[derive(Component)]
struct TimeText;
/// The timeline's track.
#[derive(Component)]
struct TimelineBar;
#[derive(Component)]
struct TimelineFill;
#[derive(Component)]
struct InspectorText;
#[derive(Component)]
struct HelpText;

fn text(size: f32) -> TextFont {
    TextFont::from_font_size(size)
}

fn panel() -> BackgroundColor {
    BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55))
}

fn spawn_hud(mut commands: Commands) {
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(12.0),
            top: Val::Px(10.0),
            padding: UiRect::all(Val::Px(6.0)),
            ..default()
        },
        panel(),
        Text::new(""),
        text(15.0),
        TextColor(Color::WHITE),
        TitleText,
    ));
    commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                right: Val::Px(12.0),
                top: Val::Px(10.0),
                padding: UiRect::all(Val::Px(8.0)),
                flex_direction: FlexDirection::Column,
                row_gap: Val::Px(6.0),
                ..default()
            },
            panel(),
        ))
        .with_children(|legend| {
            legend.spawn((
                Text::new(""),
                text(14.0),
                TextColor(Color::WHITE),
                LegendTitle,
            ));
            legend
                .spawn(Node {
                    flex_direction: FlexDirection::Row,
                    column_gap: Val::Px(8.0),
                    ..default()
                })
                .with_children(|row| {
                    row.spawn((
                        Node {
                            flex_direction: FlexDirection::Column,
                            ..default()
                        },
                        LegendBar,
                    ))
                    .with_children(|bar| {
                        for cell in 0..LEGEND_CELLS {
                            bar.spawn((
                                Node {
                                    width: Val::Px(24.0),
                                    height: Val::Px(LEGEND_CELL_HEIGHT),
                                    ..default()
                                },
                                BackgroundColor(Color::BLACK),
                                LegendCell(cell),
                            ));
                        }
                    });
                    row.spawn(Node {
                        flex_direction: FlexDirection::Column,
                        justify_content: JustifyContent::SpaceBetween,
                        height: Val::Px(LEGEND_CELL_HEIGHT * LEGEND_CELLS as f32),
                        ..default()
                    })
                    .with_children(|ticks| {
                        for tick in 0..LEGEND_TICKS {
                            ticks.spawn((
                                Text::new(""),
                                text(13.0),
                                TextColor(Color::WHITE),
                                LegendTick(tick),
                            ));
                        }
                    });
                });
        });
    commands
        .spawn(Node {
            position_type: PositionType::Absolute,
            left: Val::Px(12.0),
            right: Val::Px(12.0),
            bottom: Val::Px(10.0),
            flex_direction: FlexDirection::Column,
            row_gap: Val::Px(4.0),
            ..default()
        })
        .with_children(|bottom| {
            bottom.spawn((Text::new(""), text(14.0), TextColor(Color::WHITE), TimeText));
            bottom
                .spawn((
                    Node {
                        height: Val::Px(10.0),
                        width: Val::Percent(100.0),
                        ..default()
                    },
                    BackgroundColor(Color::srgb(0.25, 0.26, 0.30)),
                    TimelineBar,
                ))
                .with_children(|bar| {
                    bar.spawn((
                        Node {
                            height: Val::Percent(100.0),
                            width: Val::Percent(0.0),
                            ..default()
                        },
                        BackgroundColor(Color::srgb(0.35, 0.65, 0.95)),
                        TimelineFill,
                    ));
                });
        });
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(12.0),
            bottom: Val::Px(56.0),
            padding: UiRect::all(Val::Px(6.0)),
            ..default()
        },
        panel(),
        Text::new(""),
        text(14.0),
        TextColor(Color::WHITE),
        InspectorText,
        Visibility::Hidden,
    ));
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(12.0),
            top: Val::Px(70.0),
            padding: UiRect::all(Val::Px(8.0)),
            ..default()
        },
        panel(),
        Text::new(HELP),
        text(13.0),
        TextColor(Color::WHITE),
        HelpText,
        Visibility::Hidden,
    ));
}

/// Screen rectangle (physical pixels: min corner, size) of a laid-out UI node.
pub fn node_rect(node: &ComputedNode, transform: &UiGlobalTransform) -> Rect {
    Rect::from_center_size(transform.translation, node.size())
}

fn cursor(windows: &Query<&Window, With<PrimaryWindow>>) -> Option<Vec2> {
    windows.single().ok()?.physical_cursor_position()
}

fn track_pointer(
    windows: Query<&Window, With<PrimaryWindow>>,
    buttons: Res<ButtonInput<MouseButton>>,
    bar: Query<(&ComputedNode, &UiGlobalTransform), With<TimelineBar>>,
    model: Res<Model>,
    mut over: ResMut<PointerOverUi>,
    mut timeline: ResMut<Timeline>,
) {
    let (Some(position), Ok((node, transform))) = (cursor(&windows), bar.single()) else {
        over.0 = false;
        return;
    };
    let rect = node_rect(node, transform);
    let grown = Rect::from_center_size(rect.center(), rect.size() + Vec2::new(0.0, 12.0));
    over.0 = grown.contains(position);
    if over.0 && buttons.pressed(MouseButton::Left) && rect.width() > 0.0 {
        let fraction = ((position.x - rect.min.x) / rect.width()) as f64;
        timeline.scrub(fraction, model.frames.times());
    }
}

#[allow(clippy::too_many_arguments)]
fn keyboard(
    mut typed: MessageReader<KeyboardInput>,
    keys: Res<ButtonInput<KeyCode>>,
    model: Res<Model>,
    mut view: ResMut<ViewState>,
    mut timeline: ResMut<Timeline>,
    settings: Res<CaptureSettings>,
    mut orbits: Query<&mut Orbit>,
) {
    let times = model.frames.times();
    let shift = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
    for event in typed.read() {
        if event.state != ButtonState::Pressed {
            continue;
        }
        if let Some(query) = view.search.clone() {
            match &event.logical_key {
                Key::Enter => {
                    view.search = None;
                    let found = find(&model, &query);
                    view.message = match found {
                        Some(_) => None,
                        None => Some(format!("no node or link `{}`", query.trim())),
                    };
                    if let Some(selection) = found {
                        view.selection = Some(selection);
                        if let Ok(mut orbit) = orbits.single_mut() {
                            let (point, radius) = extent_of(&model, selection);
                            orbit.focus_on(point, radius);
                        }
                    }
                }
                Key::Escape => view.search = None,
                Key::Backspace => {
                    let mut query = query;
                    query.pop();
                    view.search = Some(query);
                }
                Key::Character(text) => view.search = Some(query + text.as_str()),
                Key::Space => view.search = Some(query + " "),
                _ => {}
            }
            continue;
        }
        view.message = None;
        match event.key_code {
            KeyCode::Space => timeline.toggle(times),
            KeyCode::ArrowRight => timeline.step(1, times),
            KeyCode::ArrowLeft => timeline.step(-1, times),
            KeyCode::ArrowUp | KeyCode::Equal | KeyCode::NumpadAdd => timeline.faster(true),
            KeyCode::ArrowDown | KeyCode::Minus | KeyCode::NumpadSubtract => timeline.faster(false),
            KeyCode::Home => timeline.step(-(times.len() as isize), times),
            KeyCode::End => {
                timeline.step(times.len() as isize, times);
                timeline.follow_latest = true;
            }
            KeyCode::KeyC => {
                let next = view.quantity.next(!shift);
                view.colour_by(next, &model.frames);
            }
            KeyCode::KeyF => {
                if let Ok(mut orbit) = orbits.single_mut() {
                    *orbit = Orbit::fit(&model, settings.aspect());
                }
            }
            KeyCode::KeyH => view.show_help = !view.show_help,
            KeyCode::KeyP => view.layers.pipes = !view.layers.pipes,
            KeyCode::KeyJ => view.layers.junctions = !view.layers.junctions,
            KeyCode::KeyA => view.layers.arrows = !view.layers.arrows,
            KeyCode::KeyS => view.layers.sensors = !view.layers.sensors,
            KeyCode::KeyL => view.layers.alerts = !view.layers.alerts,
            KeyCode::KeyK => view.layers.facilities = !view.layers.facilities,
            KeyCode::Slash | KeyCode::NumpadDivide => view.search = Some(String::new()),
            KeyCode::Escape => view.selection = None,
            code => {
                let digit = [
                    KeyCode::Digit1,
                    KeyCode::Digit2,
                    KeyCode::Digit3,
                    KeyCode::Digit4,
                    KeyCode::Digit5,
                    KeyCode::Digit6,
                    KeyCode::Digit7,
                    KeyCode::Digit8,
                ]
                .iter()
                .position(|key| *key == code);
                if let Some(index) = digit {
                    view.colour_by(Quantity::ALL[index], &model.frames);
                }
            }
        }
    }
}

/// The element with id `query`: a node first, then a link.
fn find(model: &Model, query: &str) -> Option<Selection> {
    let geometry = &model.geometry;
    geometry
        .find_node(query)
        .map(Selection::Node)
        .or_else(|| geometry.find_link(query).map(Selection::Link))
}

/// A point and a radius that frame `selection`.
fn extent_of(model: &Model, selection: Selection) -> (Vec3, f32) {
    let geometry = &model.geometry;
    match selection {
        Selection::Node(index) => (geometry.nodes[index].position, 40.0),
        Selection::Link(index) => {
            let link = &geometry.links[index];
            let (middle, _) = link.point_along(0.5);
            let reach = link
                .points
                .iter()
                .map(|p| p.distance(middle))
                .fold(0.0, f32::max);
            (middle, reach.max(40.0))
        }
    }
}

fn click_select(
    windows: Query<&Window, With<PrimaryWindow>>,
    buttons: Res<ButtonInput<MouseButton>>,
    over: Res<PointerOverUi>,
    cameras: Query<(&Camera, &GlobalTransform)>,
    model: Res<Model>,
    mut start: ResMut<ClickStart>,
    mut view: ResMut<ViewState>,
) {
    let Some(position) = cursor(&windows) else {
        return;
    };
    if buttons.just_pressed(MouseButton::Left) {
        start.0 = (!over.0).then_some(position);
    }
    if !buttons.just_released(MouseButton::Left) {
        return;
    }
    let Some(pressed) = start.0.take() else {
        return;
    };
    if pressed.distance(position) > CLICK_SLOP {
        return;
    }
    let Ok((camera, transform)) = cameras.single() else {
        return;
    };
    let project = |point: Vec3| camera.world_to_viewport(transform, point).ok();
    view.selection = pick(position, &model.geometry, project);
}

fn update_title(
    model: Res<Model>,
    view: Res<ViewState>,
    mut title: Query<&mut Text, With<TitleText>>,
    mut help: Query<&mut Visibility, With<HelpText>>,
) {
    if !view.is_changed() {
        return;
    }
    let layout = match model.geometry.layout {
        LayoutSource::FromFile => String::new(),
        LayoutSource::Completed { placed } => {
            format!("\n{placed} nodes had no coordinates: placed by the viewer")
        }
        LayoutSource::Computed => {
            "\nno coordinates in the file: computed layout (not a map)".to_string()
        }
    };
    let line = match (&view.search, &view.message) {
        (Some(query), _) => format!("\nfind: {query}_"),
        (None, Some(message)) => format!("\n{message}"),
        (None, None) => String::new(),
    };
    if let Ok(mut text) = title.single_mut() {
        text.0 = format!(
            "{}  |  elevation x{:.3}  |  H: help{layout}{line}",
            model.source, model.geometry.exaggeration
        );
    }
    if let Ok(mut visibility) = help.single_mut() {
        visibility.set_if_neq(if view.show_help {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        });
    }
}

fn update_legend(
    view: Res<ViewState>,
    mut title: Query<&mut Text, (With<LegendTitle>, Without<LegendTick>)>,
    mut cells: Query<(&LegendCell, &mut BackgroundColor)>,
    mut ticks: Query<(&LegendTick, &mut Text), Without<LegendTitle>>,
) {
    if !view.is_changed() {
        return;
    }
    let scale = view.scale;
    if let Ok(mut text) = title.single_mut() {
        let unit = view.units.of(view.quantity);
        text.0 = if unit.is_empty() {
            view.quantity.name().to_string()
        } else {
            format!("{} ({unit})", view.quantity.name())
        };
    }
    for (cell, mut background) in &mut cells {
        // Top cell shows the maximum; each cell the colour of its centre.
        let fraction = 1.0 - (cell.0 as f32 + 0.5) / LEGEND_CELLS as f32;
        let [r, g, b] = scale.colour_at(fraction);
        background.0 = Color::srgb(r, g, b);
    }
    let values = scale.ticks(LEGEND_TICKS);
    for (tick, mut text) in &mut ticks {
        text.0 = format_value(values[LEGEND_TICKS - 1 - tick.0]);
    }
}

fn update_time(
    model: Res<Model>,
    view: Res<ViewState>,
    timeline: Res<Timeline>,
    mut label: Query<&mut Text, With<TimeText>>,
    mut fill: Query<&mut Node, With<TimelineFill>>,
) {
    if !timeline.is_changed() && !view.is_changed() {
        return;
    }
    let frames = &model.frames;
    let times = frames.times();
    let state = if timeline.follow_latest {
        "LIVE".to_string()
    } else if timeline.playing {
        format!("PLAYING x{}", format_value(timeline.speed as f32))
    } else {
        "PAUSED".to_string()
    };
    let shown = times.get(view.step).copied().unwrap_or(timeline.time);
    if let Ok(mut text) = label.single_mut() {
        text.0 = if times.is_empty() {
            "waiting for the first state...".to_string()
        } else {
            format!(
                "{}   frame {}/{}   {state}",
                format_time(shown, frames.clock),
                view.step + 1,
                times.len()
            )
        };
    }
    if let Ok(mut node) = fill.single_mut() {
        node.width = Val::Percent(timeline.fraction(times) as f32 * 100.0);
    }
}

fn update_inspector(
    model: Res<Model>,
    view: Res<ViewState>,
    mut inspector: Query<(&mut Text, &mut Visibility), With<InspectorText>>,
) {
    if !view.is_changed() {
        return;
    }
    let Ok((mut text, mut visibility)) = inspector.single_mut() else {
        return;
    };
    let Some(selection) = view.selection else {
        visibility.set_if_neq(Visibility::Hidden);
        return;
    };
    visibility.set_if_neq(Visibility::Inherited);
    text.0 = describe(&model, &view, selection);
}

/// The inspector's text for `selection` at the frame on screen.
pub fn describe(model: &Model, view: &ViewState, selection: Selection) -> String {
    let frames = &model.frames;
    let step = view.step;
    let value = |quantity: Quantity, index: usize| {
        frames
            .values(quantity, step)
            .and_then(|values| values.get(index).copied())
            .filter(|v| v.is_finite())
            .map_or("-".to_string(), |v| {
                format!("{} {}", format_value(v), view.units.of(quantity))
            })
    };
    match selection {
        Selection::Node(index) => {
            let node = &model.geometry.nodes[index];
            let kind = match node.shape {
                NodeShape::Junction => "junction",
                NodeShape::Reservoir => "reservoir",
                NodeShape::Tank { .. } => "tank",
            };
            let sensors: Vec<String> = model
                .sensors
                .iter()
                .filter(|s| s.node == Some(index))
                .map(|s| format!("{} ({})", s.id, s.kind))
                .collect();
            let mut lines = vec![
                format!("{kind} {}", node.id),
                format!(
                    "elevation {} {}",
                    format_value(node.elevation),
                    view.units.head
                ),
                format!("head {}", value(Quantity::Head, index)),
                format!("pressure {}", value(Quantity::Pressure, index)),
                format!("demand {}", value(Quantity::Demand, index)),
            ];
            if frames.has(Quantity::Residual) {
                lines.push(format!("residual {}", value(Quantity::Residual, index)));
            }
            if !sensors.is_empty() {
                lines.push(format!("sensors {}", sensors.join(", ")));
            }
            lines.join("\n")
        }
        Selection::Link(index) => {
            let link = &model.geometry.links[index];
            let nodes = &model.geometry.nodes;
            let status = match frames.status(step).and_then(|s| s.get(index)) {
                Some(0) => "closed",
                Some(2) => "active",
                Some(_) => "open",
                None => "-",
            };
            let mut lines = vec![
                format!(
                    "{} {}  ({} -> {})",
                    link.shape.name().to_lowercase(),
                    link.id,
                    nodes[link.from].id,
                    nodes[link.to].id
                ),
                format!(
                    "diameter {}  length {}",
                    format_value(link.diameter),
                    format_value(link.length)
                ),
                format!("flow {}", value(Quantity::Flow, index)),
                format!("velocity {}", value(Quantity::Velocity, index)),
                format!("headloss {}", value(Quantity::Headloss, index)),
                format!("status {status}"),
            ];
            if frames.has(Quantity::Risk) {
                lines.push(format!("risk {}", value(Quantity::Risk, index)));
            }
            if !view.quantity.on_links() {
                let mean = link_value(frames, model, view.quantity, step, index);
                lines.push(format!(
                    "{} (mean of ends) {}",
                    view.quantity,
                    format_value(mean)
                ));
            }
            lines.join("\n")
        }
    }
}
