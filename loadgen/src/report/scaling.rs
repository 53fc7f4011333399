//! What both pages say about the scaling run, in the same words: the
//! quota and its calibration, each fleet size's cells (median and
//! interval of TPS, P95 and efficiency, the verdict, what limited it),
//! the fitted model, and the notes under the table.

use crate::scale::speed;
use crate::scale::stats::{median, spread, Interval, Verdict};
use crate::scale::{Point, ScaleReport};

pub(super) fn quota_label(scale: &ScaleReport) -> String {
    if scale.points.is_empty() {
        return "none (no scaling run)".into();
    }
    let from = scale
        .calibration
        .as_ref()
        .map_or(String::new(), |c| format!(", {}", c.quota_from));
    match scale.quota {
        crate::cgroup::Flavour::None if scale.fleet.starts_with("the user's") => {
            "no quota from loadgen: the deployment sizes its own instances".into()
        }
        crate::cgroup::Flavour::None => {
            "no CPU quota (--no-cpu-quota): instances share the machine freely".into()
        }
        f => {
            let period = scale.cfs_period_us.map_or(String::new(), |p| {
                format!(
                    ", CFS period {:.0} ms (a throttled instance may stall up to {:.1} ms)",
                    p as f64 / 1000.0,
                    p as f64 / 1000.0 * (1.0 - scale.cpus_per_instance).max(0.0)
                )
            });
            format!(
                "{:.2} CPU per instance (cgroup {}{period}{from})",
                scale.cpus_per_instance,
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )
        }
    }
}

/// What a rate had to do to pass, and how often and how finely each
/// fleet size was measured.
pub(super) fn bounds(scale: &ScaleReport) -> String {
    let achieved = scale
        .min_achieved
        .map_or("the offered rate achieved".to_owned(), |a| {
            format!(
                "at least {:.0}% of the offered rate achieved inside the measured window",
                a * 100.0
            )
        });
    let repeats = if scale.repeats > 1 {
        format!(
            "; {} repeats per fleet size in interleaved order, each on fresh fleets, each searched \
             to a bracket of {:.0}%; TPS is the median with the repeats' min-max",
            scale.repeats,
            scale.resolution * 100.0
        )
    } else {
        String::new()
    };
    format!(
        "a rate passes with corrected P95 <= {} ms, errors <= {:.2}% and {achieved}; {} s per \
         rate{repeats}",
        scale.p95_bound_ms,
        scale.max_error_rate * 100.0,
        scale.step_secs
    )
}

/// The calibration, in one sentence.
pub(super) fn calibration_line(scale: &ScaleReport) -> Option<String> {
    let c = scale.calibration.as_ref()?;
    let bracket = c.bracket.map_or(String::new(), |b| {
        format!(" (passed {:.0}/s, failed {:.0}/s)", b.passed, b.failed)
    });
    let mut cpu = c.cpu_ms_per_purchase.map_or(String::new(), |ms| {
        format!("; the instances used {ms:.2} ms of CPU per purchase")
    });
    if let Some(s) = &c.sizing {
        let model = match (s.background, s.cpu_ms_per_purchase, s.second) {
            (Some(bg), Some(ms), Some(t)) => format!(
                ", and {:.0}/s at {:.2} CPU in a second trial (the line through the two: \
                 {bg:.3} CPU fixed plus {ms:.2} ms per purchase)",
                t.rate, t.cpus
            ),
            (Some(bg), Some(ms), None) => format!(
                " (fitted: {bg:.3} CPU of background work plus {ms:.2} ms per purchase, the \
                 bound met at {:.0}% of its quota)",
                s.used_at_bound * 100.0
            ),
            _ => " (in proportion: its steps allowed no fit)".into(),
        };
        cpu += &format!(
            "; one instance at a trial quota of {:.2} CPU sustained {:.0}/s within the bounds \
             (open model){model}, so one instance needs {:.3} CPU for its share of the headroom",
            s.trial_cpus, s.trial_rate, s.cpus
        );
    }
    let expected = c.expected_largest.map_or(String::new(), |x| {
        let largest = scale.points.iter().map(|p| p.instances).max().unwrap_or(1);
        format!("; {largest} instances at the chosen quota are expected to sustain about {x:.0}/s")
    });
    Some(format!(
        "Calibration: the shared stack's ceiling with {} unconstrained instances is {:.0}/s{bracket}{cpu}; \
         headroom (half the ceiling) {:.0}/s{expected}.",
        c.instances, c.ceiling, c.headroom
    ))
}

