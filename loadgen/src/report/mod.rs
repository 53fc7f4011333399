//! The report of a run: plots (PNG and SVG), an HTML page that embeds them
//! with the verifier's verdict and the machine, a Markdown summary and the
//! raw JSON (which `--baseline` compares against).

pub mod plots;

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::Machine;
use crate::scale::ScaleReport;
use crate::summary::RunSummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLine {
    pub name: String,
    pub pass: bool,
    pub summary: String,
}

/// The verifier's verdict, as much of it as the report shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    pub pass: bool,
    pub headline: String,
    pub checks: Vec<CheckLine>,
}

impl VerifySummary {
    /// From verify's `verdict.json` (or the serialised `Verdict`).
    pub fn from_value(v: &Value) -> Self {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        VerifySummary {
            pass: v.get("pass").and_then(Value::as_bool).unwrap_or(false),
            headline: text(v, "headline"),
            checks: v
                .get("checks")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| CheckLine {
                            name: format!("{}: {}", text(c, "check"), text(c, "name")),
                            pass: c.get("pass").and_then(Value::as_bool).unwrap_or(false),
                            summary: text(c, "summary"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run_id: String,
    pub created_at: String,
    pub machine: Machine,
    /// `real` or `memory`.
    pub backend: String,
    /// Anything the reader must know about how the run was made (e.g. the
    /// fallback to the embedded backend).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySummary>,
    /// Load runs, the main one first.
    #[serde(default)]
    pub loads: Vec<RunSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
}

impl Report {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        crate::summary::read_json(path)
    }
}

/// One compared figure.
struct Row {
    what: String,
    now: f64,
    unit: &'static str,
    before: Option<f64>,
}

fn rows(report: &Report, baseline: Option<&Report>) -> Vec<Row> {
    let mut rows = Vec::new();
    for load in &report.loads {
        let old = baseline.and_then(|b| b.loads.iter().find(|l| l.scenario == load.scenario));
        let figure = |f: &dyn Fn(&RunSummary) -> f64| (f(load), old.map(f));
        let mut push = |what: &str, unit: &'static str, (now, before): (f64, Option<f64>)| {
            rows.push(Row {
                what: format!("{}: {what}", load.scenario),
                now,
                unit,
                before,
            })
        };
        push("TPS", "/s", figure(&|l| l.tps()));
        push("requests", "/s", figure(&|l| l.rps()));
        for (name, pick) in [
            ("P50 corrected", 0usize),
            ("P95 corrected", 1),
            ("P99 corrected", 2),
            ("P95 raw", 3),
        ] {
            push(
                name,
                "ms",
                figure(&|l| {
                    l.headline().map_or(0.0, |t| {
                        let us = match pick {
                            0 => t.corrected.p50,
                            1 => t.corrected.p95,
                            2 => t.corrected.p99,
                            _ => t.raw.p95,
                        };
                        us as f64 / 1000.0
                    })
                }),
            );
        }
        push("errors", "%", figure(&|l| l.error_rate() * 100.0));
    }
    if let Some(scale) = &report.scale {
        for p in &scale.points {
            let old = baseline
                .and_then(|b| b.scale.as_ref())
                .and_then(|s| s.points.iter().find(|o| o.instances == p.instances));
            if let Some(best) = &p.best {
                rows.push(Row {
                    what: format!("scale: TPS({})", p.instances),
                    now: best.tps,
                    unit: "/s",
                    before: old.and_then(|o| o.best.as_ref()).map(|b| b.tps),
                });
            }
            if let Some(e) = p.efficiency {
                rows.push(Row {
                    what: format!("scale: efficiency({})", p.instances),
                    now: e * 100.0,
                    unit: "%",
                    before: old.and_then(|o| o.efficiency).map(|e| e * 100.0),
                });
            }
        }
    }
    rows
}

/// The closed-model capacity probe of each fleet (the first step).
fn capacity(p: &crate::scale::Point) -> Option<f64> {
    p.steps.iter().find(|s| s.rate.is_none()).map(|s| s.tps)
}

/// Says where scaling stopped being the instances' doing: a fleet whose
/// closed-model capacity grew much less than its size.
pub fn scaling_diagnosis(scale: &ScaleReport) -> Option<String> {
    let first = scale.points.first()?;
    let base = capacity(first)? / first.instances as f64;
    let flat: Vec<String> = scale
        .points
        .iter()
        .filter_map(|p| {
            let c = capacity(p)?;
            let ratio = c / (base * p.instances as f64);
            (ratio < 0.75).then(|| {
                format!(
                    "{} instances reach {:.0}/s ({:.0}% of {} x one)",
                    p.instances,
                    c,
                    ratio * 100.0,
                    p.instances
                )
            })
        })
        .collect();
    (!flat.is_empty()).then(|| {
        format!(
            "Closed-model capacity stops following the instance count: {}. There the limit is outside \
             the instances (the shared stack and the generator on the same machine), so efficiency \
             at that size measures the machine rather than the instances.",
            flat.join("; ")
        )
    })
}

fn change(now: f64, before: Option<f64>) -> String {
    match before {
        Some(b) if b != 0.0 => format!("{:+.1}%", (now - b) / b * 100.0),
        Some(_) => "n/a".into(),
        None => String::new(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn quota_label(scale: &ScaleReport) -> String {
    if scale.points.is_empty() {
        return "none (no scaling run)".into();
    }
    match scale.quota {
        crate::cgroup::Flavour::None => {
            "no CPU quota (--no-cpu-quota): instances share the machine freely".into()
        }
        f => format!(
            "{:.2} CPU per instance (cgroup {})",
            scale.cpus_per_instance,
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

/// Writes `report.json`, `report.html`, `report.md` and `plots/` into `out`.
pub fn write(report: &Report, out: &Path, baseline: Option<&Report>) -> anyhow::Result<()> {
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    let mut load_plots = Vec::new();
    for (i, load) in report.loads.iter().enumerate() {
        let prefix = if i == 0 {
            String::new()
        } else {
            format!("{}-", load.scenario)
        };
        load_plots.push(plots::load_plots(&plots_dir, &prefix, load)?);
    }
    let scaling = match &report.scale {
        Some(s) if s.points.iter().any(|p| p.best.is_some()) => {
            Some(plots::scaling_plot(&plots_dir, s)?)
        }
        _ => None,
    };
    let rows = rows(report, baseline);
    std::fs::write(
        out.join("report.html"),
        html(report, baseline, &rows, &load_plots, scaling.as_deref()),
    )?;
    std::fs::write(
        out.join("report.md"),
        markdown(report, baseline, &rows, &load_plots, scaling.as_deref()),
    )?;
    Ok(())
}

fn verdict_line(report: &Report) -> (bool, String) {
    match &report.verify {
        Some(v) => (v.pass, v.headline.clone()),
        None => (false, "verify did not run".into()),
    }
}

fn html(
    report: &Report,
    baseline: Option<&Report>,
    rows: &[Row],
    load_plots: &[Vec<String>],
    scaling: Option<&str>,
) -> String {
    let mut h = String::new();
    let (pass, headline) = verdict_line(report);
    let m = &report.machine;
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>ticketbench report {id}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.pass{{background:#d8f5d0}}.fail{{background:#f8d0d0}}
.banner{{padding:12px;font-size:1.2em;border-radius:4px}}img{{max-width:100%;border:1px solid #eee}}.note{{color:#a40}}</style>
</head><body><h1>ticketbench report <code>{id}</code></h1>
<p>{created} &middot; backend <b>{backend}</b></p>
<div class="banner {cls}">verify: {headline}</div>
"#,
        id = esc(&report.run_id),
        created = esc(&report.created_at),
        backend = esc(&report.backend),
        cls = if pass { "pass" } else { "fail" },
        headline = esc(&headline),
    );
    for note in &report.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
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
            "<tr><td>{}</td><td>{:.1} {}</td>",
            esc(&r.what),
            r.now,
            r.unit
        );
        if baseline.is_some() {
            let before = r
                .before
                .map_or("&ndash;".to_owned(), |b| format!("{b:.1} {}", r.unit));
            let _ = write!(h, "<td>{before}</td><td>{}</td>", change(r.now, r.before));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    for (load, names) in report.loads.iter().zip(load_plots) {
        let _ = write!(
            h,
            "<h2>Load run: {} ({})</h2><p>{} users, {} host(s), {:.0} s; generator: {}</p>",
            esc(&load.scenario),
            esc(&plots::model_label(load)),
            load.users,
            load.hosts.len(),
            load.duration_secs,
            esc(&generator_line(load)),
        );
        for name in names {
            let _ = write!(h, "<p><img src=\"plots/{name}.svg\" alt=\"{name}\"></p>");
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
                    "<p>{}; a rate passes with corrected P95 &le; {} ms, errors &le; {:.2}% and the offered rate achieved; {} s per rate.</p>",
                    esc(&quota_label(scale)),
                    scale.p95_bound_ms,
                    scale.max_error_rate * 100.0,
                    scale.step_secs
                );
                h.push_str("<table><tr><th>instances</th><th>TPS</th><th>P95 ms</th><th>efficiency</th><th>closed-model capacity</th><th>over-selling check</th><th>rates tried</th></tr>");
                for p in &scale.points {
                    let (tps, p95) = p
                        .best
                        .as_ref()
                        .map_or(("&ndash;".into(), "&ndash;".into()), |b| {
                            (format!("{:.0}", b.tps), format!("{:.1}", b.p95_ms))
                        });
                    let eff = p
                        .efficiency
                        .map_or("&ndash;".into(), |e| format!("{:.0}%", e * 100.0));
                    let tried: Vec<String> = p
                        .steps
                        .iter()
                        .filter_map(|s| {
                            s.rate.map(|r| {
                                format!("{r:.0}{}", if s.pass { "&#10003;" } else { "&#10007;" })
                            })
                        })
                        .collect();
                    let cap = capacity(p).map_or("&ndash;".into(), |c| format!("{c:.0}/s"));
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td>{tps}</td><td>{p95}</td><td>{eff}</td><td>{cap}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                        p.instances,
                        if p.verify_pass { "pass" } else { "fail" },
                        esc(&p.verify_headline),
                        tried.join(" ")
                    );
                }
                h.push_str("</table>");
                if let Some(d) = scaling_diagnosis(scale) {
                    let _ = write!(h, "<p class=\"note\">{}</p>", esc(&d));
                }
            }
            if let Some(name) = scaling {
                let _ = write!(h, "<p><img src=\"plots/{name}.svg\" alt=\"scaling\"></p>");
            }
        }
    }
    h.push_str("<h2>Files</h2><p><a href=\"report.json\">report.json</a> (raw; pass it to <code>--baseline</code> later) &middot; <a href=\"report.md\">report.md</a>");
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

fn generator_line(load: &RunSummary) -> String {
    match &load.generator {
        Some(g) => format!(
            "{:.1} CPU-s, max RSS {:.1} MiB, limited by {}",
            g.cpu_seconds,
            g.max_rss_kib as f64 / 1024.0,
            g.limited_by
        ),
        None => format!("{} merged process(es)", load.processes),
    }
}

fn markdown(
    report: &Report,
    baseline: Option<&Report>,
    rows: &[Row],
    load_plots: &[Vec<String>],
    scaling: Option<&str>,
) -> String {
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
    md.push_str("\n## Figures\n\n");
    if baseline.is_some() {
        md.push_str("| figure | this run | baseline | change |\n|---|---:|---:|---:|\n");
    } else {
        md.push_str("| figure | this run |\n|---|---:|\n");
    }
    for r in rows {
        if baseline.is_some() {
            let before = r
                .before
                .map_or("–".to_owned(), |b| format!("{b:.1} {}", r.unit));
            let _ = writeln!(
                md,
                "| {} | {:.1} {} | {before} | {} |",
                r.what,
                r.now,
                r.unit,
                change(r.now, r.before)
            );
        } else {
            let _ = writeln!(md, "| {} | {:.1} {} |", r.what, r.now, r.unit);
        }
    }
    for (load, names) in report.loads.iter().zip(load_plots) {
        let _ = writeln!(
            md,
            "\n## Load run: {} ({})\n\n{} users, {} host(s), {:.0} s; generator: {}\n",
            load.scenario,
            plots::model_label(load),
            load.users,
            load.hosts.len(),
            load.duration_secs,
            generator_line(load)
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
                md.push_str("| instances | TPS | P95 ms | efficiency | closed-model capacity | over-selling check |\n|---:|---:|---:|---:|---:|---|\n");
                for p in &scale.points {
                    let (tps, p95) = p.best.as_ref().map_or(("–".into(), "–".into()), |b| {
                        (format!("{:.0}", b.tps), format!("{:.1}", b.p95_ms))
                    });
                    let eff = p
                        .efficiency
                        .map_or("–".into(), |e| format!("{:.0}%", e * 100.0));
                    let cap = capacity(p).map_or("–".into(), |c| format!("{c:.0}/s"));
                    let _ = writeln!(
                        md,
                        "| {} | {tps} | {p95} | {eff} | {cap} | {} |",
                        p.instances, p.verify_headline
                    );
                }
                if let Some(d) = scaling_diagnosis(scale) {
                    let _ = writeln!(md, "\n{d}");
                }
            }
            if let Some(name) = scaling {
                let _ = writeln!(md, "\n![scaling](plots/{name}.png)");
            }
        }
    }
    md
}
