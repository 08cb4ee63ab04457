//! `--screenshot`: render one frame to a PNG (and optionally a map of where elements and the
//! legend landed on it, for tests and reports), then exit. `--bench N`: render N frames while
//! orbiting, print frame times, exit.

use std::path::PathBuf;
use std::time::Instant;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::ui::UiGlobalTransform;
use serde::{Deserialize, Serialize};

use super::camera::Orbit;
use super::colouring::link_colour;
use super::hud::{node_rect, LegendBar};
use super::{Model, Timeline, ViewState, ViewerOptions};

/// Updates before the screenshot is taken: meshes uploaded, UI laid out, colours written.
const SETTLE_FRAMES: u32 = 6;
/// Frames not counted at the start of a benchmark (pipeline and buffer warm-up).
const WARM_UP_FRAMES: usize = 10;
/// Longest wait for a live twin's first state before a screenshot gives up.
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct CapturePlugin;

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (take_screenshot, bench).chain());
    }
}

/// What `--screenshot`, `--map` and `--bench` asked for.
#[derive(Resource, Clone)]
pub struct CaptureSettings {
    pub headless: bool,
    pub width: u32,
    pub height: u32,
    pub screenshot: Option<PathBuf>,
    pub map: Option<PathBuf>,
    pub bench_frames: Option<u32>,
    updates: u32,
    requested: bool,
    frame_times: Vec<f64>,
    last_frame: Option<Instant>,
    started: Instant,
}

impl CaptureSettings {
    /// Width over height of the frame.
    pub fn aspect(&self) -> f32 {
        self.width as f32 / self.height.max(1) as f32
    }
}

impl From<&ViewerOptions> for CaptureSettings {
    fn from(options: &ViewerOptions) -> Self {
        CaptureSettings {
            headless: options.headless,
            width: options.width,
            height: options.height,
            screenshot: options.screenshot.clone(),
            map: options.map.clone(),
            bench_frames: options.bench_frames,
            updates: 0,
            requested: false,
            frame_times: Vec::new(),
            last_frame: None,
            started: Instant::now(),
        }
    }
}

/// The image a headless camera renders into.
#[derive(Resource)]
pub struct HeadlessTarget(pub Handle<Image>);

/// Where things landed on a screenshot (physical pixels, origin top left).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureMap {
    pub width: u32,
    pub height: u32,
    pub quantity: String,
    /// Colour scale ends: the legend's top cell is `max`, its bottom cell `min`.
    pub scale_min: f32,
    pub scale_max: f32,
    /// Legend colour bar: left, top, width, height.
    pub legend: [f32; 4],
    /// Time on screen, seconds on the frames' clock.
    pub time: f64,
    /// Every link whose middle is on screen: where its middle is and its colour.
    pub links: Vec<MappedElement>,
    /// Every alert marker shown (id: the alert's title), with its value NaN.
    #[serde(default)]
    pub alerts: Vec<MappedElement>,
}

/// One element on a screenshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappedElement {
    pub id: String,
    pub x: f32,
    pub y: f32,
    /// The value it is coloured by (NaN: no data, written as `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f32,
    /// The sRGB colour it was given (0 to 1).
    pub colour: [f32; 3],
}

/// JSON has no NaN: serde_json writes it as `null`, read back here as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(deserializer)?.unwrap_or(f32::NAN))
}

#[allow(clippy::too_many_arguments)]
fn take_screenshot(
    mut commands: Commands,
    mut settings: ResMut<CaptureSettings>,
    model: Res<Model>,
    view: Res<ViewState>,
    timeline: Res<Timeline>,
    cameras: Query<(&Camera, &GlobalTransform)>,
    legend: Query<(&ComputedNode, &UiGlobalTransform), With<LegendBar>>,
    target: Option<Res<HeadlessTarget>>,
) {
    let Some(path) = settings.screenshot.clone() else {
        return;
    };
    // Live: the picture is taken once the first state is on screen.
    let waiting = model.frames.is_empty();
    if waiting && settings.started.elapsed() > LIVE_WAIT {
        eprintln!(
            "aquatwin-view: no state arrived within {} s: no screenshot",
            LIVE_WAIT.as_secs()
        );
        commands.write_message(AppExit::error());
        return;
    }
    if !waiting {
        settings.updates += 1;
    }
    if settings.requested || settings.updates < SETTLE_FRAMES {
        return;
    }
    settings.requested = true;
    if let Some(map_path) = settings.map.clone() {
        let map = capture_map(&settings, &model, &view, &timeline, &cameras, &legend);
        let written = serde_json::to_vec_pretty(&map)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&map_path, bytes).map_err(|e| e.to_string()));
        if let Err(error) = written {
            eprintln!(
                "aquatwin-view: cannot write {}: {error}",
                map_path.display()
            );
            commands.write_message(AppExit::error());
            return;
        }
    }
    let screenshot = match target {
        Some(target) => Screenshot::image(target.0.clone()),
        None => Screenshot::primary_window(),
    };
    commands.spawn(screenshot).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            let saved = captured
                .image
                .clone()
                .try_into_dynamic()
                .map_err(|e| e.to_string())
                .and_then(|image| image.to_rgb8().save(&path).map_err(|e| e.to_string()));
            match saved {
                Ok(()) => {
                    eprintln!("aquatwin-view: wrote {}", path.display());
                    exit.write(AppExit::Success);
                }
                Err(error) => {
                    eprintln!("aquatwin-view: cannot write {}: {error}", path.display());
                    exit.write(AppExit::error());
                }
            }
        },
    );
}

