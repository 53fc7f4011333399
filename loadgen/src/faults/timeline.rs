//! What the requests of a faulted run met, in 100 ms bins, and the fault
//! table made of it.
//!
//! The recovery rule is the faults report's (verify's fault table): the
//! rate is purchases served per second; before a fault it is measured from
//! the load's start (or the previous fault's end) to the fault's start;
//! the run has recovered at the first bin after the fault's end from which
//! one second serves at least 90% of that rate. In the open model that
//! rate is at most the offered one: more is a catch-up burst after the
//! previous fault (its backlog served at once), which the run was never
//! asked to sustain. Bins make the counts and
//! the recovery exact to 100 ms, and keep memory flat however long the run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{FaultWindow, Note};

/// The bins' width.
pub const BIN: Duration = Duration::from_millis(100);
const BIN_SECS: f64 = 0.1;
/// The share of the rate before a fault that counts as recovered.
const RECOVERED_SHARE: f64 = 0.9;
/// The shortest time before a fault over which its rate is measured.
const MIN_BEFORE_SECS: f64 = 0.3;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Bin {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Iterations that succeeded (purchases served, for a flash sale).
    pub served: u64,
}

/// Bins from `origin`; shared by the run's users (one short lock each).
pub struct Timeline {
    origin: Instant,
    bins: Mutex<Vec<Bin>>,
}

impl Timeline {
    pub fn new(origin: Instant) -> Self {
        Timeline {
            origin,
            bins: Mutex::new(Vec::new()),
        }
    }

    /// A request answered with `status` (0: no answer) now.
    pub fn request(&self, status: u16) {
        self.at(Instant::now(), |b| match status {
            200..=299 => b.ok += 1,
            400..=499 => b.fail += 1,
            _ => b.unknown += 1,
        });
    }

    /// An iteration that succeeded now.
    pub fn served(&self) {
        self.at(Instant::now(), |b| b.served += 1);
    }

    fn at(&self, when: Instant, add: impl FnOnce(&mut Bin)) {
        let i =
            (when.saturating_duration_since(self.origin).as_millis() / BIN.as_millis()) as usize;
        let mut bins = self.bins.lock().expect("timeline lock");
        if bins.len() <= i {
            bins.resize(i + 1, Bin::default());
        }
        add(&mut bins[i]);
    }

    pub fn bins(&self) -> Vec<Bin> {
        self.bins.lock().expect("timeline lock").clone()
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }
}

/// The fault table: each fault of `notes` (seconds since `origin`, as
/// the bins) in seconds of the measured window, which opened `shift`
/// seconds after the origin and lasted `window_secs`; `offered`, the
/// open model's rate, caps the rate before each fault.
pub fn table(
    notes: &[Note],
    bins: &[Bin],
    (shift, window_secs): (f64, f64),
    offered: Option<f64>,
) -> Vec<FaultWindow> {
    let mut ids: Vec<u64> = notes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Seconds of the window at bin i's start, and the bins of a span.
    let bin_at = |i: usize| i as f64 * BIN_SECS - shift;
    let sum = |from: f64, to: f64, pick: &dyn Fn(&Bin) -> u64| -> u64 {
        bins.iter()
            .enumerate()
            .filter(|(i, _)| (from..to).contains(&bin_at(*i)))
            .map(|(_, b)| pick(b))
            .sum()
    };
    // A fault's span in whole bins, its edges rounded to the nearest
    // bin's: the bin in which a paused target is let go holds the burst
    // of answers it owed, which came after the fault.
    let during = |from: f64, to: f64, pick: &dyn Fn(&Bin) -> u64| -> u64 {
        let half = BIN_SECS / 2.0;
        bins.iter()
            .enumerate()
            .filter(|(i, _)| bin_at(*i) >= from - half && bin_at(*i) + BIN_SECS <= to + half)
            .map(|(_, b)| pick(b))
            .sum()
    };
    let mut previous_end = 0.0_f64;
    let mut rows = Vec::new();
    for id in ids {
        let phases: Vec<&Note> = notes.iter().filter(|n| n.id == id).collect();
        let Some(first) = phases.iter().find(|n| !n.end) else {
            continue;
        };
        let start = first.invoked - shift;
        let end = phases.iter().find(|n| n.end).map(|n| n.completed - shift);
        let until = end.unwrap_or(start);
        let before = start - previous_end;
        let rate_before = (before >= MIN_BEFORE_SECS).then(|| {
            let served = sum(previous_end, start, &|b| b.served) as f64 / before;
            offered.map_or(served, |o| served.min(o))
        });
        let (recovery_ms, recovery) = match (end, rate_before) {
            (None, _) => (None, "the fault's end was never recorded".to_owned()),
            (Some(_), None) => (
                None,
                "rate before not measurable (under 0.3 s of load before it)".to_owned(),
            ),
            (Some(end), Some(rate)) => recover(bins, shift, end, rate, window_secs),
        };
        rows.push(FaultWindow {
            id,
            kind: first.kind.clone(),
            start_secs: start,
            end_secs: end,
            planned_start_secs: first.planned_start,
            planned_duration_secs: first.planned_duration,
            actions_ok: phases.iter().all(|n| n.ok) && end.is_some(),
            actions: phases.iter().map(|n| n.action.clone()).collect(),
            ok: during(start, until, &|b| b.ok),
            fail: during(start, until, &|b| b.fail),
            unknown: during(start, until, &|b| b.unknown),
            rate_before,
            recovery_ms,
            recovery,
        });
        previous_end = previous_end.max(until);
    }
    rows
}

