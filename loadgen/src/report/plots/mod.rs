//! The report's plots, each drawn twice by plotters: PNG and SVG. Every
//! axis is scaled to its data and reference lines, with headroom, so no
//! value is cut off, and says its unit; the scaling plot is in `scaling`,
//! the fault windows and threshold lines over the time plots in [`marks`].

pub mod marks;
mod scaling;

use std::path::Path;
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::faults::FaultWindow;
use crate::scale::ScaleReport;
use crate::summary::{RunSummary, SeriesPoint};
use marks::Limit;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1100, 420);
/// The time plots' x axis.
const TIME_AXIS: &str = "time since the load began (s)";

static FONT_ONCE: Once = Once::new();

/// DejaVu Sans, bundled so plots render on machines without fonts.
fn register_font() {
    FONT_ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .unwrap_or_else(|_| panic!("bundled font is valid"));
    });
}

type DrawResult = anyhow::Result<()>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// What one plot shows; drawn by the same code on either backend.
enum Plot<'a> {
    /// Title, the per-second series, the offered rate (open model), the
    /// fault windows.
    Tps(&'a str, &'a [SeriesPoint], Option<f64>, &'a [FaultWindow]),
    /// The series, the fault windows, the latency thresholds.
    Latency(&'a [SeriesPoint], &'a [FaultWindow], &'a [Limit]),
    Hdr(&'a RunSummary),
    Scaling(&'a ScaleReport),
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Plot<'_>) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    match plot {
        Plot::Tps(title, series, offered, faults) => {
            draw_tps(root, title, series, *offered, faults)?;
        }
        Plot::Latency(series, faults, limits) => draw_latency(root, series, faults, limits)?,
        Plot::Hdr(summary) => draw_hdr(root, summary)?,
        Plot::Scaling(scale) => scaling::draw(root, scale)?,
    }
    root.present().map_err(err)
}

/// Renders one plot to `<dir>/<name>.png` and `<dir>/<name>.svg`.
fn render(dir: &Path, name: &str, size: (u32, u32), plot: Plot<'_>) -> DrawResult {
    register_font();
    let png = dir.join(format!("{name}.png"));
    let svg = dir.join(format!("{name}.svg"));
    draw(&BitMapBackend::new(&png, size).into_drawing_area(), &plot)?;
    draw(&SVGBackend::new(&svg, size).into_drawing_area(), &plot)?;
    Ok(())
}

/// The series key: a box with the series' labels.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    size: u32,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .label_font((FONT, size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(err)
}

/// A series' sample line in the key.
fn swatch(style: impl Into<ShapeStyle>) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let style: ShapeStyle = style.into();
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style)
}

/// A chart with f64 axes and its mesh drawn: `whole` for a plot of its own,
/// otherwise a panel of a split plot (smaller type).
#[allow(clippy::too_many_arguments)]
fn linear_chart<'a, DB: DrawingBackend + 'a>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    whole: bool,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let (caption_size, margin, y_area, label_size) = if whole {
        (22, 14, 70, 14)
    } else {
        (18, 12, 60, 13)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, caption_size))
        .margin(margin)
        .x_label_area_size(40)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, label_size))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The top of an axis showing values up to `v`: 15% headroom.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        1.0
    } else {
        v * 1.15
    }
}

