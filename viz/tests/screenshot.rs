//! `aquatwin-view --screenshot` the way a user runs it: Net3's results at 10:00, coloured by
//! pressure, rendered in a real X window under Xvfb with Mesa's software Vulkan (lavapipe), and
//! the same frame rendered headless. The PNG is checked against the results file, not against
//! the viewer's own idea of it: the pipes with the highest and the lowest pressures (computed
//! here from the results) must show the legend's colours for those pressures.
//!
//! Needs `xvfb-run` and a Vulkan driver (`.ci/run` installs xvfb, xauth, mesa-vulkan-drivers).
//! The PNGs stay under `target/tmp/aquatwin-view/` as CI artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use hydraulics::model::{LinkKind, NodeKind};
use hydraulics::results::ResultsDocument;
use image::RgbImage;
use viz::view::CaptureMap;

const NET3: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/networks/Net3.inp"
);
const TIME_S: u64 = 10 * 3600;
/// Largest per-channel difference between a pipe's pixel and the legend at its value (the
/// legend has 32 cells, so a value sits up to half a cell from its cell's colour).
const COLOUR_TOLERANCE: i32 = 40;

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aquatwin-view");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Net3's results in the layout of `aquatwin simulate --out`.
fn results(dir: &Path, name: &str) -> (PathBuf, ResultsDocument) {
    let network = hydraulics::read_file(Path::new(NET3)).unwrap();
    let simulated = hydraulics::simulate(&network, &hydraulics::SimOptions::default()).unwrap();
    let document = ResultsDocument::from_simulation(&network, &simulated, "Net3");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
    (path, document)
}

