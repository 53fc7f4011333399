//! One module per check; each judges what a scenario recorded and returns a
//! `CheckReport` with a minimal witness on failure.

pub mod display;
pub mod fifo;
pub mod oversell;
pub mod seat_events;
pub mod seatmap;
pub mod stores;
pub mod tokens;

/// Nanoseconds as milliseconds with one decimal, for witnesses.
pub(crate) fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// At most `n` items of a witness list, with a count of the rest.
pub(crate) fn first<T: ToString>(items: &[T], n: usize) -> Vec<String> {
    let mut out: Vec<String> = items.iter().take(n).map(ToString::to_string).collect();
    if items.len() > n {
        out.push(format!("... and {} more", items.len() - n));
    }
    out
}

/// Counts `items`, if there are any, as one failure (worded from their
/// number by `what`) and adds the first `n` of them to the witness.
pub(crate) fn fault<T: ToString>(
    failures: &mut Vec<String>,
    witness: &mut Vec<String>,
    items: &[T],
    n: usize,
    what: impl FnOnce(usize) -> String,
) {
    if !items.is_empty() {
        failures.push(what(items.len()));
        witness.extend(first(items, n));
    }
}
