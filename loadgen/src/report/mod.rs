//! The report of a run: plots (PNG and SVG), an HTML page that embeds them
//! inline with the verifier's verdict, the machine and any fault table, a
//! Markdown summary and the raw JSON (which `--baseline` compares
//! against).
//!
//! - [`model`]: what a report holds (and `report.json` is).
//! - `figures`: the figures compared with a baseline, and the lines both
//!   pages word the same way.
//! - `scaling`: what both pages say about the scaling run.
//! - `html` and `markdown`: the two pages.
//! - [`plots`]: the charts both pages embed.
//! - [`seats`]: the seat-hold strategies compared (`--seat-comparison`).

mod figures;
mod html;
mod markdown;
pub mod model;
pub mod plots;
mod scaling;
pub mod seats;
mod shortfall;

use std::path::Path;

pub use model::{CheckLine, Report, TpsMeasure, VerifySummary, OLD_TPS_NOTE};
pub use seats::SeatComparison;

/// The report of one load run (`loadgen run`), written beside its
/// summary so that its dashboard can link the project's own page, not
/// only goose's (whose charts come from a CDN). The backend is whatever
/// served `--host`, which a load run cannot tell: `external`.
pub fn write_run(summary: &crate::summary::RunSummary, out: &Path) -> anyhow::Result<()> {
    let report = Report {
        loads: vec![summary.clone()],
        ..Report::now(summary.run_id.clone(), "external".into())
    };
    write(&report, out, None)
}

/// Writes `report.json`, `report.html` (self-contained), `report.md` and
/// `plots/` into `out`
/// (what is derived from the data derived again, see
/// [`Report::normalized`]).
pub fn write(report: &Report, out: &Path, baseline: Option<&Report>) -> anyhow::Result<()> {
    let report = &report.normalized();
    let baseline = baseline.map(Report::normalized);
    let baseline = baseline.as_ref();
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    let mut load_plots = Vec::new();
    for (i, load) in report.loads.iter().enumerate() {
        // Later runs' plots carry their scenario so they do not overwrite
        // the main run's.
        let prefix = if i == 0 {
            String::new()
        } else {
            format!("{}-", load.scenario)
        };
        load_plots.push(plots::load_plots(&plots_dir, &prefix, load)?);
    }
    let scaling = match &report.scale {
        Some(s) if s.points.iter().any(|p| p.tps.is_some()) => {
            Some(plots::scaling_plot(&plots_dir, s)?)
        }
        _ => None,
    };
    let rows = figures::rows(report, baseline);
    // The HTML page carries its plots inline: one file to keep or mail.
    let mut svgs = std::collections::BTreeMap::new();
    for name in load_plots.iter().flatten().chain(scaling.iter()) {
        let svg = std::fs::read_to_string(plots_dir.join(format!("{name}.svg")))?;
        // An XML declaration has no place inside an HTML page.
        let svg = match svg.trim_start().strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or("", |(_, s)| s).to_owned(),
            None => svg,
        };
        svgs.insert(name.clone(), svg);
    }
    let page = Page {
        report,
        baseline,
        rows: &rows,
        load_plots: &load_plots,
        scaling: scaling.as_deref(),
        svgs: &svgs,
    };
    std::fs::write(out.join("report.html"), html::page(&page))?;
    std::fs::write(out.join("report.md"), markdown::page(&page))?;
    Ok(())
}

/// What both pages are made from: the report, its baseline, the compared
/// figures and the plots' file names.
#[derive(Clone, Copy)]
struct Page<'a> {
    report: &'a Report,
    baseline: Option<&'a Report>,
    rows: &'a [figures::Row],
    load_plots: &'a [Vec<String>],
    scaling: Option<&'a str>,
    /// Each plot's SVG, by name.
    svgs: &'a std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests;