fn render(results: &Path, png: &Path, map: &Path, headless: bool) {
    let viewer = env!("CARGO_BIN_EXE_aquatwin-view");
    let mut command = if headless {
        Command::new(viewer)
    } else {
        let mut xvfb = Command::new("xvfb-run");
        xvfb.args(["-a", "-s", "-screen 0 1280x720x24", viewer]);
        xvfb
    };
    command.args([NET3, "--results"]).arg(results).args([
        "--time",
        "10:00",
        "--color-by",
        "pressure",
        "--screenshot",
    ]);
    command.arg(png).arg("--map").arg(map);
    if headless {
        command.arg("--headless");
    }
    let output = command
        .output()
        .expect("xvfb-run must be installed (apt install xvfb xauth mesa-vulkan-drivers)");
    assert!(
        output.status.success(),
        "aquatwin-view failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pixel(image: &RgbImage, x: f32, y: f32) -> [i32; 3] {
    let p = image.get_pixel(x.round() as u32, y.round() as u32);
    [i32::from(p[0]), i32::from(p[1]), i32::from(p[2])]
}

fn difference(a: [i32; 3], b: [i32; 3]) -> i32 {
    (0..3).map(|i| (a[i] - b[i]).abs()).max().unwrap_or(0)
}

/// The legend bar's colour for `value` (read from the image, not computed).
fn legend_colour(image: &RgbImage, map: &CaptureMap, value: f32) -> [i32; 3] {
    let [left, top, width, height] = map.legend;
    let fraction = ((value - map.scale_min) / (map.scale_max - map.scale_min)).clamp(0.0, 1.0);
    let y = top + (1.0 - fraction) * (height - 1.0);
    pixel(
        image,
        left + width / 2.0,
        y.clamp(top + 1.0, top + height - 2.0),
    )
}

/// Mean pressure of each pipe's end nodes at 10:00, from the results file. Only pipes between
/// two junctions: pumps, valves, tanks and reservoirs have markers drawn over their links.
fn link_pressures(document: &ResultsDocument) -> Vec<(String, f32)> {
    let network = hydraulics::read_file(Path::new(NET3)).unwrap();
    let step = document
        .steps
        .iter()
        .rfind(|s| s.t <= TIME_S)
        .expect("a step at or before 10:00");
    let node_at = |id: &str| document.node_ids.iter().position(|n| n == id).unwrap();
    let junction = |node: usize| matches!(network.nodes[node].kind, NodeKind::Junction(_));
    network
        .links
        .iter()
        .filter(|link| {
            matches!(link.kind, LinkKind::Pipe(_)) && junction(link.from) && junction(link.to)
        })
        .map(|link| {
            let from = step.pressure[node_at(&network.nodes[link.from].id)];
            let to = step.pressure[node_at(&network.nodes[link.to].id)];
            (link.id.clone(), ((from + to) / 2.0) as f32)
        })
        .collect()
}

fn check_image(png: &Path, map: &CaptureMap, document: &ResultsDocument) -> RgbImage {
    let image = image::open(png).unwrap().to_rgb8();
    assert_eq!((image.width(), image.height()), (1280, 720));
    assert_eq!(map.quantity, "pressure");
    assert_eq!(map.time, TIME_S as f64);

    // Not empty: many colours, and far from all background.
    let background = image.get_pixel(2, 360).0;
    let drawn = image.pixels().filter(|p| p.0 != background).count();
    assert!(
        drawn > 20_000,
        "only {drawn} pixels differ from the background"
    );

    // Legend present: its top is the scale's maximum colour (red), its bottom the minimum's
    // (blue).
    let top = legend_colour(&image, map, map.scale_max);
    let bottom = legend_colour(&image, map, map.scale_min);
    assert!(top[0] > 150 && top[2] < 100, "legend top {top:?}");
    assert!(
        bottom[2] > 100 && bottom[0] < 100,
        "legend bottom {bottom:?}"
    );

    // Colours follow the pressures: the links with the highest and lowest pressure on screen.
    let on_screen: Vec<_> = map.links.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut pressures: Vec<(String, f32)> = link_pressures(document)
        .into_iter()
        .filter(|(id, _)| on_screen.iter().any(|(on, _)| on == id))
        .collect();
    assert!(pressures.len() > 50, "{} links on screen", pressures.len());
    pressures.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mapped = |id: &str| on_screen.iter().find(|(on, _)| *on == id).unwrap().1;
    let matches = |group: &[(String, f32)]| {
        group
            .iter()
            .filter(|(id, pressure)| {
                let link = mapped(id);
                let seen = pixel(&image, link.x, link.y);
                difference(seen, legend_colour(&image, map, *pressure)) <= COLOUR_TOLERANCE
            })
            .count()
    };
    let lowest = &pressures[..5];
    let highest = &pressures[pressures.len() - 5..];
    assert!(
        highest[0].1 - lowest[4].1 > 0.15 * (map.scale_max - map.scale_min),
        "pressures spread too little to test: {lowest:?} {highest:?}"
    );
    assert!(matches(lowest) >= 3, "low-pressure pipes: {lowest:?}");
    assert!(matches(highest) >= 3, "high-pressure pipes: {highest:?}");
    let low_pixel = pixel(&image, mapped(&lowest[0].0).x, mapped(&lowest[0].0).y);
    let high_pixel = pixel(&image, mapped(&highest[4].0).x, mapped(&highest[4].0).y);
    assert!(
        difference(low_pixel, high_pixel) > 80,
        "lowest {low_pixel:?} and highest {high_pixel:?} pressure pipes look alike"
    );
    image
}

#[test]
fn net3_at_ten_renders_under_xvfb_and_headless_alike() {
    let dir = artifacts();
    let (results_path, document) = results(&dir, "net3-results.json");

    let (png, map_path) = (
        dir.join("net3-pressure.png"),
        dir.join("net3-pressure.json"),
    );
    render(&results_path, &png, &map_path, false);
    let map: CaptureMap = serde_json::from_slice(&std::fs::read(&map_path).unwrap()).unwrap();
    let windowed = check_image(&png, &map, &document);

    let (png, map_path) = (
        dir.join("net3-pressure-headless.png"),
        dir.join("net3-pressure-headless.json"),
    );
    render(&results_path, &png, &map_path, true);
    let map: CaptureMap = serde_json::from_slice(&std::fs::read(&map_path).unwrap()).unwrap();
    let headless = check_image(&png, &map, &document);
    let differing = windowed
        .pixels()
        .zip(headless.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differing < 1000,
        "{differing} pixels differ between the window and the headless render"
    );
}

#[test]
fn bad_input_is_refused_with_the_cause() {
    let viewer = env!("CARGO_BIN_EXE_aquatwin-view");
    let broken = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/networks/bad_syntax.inp"
    );
    let output = Command::new(viewer)
        .args([broken, "--headless", "--screenshot", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad_syntax.inp"), "{stderr}");

    let output = Command::new(viewer)
        .args([NET3, "--color-by", "temperature", "--headless"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("temperature"));

    let dir = artifacts();
    let (wrong, mut document) = results(&dir, "other-network-results.json");
    document.link_ids[3] = "not-in-net3".into();
    std::fs::write(&wrong, serde_json::to_vec(&document).unwrap()).unwrap();
    let output = Command::new(viewer)
        .arg(NET3)
        .arg("--results")
        .arg(&wrong)
        .args(["--headless", "--screenshot", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not-in-net3"));
}

/// A replay's leak report (design.md section 7) shown as markers over the reported pipes.
#[test]
fn leaks_of_a_replay_are_marked_at_their_pipes() {
    let dir = artifacts();
    let viewer = env!("CARGO_BIN_EXE_aquatwin-view");
    let report = dir.join("leaks.json");
    std::fs::write(
        &report,
        r#"{"leaks": [{"detected_at": "2026-01-05T10:00:00Z", "kind": "burst", "link": "101",
            "node": "101", "estimated_flow": 250.0, "confidence": 0.8, "candidates": []}]}"#,
    )
    .unwrap();
    let (png, map_path) = (dir.join("net3-leaks.png"), dir.join("net3-leaks.json"));
    let output = Command::new(viewer)
        .arg(NET3)
        .arg("--leaks")
        .arg(&report)
        .args(["--headless", "--screenshot"])
        .arg(&png)
        .arg("--map")
        .arg(&map_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let map: CaptureMap = serde_json::from_slice(&std::fs::read(&map_path).unwrap()).unwrap();
    assert_eq!(map.alerts.len(), 1, "{:?}", map.alerts);
    let marker = &map.alerts[0];
    assert!(marker.id.contains("burst at 101"), "{}", marker.id);
    let pipe = map
        .links
        .iter()
        .find(|l| l.id == "101")
        .expect("pipe 101 on screen");
    let distance = (marker.x - pipe.x).hypot(marker.y - pipe.y);
    assert!(distance < 60.0, "marker {distance} px from its pipe");

    std::fs::write(
        &report,
        r#"{"leaks": [{"detected_at": "2026-01-05T10:00:00Z", "kind": "leak", "link": "nowhere"}]}"#,
    )
    .unwrap();
    let output = Command::new(viewer)
        .arg(NET3)
        .arg("--leaks")
        .arg(&report)
        .args(["--headless", "--screenshot", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere"));
}
