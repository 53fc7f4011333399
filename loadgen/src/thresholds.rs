//! Threshold gates, k6 style: `flash_sale.p95 < 50ms`, `errors < 0.1%`,
//! `tps >= 180`, `efficiency@4 >= 0.9`. Parsed and checked against the
//! command before anything is sent (a typo must not cost a run), judged
//! on the run's own figures afterwards, and written where CI reads them:
//! the summary's JSON, the human summary and `junit.xml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::scale::ScaleReport;
use crate::scenarios::Kind;
use crate::summary::{Percentiles, RunSummary};

/// loadgen's exit statuses (README, `loadgen --help`).
pub mod exit {
    /// The run completed and every threshold passed.
    pub const OK: u8 = 0;
    /// The run could not be carried out (target unreachable, set-up
    /// refused, files not writable).
    pub const RUN_FAILED: u8 = 1;
    /// Bad command line: an unknown option, a malformed threshold, a
    /// metric the command does not measure. Nothing was sent.
    pub const USAGE: u8 = 2;
    /// The run completed and at least one threshold failed.
    pub const THRESHOLD_FAILED: u8 = 3;
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ThresholdArgs {
    /// A gate on the run's figures, e.g. 'flash_sale.p95 < 50ms',
    /// 'errors < 0.1%', 'tps >= 180' (scale: 'efficiency@4 >= 0.9');
    /// repeatable. See README, "Thresholds".
    #[arg(long = "threshold", value_name = "EXPR")]
    pub threshold: Vec<String>,
    /// A file of thresholds: one expression a line, `#` starts a comment.
    #[arg(long = "thresholds", value_name = "FILE")]
    pub thresholds_file: Option<PathBuf>,
}

impl ThresholdArgs {
    /// Every threshold given, parsed and checked against what `scope`
    /// measures.
    pub fn parse(&self, scope: &Scope) -> anyhow::Result<Vec<Threshold>> {
        let mut lines: Vec<(String, String)> = self
            .threshold
            .iter()
            .map(|e| ("--threshold".to_owned(), e.clone()))
            .collect();
        if let Some(file) = &self.thresholds_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if !line.is_empty() {
                    lines.push((format!("{}:{}", file.display(), n + 1), line.to_owned()));
                }
            }
        }
        lines
            .into_iter()
            .map(|(origin, expr)| {
                let t = Threshold::parse(&expr)
                    .and_then(|t| scope.check(&t).map(|()| t))
                    .map_err(|e| anyhow::anyhow!("threshold '{expr}' ({origin}): {e}"))?;
                Ok(t)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Stat {
    fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "p50" => Stat::P50,
            "p90" => Stat::P90,
            "p95" => Stat::P95,
            "p99" => Stat::P99,
            "p999" => Stat::P999,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            _ => return None,
        })
    }

    fn of(self, p: &Percentiles) -> f64 {
        let us = match self {
            Stat::P50 => p.p50 as f64,
            Stat::P90 => p.p90 as f64,
            Stat::P95 => p.p95 as f64,
            Stat::P99 => p.p99 as f64,
            Stat::P999 => p.p999 as f64,
            Stat::Max => p.max as f64,
            Stat::Mean => p.mean,
        };
        us / 1000.0
    }
}

/// What a threshold is about. Latencies are in ms, shares are fractions.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A transaction's latency (`None`: the scenario's headline); raw
    /// unless `corrected` (measured from the open model's schedule).
    Latency {
        tx: Option<String>,
        stat: Stat,
        corrected: bool,
    },
    /// A transaction's share of failed completions.
    Errors {
        tx: Option<String>,
    },
    /// Successful iterations per second inside the measured window.
    Tps,
    /// Open model: TPS over the offered rate.
    Achieved,
    /// Scaling run, at `n` instances.
    Efficiency(usize),
    ScaleTps(usize),
    ScaleP95(usize),
}

impl Metric {
    fn unit(&self) -> Unit {
        match self {
            Metric::Latency { .. } | Metric::ScaleP95(_) => Unit::Ms,
            Metric::Errors { .. } | Metric::Achieved | Metric::Efficiency(_) => Unit::Share,
            Metric::Tps | Metric::ScaleTps(_) => Unit::PerSec,
        }
    }

    pub fn is_scale(&self) -> bool {
        matches!(
            self,
            Metric::Efficiency(_) | Metric::ScaleTps(_) | Metric::ScaleP95(_)
        )
    }

    fn tx(&self) -> Option<&str> {
        match self {
            Metric::Latency { tx, .. } | Metric::Errors { tx } => tx.as_deref(),
            _ => None,
        }
    }

