//! The job's progress: a bar or spinner per step on a terminal, a line
//! per step in CI logs, and the same words as the live dashboard's status.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Ends a step's bar with `msg`; without a terminal (CI logs), where
/// indicatif draws nothing, the line is printed instead.
pub(super) fn done(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    }
    crate::dashboard::say(&msg);
    bar.finish_with_message(msg);
}

pub(super) fn spinner(msg: impl Into<String>) -> ProgressBar {
    let msg = msg.into();
    crate::dashboard::say(&msg);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar that fills over `secs` seconds (for timed steps).
pub(super) fn timed(msg: impl Into<String>, secs: f64) -> ProgressBar {
    let msg = msg.into();
    crate::dashboard::say(&msg);
    let bar = ProgressBar::new((secs * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() && ticker.position() < ticker.length().unwrap_or(0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ticker.inc(1);
        }
    });
    bar
}
