//! The HTML page of a report (`report.html`): one self-contained file,
//! the SVG plots inline, its style sheet (`report.css`) embedded, with a
//! print layout.

use std::fmt::Write as _;

use super::figures::{generator_line, thresholds, verdict_line, window_line};
use super::plots;
use super::scaling::{bounds, notes, quota_label, Cells};
use super::{Page, Report, OLD_TPS_NOTE};

/// The HTML page: the verdict's banner, the machine, the compared figures,
/// each load run's plots and the scaling table.
pub(super) fn page(page: &Page<'_>) -> String {
    let Page {
        report,
        baseline,
        rows,
        load_plots,
        scaling,
        svgs,
    } = *page;
    let mut h = String::new();
    let (pass, headline) = verdict_line(report);
    let m = &report.machine;
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>ticketbench report {id}</title>
<style>{css}</style>
</head><body><h1>ticketbench report <code>{id}</code></h1>
<p class="meta">{created} &middot; backend <b>{backend}</b></p>
<div class="banner {cls}">verify: {headline}</div>
"#,
        css = include_str!("report.css"),
        id = esc(&report.run_id),
        created = esc(&report.created_at),
        backend = esc(&report.backend),
        cls = if pass { "pass" } else { "fail" },
        headline = esc(&headline),
    );
    for note in &report.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    if report.old_tps() {
        let _ = writeln!(
            h,
            "<p class=\"note old-tps\"><b>{}</b></p>",
            esc(OLD_TPS_NOTE)
        );
    } else if baseline.is_some_and(Report::old_tps) {
        h.push_str("<p class=\"note\">The baseline's TPS is by the old definition (successes / nominal duration): changes in TPS compare different measures.</p>\n");
    }
    let _ = write!(
        h,
        "<h2>Machine</h2><table><tr><td>CPU</td><td>{}</td></tr><tr><td>cores</td><td>{}</td></tr>\
         <tr><td>memory</td><td>{} GiB</td></tr><tr><td>kernel</td><td>{}</td></tr>",
        esc(&m.cpu_model),
        m.cores,
        m.memory_gib,
        esc(&m.kernel)
    );
    if let Some(scale) = &report.scale {
        let _ = write!(
            h,
            "<tr><td>quota</td><td>{}</td></tr>",
            esc(&quota_label(scale))
        );
    }
    h.push_str("</table>");
    if let Some(v) = &report.verify {
        h.push_str("<h2>Verdict</h2><table><tr><th>check</th><th>result</th><th>summary</th></tr>");
        for c in &v.checks {
            let _ = write!(
                h,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                if c.pass { "pass" } else { "fail" },
                esc(&c.name),
                if c.pass { "PASS" } else { "FAIL" },
                esc(&c.summary)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Figures</h2><table><tr><th>figure</th><th>this run</th>");
    if baseline.is_some() {
        h.push_str("<th>baseline</th><th>change</th>");
    }
    h.push_str("</tr>");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td{}>{}</td>",
            esc(&r.what),
            if r.flag.is_some() {
                " class=\"flagged\""
            } else {
                ""
            },
            r.now_text("&#9888;")
        );
        if baseline.is_some() {
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                r.before_text("&ndash;"),
                r.change()
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let gates = thresholds(report);
    if !gates.is_empty() {
        h.push_str(
            "<h2>Thresholds</h2><table><tr><th>threshold</th><th>result</th><th>observed</th></tr>",
        );
        for j in gates {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&j.expression),
                if j.pass { "pass" } else { "fail" },
                if j.pass { "pass" } else { "FAIL" },
                esc(&j.detail)
            );
        }
        h.push_str("</table>");
    }
    for (load, names) in report.loads.iter().zip(load_plots) {
        let _ = write!(
            h,
            "<h2>Load run: {} ({})</h2><p>{} users, {} host(s), {:.0} s; generator: {}</p><p>{}</p>",
            esc(&load.scenario),
            esc(&plots::model_label(load)),
            load.users,
            load.hosts.len(),
            load.duration_secs,
            esc(&generator_line(load)),
            esc(&window_line(load)),
        );
        faults(&mut h, load);
        for name in names {
            figure(&mut h, svgs, name, &caption(name, load));
        }
    }
    h.push_str("<h2>Scaling</h2>");
    match &report.scale {
        None => h.push_str("<p>not run</p>"),
        Some(scale) => {
            if let Some(reason) = &scale.skipped {
                let _ = write!(h, "<p class=\"note\">{}</p>", esc(reason));
            }
            if !scale.points.is_empty() {
                let _ = write!(
                    h,
                    "<p>{}; {}.</p>",
                    esc(&quota_label(scale)),
                    esc(&bounds(scale))
                );
                h.push_str("<table><tr><th>instances</th><th>TPS [min&ndash;max]</th><th>P95 ms [min&ndash;max]</th><th>efficiency [interval]</th><th>verdict</th><th>repeats: TPS (passed&ndash;failed /s)</th><th>limited by</th><th>over-selling check</th></tr>");
                for p in &scale.points {
                    let c = Cells::of(p, "&ndash;", "&#9888;");
                    // The efficiency and verdict cells are marked so they
                    // can be found.
                    let eff_class = if p.flagged() {
                        "efficiency flagged"
                    } else {
                        "efficiency"
                    };
                    let verdict_class = match p.verdict {
                        Some(crate::scale::stats::Verdict::Pass) => "verdict pass",
                        Some(crate::scale::stats::Verdict::Fail) => "verdict fail",
                        _ => "verdict",
                    };
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{eff_class}\">{}</td><td class=\"{verdict_class}\">{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                        p.instances,
                        c.tps,
                        c.p95,
                        c.efficiency,
                        c.verdict,
                        c.repeats,
                        esc(&c.limit),
                        if p.verify_pass { "pass" } else { "fail" },
                        esc(&p.verify_headline),
                    );
                }
                h.push_str("</table>");
                for note in notes(scale) {
                    let _ = write!(h, "<p class=\"note\">{}</p>", esc(&note));
                }
            }
            if let Some(name) = scaling {
                figure(
                    &mut h,
                    svgs,
                    name,
                    "TPS, P95 and efficiency by the number of instances.",
                );
            }
        }
    }
    if let Some(seats) = &report.seat_comparison {
        h.push_str(&seats.html(esc));
    }
    h.push_str("<h2 class=\"files\">Files</h2><p class=\"files\"><a href=\"report.json\">report.json</a> (raw; pass it to <code>--baseline</code> later) &middot; <a href=\"report.md\">report.md</a>");
    for load in &report.loads {
        for (what, file) in &load.files {
            let _ = write!(
                h,
                " &middot; <a href=\"{0}/{1}\">{0}/{1}</a> ({2})",
                esc(&load.scenario),
                esc(file),
                esc(what)
            );
        }
    }
    h.push_str("</p></body></html>\n");
    h
}

