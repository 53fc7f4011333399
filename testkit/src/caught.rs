//! Negative controls: a fault the checker must catch in at least k of n
//! runs (a race may be lost now and then, never often).

use std::fmt::Write as _;
use std::future::Future;

/// What one run of a negative control showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trial {
    /// The fault was caught; the witness lines that show it.
    Caught(Vec<String>),
    /// The fault went unnoticed; what the run reported instead.
    Missed(String),
}

/// Runs `trial` `n` times, one after another (it is given the run's
/// number, from 0), and fails unless at least `k` runs caught the fault
/// `what` names ("over-selling"). The failure lists every miss and the
/// catches' witnesses; a pass prints the count and each catch's first
/// witness line. Returns the number of catches.
pub async fn caught_in<F, Fut>(k: usize, n: usize, what: &str, mut trial: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Trial>,
{
    let mut trials = Vec::with_capacity(n);
    for run in 0..n {
        trials.push(trial(run).await);
    }
    let caught = trials
        .iter()
        .filter(|t| matches!(t, Trial::Caught(_)))
        .count();
    let mut report = String::new();
    for (run, t) in trials.iter().enumerate() {
        let _ = match t {
            Trial::Caught(witness) => writeln!(
                report,
                "run {run} caught it: {}",
                witness.first().map_or("(no witness)", String::as_str)
            ),
            Trial::Missed(why) => writeln!(report, "run {run} missed it: {why}"),
        };
    }
    assert!(
        caught >= k,
        "{what} caught in only {caught} of {n} runs\n{report}"
    );
    eprintln!("{what} caught in {caught} of {n} runs\n{report}");
    caught
}

#[cfg(test)]
mod tests {
    use super::{caught_in, Trial};

    fn every_third_missed(run: usize) -> Trial {
        if run % 3 == 2 {
            Trial::Missed(format!("run {run} passed"))
        } else {
            Trial::Caught(vec![format!("witness {run}")])
        }
    }

    #[tokio::test]
    async fn counts_the_catches() {
        let caught = caught_in(
            6,
            9,
            "the fault",
            |run| async move { every_third_missed(run) },
        )
        .await;
        assert_eq!(caught, 6);
    }

    #[tokio::test]
    #[should_panic(expected = "the fault caught in only 6 of 9 runs\nrun 0 caught it: witness 0")]
    async fn fails_below_k_with_the_witnesses() {
        caught_in(
            7,
            9,
            "the fault",
            |run| async move { every_third_missed(run) },
        )
        .await;
    }
}
