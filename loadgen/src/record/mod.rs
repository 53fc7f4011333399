//! Latency recording of our own: every request's latency at microsecond
//! resolution in HdrHistograms, per transaction, raw and corrected for
//! coordinated omission, plus one interval histogram per second that goes to
//! a standard HdrHistogram interval log (so logs of several processes merge
//! exactly) and to the per-second series.
//!
//! The measured window (see [`crate::summary::Window`]) opens with the
//! first iteration and lasts the run's duration: each completion is counted
//! as inside or after it by its own time, and the intervals are cut at the
//! window's seconds, with one ending exactly where the window does, so the
//! series inside the window add up to its counts.
//!
//! Memory is flat however long the run: a fixed set of histograms per
//! transaction and one small point per transaction per second.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::summary::{Counts, ProcSample, SeriesPoint, TxSummary, WindowLog};

/// The comment line that ends each log with its window's counts.
pub const WINDOW_PREFIX: &str = "ticketbench-window: ";

const SECOND: Duration = Duration::from_secs(1);

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
    /// Completions at or after `boundary`, made before the log thread
    /// closed the current interval: they belong to the next one.
    pending: BTreeMap<&'static str, Triple>,
    series: BTreeMap<&'static str, Vec<SeriesPoint>>,
    process: Vec<ProcSample>,
    /// Offset of the current interval's start from `started`.
    interval_start: Duration,
    /// Offset of the current interval's end from `started`.
    boundary: Duration,
    /// Completions inside the window and after it, per transaction.
    inside: BTreeMap<&'static str, Counts>,
    after: BTreeMap<&'static str, Counts>,
}