/// When, after `end`, one second served at least 90% of `rate`.
fn recover(
    bins: &[Bin],
    shift: f64,
    end: f64,
    rate: f64,
    window_secs: f64,
) -> (Option<f64>, String) {
    let needed = (rate * RECOVERED_SHARE).ceil() as u64;
    let per_sec = (1.0 / BIN_SECS).round() as usize;
    // The first bin that starts at or after the end.
    let first = ((end + shift) / BIN_SECS).ceil().max(0.0) as usize;
    for i in first..bins.len() {
        let t = i as f64 * BIN_SECS - shift;
        if t + 1.0 > window_secs + 1e-9 {
            break;
        }
        let served: u64 = bins[i..].iter().take(per_sec).map(|b| b.served).sum();
        if served >= needed {
            let ms = ((t - end).max(0.0) * 1000.0).round();
            return (Some(ms), format!("rate back in {ms:.0} ms"));
        }
    }
    (
        None,
        format!("not back within the run (below {needed} purchases in any second after it)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: u64, end: bool, at: f64) -> Note {
        Note {
            id,
            kind: "pause-instance".into(),
            end,
            invoked: at,
            completed: at + 0.01,
            ok: true,
            action: "SIGSTOP".into(),
            planned_start: 2.0,
            planned_duration: 1.0,
        }
    }

    /// 10 purchases a bin (100/s), none while `down` lasts, `back` a bin
    /// after it.
    fn bins(secs: f64, down: (f64, f64), back: u64) -> Vec<Bin> {
        (0..(secs / BIN_SECS) as usize)
            .map(|i| {
                let t = i as f64 * BIN_SECS;
                if (down.0..down.1).contains(&t) {
                    Bin {
                        unknown: 3,
                        ..Bin::default()
                    }
                } else if t >= down.1 {
                    Bin {
                        ok: back,
                        served: back,
                        ..Bin::default()
                    }
                } else {
                    Bin {
                        ok: 10,
                        served: 10,
                        ..Bin::default()
                    }
                }
            })
            .collect()
    }

    #[test]
    fn a_fault_counts_what_it_met_and_when_the_rate_came_back() {
        let notes = [note(0, false, 2.0), note(0, true, 3.0)];
        // Down until 3.5 s, half a second after the fault's end: the first
        // second with 90 served starts at 3.4 s (six bins down, then ten).
        let rows = table(&notes, &bins(8.0, (2.0, 3.5), 10), (0.0, 8.0), None);
        let r = &rows[0];
        assert_eq!((r.start_secs, r.end_secs), (2.0, Some(3.01)));
        // The 10 bins from 2.0 to 3.0 s; the one from 3.0 s (most of it
        // after the end) is not the fault's.
        assert_eq!((r.ok, r.unknown), (0, 30), "{r:?}");
        assert!((r.rate_before.unwrap() - 100.0).abs() < 1e-9);
        let ms = r.recovery_ms.unwrap();
        assert!((ms - 390.0).abs() < 1.0, "{ms}");
    }

    #[test]
    fn a_rate_that_stays_below_90_percent_is_no_recovery() {
        let notes = [note(0, false, 2.0), note(0, true, 3.0)];
        // Back at 8 a bin: 80% of before.
        let rows = table(&notes, &bins(8.0, (2.0, 3.0), 8), (0.0, 8.0), None);
        assert_eq!(rows[0].recovery_ms, None, "{:?}", rows[0]);
        assert!(
            rows[0].recovery.contains("not back"),
            "{}",
            rows[0].recovery
        );
        // A shift moves everything into the window's seconds.
        let rows = table(&notes, &bins(8.0, (2.0, 3.0), 10), (0.5, 7.5), None);
        assert_eq!(rows[0].start_secs, 1.5);
        assert!(rows[0].recovery_ms.unwrap() < 100.0, "{:?}", rows[0]);
    }

    #[test]
    fn a_catch_up_burst_before_a_fault_does_not_raise_the_rate_to_recover() {
        let notes = [note(0, false, 2.0), note(0, true, 3.0)];
        // 100/s offered; the first second served 300 (a previous fault's
        // backlog), then 100/s: 200/s measured before the fault, which a
        // run back at the offered 100/s never reaches.
        let mut b = bins(8.0, (2.0, 3.0), 10);
        for bin in &mut b[..10] {
            bin.served = 30;
        }
        let rows = table(&notes, &b, (0.0, 8.0), None);
        assert_eq!(rows[0].recovery_ms, None, "{:?}", rows[0]);
        let rows = table(&notes, &b, (0.0, 8.0), Some(100.0));
        assert_eq!(rows[0].rate_before, Some(100.0));
        assert!(rows[0].recovery_ms.unwrap() < 100.0, "{:?}", rows[0]);
    }

    #[test]
    fn a_fault_without_an_end_says_so() {
        let rows = table(
            &[note(0, false, 2.0)],
            &bins(4.0, (9.0, 9.0), 10),
            (0.0, 4.0),
            None,
        );
        assert_eq!(rows[0].end_secs, None);
        assert!(!rows[0].actions_ok);
        assert!(rows[0].recovery.contains("never recorded"));
    }
}
