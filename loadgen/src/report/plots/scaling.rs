//! The scaling plot: TPS, P95 and efficiency against instance count.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, legend, linear_chart, nice_max, swatch, DrawResult};
use crate::scale::{ScaleReport, EFFICIENCY_ALLOWANCE};

/// TPS, P95 and efficiency against instance count, with the ideal line
/// and the 90% target.
pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    scale: &ScaleReport,
) -> DrawResult {
    let measured: Vec<(usize, f64, f64, Option<f64>)> = scale
        .points
        .iter()
        .filter_map(|p| {
            p.best
                .as_ref()
                .map(|b| (p.instances, b.tps, b.p95_ms, p.efficiency))
        })
        .collect();
    let max_n = scale.points.iter().map(|p| p.instances).max().unwrap_or(1) as f64;
    let one = scale
        .points
        .first()
        .and_then(|p| p.best.as_ref().map(|b| b.tps / p.instances as f64))
        .unwrap_or(0.0);
    let areas = root.split_evenly((1, 3));
    let x_range = 0.5..max_n + 0.5;

    // TPS against N.
    let max_tps = nice_max(measured.iter().map(|m| m.1).fold(one * max_n, f64::max));
    let mut chart = linear_chart(
        &areas[0],
        "TPS by instances",
        false,
        x_range.clone(),
        0.0..max_tps,
        "instances",
        "TPS",
    )?;
    let ideal = [(1.0, one), (max_n, one * max_n)];
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.5).stroke_width(1)))
        .map_err(err)?
        .label("N x TPS(1)")
        .legend(swatch(BLACK.mix(0.5)));
    chart
        .draw_series(LineSeries::new(
            ideal.map(|(n, t)| (n, t * 0.9)),
            RED.mix(0.6).stroke_width(1),
        ))
        .map_err(err)?
        .label("90% target")
        .legend(swatch(RED.mix(0.6)));
    chart
        .draw_series(LineSeries::new(
            measured.iter().map(|m| (m.0 as f64, m.1)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("measured")
        .legend(swatch(BLUE.stroke_width(2)));
    chart
        .draw_series(
            measured
                .iter()
                .map(|m| Circle::new((m.0 as f64, m.1), 5, BLUE.filled())),
        )
        .map_err(err)?;
    legend(&mut chart, 12, SeriesLabelPosition::UpperLeft)?;

    // P95 against N, with the bound.
    let max_p95 = nice_max(
        measured
            .iter()
            .map(|m| m.2)
            .fold(scale.p95_bound_ms, f64::max),
    );
    let mut chart = linear_chart(
        &areas[1],
        "P95 at that rate (corrected)",
        false,
        x_range.clone(),
        0.0..max_p95,
        "instances",
        "ms",
    )?;
    chart
        .draw_series(LineSeries::new(
            [(0.5, scale.p95_bound_ms), (max_n + 0.5, scale.p95_bound_ms)],
            RED.mix(0.6),
        ))
        .map_err(err)?
        .label("bound")
        .legend(swatch(RED.mix(0.6)));
    chart
        .draw_series(
            measured
                .iter()
                .map(|m| Circle::new((m.0 as f64, m.2), 5, BLUE.filled())),
        )
        .map_err(err)?;
    legend(&mut chart, 12, SeriesLabelPosition::LowerRight)?;

    // Efficiency against N, on an axis that holds every value.
    let eff: Vec<(f64, f64, bool)> = scale
        .points
        .iter()
        .filter_map(|p| {
            Some((
                p.instances as f64,
                p.efficiency? * 100.0,
                p.efficiency_flagged,
            ))
        })
        .collect();
    let top = efficiency_axis_top(eff.iter().map(|e| e.1));
    let mut chart = linear_chart(
        &areas[2],
        "Efficiency = TPS(N) / (N x TPS(1))",
        false,
        x_range,
        0.0..top,
        "instances",
        "%",
    )?;
    for (level, colour, label) in [
        (90.0, RED.mix(0.6), "90% target".to_owned()),
        (100.0, BLACK.mix(0.5), "ideal (100%)".to_owned()),
        (
            100.0 + EFFICIENCY_ALLOWANCE * 100.0,
            MAGENTA.mix(0.5),
            format!("flagged above {:.0}%", 100.0 + EFFICIENCY_ALLOWANCE * 100.0),
        ),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(0.5, level), (max_n + 0.5, level)],
                colour,
            ))
            .map_err(err)?
            .label(label)
            .legend(swatch(colour));
    }
    chart
        .draw_series(LineSeries::new(
            eff.iter().map(|e| (e.0, e.1)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("measured")
        .legend(swatch(BLUE.stroke_width(2)));
    chart
        .draw_series(eff.iter().map(|&(n, e, flagged)| {
            let colour = if flagged { MAGENTA } else { BLUE };
            Circle::new((n, e), if flagged { 7 } else { 5 }, colour.filled())
        }))
        .map_err(err)?;
    legend(&mut chart, 12, SeriesLabelPosition::LowerLeft)?;
    Ok(())
}

/// The efficiency axis's top (percent): the largest value or reference
/// line (the flag's threshold), with headroom.
pub(super) fn efficiency_axis_top(values: impl Iterator<Item = f64>) -> f64 {
    nice_max(values.fold(100.0 + EFFICIENCY_ALLOWANCE * 100.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::efficiency_axis_top;

    #[test]
    fn the_efficiency_axis_holds_every_value() {
        for values in [vec![], vec![95.0, 60.0], vec![100.0, 106.0], vec![250.0]] {
            let top = efficiency_axis_top(values.iter().copied());
            assert!(values.iter().all(|&v| v < top), "{values:?} on 0..{top}");
            assert!(top > 105.0, "the flag's line is on the axis: {top}");
        }
        // The axis grows with the data: a fixed one (the old 120%) would
        // cut 250% off.
        assert!(efficiency_axis_top([250.0].into_iter()) > 250.0);
    }
}