fn interval(i: Option<Interval>, scale: f64, digits: usize) -> String {
    i.map_or(String::new(), |i| {
        format!(" [{:.d$}–{:.d$}]", i.lo * scale, i.hi * scale, d = digits)
    })
}

/// One fleet size's cells, `dash` where nothing was measured; a flagged
/// efficiency is followed by `mark` and the flag's words.
pub(super) struct Cells {
    pub tps: String,
    pub p95: String,
    pub efficiency: String,
    pub verdict: String,
    pub repeats: String,
    pub limit: String,
}

impl Cells {
    pub fn of(p: &Point, dash: &str, mark: &str) -> Self {
        let tps = p.tps.map_or(dash.into(), |t| {
            format!("{t:.0}{}", interval(p.tps_interval, 1.0, 0))
        });
        let p95 = p.p95_ms.map_or(dash.into(), |t| {
            format!("{t:.1}{}", interval(p.p95_interval, 1.0, 1))
        });
        let efficiency = p.efficiency.map_or(dash.into(), |e| {
            let text = format!(
                "{:.0}%{}",
                e * 100.0,
                p.efficiency_interval.map_or(String::new(), |i| format!(
                    " [{:.0}%–{:.0}%]",
                    i.lo * 100.0,
                    i.hi * 100.0
                ))
            );
            p.flags()
                .iter()
                .fold(text, |text, flag| format!("{text} {mark} {flag}"))
        });
        let repeats: Vec<String> = p
            .repeats
            .iter()
            .map(|r| match (r.tps(), r.bracket) {
                (Some(t), Some(b)) => format!("{t:.0} ({:.0}–{:.0})", b.passed, b.failed),
                (Some(t), None) => format!("{t:.0} (not bracketed)"),
                (None, _) => "none passed".into(),
            })
            .collect();
        Cells {
            tps,
            p95,
            efficiency,
            verdict: p.verdict.map_or(dash.into(), |v| v.word().into()),
            repeats: if repeats.is_empty() {
                dash.into()
            } else {
                repeats.join(", ")
            },
            limit: p.limit.as_ref().map_or(dash.into(), |l| {
                format!("{} ({:.0}%)", l.name, l.utilisation * 100.0)
            }),
        }
    }
}

/// The fitted model and what it predicts.
pub(super) fn model_line(scale: &ScaleReport) -> Option<String> {
    let m = scale.model.as_ref()?;
    let peak = m.peak_instances.map_or(
        "throughput never falls (no coherency cost)".to_owned(),
        |n| format!("throughput peaks near {n:.1} instances"),
    );
    let predicted: Vec<String> = m
        .predicted
        .iter()
        .map(|(n, t)| format!("TPS({n}) ≈ {t:.0}"))
        .collect();
    Some(format!(
        "Universal Scalability Law fitted to every repeat: lambda {:.1}/s, contention sigma {:.4}, \
         coherency kappa {:.5} (rms error {:.1}%); {peak}. Predicted, not measured: {}.",
        m.fit.lambda,
        m.fit.sigma,
        m.fit.kappa,
        m.fit.rms_relative_error * 100.0,
        predicted.join(", ")
    ))
}

/// The explanation under a table with a flagged efficiency.
pub(super) fn flag_note(scale: &ScaleReport) -> Option<String> {
    scale.points.iter().any(|p| p.efficiency_flagged).then(|| {
        "Efficiency is flagged when even its interval's low end is above 100%: N instances that \
         share nothing cannot do more than N times one, so one instance's TPS was underestimated or \
         the machine was busier during its steps. Treat those figures as a measurement problem."
            .to_owned()
    })
}

