//! The seat-hold comparison (`scripts/run.sh --seat-comparison`): the
//! rows `scripts/bench-seat-lock.sh` printed, one per load run, folded
//! into one table row per configuration, hot-seat share and offered rate
//! (the median of the rounds with their range), plus per configuration
//! and share the highest rate whose hold P95 stayed within the bound in
//! every round, beside the figures the design documents claim. It lives
//! in report.json so that the report's pages carry it like any section.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Configurations in the order the table lists them.
const ORDER: [&str; 5] = ["conditional", "row-lock", "redis-lock", "cache", "delayed"];

/// What the design documents claim (measured elsewhere, hardware and load
/// not stated): (design, mean, P95, TPS).
pub const CLAIMS: [(&str, &str, &str, &str); 2] = [
    ("Redis distributed lock only", "45 ms", "80 ms", "12,000"),
    (
        "Redis lock plus a database row lock",
        "65 ms",
        "120 ms",
        "8,500",
    ),
];

/// The comparison as the report shows it; cells are already formatted
/// ("median (min-max)") so that report.json reads as the table does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeatComparison {
    /// The hold P95 a rate must stay within, in every round, to count as
    /// met.
    pub bound_ms: f64,
    pub rows: Vec<SeatRow>,
    pub at_bound: Vec<SeatAtBound>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeatRow {
    pub config: String,
    pub hot_share: String,
    pub offered: f64,
    pub rounds: usize,
    pub purchases_per_s: String,
    pub hold_mean_ms: String,
    pub hold_p95_ms: String,
    pub hold_p99_ms: String,
    pub flow_p95_ms: String,
    pub conflicts: String,
    pub lock_retries: String,
    pub lock_timeouts: String,
    /// "3/3 pass", or with the other verdicts named.
    pub check6: String,
    /// True when every round's check 6 passed.
    pub check6_pass: bool,
    pub worst_lapse_ms: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeatAtBound {
    pub config: String,
    pub hot_share: String,
    /// The highest offered rate met in every round, if any.
    pub rate_met: Option<f64>,
    pub purchases_per_s: Option<String>,
}

type Record = BTreeMap<String, String>;
/// Rows of one configuration, share and rate, sorted as the table lists
/// them: (configuration rank, share|configuration, rate bits).
type Groups = BTreeMap<(usize, String, u64), (String, f64, Vec<Record>)>;

impl SeatComparison {
    /// Reads bench-seat-lock.sh's TSV (a header row, then one row per
    /// load run).
    pub fn from_tsv(path: &Path, bound_ms: f64) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the seat comparison {}", path.display()))?;
        Self::parse(&text, bound_ms).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str, bound_ms: f64) -> anyhow::Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .context("empty: no header row")?
            .split('\t')
            .collect();
        for needed in ["config", "hot", "rate", "hold_p95_ms", "check6"] {
            anyhow::ensure!(header.contains(&needed), "no `{needed}` column");
        }
        let mut groups = Groups::new();
        for (i, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split('\t').collect();
            anyhow::ensure!(
                cells.len() == header.len(),
                "row {}: {} cells, the header has {}",
                i + 2,
                cells.len(),
                header.len()
            );
            let rec: Record = header
                .iter()
                .zip(&cells)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let rate: f64 = rec["rate"]
                .parse()
                .with_context(|| format!("row {}: rate {:?}", i + 2, rec["rate"]))?;
            let config = rec["config"].clone();
            let rank = ORDER
                .iter()
                .position(|c| *c == config)
                .unwrap_or(ORDER.len());
            let hot = rec["hot"].clone();
            // Sorted by configuration, then share, then rate.
            let hot_key: f64 = hot.parse().unwrap_or(f64::MAX);
            let key = (rank, format!("{hot_key:020.6}|{config}"), rate.to_bits());
            groups
                .entry(key)
                .or_insert_with(|| (config, rate, Vec::new()))
                .2
                .push(rec);
        }
        anyhow::ensure!(!groups.is_empty(), "no rows under the header");
        let rows: Vec<SeatRow> = groups
            .values()
            .map(|(c, r, recs)| row(c, *r, recs))
            .collect();
        // Groups sort by configuration, share, then rate: one
        // configuration and share's rates are neighbours, the highest last.
        let groups: Vec<&(String, f64, Vec<Record>)> = groups.values().collect();
        let at_bound = groups
            .chunk_by(|a, b| a.0 == b.0 && a.2[0]["hot"] == b.2[0]["hot"])
            .map(|rates| {
                let met = rates.iter().rev().find(|(_, _, recs)| {
                    recs.iter()
                        .all(|x| num(x, "hold_p95_ms").is_some_and(|p| p <= bound_ms))
                });
                SeatAtBound {
                    config: rates[0].0.clone(),
                    hot_share: rates[0].2[0]["hot"].clone(),
                    rate_met: met.map(|(_, rate, _)| *rate),
                    purchases_per_s: met.map(|(_, _, recs)| cell(&nums(recs, "flows_per_s"), 1)),
                }
            })
            .collect();
        Ok(Self {
            bound_ms,
            rows,
            at_bound,
        })
    }

    /// Every row's check 6 passed in every round.
    pub fn all_passed(&self) -> bool {
        self.rows.iter().all(|r| r.check6_pass)
    }

    /// The section of report.md.
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "## Seat-hold strategies (hold_and_pay)\n\n\
             | config | hot share | offered/s | purchases/s | hold mean ms | hold P95 ms | hold P99 ms \
             | flow P95 ms | conflicts | lock retries | lock timeouts | check 6 | worst lapse after TTL ms |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n",
        );
        for r in &self.rows {
            md.push_str(&format!("| {} |\n", r.cells().join(" | ")));
        }
        md.push_str(&format!("\n{}\n\n", self.bound_line()));
        md.push_str(
            "| config | hot share | rate met | purchases/s there |\n|---|---:|---:|---:|\n",
        );
        for a in &self.at_bound {
            md.push_str(&format!("| {} |\n", a.cells().join(" | ")));
        }
        md.push_str("\nWhat the design documents claim (measured elsewhere, on hardware and loads not stated):\n\n");
        md.push_str("| claim | mean | P95 | TPS |\n|---|---:|---:|---:|\n");
        for (what, mean, p95, tps) in CLAIMS {
            md.push_str(&format!("| {what} | {mean} | {p95} | {tps} |\n"));
        }
        md.push_str(&format!("\n{}\n", LEGEND));
        md
    }

    /// The section of report.html (cells escaped by `esc`).
    pub fn html(&self, esc: impl Fn(&str) -> String) -> String {
        let mut h = String::from(
            "<h2 id=\"seat-comparison\">Seat-hold strategies (hold_and_pay)</h2><table><tr><th>config</th>\
             <th>hot share</th><th>offered/s</th><th>purchases/s</th><th>hold mean ms</th><th>hold P95 ms</th>\
             <th>hold P99 ms</th><th>flow P95 ms</th><th>conflicts</th><th>lock retries</th><th>lock timeouts</th>\
             <th>check 6</th><th>worst lapse after TTL ms</th></tr>",
        );
        for r in &self.rows {
            h.push_str("<tr>");
            for (i, c) in r.cells().iter().enumerate() {
                let class = match (i, r.check6_pass) {
                    (11, true) => " class=\"pass\"",
                    (11, false) => " class=\"fail\"",
                    _ => "",
                };
                h.push_str(&format!("<td{class}>{}</td>", esc(c)));
            }
            h.push_str("</tr>");
        }
        h.push_str(&format!(
            "</table><p>{}</p><table><tr><th>config</th><th>hot share</th><th>rate met</th><th>purchases/s there</th></tr>",
            esc(&self.bound_line())
        ));
        for a in &self.at_bound {
            h.push_str("<tr>");
            for c in a.cells() {
                h.push_str(&format!("<td>{}</td>", esc(&c)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table><p>What the design documents claim (measured elsewhere, on hardware and loads not stated):</p><table><tr><th>claim</th><th>mean</th><th>P95</th><th>TPS</th></tr>");
        for (what, mean, p95, tps) in CLAIMS {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{mean}</td><td>{p95}</td><td>{tps}</td></tr>",
                esc(what)
            ));
        }
        h.push_str(&format!("</table><p class=\"note\">{}</p>", esc(LEGEND)));
        h
    }

    fn bound_line(&self) -> String {
        format!(
            "TPS at the bound (hold P95 <= {} ms in every round, the highest offered rate that met it):",
            self.bound_ms
        )
    }
}

const LEGEND: &str = "Cells: the median of the rounds with the range (min-max). \
    purchases/s: iterations completed in the measured window per second; conflicts: holds \
    refused SEAT_TAKEN; lock retries/timeouts: the redis-lock's busy acquires and give-ups \
    (server counters); check 6: verify's seat-map check against the same server right after \
    each load run; worst lapse: check 6's latest lapse of a hold after its TTL.";

impl SeatRow {
    fn cells(&self) -> Vec<String> {
        vec![
            self.config.clone(),
            self.hot_share.clone(),
            format!("{}", self.offered),
            self.purchases_per_s.clone(),
            self.hold_mean_ms.clone(),
            self.hold_p95_ms.clone(),
            self.hold_p99_ms.clone(),
            self.flow_p95_ms.clone(),
            self.conflicts.clone(),
            self.lock_retries.clone(),
            self.lock_timeouts.clone(),
            self.check6.clone(),
            self.worst_lapse_ms.clone(),
        ]
    }
}

impl SeatAtBound {
    fn cells(&self) -> Vec<String> {
        vec![
            self.config.clone(),
            self.hot_share.clone(),
            self.rate_met.map_or("none".into(), |r| format!("{r}")),
            self.purchases_per_s.clone().unwrap_or_else(|| "-".into()),
        ]
    }
}

fn row(config: &str, offered: f64, recs: &[Record]) -> SeatRow {
    let failed = recs
        .iter()
        .filter(|r| r.get("achieved").is_some_and(|a| a == "FAILED"))
        .count();
    let verdicts: Vec<&str> = recs.iter().map(|r| r["check6"].as_str()).collect();
    let passed = verdicts.iter().filter(|v| **v == "PASS").count();
    let mut check6 = format!("{passed}/{} pass", verdicts.len());
    if passed < verdicts.len() {
        let others: Vec<&str> = verdicts.iter().copied().filter(|v| *v != "PASS").collect();
        check6.push_str(&format!(" ({})", others.join(", ")));
    }
    let mut purchases = cell(&nums(recs, "flows_per_s"), 1);
    if failed > 0 {
        purchases.push_str(&format!(", {failed} run(s) failed"));
    }
    SeatRow {
        config: config.to_owned(),
        hot_share: recs[0]["hot"].clone(),
        offered,
        rounds: recs.len(),
        purchases_per_s: purchases,
        hold_mean_ms: cell(&nums(recs, "hold_mean_ms"), 1),
        hold_p95_ms: cell(&nums(recs, "hold_p95_ms"), 1),
        hold_p99_ms: cell(&nums(recs, "hold_p99_ms"), 1),
        flow_p95_ms: cell(&nums(recs, "flow_p95_ms"), 1),
        conflicts: cell(&nums(recs, "hold_refused"), 0),
        lock_retries: cell(&nums(recs, "lock_retries"), 0),
        lock_timeouts: cell(&nums(recs, "lock_timeouts"), 0),
        check6,
        check6_pass: passed == verdicts.len(),
        worst_lapse_ms: cell(&nums(recs, "check6_worst_lapse_ms"), 0),
    }
}

fn num(rec: &Record, key: &str) -> Option<f64> {
    rec.get(key).and_then(|v| v.parse().ok())
}

fn nums(recs: &[Record], key: &str) -> Vec<f64> {
    recs.iter().filter_map(|r| num(r, key)).collect()
}

/// "median (min-max)", the median alone for one value, "-" for none.
fn cell(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    if n == 1 {
        return format!("{median:.digits$}");
    }
    format!(
        "{median:.digits$} ({:.digits$}-{:.digits$})",
        v[0],
        v[n - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "round\tconfig\thot\trate\tachieved\thold_mean_ms\thold_p95_ms\thold_p99_ms\tflow_p95_ms\tflows_per_s\thold_refused\tlock_retries\tlock_timeouts\tcheck6\tcheck6_worst_lapse_ms
1\tredis-lock\t0\t50\t1.00\t6\t9\t12\t25\t50\t0\t1\t0\tPASS\t158
1\tconditional\t0\t50\t1.00\t6.3\t11.9\t16.5\t33.3\t50.0\t0\t0\t0\tPASS\t273
1\tconditional\t0\t150\t1.00\t29.8\t75.2\t127.6\t270.8\t149.4\t6\t0\t0\tPASS\t332
2\tconditional\t0\t50\t1.00\t5.7\t8.9\t11.7\t25.6\t49.0\t0\t0\t0\tPASS\t249
2\tconditional\t0\t150\t0.90\t20\t130\t140\t300\t140\t3\t0\t0\tFAIL\t900
3\tconditional\t0\t50\t1.00\t6.7\t11.0\t14.9\t31.7\t50.0\t0\t0\t0\tPASS\t286
";

    #[test]
    fn folds_the_rounds_into_median_and_range_in_the_configurations_order() {
        let c = SeatComparison::parse(TSV, 100.0).unwrap();
        let keys: Vec<(&str, f64)> = c
            .rows
            .iter()
            .map(|r| (r.config.as_str(), r.offered))
            .collect();
        assert_eq!(
            keys,
            [
                ("conditional", 50.0),
                ("conditional", 150.0),
                ("redis-lock", 50.0)
            ]
        );
        let r = &c.rows[0];
        assert_eq!(r.rounds, 3);
        assert_eq!(r.hold_p95_ms, "11.0 (8.9-11.9)");
        assert_eq!(r.purchases_per_s, "50.0 (49.0-50.0)");
        assert_eq!(r.check6, "3/3 pass");
        // Two rounds: the median is their mean.
        assert_eq!(c.rows[1].hold_p95_ms, "102.6 (75.2-130.0)");
        assert_eq!(c.rows[1].check6, "1/2 pass (FAIL)");
        assert!(!c.all_passed());
    }

    #[test]
    fn a_rate_is_met_only_when_every_round_stayed_within_the_bound() {
        let c = SeatComparison::parse(TSV, 100.0).unwrap();
        let conditional = c
            .at_bound
            .iter()
            .find(|a| a.config == "conditional")
            .unwrap();
        // 150/s broke the bound in round 2 (130 ms), so 50/s is the rate met.
        assert_eq!(conditional.rate_met, Some(50.0));
        let loose = SeatComparison::parse(TSV, 200.0).unwrap();
        assert_eq!(loose.at_bound[0].rate_met, Some(150.0));
        let tight = SeatComparison::parse(TSV, 5.0).unwrap();
        assert!(tight.at_bound.iter().all(|a| a.rate_met.is_none()));
        assert!(tight.markdown().contains("| conditional | 0 | none | - |"));
    }

    #[test]
    fn a_malformed_table_is_refused_with_the_row_named() {
        let short = format!("{TSV}1\tconditional\t0\n");
        let e = SeatComparison::parse(&short, 100.0).unwrap_err();
        assert!(format!("{e:#}").contains("row 8"), "{e:#}");
        assert!(SeatComparison::parse("round\tconfig\n", 100.0).is_err());
    }
}
