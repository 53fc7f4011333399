//! The scaling plot: TPS against instance count (every repeat, the
//! medians with their spread, the ideal line and the fitted Universal
//! Scalability Law, extended as a prediction), P95, and efficiency with
//! its interval.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, legend, linear_chart, nice_max, swatch, DrawResult};
use crate::scale::stats::{Interval, TARGET};
use crate::scale::ScaleReport;

/// A vertical bar from `i.lo` to `i.hi` at `x`, with caps.
fn bar(x: f64, i: Interval, colour: RGBAColor) -> Vec<PathElement<(f64, f64)>> {
    let cap = 0.08;
    vec![
        PathElement::new(vec![(x, i.lo), (x, i.hi)], colour.stroke_width(2)),
        PathElement::new(
            vec![(x - cap, i.lo), (x + cap, i.lo)],
            colour.stroke_width(2),
        ),
        PathElement::new(
            vec![(x - cap, i.hi), (x + cap, i.hi)],
            colour.stroke_width(2),
        ),
    ]
}

/// TPS, P95 and efficiency against instance count.
pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    scale: &ScaleReport,
) -> DrawResult {
    let measured_max = scale.points.iter().map(|p| p.instances).max().unwrap_or(1) as f64;
    // The model is drawn out to its predictions (16 at most).
    let max_n = match &scale.model {
        Some(m) => m
            .predicted
            .iter()
            .map(|p| p.0 as f64)
            .fold(measured_max, f64::max),
        None => measured_max,
    };
    let one = scale
        .points
        .first()
        .and_then(|p| Some(p.tps? / p.instances as f64))
        .unwrap_or(0.0);
    let areas = root.split_evenly((1, 3));

    // TPS against N.
    let repeats: Vec<(f64, f64)> = scale
        .points
        .iter()
        .flat_map(|p| {
            p.repeats
                .iter()
                .filter_map(move |r| Some((p.instances as f64, r.tps()?)))
        })
        .collect();
    let curve: Vec<(f64, f64)> = scale.model.as_ref().map_or(Vec::new(), |m| {
        (0..=100)
            .map(|i| 1.0 + (max_n - 1.0) * i as f64 / 100.0)
            .map(|n| (n, m.fit.at(n)))
            .collect()
    });
    let top = repeats
        .iter()
        .map(|r| r.1)
        .chain(curve.iter().map(|c| c.1))
        .fold(one * measured_max, f64::max);
    let mut chart = linear_chart(
        &areas[0],
        "TPS by instances",
        false,
        0.5..max_n + 0.5,
        0.0..nice_max(top),
        "instances (count)",
        "TPS (successful iterations/s)",
    )?;
    let ideal = [(1.0, one), (measured_max, one * measured_max)];
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.5).stroke_width(1)))
        .map_err(err)?
        .label("N x TPS(1)")
        .legend(swatch(BLACK.mix(0.5)));
    chart
        .draw_series(LineSeries::new(
            ideal.map(|(n, t)| (n, t * TARGET)),
            RED.mix(0.6).stroke_width(1),
        ))
        .map_err(err)?
        .label("90% target")
        .legend(swatch(RED.mix(0.6)));
    if !curve.is_empty() {
        let (fitted, predicted): (Vec<_>, Vec<_>) =
            curve.iter().partition(|c| c.0 <= measured_max + 1e-9);
        let green = GREEN.mix(0.8);
        chart
            .draw_series(LineSeries::new(fitted, green.stroke_width(2)))
            .map_err(err)?
            .label("USL fit")
            .legend(swatch(green.stroke_width(2)));
        let faded = GREEN.mix(0.35);
        chart
            .draw_series(LineSeries::new(predicted, faded.stroke_width(2)))
            .map_err(err)?
            .label("USL prediction")
            .legend(swatch(faded.stroke_width(2)));
    }
    chart
        .draw_series(
            repeats
                .iter()
                .map(|&(n, t)| Circle::new((n, t), 3, BLUE.mix(0.4).filled())),
        )
        .map_err(err)?
        .label("each repeat")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.mix(0.4).filled()));
    for p in &scale.points {
        if let (Some(t), Some(i)) = (p.tps, p.tps_interval) {
            let n = p.instances as f64;
            chart.draw_series(bar(n, i, BLUE.into())).map_err(err)?;
            chart
                .draw_series([Circle::new((n, t), 5, BLUE.filled())])
                .map_err(err)?;
        }
    }
    legend(&mut chart, 12, SeriesLabelPosition::UpperLeft)?;

    // P95 against N, with the bound.
    let x_range = 0.5..measured_max + 0.5;
    let max_p95 = nice_max(
        scale
            .points
            .iter()
            .filter_map(|p| p.p95_interval.map(|i| i.hi))
            .fold(scale.p95_bound_ms, f64::max),
    );
    let mut chart = linear_chart(
        &areas[1],
        "P95 at the best rate (corrected)",
        false,
        x_range.clone(),
        0.0..max_p95,
        "instances (count)",
        "P95 latency (ms)",
    )?;
    chart
        .draw_series(LineSeries::new(
            [
                (0.5, scale.p95_bound_ms),
                (measured_max + 0.5, scale.p95_bound_ms),
            ],
            RED.mix(0.6),
        ))
        .map_err(err)?
        .label("bound")
        .legend(swatch(RED.mix(0.6)));
    for p in &scale.points {
        if let (Some(v), Some(i)) = (p.p95_ms, p.p95_interval) {
            let n = p.instances as f64;
            chart.draw_series(bar(n, i, BLUE.into())).map_err(err)?;
            chart
                .draw_series([Circle::new((n, v), 5, BLUE.filled())])
                .map_err(err)?;
        }
    }
    legend(&mut chart, 12, SeriesLabelPosition::LowerRight)?;

    // Efficiency against N, with its interval.
    let top = efficiency_axis_top(
        scale
            .points
            .iter()
            .filter_map(|p| p.efficiency_interval.map(|i| i.hi * 100.0)),
    );
    let mut chart = linear_chart(
        &areas[2],
        "Efficiency = TPS(N) / (N x TPS(1))",
        false,
        x_range,
        0.0..top,
        "instances (count)",
        "efficiency (%)",
    )?;
    for (level, colour, label) in [
        (TARGET * 100.0, RED.mix(0.6), "90% target"),
        (100.0, BLACK.mix(0.5), "ideal (100%)"),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(0.5, level), (measured_max + 0.5, level)],
                colour,
            ))
            .map_err(err)?
            .label(label)
            .legend(swatch(colour));
    }
    for p in &scale.points {
        if let (Some(e), Some(i)) = (p.efficiency, p.efficiency_interval) {
            let n = p.instances as f64;
            let colour = if p.flagged() { MAGENTA } else { BLUE };
            let pct = Interval {
                lo: i.lo * 100.0,
                hi: i.hi * 100.0,
            };
            chart.draw_series(bar(n, pct, colour.into())).map_err(err)?;
            chart
                .draw_series([Circle::new((n, e * 100.0), 5, colour.filled())])
                .map_err(err)?;
        }
    }
    legend(&mut chart, 12, SeriesLabelPosition::LowerLeft)?;
    Ok(())
}

/// The efficiency axis's top (percent): the largest value or the ideal
/// line, with headroom.
pub(super) fn efficiency_axis_top(values: impl Iterator<Item = f64>) -> f64 {
    nice_max(values.fold(100.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::efficiency_axis_top;

    #[test]
    fn the_efficiency_axis_holds_every_value() {
        for values in [vec![], vec![95.0, 60.0], vec![100.0, 106.0], vec![250.0]] {
            let top = efficiency_axis_top(values.iter().copied());
            assert!(values.iter().all(|&v| v < top), "{values:?} on 0..{top}");
            assert!(top > 100.0, "the ideal line is on the axis: {top}");
        }
        // The axis grows with the data: a fixed one (the old 120%) would
        // cut 250% off.
        assert!(efficiency_axis_top([250.0].into_iter()) > 250.0);
    }
}
