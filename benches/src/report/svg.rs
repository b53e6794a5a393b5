//! `bench-report --svg PATH`: a horizontal grouped bar chart of evbus
//! against its peers, one group per report row (SVG, plotters' SVG backend
//! with its built-in font metrics: no font files needed).

use std::path::Path;

use plotters::prelude::*;

/// One group of bars: a row of the report that has both peers.
pub(crate) struct Group<'a> {
    pub(crate) label: &'a str,
    pub(crate) evbus: f64,
    pub(crate) tokio: f64,
    pub(crate) crossbeam: f64,
}

/// Slots per group on the y axis: three bars and a gap.
const SLOTS: i32 = 4;

const PEERS: [(&str, RGBColor); 3] = [
    ("evbus", RGBColor(0x1f, 0x77, 0xb4)),
    ("tokio broadcast", RGBColor(0xff, 0x7f, 0x0e)),
    ("crossbeam fan-out", RGBColor(0x2c, 0xa0, 0x2c)),
];

/// Writes the chart of `groups` (all in `unit`, lower is better) to `path`.
///
/// # Errors
///
/// A message if there is nothing to draw or the file cannot be written.
pub(crate) fn write(
    path: &Path,
    title: &str,
    unit: &str,
    groups: &[Group<'_>],
) -> Result<(), String> {
    if groups.is_empty() {
        return Err("no row with figures for both peers to plot".into());
    }
    let n = i32::try_from(groups.len()).map_err(|_| "too many rows to plot")?;
    let max = groups
        .iter()
        .flat_map(|g| [g.evbus, g.tokio, g.crossbeam])
        .fold(0.0_f64, f64::max);
    let height = 120 + 18 * SLOTS as u32 * groups.len() as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(280)
        .build_cartesian_2d(0.0..max * 1.15, 0..n * SLOTS)
        .map_err(err)?;
    // Group `i` (report order, top to bottom) starts at this slot.
    let base = |i: i32| (n - 1 - i) * SLOTS;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels((n * SLOTS) as usize + 1)
        .y_label_formatter(&|y| {
            let i = n - 1 - y / SLOTS;
            if y % SLOTS == 1 && (0..n).contains(&i) {
                groups[i as usize].label.to_owned()
            } else {
                String::new()
            }
        })
        .x_desc(format!("{unit} (lower is better)"))
        .draw()
        .map_err(err)?;
    for (k, (name, color)) in PEERS.iter().enumerate() {
        let slot = 2 - k as i32;
        chart
            .draw_series(groups.iter().enumerate().map(|(i, g)| {
                let v = [g.evbus, g.tokio, g.crossbeam][k];
                let y = base(i as i32) + slot;
                Rectangle::new([(0.0, y), (v, y + 1)], color.filled())
            }))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart
            .draw_series(groups.iter().enumerate().map(|(i, g)| {
                let v = [g.evbus, g.tokio, g.crossbeam][k];
                let y = base(i as i32) + slot + 1;
                Text::new(format!(" {v:.1}"), (v, y), ("sans-serif", 11))
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