fn capture_map(
    settings: &CaptureSettings,
    model: &Model,
    view: &ViewState,
    timeline: &Timeline,
    cameras: &Query<(&Camera, &GlobalTransform)>,
    legend: &Query<(&ComputedNode, &UiGlobalTransform), With<LegendBar>>,
) -> CaptureMap {
    let legend = legend
        .single()
        .map(|(node, transform)| {
            let rect = node_rect(node, transform);
            [rect.min.x, rect.min.y, rect.width(), rect.height()]
        })
        .unwrap_or_default();
    let mut links = Vec::new();
    let mut alerts = Vec::new();
    if let Ok((camera, transform)) = cameras.single() {
        let shown = model.alerts.iter().filter(|a| a.shown_at(timeline));
        for alert in shown {
            if let Ok(screen) = camera.world_to_viewport(transform, alert.position) {
                alerts.push(MappedElement {
                    id: alert.title.clone(),
                    x: screen.x,
                    y: screen.y,
                    value: f32::NAN,
                    colour: super::scene::ALERT_COLOUR,
                });
            }
        }
        for (index, link) in model.geometry.links.iter().enumerate() {
            let (middle, _) = link.point_along(0.5);
            let Ok(screen) = camera.world_to_viewport(transform, middle) else {
                continue;
            };
            let inside = screen.x >= 0.0
                && screen.y >= 0.0
                && screen.x < settings.width as f32
                && screen.y < settings.height as f32;
            if inside {
                links.push(MappedElement {
                    id: link.id.clone(),
                    x: screen.x,
                    y: screen.y,
                    value: super::colouring::link_value(
                        &model.frames,
                        model,
                        view.quantity,
                        view.step,
                        index,
                    ),
                    colour: link_colour(model, view, index),
                });
            }
        }
    }
    CaptureMap {
        width: settings.width,
        height: settings.height,
        quantity: view.quantity.name().to_string(),
        scale_min: view.scale.min,
        scale_max: view.scale.max,
        legend,
        time: model
            .frames
            .times()
            .get(view.step)
            .copied()
            .unwrap_or(timeline.time),
        links,
        alerts,
    }
}

fn bench(
    mut settings: ResMut<CaptureSettings>,
    model: Res<Model>,
    mut timeline: ResMut<Timeline>,
    mut orbits: Query<&mut Orbit>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(total) = settings.bench_frames else {
        return;
    };
    let now = Instant::now();
    if let Some(last) = settings.last_frame.replace(now) {
        let elapsed = now.duration_since(last).as_secs_f64() * 1000.0;
        settings.frame_times.push(elapsed);
    }
    if let Ok(mut orbit) = orbits.single_mut() {
        orbit.yaw += 0.01;
    }
    let measured = settings.frame_times.len().saturating_sub(WARM_UP_FRAMES);
    let half = total as usize / 2;
    // Second half: a new frame of results every rendered frame (recolouring every time).
    if measured >= half {
        let times = model.frames.times();
        if !times.is_empty() {
            let next = (model.frames.step_at(timeline.time) + 1) % times.len();
            timeline.time = times[next];
            timeline.follow_latest = false;
        }
    }
    if measured < total as usize {
        return;
    }
    let frame_times = &settings.frame_times[WARM_UP_FRAMES..];
    let (orbit_only, recolouring) = frame_times.split_at(half.min(frame_times.len()));
    println!(
        "aquatwin-view bench: {} links, {} nodes, {}x{}",
        model.geometry.links.len(),
        model.geometry.nodes.len(),
        settings.width,
        settings.height
    );
    for (label, sample) in [("orbit", orbit_only), ("orbit+recolour", recolouring)] {
        let stats = FrameStats::of(sample);
        println!(
            "  {label:<15} frames {:>4}  mean {:7.2} ms  p50 {:7.2} ms  p95 {:7.2} ms  max {:7.2} ms  ({:.1} fps)",
            sample.len(),
            stats.mean,
            stats.p50,
            stats.p95,
            stats.max,
            1000.0 / stats.mean.max(1e-9)
        );
    }
    exit.write(AppExit::Success);
}

/// Summary of frame times, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameStats {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl FrameStats {
    /// Mean, median, 95th percentile and maximum of `sample` (zeros when empty).
    pub fn of(sample: &[f64]) -> FrameStats {
        if sample.is_empty() {
            return FrameStats {
                mean: 0.0,
                p50: 0.0,
                p95: 0.0,
                max: 0.0,
            };
        }
        let mut sorted = sample.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        FrameStats {
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: at(0.5),
            p95: at(0.95),
            max: sorted[sorted.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_stats_summarise_a_sample() {
        let sample: Vec<f64> = (1..=100).map(f64::from).collect();
        let stats = FrameStats::of(&sample);
        assert_eq!(stats.mean, 50.5);
        assert_eq!(stats.max, 100.0);
        assert!((stats.p50 - 50.0).abs() <= 1.0);
        assert!((stats.p95 - 95.0).abs() <= 1.0);
        assert_eq!(FrameStats::of(&[]).max, 0.0);
    }

    #[test]
    fn elements_without_a_value_read_back() {
        let marker = MappedElement {
            id: "#1 alert".into(),
            x: 1.0,
            y: 2.0,
            value: f32::NAN,
            colour: [1.0, 0.0, 0.0],
        };
        let text = serde_json::to_string(&marker).unwrap();
        assert!(text.contains(r#""value":null"#), "{text}");
        let read: MappedElement = serde_json::from_str(&text).unwrap();
        assert!(read.value.is_nan());
        let link: MappedElement =
            serde_json::from_str(r#"{"id":"P","x":0,"y":0,"value":2.5,"colour":[0,0,0]}"#).unwrap();
        assert_eq!(link.value, 2.5);
    }
}
