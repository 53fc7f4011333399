//! What the time plots draw over the data: the fault windows shaded, each
//! named at its top (as Jepsen's performance plots shade the nemesis'
//! activity), and the threshold gates' latency limits as lines.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{err, swatch, DrawResult, FONT};
use crate::faults::FaultWindow;
use crate::summary::RunSummary;
use crate::thresholds::{Metric, Threshold};

/// The fault windows' colour (amber), drawn at [`FAULT_ALPHA`].
pub const FAULT_FILL: RGBColor = RGBColor(0xff, 0xb0, 0x00);
pub const FAULT_ALPHA: f64 = 0.28;
/// The threshold lines' colour (magenta: no series uses it).
const LIMIT: RGBColor = RGBColor(0xb0, 0x00, 0xb0);

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A latency threshold of the run's headline: its expression, its bound
/// in ms, and which panel it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub label: String,
    pub ms: f64,
    pub corrected: bool,
}

/// The run's judged latency thresholds on its headline transaction.
pub fn limits(summary: &RunSummary) -> Vec<Limit> {
    summary
        .thresholds
        .iter()
        .filter_map(|j| Threshold::parse(&j.expression).ok())
        .filter_map(|t| match t.metric {
            Metric::Latency { tx, corrected, .. }
                if tx.as_deref().is_none_or(|tx| tx == summary.headline) =>
            {
                Some(Limit {
                    label: t.expr,
                    ms: t.bound,
                    corrected,
                })
            }
            _ => None,
        })
        .collect()
}

/// The windows that fall inside `0..max_t`, clipped to it.
pub fn bands(faults: &[FaultWindow], max_t: f64) -> Vec<(f64, f64, &str)> {
    faults
        .iter()
        .filter_map(|f| {
            let (from, to) = (f.start_secs.max(0.0), f.end_or_start().min(max_t));
            (from < max_t && to > from).then_some((from, to, f.kind.as_str()))
        })
        .collect()
}

/// Shades each fault window from 0 to `top`, named at its top; one key
/// entry for all.
pub fn shade<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    faults: &[FaultWindow],
    max_t: f64,
    top: f64,
) -> DrawResult {
    let bands = bands(faults, max_t);
    if bands.is_empty() {
        return Ok(());
    }
    let fill = FAULT_FILL.mix(FAULT_ALPHA).filled();
    chart
        .draw_series(
            bands
                .iter()
                .map(|&(from, to, _)| Rectangle::new([(from, 0.0), (to, top)], fill)),
        )
        .map_err(err)?
        .label("fault window")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], fill));
    chart
        .draw_series(
            bands
                .iter()
                .map(|&(from, _, kind)| Text::new(kind.to_owned(), (from, top * 0.99), (FONT, 13))),
        )
        .map_err(err)?;
    Ok(())
}

/// Draws the limits of one panel (`corrected` or raw) across `0..max_t`.
pub fn limit_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    limits: &[Limit],
    corrected: bool,
    max_t: f64,
) -> DrawResult {
    for l in limits.iter().filter(|l| l.corrected == corrected) {
        chart
            .draw_series(LineSeries::new(
                [(0.0, l.ms), (max_t, l.ms)],
                LIMIT.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("threshold {}", l.label))
            .legend(swatch(LIMIT.stroke_width(2)));
    }
    Ok(())
}
