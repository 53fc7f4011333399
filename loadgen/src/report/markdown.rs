//! The Markdown summary of a report (`report.md`), which links the PNG
//! plots.

use std::fmt::Write as _;

use super::figures::{generator_line, thresholds, verdict_line, window_line};
use super::plots;
use super::scaling::{bounds, notes, quota_label, Cells};
use super::{Page, Report, OLD_TPS_NOTE};

/// The Markdown summary: the HTML page's content, with each load run's
/// transactions tabulated and the plots as PNG.
pub(super) fn page(page: &Page<'_>) -> String {
    let Page {
        report,
        baseline,
        rows,
        load_plots,
        scaling,
        ..
    } = *page;
    let mut md = String::new();
    let (pass, headline) = verdict_line(report);
    let m = &report.machine;
    let _ = writeln!(md, "# ticketbench report `{}`\n", report.run_id);
    let _ = writeln!(
        md,
        "- created: {}\n- backend: {}",
        report.created_at, report.backend
    );
    let _ = writeln!(
        md,
        "- verify: **{}** {}",
        if pass { "PASS" } else { "FAIL" },
        headline
    );
    let _ = writeln!(
        md,
        "- machine: {}, {} cores, {} GiB, kernel {}",
        m.cpu_model, m.cores, m.memory_gib, m.kernel
    );
    if let Some(scale) = &report.scale {
        let _ = writeln!(md, "- quota: {}", quota_label(scale));
    }
    for note in &report.notes {
        let _ = writeln!(md, "- note: {note}");
    }
    if report.old_tps() {
        let _ = writeln!(md, "- note: **{OLD_TPS_NOTE}**");
    } else if baseline.is_some_and(Report::old_tps) {
        let _ = writeln!(
            md,
            "- note: the baseline's TPS is by the old definition (successes / nominal duration): \
             changes in TPS compare different measures"
        );
    }
    md.push_str("\n## Figures\n\n");
    if baseline.is_some() {
        md.push_str("| figure | this run | baseline | change |\n|---|---:|---:|---:|\n");
    } else {
        md.push_str("| figure | this run |\n|---|---:|\n");
    }
    for r in rows {
        if baseline.is_some() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                r.what,
                r.now_text("⚠"),
                r.before_text("–"),
                r.change()
            );
        } else {
            let _ = writeln!(md, "| {} | {} |", r.what, r.now_text("⚠"));
        }
    }
    let gates = thresholds(report);
    if !gates.is_empty() {
        md.push_str("\n## Thresholds\n\n| threshold | result | observed |\n|---|---|---|\n");
        for j in gates {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                j.expression,
                if j.pass { "pass" } else { "**FAIL**" },
                j.detail
            );
        }
    }
    for (load, names) in report.loads.iter().zip(load_plots) {
        let _ = writeln!(
            md,
            "\n## Load run: {} ({})\n\n{} users, {} host(s), {:.0} s; generator: {}\n\n{}\n",
            load.scenario,
            plots::model_label(load),
            load.users,
            load.hosts.len(),
            load.duration_secs,
            generator_line(load),
            window_line(load)
        );
        md.push_str("| transaction | count | errors | P50 ms | P95 ms | P99 ms | P99 raw ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, t) in &load.transactions {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
                t.count,
                t.errors,
                ms(t.corrected.p50),
                ms(t.corrected.p95),
                ms(t.corrected.p99),
                ms(t.raw.p99),
                ms(t.corrected.max)
            );
        }
        md.push('\n');
        if !load.faults.is_empty() {
            md.push_str("Faults (shaded in the plots; recovery: until a second served 90% of the rate before):\n\n| fault | start s | duration s | ok | refused | unknown | rate before /s | recovery |\n|---|---:|---:|---:|---:|---:|---:|---|\n");
            for f in &load.faults {
                let _ = writeln!(
                    md,
                    "| #{} {} | {:.2} | {} | {} | {} | {} | {} | {} |",
                    f.id,
                    f.kind,
                    f.start_secs,
                    f.end_secs
                        .map_or("–".into(), |e| format!("{:.2}", e - f.start_secs)),
                    f.ok,
                    f.fail,
                    f.unknown,
                    f.rate_before.map_or("–".into(), |r| format!("{r:.1}")),
                    f.recovery
                );
            }
            md.push('\n');
        }
        for name in names {
            let _ = writeln!(md, "![{name}](plots/{name}.png)");
        }
    }
    md.push_str("\n## Scaling\n\n");
    match &report.scale {
        None => md.push_str("not run\n"),
        Some(scale) => {
            if let Some(reason) = &scale.skipped {
                let _ = writeln!(md, "**{reason}**\n");
            }
            if !scale.points.is_empty() {
                let _ = writeln!(md, "{}: {}.\n", quota_label(scale), bounds(scale));
                md.push_str("| instances | TPS [min–max] | P95 ms [min–max] | efficiency [interval] | verdict | repeats: TPS (passed–failed /s) | limited by | over-selling check |\n|---:|---:|---:|---:|---|---|---|---|\n");
                for p in &scale.points {
                    let c = Cells::of(p, "–", "⚠");
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        p.instances,
                        c.tps,
                        c.p95,
                        c.efficiency,
                        c.verdict,
                        c.repeats,
                        c.limit,
                        p.verify_headline
                    );
                }
                for note in notes(scale) {
                    let _ = writeln!(md, "\n{note}");
                }
            }
            if let Some(name) = scaling {
                let _ = writeln!(md, "\n![scaling](plots/{name}.png)");
            }
        }
    }
    if let Some(seats) = &report.seat_comparison {
        md.push('\n');
        md.push_str(&seats.markdown());
    }
    md
}
