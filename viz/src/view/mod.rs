//! The Bevy application: one plugin per feature, sharing the [`Model`] (what is shown) and the
//! [`ViewState`] (how it is shown).
//!
//! - [`scene::ScenePlugin`]: meshes of pipes, junctions, tanks, reservoirs, pumps, valves,
//!   arrows, sensors and alerts; layer visibility.
//! - [`colouring::ColouringPlugin`]: vertex colours and arrow directions of the current frame.
//! - [`camera::CameraPlugin`]: orbit, pan, zoom, fit.
//! - [`hud::HudPlugin`]: legend, time, timeline, inspector, search, help; keyboard commands.
//! - [`live::LivePlugin`]: frames and alerts from a running `serve`.
//! - [`capture::CapturePlugin`]: `--screenshot` and `--bench`.

mod camera;
mod capture;
mod colouring;
mod hud;
mod live;
mod scene;

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::{ExitCondition, PresentMode, WindowResolution};
use bevy::winit::WinitPlugin;

use crate::colour::{ColourScale, Quantity};
use crate::frames::Frames;
use crate::geometry::Geometry;
use crate::live::LiveFeed;
use crate::pick::Selection;
use crate::playback::Playback;

pub use capture::{CaptureMap, MappedElement};

/// What to show and how the window behaves.
pub struct ViewerOptions {
    /// Window title (the network's name and source).
    pub title: String,
    /// Frame size, physical pixels.
    pub width: u32,
    pub height: u32,
    /// Render to an image with no window (no display needed).
    pub headless: bool,
    /// Quantity coloured at start.
    pub colour_by: Quantity,
    /// Time shown at start (seconds on the frames' clock); `None`: the first frame.
    pub start_time: Option<f64>,
    /// Render one frame to this PNG and exit.
    pub screenshot: Option<PathBuf>,
    /// Write where the legend and every link landed on the screenshot (JSON).
    pub map: Option<PathBuf>,
    /// Render this many frames while orbiting, print frame times, exit.
    pub bench_frames: Option<u32>,
    /// Units of each quantity, for the legend and inspector.
    pub units: Units,
}

/// Unit words per quantity.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub pressure: String,
    pub head: String,
    pub flow: String,
    pub velocity: String,
    pub headloss: String,
}

impl Units {
    /// The unit of `quantity`.
    pub fn of(&self, quantity: Quantity) -> &str {
        match quantity {
            Quantity::Pressure | Quantity::Residual => &self.pressure,
            Quantity::Head => &self.head,
            Quantity::Demand | Quantity::Flow => &self.flow,
            Quantity::Velocity => &self.velocity,
            Quantity::Headloss => &self.headloss,
            Quantity::Risk => "m3 unmet",
        }
    }
}

/// A sensor drawn as a marker.
#[derive(Debug, Clone)]
pub struct SensorMarker {
    pub id: String,
    /// What it measures (pressure, flow, ...), for the inspector.
    pub kind: String,
    /// Where it is drawn.
    pub position: Vec3,
    /// The node whose residual colours it, if it sits on one.
    pub node: Option<usize>,
}

/// Height of an alert marker above its element, world units.
pub const ALERT_LIFT: f32 = 18.0;

/// An alert drawn as a pulsing marker.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMarker {
    pub id: u64,
    pub title: String,
    pub position: Vec3,
    /// When it was raised (seconds on the frames' clock); shown from then on.
    pub raised: f64,
    pub open: bool,
}

impl AlertMarker {
    /// Whether the marker shows at the timeline's time: once raised, and always while
    /// following a live twin (an alert can be newer than the latest state).
    pub fn shown_at(&self, timeline: &Timeline) -> bool {
        timeline.follow_latest || self.raised <= timeline.time + 1e-6
    }
}

/// What is shown: the network's drawing, its frames, sensors and alerts.
#[derive(Resource)]
pub struct Model {
    pub geometry: Geometry,
    pub frames: Frames,
    pub sensors: Vec<SensorMarker>,
    pub alerts: Vec<AlertMarker>,
    /// Where the data come from, for the title line.
    pub source: String,
}