/// Throughput (successful iterations/s) and errors/s over time, against
/// the offered rate in the open model.
fn draw_tps<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[SeriesPoint],
    offered: Option<f64>,
    faults: &[FaultWindow],
) -> DrawResult {
    let max_t = series.iter().map(|p| p.t).fold(1.0, f64::max);
    let max_y = nice_max(
        series
            .iter()
            .map(|p| p.tps.max(p.errors as f64))
            .fold(offered.unwrap_or(0.0), f64::max),
    );
    let mut chart = linear_chart(
        root,
        title,
        true,
        0.0..max_t,
        0.0..max_y,
        TIME_AXIS,
        "iterations per second (1/s)",
    )?;
    marks::shade(&mut chart, faults, max_t, max_y)?;
    chart
        .draw_series(LineSeries::new(
            series.iter().map(|p| (p.t, p.tps)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("successful iterations/s (TPS)")
        .legend(swatch(BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            series.iter().map(|p| (p.t, p.errors as f64)),
            RED.stroke_width(2),
        ))
        .map_err(err)?
        .label("errors/s")
        .legend(swatch(RED.stroke_width(2)));
    if let Some(rate) = offered {
        chart
            .draw_series(LineSeries::new(
                [(0.0, rate), (max_t, rate)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(err)?
            .label("offered rate")
            .legend(swatch(BLACK.mix(0.5)));
    }
    legend(&mut chart, 14, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// P50/P95/P99 over time, raw on the left and corrected on the right, on
/// one scale.
fn draw_latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[SeriesPoint],
    faults: &[FaultWindow],
    limits: &[Limit],
) -> DrawResult {
    let max_t = series.iter().map(|p| p.t).fold(1.0, f64::max);
    let max_y = nice_max(
        series
            .iter()
            .map(|p| ms(p.corrected[2].max(p.raw[2])))
            .chain(limits.iter().map(|l| l.ms))
            .fold(0.0, f64::max),
    );
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let colours = [GREEN.mix(0.9), BLUE.mix(0.9), RED.mix(0.9)];
    for (area, corrected) in [(left, false), (right, true)] {
        let title = if corrected {
            "corrected for coordinated omission"
        } else {
            "raw (as the requests saw it)"
        };
        let mut chart = linear_chart(
            &area,
            &format!("Latency, {title}"),
            false,
            0.0..max_t,
            0.0..max_y,
            TIME_AXIS,
            "latency (ms)",
        )?;
        marks::shade(&mut chart, faults, max_t, max_y)?;
        for (i, name) in ["P50", "P95", "P99"].iter().enumerate() {
            let colour = colours[i];
            chart
                .draw_series(LineSeries::new(
                    series.iter().map(|p| {
                        let v = if corrected { p.corrected[i] } else { p.raw[i] };
                        (p.t, ms(v))
                    }),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(*name)
                .legend(swatch(colour.stroke_width(2)));
        }
        marks::limit_lines(&mut chart, limits, corrected, max_t)?;
        legend(&mut chart, 13, SeriesLabelPosition::UpperLeft)?;
    }
    Ok(())
}

/// The HDR percentile plot: latency against 1 / (1 - percentile), log x.
fn draw_hdr<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, summary: &RunSummary) -> DrawResult {
    let Some(tx) = summary.headline() else {
        return Ok(());
    };
    let points: Vec<(f64, f64, f64)> = tx
        .ladder
        .iter()
        .filter(|p| p.percentile < 100.0)
        .map(|p| {
            (
                1.0 / (1.0 - p.percentile / 100.0),
                ms(p.raw_us),
                ms(p.corrected_us),
            )
        })
        .collect();
    let max_x = points.iter().map(|p| p.0).fold(10.0, f64::max);
    let max_y = nice_max(points.iter().map(|p| p.2.max(p.1)).fold(0.0, f64::max));
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Latency by percentile ({}), max {:.1} ms",
                summary.headline,
                ms(tx.corrected.max)
            ),
            (FONT, 22),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..max_x).log_scale(), 0.0..max_y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile (%, log scale of 1 / (1 - p))")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            format!("{}%", trim_float(p))
        })
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    // Corrected first and wider, so raw stays visible where they agree.
    for (corrected, colour, width, label) in [(true, RED, 5, "corrected"), (false, BLUE, 2, "raw")]
    {
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|p| (p.0, if corrected { p.2 } else { p.1 })),
                colour.stroke_width(width),
            ))
            .map_err(err)?
            .label(label)
            .legend(swatch(colour.stroke_width(width)));
    }
    legend(&mut chart, 14, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

fn trim_float(p: f64) -> String {
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The load run's plots: `tps`, `latency`, `hdr` (png and svg) in `dir`.
pub fn load_plots(dir: &Path, prefix: &str, summary: &RunSummary) -> anyhow::Result<Vec<String>> {
    // The measured window only: later intervals hold the completions
    // drained after it (backlog, not throughput). One interval ends where
    // the window does; reports of the old definition had no such cut,
    // hence the half second.
    let series: Vec<SeriesPoint> = summary
        .series
        .get(&summary.headline)
        .map(|s| {
            s.iter()
                .filter(|p| p.t <= summary.duration_secs + 0.5)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let title = format!(
        "Throughput: {} ({})",
        summary.headline,
        model_label(summary)
    );
    let tps = format!("{prefix}tps");
    let latency = format!("{prefix}latency");
    let hdr = format!("{prefix}hdr");
    let offered = match summary.model {
        crate::summary::Model::Open { rate } => Some(rate),
        crate::summary::Model::Closed => None,
    };
    let limits = marks::limits(summary);
    render(
        dir,
        &tps,
        SIZE,
        Plot::Tps(&title, &series, offered, &summary.faults),
    )?;
    render(
        dir,
        &latency,
        SIZE,
        Plot::Latency(&series, &summary.faults, &limits),
    )?;
    render(dir, &hdr, SIZE, Plot::Hdr(summary))?;
    Ok(vec![tps, latency, hdr])
}

pub fn scaling_plot(dir: &Path, scale: &ScaleReport) -> anyhow::Result<String> {
    render(dir, "scaling", (1320, 420), Plot::Scaling(scale))?;
    Ok("scaling".into())
}

pub fn model_label(summary: &RunSummary) -> String {
    match summary.model {
        crate::summary::Model::Open { rate } => format!("open model, {rate:.0}/s offered"),
        crate::summary::Model::Closed => {
            format!("closed model, {} users, at saturation", summary.users)
        }
    }
}
