//! Latency recording of our own: every request's latency at microsecond
//! resolution in HdrHistograms, per transaction, raw and corrected for
//! coordinated omission, plus one interval histogram per second that goes to
//! a standard HdrHistogram interval log (so logs of several processes merge
//! exactly) and to the per-second series.
//!
//! Memory is flat however long the run: a fixed set of histograms per
//! transaction and one small point per transaction per second.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::summary::{ProcSample, SeriesPoint, TxSummary};

/// Highest latency a histogram holds, in microseconds (one hour); larger
/// values saturate to it.
pub const MAX_US: u64 = 3_600_000_000;

/// The three histograms each transaction writes to the interval log, by the
/// suffix of their tag.
pub const KINDS: [&str; 3] = ["raw", "corrected", "errors"];

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Raw and corrected latencies of every request, and the raw latencies of
/// the failed ones (so error counts merge exactly too).
#[derive(Clone)]
pub struct Triple {
    pub raw: Histogram<u64>,
    pub corrected: Histogram<u64>,
    pub errors: Histogram<u64>,
}

impl Default for Triple {
    fn default() -> Self {
        Triple {
            raw: histogram(),
            corrected: histogram(),
            errors: histogram(),
        }
    }
}

impl Triple {
    pub fn record(&mut self, raw: Duration, corrected: Duration, ok: bool) {
        let raw = micros(raw);
        self.raw.saturating_record(raw);
        self.corrected.saturating_record(micros(corrected).max(raw));
        if !ok {
            self.errors.saturating_record(raw);
        }
    }

    pub fn kind(&self, kind: &str) -> &Histogram<u64> {
        match kind {
            "raw" => &self.raw,
            "corrected" => &self.corrected,
            _ => &self.errors,
        }
    }

    pub fn kind_mut(&mut self, kind: &str) -> &mut Histogram<u64> {
        match kind {
            "raw" => &mut self.raw,
            "corrected" => &mut self.corrected,
            _ => &mut self.errors,
        }
    }

    pub fn add(&mut self, other: &Triple) {
        for kind in KINDS {
            self.kind_mut(kind)
                .add(other.kind(kind))
                .expect("histograms share bounds");
        }
    }

    fn reset(&mut self) {
        self.raw.reset();
        self.corrected.reset();
        self.errors.reset();
    }

    pub fn count(&self) -> u64 {
        self.raw.len()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.len()
    }

