//! The camera: orbit (left drag), pan (right or middle drag, or shift + left drag), zoom
//! (wheel), fit to the network (`F`), focus on a found element.

use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::Msaa;

use super::capture::CaptureSettings;
use super::hud::PointerOverUi;
use super::Model;

/// Vertical field of view.
const FOV: f32 = std::f32::consts::FRAC_PI_4;
/// Room left around the network when fitting (the legend and timeline sit over the edges).
const FIT_MARGIN: f32 = 1.3;

pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_camera)
            .add_systems(Update, (drive_orbit, place_camera).chain());
    }
}

/// Where the camera looks from: around `focus`, at `distance`, turned by `yaw` and tilted down
/// by `pitch`.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Orbit {
    pub focus: Vec3,
    pub yaw: f32,
    pub pitch: f32,
    pub distance: f32,
}

impl Orbit {
    /// The view that shows the whole model on a frame `aspect` (width / height) wide, from the
    /// south, looking down at 55 degrees.
    pub fn fit(model: &Model, aspect: f32) -> Orbit {
        let geometry = &model.geometry;
        let pitch = 55f32.to_radians();
        let size = geometry.max - geometry.min;
        let half_height = (FOV / 2.0).tan();
        let half_width = half_height * aspect.max(0.1);
        // Distance at which the plan's width fills the frame's width, and its depth
        // (foreshortened by the tilt) plus the relief fill the frame's height.
        let for_width = size.x / 2.0 / half_width;
        let for_depth = (size.z * pitch.sin() + size.y * pitch.cos()) / 2.0 / half_height;
        Orbit {
            focus: geometry.centre(),
            yaw: 0.0,
            pitch,
            distance: for_width.max(for_depth).max(1.0) * FIT_MARGIN,
        }
    }

    /// Looks at `point` from closer, keeping the direction.
    pub fn focus_on(&mut self, point: Vec3, radius: f32) {
        self.focus = point;
        self.distance = (radius / (FOV / 2.0).sin()).max(1.0);
    }

    fn transform(&self) -> Transform {
        let rotation = Quat::from_rotation_y(self.yaw) * Quat::from_rotation_x(-self.pitch);
        let eye = self.focus + rotation * Vec3::new(0.0, 0.0, self.distance);
        Transform::from_translation(eye).looking_at(self.focus, Vec3::Y)
    }
}

fn spawn_camera(
    mut commands: Commands,
    model: Res<Model>,
    settings: Res<CaptureSettings>,
    mut images: ResMut<Assets<Image>>,
) {
    let orbit = Orbit::fit(&model, settings.aspect());
    let mut camera = commands.spawn((
        Camera3d::default(),
        // The HUD is drawn by this camera, window or image alike.
        IsDefaultUiCamera,
        Projection::Perspective(PerspectiveProjection {
            fov: FOV,
            near: 0.5,
            far: 100_000.0,
            ..default()
        }),
        // Colours on screen are the legend's colours: no tone mapping, no multisampling blend.
        Tonemapping::None,
        Msaa::Off,
        orbit,
        orbit.transform(),
    ));
    if settings.headless {
        let image = Image::new_target_texture(
            settings.width,
            settings.height,
            TextureFormat::Rgba8UnormSrgb,
            None,
        );
        let handle = images.add(image);
        camera.insert(RenderTarget::Image(handle.clone().into()));
        commands.insert_resource(super::capture::HeadlessTarget(handle));
    }
    commands.spawn((
        DirectionalLight {
            illuminance: 9_000.0,
            ..default()
        },
        Transform::from_xyz(300.0, 1000.0, 500.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.insert_resource(GlobalAmbientLight {
        brightness: 600.0,
        ..default()
    });
}

#[allow(clippy::too_many_arguments)]
fn drive_orbit(
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    over_ui: Res<PointerOverUi>,
    mut orbits: Query<&mut Orbit>,
) {
    let Ok(mut orbit) = orbits.single_mut() else {
        return;
    };
    let delta = motion.delta;
    let shift = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
    let panning = buttons.pressed(MouseButton::Right)
        || buttons.pressed(MouseButton::Middle)
        || (shift && buttons.pressed(MouseButton::Left));
    if over_ui.0 {
        return;
    }
    if panning && delta != Vec2::ZERO {
        let rotation = Quat::from_rotation_y(orbit.yaw);
        let right = rotation * Vec3::X;
        let forward = rotation * Vec3::NEG_Z;
        // One pixel moves the focus by about one pixel's worth of world at the focus.
        let per_pixel = orbit.distance * 0.0015;
        orbit.focus += (-right * delta.x + forward * delta.y) * per_pixel;
    } else if buttons.pressed(MouseButton::Left) && delta != Vec2::ZERO {
        orbit.yaw -= delta.x * 0.005;
        orbit.pitch = (orbit.pitch + delta.y * 0.005).clamp(0.05, 1.55);
    }
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    if lines != 0.0 {
        orbit.distance = (orbit.distance * 0.88f32.powf(lines)).clamp(1.0, 50_000.0);
    }
}

fn place_camera(mut cameras: Query<(&Orbit, &mut Transform), Changed<Orbit>>) {
    for (orbit, mut transform) in &mut cameras {
        *transform = orbit.transform();
    }
}