/// Fleet sizes with a repeat that found no passing rate: their spread
/// leaves that repeat out, so their verdict is at most inconclusive.
pub(super) fn incomplete_note(scale: &ScaleReport) -> Option<String> {
    let sizes: Vec<String> = scale
        .points
        .iter()
        .filter(|p| p.tps.is_some() && p.repeats.iter().any(|r| r.tps().is_none()))
        .map(|p| p.instances.to_string())
        .collect();
    (!sizes.is_empty()).then(|| {
        format!(
            "At {} instance(s) a repeat found no passing rate: its capacity lies below every rate \
             it tried, how far is unknown, so the spread leaves it out and efficiency there (and, \
             for the first size, everywhere) is at most inconclusive and never flagged.",
            sizes.join(", ")
        )
    })
}

/// What limited each fleet size, with its figures at the deciding step.
pub(super) fn limits_note(scale: &ScaleReport) -> Option<String> {
    let lines: Vec<String> = scale
        .points
        .iter()
        .filter_map(|p| {
            let l = p.limit.as_ref()?;
            Some(format!(
                "{} instance(s): {} at {:.0}% of its limit ({})",
                p.instances,
                l.name,
                l.utilisation * 100.0,
                l.detail
            ))
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "What limited each size, where its bound broke: {}.",
            lines.join(". ")
        )
    })
}

/// Fleets where no offered rate met the bounds in any repeat, with each
/// rate's reason.
pub(super) fn unmet_note(scale: &ScaleReport) -> Option<String> {
    let lines: Vec<String> = scale
        .points
        .iter()
        .filter(|p| p.tps.is_none() && !p.repeats.is_empty())
        .map(|p| {
            let reasons: Vec<String> = p
                .all_steps()
                .filter_map(|s| {
                    let r = s.rate?;
                    Some(format!(
                        "{r:.0}/s: {}",
                        s.reason.as_deref().unwrap_or("did not pass")
                    ))
                })
                .collect();
            format!(
                "{} instance(s): no offered rate met the bounds ({})",
                p.instances,
                if reasons.is_empty() {
                    "none tried".into()
                } else {
                    reasons.join("; ")
                }
            )
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "Not met: {}. TPS and efficiency at that size are not measured.",
            lines.join(". ")
        )
    })
}

/// Why an efficiency interval is as wide as it is: the two fleet sizes'
/// spreads it pairs, as shares of their medians, beside the search's own
/// resolution, for every size whose verdict is not conclusive.
pub(super) fn precision_note(scale: &ScaleReport) -> Option<String> {
    let base = scale.points.first()?;
    let share = |p: &Point| {
        let (t, i) = (p.tps?, p.tps_interval?);
        (t > 0.0).then(|| (i.lo, i.hi, (i.hi - i.lo) / t * 100.0))
    };
    let (b_lo, b_hi, b_share) = share(base)?;
    let lines: Vec<String> = scale
        .points
        .iter()
        .skip(1)
        .filter(|p| p.verdict == Some(Verdict::Inconclusive))
        .filter_map(|p| {
            let i = p.efficiency_interval?;
            let (lo, hi, own) = share(p)?;
            Some(format!(
                "at {} the interval is {:.0} points wide: TPS({}) ranged {lo:.0}-{hi:.0}/s over \
                 its repeats ({own:.0}% of its median) and TPS({}) {b_lo:.0}-{b_hi:.0}/s \
                 ({b_share:.0}%)",
                p.instances,
                i.width() * 100.0,
                p.instances,
                base.instances
            ))
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "What kept the verdict inconclusive: {}; the search alone allows {:.0}% per repeat, so \
             the rest is the repeats disagreeing (what each part used is below).{}",
            lines.join("; "),
            scale.resolution * 100.0,
            repeat_costs(base).unwrap_or_default()
        )
    })
}

