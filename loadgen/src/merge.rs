//! `loadgen merge`: several HdrHistogram interval logs (one per loadgen
//! process or machine) into one log and one summary. Histograms add
//! exactly, so the merged percentiles are those of one histogram of every
//! sample, not an average of percentiles.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::{Triple, KINDS, WINDOW_PREFIX};
use crate::summary::{Model, RunSummary, TxSummary, WindowLog};

/// The comment line in each log that says what run it belongs to.
pub const METADATA_PREFIX: &str = "ticketbench-run: ";

/// What a run's log says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogMeta {
    pub run_id: String,
    pub scenario: String,
    pub headline: String,
    pub model: Model,
    pub users: usize,
    pub hosts: Vec<String>,
    pub started_at: String,
    /// Which shard of a sharded run the log is (`--shard`), and the whole
    /// run's offered rate; absent for unsharded runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_total: Option<f64>,
}

/// One interval log read back: histograms per transaction, by absolute
/// second (seconds since the epoch at the interval's start).
pub struct ParsedLog {
    pub meta: Option<LogMeta>,
    pub intervals: BTreeMap<u64, BTreeMap<String, Triple>>,
    /// Absolute start and end of the logged span, in seconds.
    pub span: (f64, f64),
    /// What the log's process counted around its measured window (the
    /// processes' counts added, once merged); `None` for logs written
    /// before the window was measured.
    pub window: Option<WindowLog>,
}

pub fn read_log(path: &Path) -> anyhow::Result<ParsedLog> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_log(&bytes).with_context(|| format!("parsing {}", path.display()))
}

pub fn parse_log(bytes: &[u8]) -> anyhow::Result<ParsedLog> {
    let text = std::str::from_utf8(bytes).context("interval log is not UTF-8")?;
    let meta = text
        .lines()
        .find_map(|l| l.strip_prefix('#')?.strip_prefix(METADATA_PREFIX))
        .map(serde_json::from_str::<LogMeta>)
        .transpose()
        .context("run metadata comment")?;
    let window = text
        .lines()
        .find_map(|l| l.strip_prefix('#')?.strip_prefix(WINDOW_PREFIX))
        .map(serde_json::from_str::<WindowLog>)
        .transpose()
        .context("window comment")?;
    let mut base = 0.0f64;
    let mut intervals: BTreeMap<u64, BTreeMap<String, Triple>> = BTreeMap::new();
    let mut span = (f64::MAX, f64::MIN);
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry.map_err(|e| anyhow::anyhow!("{e:?}"))? {
            LogEntry::BaseTime(t) => base = t.as_secs_f64(),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(iv) => {
                let tag = iv.tag().map(|t| t.as_str()).unwrap_or("");
                let Some((tx, kind)) = tag.rsplit_once('.') else {
                    bail!("interval without a <transaction>.<kind> tag: {tag:?}");
                };
                if !KINDS.contains(&kind) {
                    bail!("unknown histogram kind in tag {tag:?}");
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(iv.encoded_histogram())
                    .context("interval histogram is not base64")?;
                let h: Histogram<u64> = deserializer
                    .deserialize(&mut raw.as_slice())
                    .map_err(|e| anyhow::anyhow!("interval histogram: {e:?}"))?;
                let start = base + iv.start_timestamp().as_secs_f64();
                let end = start + iv.duration().as_secs_f64();
                span = (span.0.min(start), span.1.max(end));
                // Each interval is filed under the second its end falls in,
                // so the once-a-second intervals of processes started at
                // different moments line up.
                let second = (end - 1e-6).floor().max(0.0) as u64;
                intervals
                    .entry(second)
                    .or_default()
                    .entry(tx.to_owned())
                    .or_default()
                    .kind_mut(kind)
                    .add(&h)
                    .map_err(|e| anyhow::anyhow!("adding histograms: {e:?}"))?;
            }
        }
    }
    if intervals.is_empty() {
        bail!("no interval histograms in the log");
    }
    Ok(ParsedLog {
        meta,
        intervals,
        span,
        window,
    })
}

/// Adds the logs together: what one process recording everything would
/// have logged, as far as histograms can tell.
pub fn merge_logs(logs: Vec<ParsedLog>) -> anyhow::Result<ParsedLog> {
    let mut merged = ParsedLog {
        meta: None,
        intervals: BTreeMap::new(),
        span: (f64::MAX, f64::MIN),
        window: None,
    };
    let all_windowed = logs.iter().all(|l| l.window.is_some());
    for log in logs {
        if let Some(w) = log.window.as_ref().filter(|_| all_windowed) {
            merged.window.get_or_insert_with(WindowLog::default).add(w);
        }
        merged.span = (merged.span.0.min(log.span.0), merged.span.1.max(log.span.1));
        merged.meta = match (merged.meta.take(), log.meta) {
            (None, m) | (m, None) => m,
            (Some(mut a), Some(b)) => {
                if a.scenario != b.scenario {
                    bail!(
                        "logs of different scenarios ({} and {}) do not merge",
                        a.scenario,
                        b.scenario
                    );
                }
                a.users += b.users;
                for h in b.hosts {
                    if !a.hosts.contains(&h) {
                        a.hosts.push(h);
                    }
                }
                a.model = match (a.model, b.model) {
                    (Model::Open { rate: x }, Model::Open { rate: y }) => {
                        Model::Open { rate: x + y }
                    }
                    _ => Model::Closed,
                };
                a.started_at = a.started_at.min(b.started_at);
                // The merged log is the whole run's, no one shard's.
                a.shard = None;
                Some(a)
            }
        };
        for (second, txs) in log.intervals {
            let slot = merged.intervals.entry(second).or_default();
            for (tx, triple) in txs {
                slot.entry(tx).or_default().add(&triple);
            }
        }
    }
    Ok(merged)
}