/// Which layers are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub pipes: bool,
    pub junctions: bool,
    pub arrows: bool,
    pub sensors: bool,
    pub alerts: bool,
    pub facilities: bool,
}

impl Layers {
    /// Everything shown, except arrows and junction markers on large networks (`A`, `J` show
    /// them).
    pub fn for_size(link_count: usize) -> Layers {
        let small = link_count <= crate::meshes::LARGE_NETWORK_LINKS;
        Layers {
            pipes: true,
            junctions: small,
            arrows: small,
            sensors: true,
            alerts: true,
            facilities: true,
        }
    }
}

/// How the model is shown right now.
#[derive(Resource)]
pub struct ViewState {
    pub quantity: Quantity,
    pub scale: ColourScale,
    /// Frame on screen.
    pub step: usize,
    pub layers: Layers,
    pub selection: Option<Selection>,
    /// Text typed after `/`, while searching.
    pub search: Option<String>,
    /// Last search's outcome, shown until the next key.
    pub message: Option<String>,
    pub show_help: bool,
    pub units: Units,
    /// Frames need recolouring (quantity, scale or step changed).
    pub dirty: bool,
}

impl ViewState {
    /// Colours by `quantity` from now on, with a scale fitted to all its values.
    pub fn colour_by(&mut self, quantity: Quantity, frames: &Frames) {
        self.quantity = quantity;
        self.scale = ColourScale::fit(quantity, frames.all_values(quantity));
        self.dirty = true;
    }
}

/// Playback state as a resource.
#[derive(Resource, Deref, DerefMut)]
pub struct Timeline(pub Playback);

/// Builds and runs the viewer until its window closes (or the screenshot/bench is done).
pub fn run(model: Model, options: ViewerOptions, live: Option<LiveFeed>) -> AppExit {
    let live_mode = live.is_some();
    let mut playback = Playback::new(model.frames.times(), live_mode);
    if let Some(time) = options.start_time {
        playback.time = time;
        playback.follow_latest = false;
    }
    let mut view = ViewState {
        quantity: options.colour_by,
        scale: ColourScale::fit(options.colour_by, std::iter::empty()),
        step: 0,
        layers: Layers::for_size(model.geometry.links.len()),
        selection: None,
        search: None,
        message: None,
        show_help: false,
        units: options.units.clone(),
        dirty: true,
    };
    view.colour_by(options.colour_by, &model.frames);
    view.step = model.frames.step_at(playback.time);

    let mut app = App::new();
    let render = RenderPlugin {
        // Without it the first frames render blank while shaders compile: screenshots need
        // the first frame right.
        synchronous_pipeline_compilation: true,
        ..default()
    };
    let measuring = options.bench_frames.is_some();
    if options.headless {
        app.add_plugins(
            DefaultPlugins
                .set(render)
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .disable::<WinitPlugin>(),
        )
        .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO));
    } else {
        app.add_plugins(
            DefaultPlugins.set(render).set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("aquatwin-view: {}", options.title),
                    resolution: WindowResolution::new(options.width, options.height)
                        .with_scale_factor_override(1.0),
                    present_mode: if measuring {
                        PresentMode::AutoNoVsync
                    } else {
                        PresentMode::AutoVsync
                    },
                    ..default()
                }),
                ..default()
            }),
        );
    }
    app.insert_resource(ClearColor(Color::srgb(0.07, 0.08, 0.10)))
        .insert_resource(view)
        .insert_resource(Timeline(playback))
        .insert_resource(model)
        .insert_resource(capture::CaptureSettings::from(&options))
        .add_plugins((
            scene::ScenePlugin,
            colouring::ColouringPlugin,
            camera::CameraPlugin,
            hud::HudPlugin,
            capture::CapturePlugin,
        ));
    if let Some(feed) = live {
        app.insert_resource(feed).add_plugins(live::LivePlugin);
    }
    app.run()
}