/// Shared by every goose user of a run; one short lock per request.
pub struct Recorder {
    started: Instant,
    started_wall: SystemTime,
    /// The measured window's length (`None`: no window, intervals follow
    /// `started`).
    window_len: Option<Duration>,
    /// Open model: iterations the schedule plans.
    planned: Option<u64>,
    /// When the window opened, as an offset from `started`.
    window_start: OnceLock<Duration>,
    iterations_started: AtomicU64,
    /// Requests the target refused with 429: its rate limit, not its
    /// capacity, answered them.
    rate_limited: AtomicU64,
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
    /// A recorder without a measured window.
    pub fn new() -> Self {
        Recorder {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            window_len: None,
            planned: None,
            window_start: OnceLock::new(),
            iterations_started: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                boundary: SECOND,
                ..Inner::default()
            }),
        }
    }

    /// A recorder whose window lasts `len` once opened; `planned` is the
    /// open model's number of scheduled iterations.
    pub fn with_window(len: Duration, planned: Option<u64>) -> Self {
        Recorder {
            window_len: Some(len),
            planned,
            ..Self::new()
        }
    }

    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Opens the measured window now, unless it is open already; returns
    /// its start and end (the end is the start for a recorder without a
    /// window).
    pub fn open_window(&self) -> (Instant, Instant) {
        let start = *self.window_start.get_or_init(|| {
            let mut inner = self.inner.lock().expect("recorder lock");
            let now = self.started.elapsed();
            // Nothing is recorded before the first iteration: the current
            // interval starts with the window.
            inner.interval_start = now;
            inner.boundary = now + self.window_len.map_or(SECOND, |l| l.min(SECOND));
            now
        });
        let len = self.window_len.unwrap_or_default();
        (self.started + start, self.started + start + len)
    }

    /// One more iteration started.
    pub fn iteration_started(&self) {
        self.iterations_started.fetch_add(1, Ordering::Relaxed);
    }

    /// The window as offsets from `started`, once opened.
    fn window(&self) -> Option<(Duration, Duration)> {
        let start = *self.window_start.get()?;
        Some((start, start + self.window_len?))
    }

    /// The end of the interval after the one ending at `after`: whole
    /// seconds from the window's start, one boundary at its end, whole
    /// seconds from there on.
    fn next_boundary(&self, after: Duration) -> Duration {
        match self.window() {
            Some((start, end)) if after < end => {
                let k = after.saturating_sub(start).as_secs() + 1;
                (start + Duration::from_secs(k)).min(end)
            }
            Some((_, end)) => end + Duration::from_secs((after - end).as_secs() + 1),
            None => Duration::from_secs(after.as_secs() + 1),
        }
    }

    pub fn record(&self, tx: &'static str, raw: Duration, corrected: Duration, ok: bool) {
        let mut inner = self.inner.lock().expect("recorder lock");
        let now = self.started.elapsed();
        if let Some((_, end)) = self.window() {
            let counts = if now < end {
                &mut inner.inside
            } else {
                &mut inner.after
            };
            counts.entry(tx).or_default().add(ok);
        }
        let interval = if now >= inner.boundary {
            &mut inner.pending
        } else {
            &mut inner.interval
        };
        interval.entry(tx).or_default().record(raw, corrected, ok);
    }

    /// What was counted around the window (`None` before it opened or
    /// without one).
    pub fn window_log(&self) -> Option<WindowLog> {
        let len = self.window_len?;
        self.window_start.get()?;
        let inner = self.inner.lock().expect("recorder lock");
        let counts = |m: &BTreeMap<&'static str, Counts>| {
            m.iter()
                .map(|(tx, c)| ((*tx).to_owned(), *c))
                .collect::<BTreeMap<_, _>>()
        };
        Some(WindowLog {
            secs: len.as_secs_f64(),
            started: self.iterations_started.load(Ordering::Relaxed),
            planned: self.planned,
            inside: counts(&inner.inside),
            after: counts(&inner.after),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
        })
    }

    /// Counts one request the target refused with 429 (also recorded as a
    /// failed request).
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the current interval at its boundary (`last`: at the
    /// moment, with whatever is pending): folds it into the totals and the
    /// series, and returns it for the log.
    fn rotate(&self, last: bool) -> Rotation {
        let mut inner = self.inner.lock().expect("recorder lock");
        let now = self.started.elapsed();
        let end = if last { now } else { inner.boundary };
        let start = inner.interval_start;
        let length = end.saturating_sub(start);
        let origin = self.window_start.get().copied().unwrap_or_default();
        let t = end.saturating_sub(origin).as_secs_f64();
        inner.interval_start = end;
        let Inner {
            total,
            interval,
            pending,
            series,
            ..
        } = &mut *inner;
        if last {
            for (name, p) in std::mem::take(pending) {
                interval.entry(name).or_default().add(&p);
            }
        }
        let mut histograms = Vec::with_capacity(interval.len());
        for (name, iv) in interval.iter_mut() {
            if iv.count() == 0 {
                continue;
            }
            total.entry(name).or_default().add(iv);
            series
                .entry(name)
                .or_default()
                .push(iv.point(t, length.as_secs_f64()));
            histograms.push((*name, iv.clone()));
            iv.reset();
        }
        if !last {
            *interval = std::mem::take(pending);
            inner.boundary = self.next_boundary(end);
        }
        inner.process.push(ProcSample {
            t,
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

    /// Iterations started so far and the completions of `tx` (inside the
    /// window or after it), for the progress line.
    pub fn progress(&self, tx: &str) -> (u64, Counts) {
        let inner = self.inner.lock().expect("recorder lock");
        let mut done = inner.inside.get(tx).copied().unwrap_or_default();
        let after = inner.after.get(tx).copied().unwrap_or_default();
        done.ok += after.ok;
        done.failed += after.failed;
        (self.iterations_started.load(Ordering::Relaxed), done)
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
        let mut write = |rotation: Rotation| -> anyhow::Result<()> {
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
            Ok(())
        };
        loop {
            let boundary = self.inner.lock().expect("recorder lock").boundary;
            let now = self.started.elapsed();
            if now >= boundary {
                write(self.rotate(false))?;
                continue;
            }
            // Until the window opens, look again every 50 ms: opening it
            // moves the boundary.
            let mut wait = boundary - now;
            if self.window_len.is_some() && self.window_start.get().is_none() {
                wait = wait.min(Duration::from_millis(50));
            }
            if !matches!(
                stop.recv_timeout(wait),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
        let boundary = self.inner.lock().expect("recorder lock").boundary;
        if self.started.elapsed() >= boundary {
            write(self.rotate(false))?;
        }
        write(self.rotate(true))?;
        if let Some(window) = self.window_log() {
            log.write_comment(&format!(
                "{WINDOW_PREFIX}{}",
                serde_json::to_string(&window)?
            ))?;
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

#[cfg(test)]
mod tests;