impl ParsedLog {
    /// Totals per transaction over the whole log.
    pub fn totals(&self) -> BTreeMap<String, Triple> {
        let mut totals: BTreeMap<String, Triple> = BTreeMap::new();
        for txs in self.intervals.values() {
            for (tx, triple) in txs {
                totals.entry(tx.clone()).or_default().add(triple);
            }
        }
        totals
    }

    pub fn summary(&self, processes: usize) -> RunSummary {
        let meta = self.meta.clone().unwrap_or(LogMeta {
            run_id: "merged".into(),
            scenario: "unknown".into(),
            headline: String::new(),
            model: Model::Closed,
            users: 0,
            hosts: Vec::new(),
            started_at: String::new(),
            shard: None,
            offered_total: None,
        });
        let start = self.span.0;
        let mut series: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for (second, txs) in &self.intervals {
            for (tx, triple) in txs {
                let end = (*second + 1) as f64 - start;
                series
                    .entry(tx.clone())
                    .or_default()
                    .push(triple.point(end, 1.0));
            }
        }
        let mut summary = RunSummary {
            run_id: meta.run_id,
            scenario: meta.scenario,
            headline: meta.headline,
            model: meta.model,
            users: meta.users,
            hosts: meta.hosts,
            started_at: meta.started_at,
            duration_secs: self
                .window
                .as_ref()
                .map_or((self.span.1 - self.span.0).max(0.0), |w| w.secs),
            transactions: self
                .totals()
                .iter()
                .map(|(tx, t)| (tx.clone(), TxSummary::from_triple(t)))
                .collect(),
            series,
            schedule: None,
            generator: None,
            files: BTreeMap::new(),
            processes,
            tps: None,
            offered: None,
            achieved: None,
            window: None,
            backlog: None,
            thresholds: Vec::new(),
            faults: Vec::new(),
        };
        if let Some(window) = &self.window {
            summary.apply_window(window);
        }
        summary
    }

    /// Writes the log back out in the interval log format, one interval
    /// per second.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut file = BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let base = self.intervals.keys().next().copied().unwrap_or(0);
        let base_time = SystemTime::UNIX_EPOCH + Duration::from_secs(base);
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        if let Some(meta) = &self.meta {
            builder.add_comment(&format!(
                "{METADATA_PREFIX}{}",
                serde_json::to_string(meta)?
            ));
        }
        builder
            .add_comment("merged by loadgen merge; values in microseconds")
            .with_start_time(base_time)
            .with_base_time(base_time)
            .with_max_value_divisor(1000.0);
        let mut log = builder.begin_log_with(&mut file, &mut serializer)?;
        if let Some(window) = &self.window {
            log.write_comment(&format!(
                "{WINDOW_PREFIX}{}",
                serde_json::to_string(window)?
            ))?;
        }
        for (second, txs) in &self.intervals {
            for (tx, triple) in txs {
                for kind in KINDS {
                    let h = triple.kind(kind);
                    if kind == "errors" && h.is_empty() {
                        continue;
                    }
                    let tag = format!("{tx}.{kind}");
                    log.write_histogram(
                        h,
                        Duration::from_secs(second - base),
                        Duration::from_secs(1),
                        Tag::new(&tag),
                    )
                    .map_err(|e| anyhow::anyhow!("writing merged log: {e:?}"))?;
                }
            }
        }
        drop(log);
        file.flush()?;
        Ok(())
    }
}

/// `loadgen merge`: reads the logs, writes the merged log and its summary.
pub fn run(inputs: &[std::path::PathBuf], out_dir: &Path) -> anyhow::Result<RunSummary> {
    if inputs.is_empty() {
        bail!("merge needs at least one interval log");
    }
    let logs = inputs
        .iter()
        .map(|p| read_log(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::shard::check(&logs.iter().map(|l| l.meta.as_ref()).collect::<Vec<_>>())?;
    let merged = merge_logs(logs)?;
    std::fs::create_dir_all(out_dir)?;
    merged.write(&out_dir.join("latency.hlog"))?;
    let mut summary = merged.summary(inputs.len());
    summary.files.insert("hdrLog".into(), "latency.hlog".into());
    summary.write(&out_dir.join("summary.json"))?;
    Ok(summary)
}