/// A plot, inline (its SVG), with its caption; a plot whose SVG is
/// missing is named, not silently left out.
fn figure(
    h: &mut String,
    svgs: &std::collections::BTreeMap<String, String>,
    name: &str,
    caption: &str,
) {
    match svgs.get(name) {
        Some(svg) => {
            let _ = write!(
                h,
                "<figure id=\"plot-{name}\">{svg}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
        None => {
            let _ = write!(h, "<p class=\"note\">plot {name} missing</p>");
        }
    }
}

/// What a load run's plot shows, by its name.
fn caption(name: &str, load: &crate::summary::RunSummary) -> String {
    let shaded = if load.faults.is_empty() {
        ""
    } else {
        " Shaded: fault windows."
    };
    let kind = name.rsplit('-').next().unwrap_or(name);
    match kind {
        "tps" => format!("Successful iterations per second, one point a second, against the offered rate.{shaded}"),
        "latency" => format!(
            "P50, P95 and P99 per second, raw and corrected for coordinated omission; threshold limits as magenta lines.{shaded}"
        ),
        _ => "Latency by percentile over the whole run, raw and corrected.".into(),
    }
}

/// The fault table of a load run with faults (`loadgen job --faults`).
fn faults(h: &mut String, load: &crate::summary::RunSummary) {
    if load.faults.is_empty() {
        return;
    }
    h.push_str(
        "<h3>Faults</h3><p><span class=\"swatch fault\"></span>shaded in the plots below. Requests answered while each lasted: ok (2xx), refused (4xx), unknown (no answer, a timeout or a 5xx). Recovery: from the fault's end until a second served at least 90% of the purchases per second before it.</p>\
         <table class=\"faults\"><tr><th>fault</th><th>start (s)</th><th>duration (s)</th><th>ok</th><th>refused</th><th>unknown</th><th>rate before (/s)</th><th>recovery</th><th>actions</th></tr>",
    );
    for f in &load.faults {
        let _ = write!(
            h,
            "<tr class=\"{}\"><td>#{} {}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            if f.actions_ok && f.recovery_ms.is_some() { "pass" } else { "fail" },
            f.id,
            esc(&f.kind),
            f.start_secs,
            f.end_secs.map_or("&ndash;".into(), |e| format!("{:.2}", e - f.start_secs)),
            f.ok,
            f.fail,
            f.unknown,
            f.rate_before.map_or("&ndash;".into(), |r| format!("{r:.1}")),
            esc(&f.recovery),
            esc(&f.actions.join("; ")),
        );
    }
    h.push_str("</table>");
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
