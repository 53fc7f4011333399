//! The pause check against the reference server: it passes on both
//! backends, and catches a pause that is not obeyed (`--unsafe-pause`) and
//! a resume that admits out of entry order (`--unsafe-fifo`), each with its
//! witness.

mod common;

use common::{embedded, options, reference};
use testkit::Backend;
use verify::{run_against, CheckName, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_passes_on_the_embedded_server() {
    let (server, target) = embedded(&[]).await;
    let run = run_against(&target, &options(&[CheckName::Pause]))
        .await
        .unwrap();
    server.stop().await.unwrap();
    assert!(run.verdict.pass, "{}", run.verdict.human());
    let report = &run.verdict.checks[0];
    assert_eq!(report.check, "pause");
    assert_eq!(
        report.details["admissionOrder"],
        serde_json::json!([1, 2, 3, 4])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_passes_on_the_real_stack() {
    let Some(real) = Backend::real() else { return };
    let server = reference(&real, &[]).await;
    let target = Target::external(&server.base, Some(&server.admin_token)).unwrap();
    let run = run_against(&target, &options(&[CheckName::Pause]))
        .await
        .unwrap();
    server.stop().await.unwrap();
    assert!(run.verdict.pass, "{}", run.verdict.human());
}

async fn caught(flag: &str, needle: &str) {
    let (server, target) = embedded(&[flag]).await;
    let run = run_against(&target, &options(&[CheckName::Pause]))
        .await
        .unwrap();
    server.stop().await.unwrap();
    let verdict = &run.verdict;
    assert!(!verdict.pass, "{flag} not caught:\n{}", verdict.human());
    assert_eq!(verdict.exit_code(), 1);
    let report = &verdict.checks[0];
    assert!(
        report.witness.iter().any(|w| w.contains(needle)),
        "{flag}: no witness with {needle:?}: {:?}",
        report.witness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_catches_admission_while_paused() {
    caught("--unsafe-pause", "while admission was paused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_catches_a_resume_out_of_entry_order() {
    caught("--unsafe-fifo", "out of entry order").await;
}