    pub fn point(&self, t: f64, secs: f64) -> SeriesPoint {
        SeriesPoint::from_triple(t, secs, self)
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[derive(Default)]
struct Inner {
    total: BTreeMap<&'static str, Triple>,
    interval: BTreeMap<&'static str, Triple>,
    series: BTreeMap<&'static str, Vec<SeriesPoint>>,
    process: Vec<ProcSample>,
    /// Offset of the current interval's start from `started`.
    interval_start: Duration,
}

/// Shared by every goose user of a run; one short lock per request.
pub struct Recorder {
    started: Instant,
    started_wall: SystemTime,
    inner: Mutex<Inner>,
}

/// What an interval rotation hands to the log writer.
struct Rotation {
    start: Duration,
    length: Duration,
    histograms: Vec<(&'static str, Triple)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn record(&self, tx: &'static str, raw: Duration, corrected: Duration, ok: bool) {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner
            .interval
            .entry(tx)
            .or_default()
            .record(raw, corrected, ok);
    }

    /// Closes the current interval: folds it into the totals and the
    /// series, and returns it for the log.
    fn rotate(&self) -> Rotation {
        let now = self.started.elapsed();
        let mut inner = self.inner.lock().expect("recorder lock");
        let start = inner.interval_start;
        let length = now.saturating_sub(start);
        inner.interval_start = now;
        let mut histograms = Vec::with_capacity(inner.interval.len());
        let Inner {
            total,
            interval,
            series,
            ..
        } = &mut *inner;
        for (name, iv) in interval.iter_mut() {
            if iv.count() == 0 {
                continue;
            }
            total.entry(name).or_default().add(iv);
            series
                .entry(name)
                .or_default()
                .push(iv.point(now.as_secs_f64(), length.as_secs_f64()));
            histograms.push((*name, iv.clone()));
            iv.reset();
        }
        inner.process.push(ProcSample {
            t: now.as_secs_f64(),
            rss_kib: crate::machine::rss_kib().0,
            cpu_seconds: crate::machine::cpu_seconds(),
        });
        Rotation {
            start,
            length,
            histograms,
        }
    }

    /// Per-transaction totals and series so far (after the final rotation
    /// they are the run's).
    pub fn snapshot(
        &self,
    ) -> (
        BTreeMap<String, TxSummary>,
        BTreeMap<String, Vec<SeriesPoint>>,
    ) {
        let inner = self.inner.lock().expect("recorder lock");
        let txs = inner
            .total
            .iter()
            .map(|(name, t)| (name.to_string(), TxSummary::from_triple(t)))
            .collect();
        let series = inner
            .series
            .iter()
            .map(|(name, s)| (name.to_string(), s.clone()))
            .collect();
        (txs, series)
    }

    /// The generator process, sampled once a second.
    pub fn process_samples(&self) -> Vec<ProcSample> {
        self.inner.lock().expect("recorder lock").process.clone()
    }

    /// Total histograms of one transaction (for tests and the merge check).
    pub fn total(&self, tx: &str) -> Option<Triple> {
        self.inner
            .lock()
            .expect("recorder lock")
            .total
            .get(tx)
            .cloned()
    }

    /// Starts the once-a-second rotation, writing each interval to the
    /// interval log at `path`. `metadata` (JSON) goes into a comment line so
    /// `loadgen merge` can tell what each log was.
    pub fn start_log(self: &Arc<Self>, path: &Path, metadata: &str) -> anyhow::Result<LogHandle> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let recorder = Arc::clone(self);
        let metadata = metadata.to_owned();
        let thread = std::thread::Builder::new()
            .name("loadgen-log".into())
            .spawn(move || recorder.log_loop(BufWriter::new(file), &metadata, &stop_rx))?;
        Ok(LogHandle {
            stop: stop_tx,
            thread,
        })
    }

    fn log_loop(
        &self,
        mut file: BufWriter<File>,
        metadata: &str,
        stop: &mpsc::Receiver<()>,
    ) -> anyhow::Result<()> {
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!("{}{metadata}", crate::merge::METADATA_PREFIX))
            .add_comment("values in microseconds; tags are <transaction>.<raw|corrected|errors>")
            .with_start_time(self.started_wall)
            .with_base_time(self.started_wall)
            .with_max_value_divisor(1000.0);
        let mut log = builder.begin_log_with(&mut file, &mut serializer)?;
        let mut tick = 1u64;
        loop {
            let due = self.started + Duration::from_secs(tick);
            let wait = due.saturating_duration_since(Instant::now());
            let stopping = !matches!(
                stop.recv_timeout(wait),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            let rotation = self.rotate();
            for (name, triple) in &rotation.histograms {
                for kind in KINDS {
                    let h = triple.kind(kind);
                    if kind == "errors" && h.is_empty() {
                        continue;
                    }
                    let tag = format!("{name}.{kind}");
                    log.write_histogram(h, rotation.start, rotation.length, Tag::new(&tag))
                        .map_err(|e| anyhow::anyhow!("writing interval log: {e:?}"))?;
                }
            }
            if stopping {
                break;
            }
            tick = self.started.elapsed().as_secs() + 1;
        }
        drop(log);
        file.flush()?;
        Ok(())
    }
}

/// Stops the rotation thread: one last interval, then the log is flushed.
pub struct LogHandle {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl LogHandle {
    pub fn finish(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("interval log thread panicked"))?
    }
}
