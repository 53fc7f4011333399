//! The measured window: completions are counted inside or after it by
//! their own time, the intervals are cut at its end, and the log carries
//! its counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Recorder;
use crate::summary::{Counts, SeriesPoint};

/// Headline completions of the series points ending at or before `t`
/// (`before`), or after it.
fn series_counts(points: &[SeriesPoint], t: f64, before: bool) -> Counts {
    let mut c = Counts::default();
    for p in points.iter().filter(|p| (p.t <= t + 1e-9) == before) {
        c.ok += p.count - p.errors;
        c.failed += p.errors;
    }
    c
}

#[test]
fn the_series_inside_the_window_add_up_to_its_counts() {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-window-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latency.hlog");
    let recorder = Arc::new(Recorder::with_window(Duration::from_millis(1500), Some(10)));
    let meta = r#"{"runId":"w","scenario":"it","headline":"it","model":{"kind":"open","rate":10.0},"users":1,"hosts":[],"startedAt":"x"}"#;
    let log = recorder.start_log(&path, meta).unwrap();
    // Opened a little after the log started, as a run's first iteration.
    std::thread::sleep(Duration::from_millis(120));
    let (start, end) = recorder.open_window();
    assert_eq!(end - start, Duration::from_millis(1500));
    let mut i = 0u32;
    while Instant::now() < end + Duration::from_millis(900) {
        recorder.iteration_started();
        recorder.record(
            "it",
            Duration::from_millis(1),
            Duration::from_millis(1),
            i % 7 != 0,
        );
        i += 1;
        std::thread::sleep(Duration::from_micros(700));
    }
    log.finish().unwrap();

    let window = recorder.window_log().unwrap();
    let inside = window.inside["it"];
    let after = window.after["it"];
    assert!(inside.ok > 0 && after.ok > 0, "{window:?}");
    assert_eq!(inside.total() + after.total(), u64::from(i));
    assert_eq!(window.started, u64::from(i));
    let (_, series) = recorder.snapshot();
    let points = &series["it"];
    // One interval ends where the window does, and the window's seconds
    // are whole from its start.
    assert!(points.iter().any(|p| p.t == 1.5), "{points:?}");
    assert!(points.iter().any(|p| p.t == 1.0), "{points:?}");
    assert_eq!(series_counts(points, 1.5, true), inside);
    assert_eq!(series_counts(points, 1.5, false), after);

    // The log ends with the same counts, for `loadgen merge`.
    let parsed = crate::merge::read_log(&path).unwrap();
    assert_eq!(parsed.window.as_ref(), Some(&window));
    let summary = parsed.summary(1);
    assert_eq!(summary.duration_secs, 1.5);
    assert_eq!(summary.window.unwrap().completed, inside.ok);
    assert_eq!(summary.backlog.unwrap().completed_after, after.total());
    std::fs::remove_dir_all(&dir).unwrap();
}
