//! The swimlane picture of a run: a lane per consumer with the partitions
//! it fetched as coloured bars over time, rebalances shaded across all
//! lanes, events marked, and at the bottom how many partitions nobody
//! fetched.

use super::report::{millis, Report};
use std::collections::BTreeMap;
use std::fmt::Write;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 96.0;
const LANE_GAP: f64 = 8.0;
const UNOWNED_HEIGHT: f64 = 60.0;
/// The shade of a time without a coordinator.
const NO_COORDINATOR: &str = "#7b6cd9";

/// The picture as an SVG document.
pub fn render(report: &Report) -> String {
    let partitions = all_partitions(report);
    let colour: BTreeMap<&str, String> = partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), hue(i)))
        .collect();
    let bar = if partitions.len() <= 16 { 7.0 } else { 4.0 };
    let plot = WIDTH - LEFT - RIGHT;
    let end = report.duration_ms.max(1) as f64;
    let x = |ms: u64| LEFT + ms as f64 / end * plot;

    let lanes: Vec<(&String, f64)> = report
        .consumers
        .iter()
        .map(|c| {
            let most = report.timeline[c]
                .iter()
                .map(|s| s.partitions.len())
                .max()
                .unwrap_or(0)
                .max(1);
            (c, most as f64 * bar + 8.0)
        })
        .collect();
    let lanes_height: f64 = lanes.iter().map(|(_, h)| h + LANE_GAP).sum();
    let unowned_top = TOP + lanes_height + 10.0;
    let axis = unowned_top + UNOWNED_HEIGHT + 4.0;
    let legend_top = axis + 50.0;
    let legend_rows = partitions.len().div_ceil(12).min(4);
    let height = legend_top + legend_rows as f64 * 16.0 + 16.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let title = report
        .description
        .lines()
        .next()
        .unwrap_or("Rebalance simulation");
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="22" font-size="15" font-weight="bold" fill="#222">{}</text>"##,
        escape(title)
    );
    let s = &report.summary;
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="40" fill="#555">{} · {} · {} generations · {:.1} partition-seconds unowned · {} moves</text>"##,
        escape(&report.protocol),
        escape(&report.assignor),
        s.generations,
        s.unavailable_partition_seconds,
        s.moves
    );

    let mut tops = Vec::new();
    let mut top = TOP;
    for (consumer, lane) in &lanes {
        tops.push(top);
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#222">{}</text>"##,
            LEFT - 8.0,
            top + lane / 2.0 + 4.0,
            escape(consumer)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{top:.1}" width="{plot:.1}" height="{lane:.1}" fill="none" stroke="#ddd"/>"##
        );
        for w in &report.running[*consumer] {
            let _ = writeln!(
                svg,
                r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{lane:.1}" fill="#e9eef3"/>"##,
                x(w.from_ms),
                (x(w.to_ms) - x(w.from_ms)).max(0.5)
            );
        }
        top += lane + LANE_GAP;
    }

    // Rebalances over the lanes' backgrounds, under the bars.
    for w in &report.rebalancing {
        let (x0, x1) = (x(w.from_ms), x(w.to_ms));
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f4a261" fill-opacity="0.45"><title>rebalancing {} – {}</title></rect>"##,
            TOP - 4.0,
            (x1 - x0).max(1.0),
            lanes_height + 4.0,
            millis(w.from_ms),
            millis(w.to_ms)
        );
    }

    // Without a coordinator (a broker failure), in a cluster.
    let outages = report
        .cluster
        .iter()
        .flat_map(|c| &c.coordinator_unavailable);
    for w in outages {
        let (x0, x1) = (x(w.from_ms), x(w.to_ms));
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{NO_COORDINATOR}" fill-opacity="0.35"><title>no coordinator {} – {}</title></rect>"##,
            TOP - 4.0,
            (x1 - x0).max(1.0),
            lanes_height + 4.0,
            millis(w.from_ms),
            millis(w.to_ms)
        );
    }

    for ((consumer, _), top) in lanes.iter().zip(tops) {
        for segment in &report.timeline[*consumer] {
            let (x0, x1) = (x(segment.from_ms), x(segment.to_ms));
            for (i, p) in segment.partitions.iter().enumerate() {
                let y = top + 4.0 + i as f64 * bar;
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {} – {}</title></rect>"##,
                    (x1 - x0).max(0.5),
                    bar - 1.0,
                    colour.get(p.as_str()).map_or("#888", String::as_str),
                    escape(consumer),
                    escape(p),
                    millis(segment.from_ms),
                    millis(segment.to_ms)
                );
            }
        }
    }

    unowned_chart(&mut svg, report, unowned_top, &x, plot);
    events(&mut svg, report, &x, unowned_top + UNOWNED_HEIGHT);
    time_axis(&mut svg, report, axis, &x);
    legend(
        &mut svg,
        &partitions,
        &colour,
        legend_top,
        report.cluster.is_some(),
    );
    svg.push_str("</svg>\n");
    svg
}

