//! `aquatwin scenario --plot DIR`: SVG charts of a scenario against its baseline.

use anyhow::Context as _;
use hydraulics::SimResults;
use plotters::prelude::*;
use scenarios::impact::Impact;
use std::path::Path;

/// How many junctions the pressure chart follows (those whose lowest pressure fell most).
const WORST_NODES: usize = 5;

/// One line of a chart: a name, a colour and its points (hours, value).
struct Line {
    name: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Writes `pressure.svg` (the junctions hit hardest, scenario and baseline), `unmet.svg`
/// (unmet demand over time) and `below.svg` (junctions below the required pressure).
pub fn write_charts(
    folder: &Path,
    impact: &Impact,
    baseline: (&[usize], &SimResults),
    scenario: (&[usize], &SimResults),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let hours = |t: u64| t as f64 / 3600.0;
    let mut worst: Vec<(usize, f64)> = impact
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i, n.min_pressure_scenario - n.min_pressure_baseline))
        .collect();
    worst.sort_by(|a, b| a.1.total_cmp(&b.1));
    // `impact.nodes` lists the original junctions in order, and junctions come first.
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN];
    let mut pressure = Vec::new();
    for (k, &(junction, _)) in worst.iter().take(WORST_NODES).enumerate() {
        let colour = palette[k % palette.len()];
        let name = &impact.nodes[junction].node;
        for (label, (map, results), shade) in [
            ("scenario", scenario, colour),
            ("baseline", baseline, lighter(colour)),
        ] {
            pressure.push(Line {
                name: format!("{name} {label}"),
                colour: shade,
                points: results
                    .steps
                    .iter()
                    .map(|s| (hours(s.t), s.pressure[map[junction]]))
                    .collect(),
            });
        }
    }
    chart(
        &folder.join("pressure.svg"),
        "Pressure at the junctions hit hardest",
        "pressure",
        &pressure,
    )?;
    let timeline = |f: fn(&scenarios::impact::TimePoint) -> f64| -> Vec<(f64, f64)> {
        impact.timeline.iter().map(|p| (p.hours, f(p))).collect()
    };
    chart(
        &folder.join("unmet.svg"),
        &format!("Unmet demand ({})", impact.flow_units),
        "flow",
        &[
            Line {
                name: "scenario".into(),
                colour: RED,
                points: timeline(|p| p.unmet_scenario),
            },
            Line {
                name: "baseline".into(),
                colour: BLUE,
                points: timeline(|p| p.unmet_baseline),
            },
            Line {
                name: "lost (bursts, leaks)".into(),
                colour: BLACK,
                points: timeline(|p| p.lost),
            },
        ],
    )?;
    chart(
        &folder.join("below.svg"),
        "Junctions below the required pressure",
        "junctions",
        &[
            Line {
                name: "scenario".into(),
                colour: RED,
                points: timeline(|p| p.nodes_below_scenario as f64),
            },
            Line {
                name: "baseline".into(),
                colour: BLUE,
                points: timeline(|p| p.nodes_below_baseline as f64),
            },
        ],
    )
}

/// `colour` faded towards white, for a baseline drawn under its scenario line.
fn lighter(colour: RGBColor) -> RGBColor {
    let fade = |v: u8| v + ((255 - v) as f64 * 0.6) as u8;
    RGBColor(fade(colour.0), fade(colour.1), fade(colour.2))
}

/// A step chart (values hold until the next time) of `lines` against hours.
fn chart(path: &Path, title: &str, y_label: &str, lines: &[Line]) -> anyhow::Result<()> {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let all = lines.iter().flat_map(|l| &l.points);
        let (x_max, y_min, y_max) = all.fold((1.0f64, 0.0f64, 1.0f64), |(x, lo, hi), p| {
            (x.max(p.0), lo.min(p.1), hi.max(p.1))
        });
        let pad = 0.05 * (y_max - y_min);
        let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc(y_label)
            .draw()?;
        for line in lines {
            let mut steps = Vec::with_capacity(2 * line.points.len());
            for (k, &(x, y)) in line.points.iter().enumerate() {
                steps.push((x, y));
                let next = line.points.get(k + 1).map_or(x, |p| p.0);
                steps.push((next, y));
            }
            let colour = line.colour;
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))?
                .label(line.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|error| anyhow::anyhow!("cannot draw {}: {error}", path.display()))
}