/// What a fleet size's repeats paid per purchase at their best passing
/// rates: the instances' CPU per purchase and the share of their quota
/// they used, repeat by repeat (in the run's order). Under one quota,
/// repeats that reached different rates either paid different CPU time
/// for each purchase or met the latency bound at a different share of the
/// quota; the note gives both.
fn repeat_costs(p: &Point) -> Option<String> {
    let mut repeats: Vec<_> = p.repeats.iter().collect();
    repeats.sort_by_key(|r| r.order);
    let costs: Vec<(f64, f64, f64, Option<f64>)> = repeats
        .iter()
        .filter_map(|r| {
            let best = r.best.as_ref()?;
            let usage = best.usage.as_ref()?;
            let used = usage.quota_used()?;
            (best.tps > 0.0).then(|| {
                (
                    best.tps,
                    usage.instances_cpu() / best.tps * 1000.0,
                    used,
                    usage.cpu_waiting,
                )
            })
        })
        .collect();
    if costs.len() < 2 {
        return None;
    }
    let range = |values: Vec<f64>| {
        values
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(l, h), &v| (l.min(v), h.max(v)))
    };
    let (lo, hi) = range(costs.iter().map(|c| c.1).collect());
    let (used_lo, used_hi) = range(costs.iter().map(|c| c.2).collect());
    let each: Vec<String> = costs
        .iter()
        .map(|(tps, ms, used, waiting)| {
            let waited = waiting.map_or(String::new(), |w| {
                format!("; a task waiting for a CPU {:.0}% of the time", w * 100.0)
            });
            format!(
                "{tps:.0}/s at {ms:.2} ms ({:.0}% of quota{waited})",
                used * 100.0
            )
        })
        .collect();
    Some(format!(
        " At their best passing rates, in the run's order, the repeats of {} instance(s) served {}: \
         under the same quota the instances' CPU per purchase differed by {:.0}% between repeats \
         of the same code, and at those rates they used {:.0}-{:.0}% of it.",
        p.instances,
        each.join(", "),
        (hi - lo) / lo * 100.0,
        used_lo * 100.0,
        used_hi * 100.0
    ))
}

/// How long some task of the machine waited for a CPU during the run's
/// passing steps and during its failing ones (probes aside). The kernel
/// counts a throttled instance's tasks as waiting too, so the figure mixes
/// the machine's contention with the instances' own quota; the note says
/// so rather than name either.
pub(super) fn contention_note(scale: &ScaleReport) -> Option<String> {
    let waits = |pass: bool| -> Vec<f64> {
        scale
            .points
            .iter()
            .flat_map(Point::all_steps)
            .filter(|s| s.rate.is_some() && s.pass == pass)
            .filter_map(|s| s.usage.as_ref()?.cpu_waiting)
            .collect()
    };
    let (passed, failed) = (waits(true), waits(false));
    if passed.is_empty() || failed.is_empty() {
        return None;
    }
    let describe = |w: &[f64], what: &str| {
        let i = spread(w).expect("not empty");
        format!(
            "{} {what} steps {:.0}% at the median ({:.0}-{:.0}%)",
            w.len(),
            median(w).expect("not empty") * 100.0,
            i.lo * 100.0,
            i.hi * 100.0
        )
    };
    Some(format!(
        "Waiting for a CPU (/proc/pressure/cpu: the share of a step's window in which some \
         runnable task of the machine did not run, for want of a free core or because its \
         instance's quota was spent): {}; {}.",
        describe(&passed, "passing"),
        describe(&failed, "failing")
    ))
}

/// Every note under the scaling table, in order.
pub(super) fn notes(scale: &ScaleReport) -> Vec<String> {
    let mut notes: Vec<String> = scale
        .warnings
        .iter()
        .map(|w| format!("Warning: {w}."))
        .collect();
    notes.extend(
        [
            calibration_line(scale),
            model_line(scale),
            flag_note(scale),
            speed::note(&scale.points),
            incomplete_note(scale),
            unmet_note(scale),
            precision_note(scale),
            super::shortfall::note(&scale.points),
            contention_note(scale),
            limits_note(scale),
        ]
        .into_iter()
        .flatten(),
    );
    notes
}