fn unowned_chart(svg: &mut String, report: &Report, top: f64, x: &impl Fn(u64) -> f64, plot: f64) {
    let most = report
        .unowned
        .iter()
        .map(|l| l.partitions)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bottom = top + UNOWNED_HEIGHT;
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#b00020">unowned</text>"##,
        LEFT - 8.0,
        top + UNOWNED_HEIGHT / 2.0 + 4.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{plot:.1}" height="{UNOWNED_HEIGHT}" fill="none" stroke="#ddd"/>"##
    );
    let mut points = format!("{LEFT:.1},{bottom:.1}");
    for (i, level) in report.unowned.iter().enumerate() {
        let to = report
            .unowned
            .get(i + 1)
            .map_or(report.duration_ms, |l| l.from_ms);
        let y = bottom - level.partitions as f64 / most * (UNOWNED_HEIGHT - 6.0);
        let _ = write!(
            points,
            " {:.1},{y:.1} {:.1},{y:.1}",
            x(level.from_ms),
            x(to)
        );
    }
    let _ = write!(points, " {:.1},{bottom:.1}", x(report.duration_ms));
    let _ = writeln!(
        svg,
        r##"<polygon points="{points}" fill="#e63946" fill-opacity="0.6" stroke="#b00020" stroke-width="1"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#b00020">max {}</text>"##,
        LEFT + 4.0,
        top + 11.0,
        most as usize
    );
}

/// Event lines, labelled in the first of three rows where the label does
/// not run into the one before; dense events keep their line and a
/// tooltip only.
fn events(svg: &mut String, report: &Report, x: &impl Fn(u64) -> f64, bottom: f64) {
    const ROWS: usize = 3;
    const CHAR_WIDTH: f64 = 5.6;
    let mut row_ends = [f64::MIN; ROWS];
    for e in &report.events {
        let ex = x(e.at_ms);
        let label: String = if e.event.chars().count() > 40 {
            e.event.chars().take(39).chain(['…']).collect()
        } else {
            e.event.clone()
        };
        let width = label.chars().count() as f64 * CHAR_WIDTH;
        let row = row_ends.iter().position(|end| ex > end + 6.0);
        let top = row.map_or(TOP - 6.0, |r| 58.0 + r as f64 * 12.0 + 2.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{ex:.1}" y1="{top:.1}" x2="{ex:.1}" y2="{bottom:.1}" stroke="#333" stroke-dasharray="3,3" stroke-width="1"><title>{} {}</title></line>"##,
            millis(e.at_ms),
            escape(&e.event)
        );
        if let Some(r) = row {
            row_ends[r] = ex + 2.0 + width;
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
                ex + 2.0,
                58.0 + r as f64 * 12.0,
                escape(&label)
            );
        }
    }
}

fn time_axis(svg: &mut String, report: &Report, y: f64, x: &impl Fn(u64) -> f64) {
    let step = tick_step(report.duration_ms);
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/>"##,
        x(report.duration_ms)
    );
    let mut t = 0;
    while t <= report.duration_ms {
        let tx = x(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#333">{}</text>"##,
            y + 5.0,
            y + 18.0,
            millis(t)
        );
        t += step;
    }
}

/// A round tick interval giving at most a dozen ticks.
fn tick_step(duration: u64) -> u64 {
    const STEPS: [u64; 16] = [
        100, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 900_000, 1_800_000, 3_600_000,
    ];
    STEPS
        .into_iter()
        .find(|s| duration / s <= 12)
        .unwrap_or_else(|| duration.div_ceil(12 * 3_600_000).max(1) * 3_600_000)
}

fn legend(
    svg: &mut String,
    partitions: &[String],
    colour: &BTreeMap<&str, String>,
    top: f64,
    cluster: bool,
) {
    let mut key = vec![
        ("#e9eef3", "consumer running"),
        ("#f4a261", "group rebalancing"),
        ("#e63946", "partitions nobody fetches"),
    ];
    if cluster {
        key.push((NO_COORDINATOR, "no coordinator"));
    }
    for (i, (fill, text)) in key.iter().enumerate() {
        let kx = LEFT + i as f64 * 180.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{kx:.1}" y="{:.1}" width="10" height="10" fill="{fill}" stroke="#999" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{text}</text>"##,
            top - 25.0,
            kx + 14.0,
            top - 16.0
        );
    }
    let shown = 48;
    for (i, p) in partitions.iter().take(shown).enumerate() {
        let (col, row) = ((i % 12) as f64, (i / 12) as f64);
        let lx = LEFT + col * 88.0;
        let ly = top + row * 16.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}" font-size="10" fill="#333">{}</text>"##,
            ly - 9.0,
            colour[p.as_str()],
            lx + 14.0,
            escape(p)
        );
    }
    if partitions.len() > shown {
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT}" y="{:.1}" font-size="10" fill="#333">and {} more partitions</text>"##,
            top + 4.0 * 16.0,
            partitions.len() - shown
        );
    }
}

/// Every partition that appears, topic by topic in partition order.
fn all_partitions(report: &Report) -> Vec<String> {
    let mut seen: Vec<(String, i32)> = report
        .timeline
        .values()
        .flatten()
        .flat_map(|s| s.partitions.iter())
        .filter_map(|p| {
            let (topic, n) = p.rsplit_once('-')?;
            Some((topic.to_string(), n.parse().ok()?))
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen.into_iter().map(|(t, p)| format!("{t}-{p}")).collect()
}

/// Well-separated colours: the golden angle around the hue circle.
fn hue(i: usize) -> String {
    let h = (i as u64 * 137_508 / 1000) % 360;
    let l = if i % 2 == 0 { 48 } else { 60 };
    format!("hsl({h},65%,{l}%)")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