    fn parse(s: &str) -> Result<Metric, String> {
        if let Some((name, n)) = s.split_once('@') {
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("'{n}' after @ is not an instance count"))?;
            return match name {
                "efficiency" => Ok(Metric::Efficiency(n)),
                "tps" => Ok(Metric::ScaleTps(n)),
                "p95" => Ok(Metric::ScaleP95(n)),
                _ => Err(format!(
                    "unknown metric '{name}@{n}' (per instance count: efficiency@N, tps@N, p95@N)"
                )),
            };
        }
        let (tx, field) = match s.rsplit_once('.') {
            Some((tx, field)) if !tx.is_empty() => (Some(tx.to_owned()), field),
            Some(_) => return Err(format!("unknown metric '{s}'")),
            None => (None, s),
        };
        match (tx.is_none(), field) {
            (true, "tps") => return Ok(Metric::Tps),
            (true, "achieved") => return Ok(Metric::Achieved),
            (_, "errors") => return Ok(Metric::Errors { tx }),
            _ => {}
        }
        let (stat, corrected) = match field.strip_suffix("_corrected") {
            Some(stat) => (stat, true),
            None => (field, false),
        };
        match Stat::parse(stat) {
            Some(stat) => Ok(Metric::Latency {
                tx,
                stat,
                corrected,
            }),
            None => Err(format!(
                "unknown metric '{s}' (known: tps, achieved, errors, [TX.]errors, \
                 [TX.]p50|p90|p95|p99|p999|max|mean[_corrected], efficiency@N, tps@N, p95@N)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ms,
    Share,
    PerSec,
}

impl Unit {
    /// A bound in this unit: ms (`us`, `ms`, `s`; bare numbers are ms, as
    /// in k6), a share (`%` or a fraction), a rate (`/s` optional).
    fn parse(self, s: &str) -> Result<f64, String> {
        let number = |t: &str| -> Result<f64, String> {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("'{s}' is not a non-negative number"))
        };
        match self {
            Unit::Ms => {
                for (suffix, scale) in [("us", 0.001), ("µs", 0.001), ("ms", 1.0), ("s", 1000.0)] {
                    if let Some(v) = s.strip_suffix(suffix) {
                        return number(v).map(|v| v * scale);
                    }
                }
                number(s)
            }
            Unit::Share => match s.strip_suffix('%') {
                Some(v) => number(v).map(|v| v / 100.0),
                None => number(s),
            },
            Unit::PerSec => number(s.strip_suffix("/s").unwrap_or(s)),
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Unit::Ms => format!("{v:.3} ms"),
            Unit::Share => format!("{:.3}%", v * 100.0),
            Unit::PerSec => format!("{v:.1}/s"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub expr: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's unit (ms, fraction, per second).
    pub bound: f64,
}

impl Threshold {
    /// `METRIC OP VALUE`, OP one of `<`, `<=`, `>`, `>=`.
    pub fn parse(expr: &str) -> Result<Threshold, String> {
        let at = expr
            .find(['<', '>', '='])
            .ok_or("expected METRIC OP VALUE with OP one of <, <=, >, >=")?;
        let (metric, rest) = expr.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            [b'>', ..] => (Op::Gt, &rest[1..]),
            _ => return Err("the operator must be one of <, <=, >, >=".into()),
        };
        let metric = metric.trim();
        let value = value.trim();
        if metric.is_empty() {
            return Err("no metric before the operator".into());
        }
        if value.is_empty() {
            return Err("no value after the operator".into());
        }
        if value.contains(['<', '>', '=']) {
            return Err("one operator per threshold".into());
        }
        let metric = Metric::parse(metric)?;
        let bound = metric.unit().parse(value)?;
        if metric.unit() == Unit::Share && bound > 1.0 && !matches!(metric, Metric::Efficiency(_)) {
            return Err(format!("'{value}' is above 100%"));
        }
        Ok(Threshold {
            expr: expr.trim().to_owned(),
            metric,
            op,
            bound,
        })
    }
}

/// What a command measures: the scenarios of its load runs (a job has
/// two) and whether it scales.
pub struct Scope {
    pub command: &'static str,
    pub scenarios: Vec<Kind>,
    pub scale: bool,
}

impl Scope {
    fn check(&self, t: &Threshold) -> Result<(), String> {
        if t.metric.is_scale() && !self.scale {
            return Err(format!(
                "`loadgen {}` does not scale; per-instance-count metrics are for `scale` and `job`",
                self.command
            ));
        }
        if !t.metric.is_scale() && self.scenarios.is_empty() {
            return Err(format!(
                "`loadgen {}` measures efficiency@N, tps@N and p95@N only",
                self.command
            ));
        }
        if let Some(tx) = t.metric.tx() {
            if !self
                .scenarios
                .iter()
                .any(|k| transactions(*k).contains(&tx))
            {
                let known: Vec<&str> = self
                    .scenarios
                    .iter()
                    .flat_map(|k| transactions(*k).iter().copied())
                    .collect();
                return Err(format!(
                    "unknown transaction '{tx}' (this run records: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The transactions each scenario records (the headline first).
pub fn transactions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::FlashSale => &["flash_sale", "enter", "wait", "status", "reserve"],
        Kind::Browse => &["browse", "event", "ticket"],
        Kind::Mixed => &[
            "mixed", "enter", "wait", "status", "reserve", "event", "ticket",
        ],
        Kind::HoldAndPay => &[
            "hold_and_pay",
            "charge",
            "enter",
            "wait",
            "status",
            "seats",
            "hold",
            "pay",
        ],
    }
}

/// One threshold, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Judged {
    pub expression: String,
    /// In `unit`; absent when the run recorded nothing to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// `ms`, `share` (a fraction) or `per_second`.
    pub unit: String,
    pub pass: bool,
    /// "observed 12.345 ms" or why there is no value.
    pub detail: String,
}

/// Judges `t` on what was measured: the load runs (the first one answers
/// for the headline) and the scaling run.
pub fn judge(t: &Threshold, loads: &[&RunSummary], scale: Option<&ScaleReport>) -> Judged {
    let observed = observe(&t.metric, loads, scale);
    let unit = t.metric.unit();
    let (mut pass, mut detail) = match &observed {
        Ok(v) => (
            t.op.holds(*v, t.bound),
            format!("observed {}", unit.show(*v)),
        ),
        Err(why) => (false, why.clone()),
    };
    if let (Metric::Efficiency(n), Some(r), Ok(_)) = (&t.metric, scale, &observed) {
        if let Some(p) = r.points.iter().find(|p| p.instances == *n) {
            if let (Some(i), Some(v)) = (p.efficiency_interval, p.verdict) {
                let (lo, hi) = (unit.show(i.lo), unit.show(i.hi));
                detail += &format!(
                    " (interval {lo}-{hi}; against the 90% target: {})",
                    v.word()
                );
            }
            // A flagged efficiency measured the machine, not the fleets:
            // no bound on it, either way, is shown to hold.
            if p.flagged() {
                pass = false;
                detail += &format!(", not judged: {}", p.flags().join("; "));
            }
        }
    }
    Judged {
        expression: t.expr.clone(),
        observed: observed.ok(),
        unit: match unit {
            Unit::Ms => "ms",
            Unit::Share => "share",
            Unit::PerSec => "per_second",
        }
        .into(),
        pass,
        detail,
    }
}

fn observe(
    metric: &Metric,
    loads: &[&RunSummary],
    scale: Option<&ScaleReport>,
) -> Result<f64, String> {
    let load = |tx: Option<&str>| -> Result<(&RunSummary, String), String> {
        let pick = match tx {
            None => loads.first().copied(),
            Some(tx) => loads
                .iter()
                .copied()
                .find(|s| s.transactions.contains_key(tx))
                .or_else(|| loads.first().copied()),
        };
        let s = pick.ok_or("no load run was measured")?;
        Ok((s, tx.unwrap_or(&s.headline).to_owned()))
    };
    let point = |n: usize| {
        scale
            .and_then(|r| r.points.iter().find(|p| p.instances == n))
            .ok_or(format!("the scaling run did not measure {n} instances"))
    };
    match metric {
        Metric::Latency {
            tx,
            stat,
            corrected,
        } => {
            let (s, name) = load(tx.as_deref())?;
            let t = s
                .transactions
                .get(&name)
                .filter(|t| t.count > 0)
                .ok_or(format!("no '{name}' was recorded"))?;
            Ok(stat.of(if *corrected { &t.corrected } else { &t.raw }))
        }
        Metric::Errors { tx } => {
            let (s, name) = load(tx.as_deref())?;
            let t = s
                .transactions
                .get(&name)
                .filter(|t| t.count > 0)
                .ok_or(format!("no '{name}' was recorded"))?;
            Ok(t.error_rate())
        }
        Metric::Tps => Ok(load(None)?.0.tps()),
        Metric::Achieved => load(None)?
            .0
            .achieved
            .ok_or_else(|| "a closed-model run has no offered rate".into()),
        Metric::Efficiency(n) => point(*n)?
            .efficiency
            .ok_or(format!("no efficiency at {n} instances")),
        Metric::ScaleTps(n) => point(*n)?.tps.ok_or(format!("no TPS at {n} instances")),
        Metric::ScaleP95(n) => point(*n)?.p95_ms.ok_or(format!("no P95 at {n} instances")),
    }
}

mod output;
pub use output::{human, write_junit};

#[cfg(test)]
mod tests;
