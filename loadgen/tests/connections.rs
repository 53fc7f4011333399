//! loadgen's own connections: each goose user sends over one HTTP/1
//! connection of its own (through hyper), opened again when the server
//! has closed it.

use loadgen::run::{run, RunArgs};
use loadgen::scenarios::Kind;
use loadgen::setup::sum_metric;
use testkit::{start, Backend, TempDir};

/// Each user keeps its own connection: when the server closes it while
/// idle (a 300 ms keep-alive timeout here, against a request every 800 ms
/// from each of two users), the next request opens a new one instead of
/// failing. Every read succeeds and the server saw each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_opened_again() {
    let target = start(&Backend::Memory, &["--header-read-timeout-ms", "300"]).await;
    let out = TempDir::new("loadgen-test-reconnect");
    let mut a = RunArgs::new(
        vec![target.base.clone()],
        &target.admin_token,
        Kind::Browse,
        out.to_path_buf(),
    );
    a.rate = Some(2.5);
    a.duration = 4.0;
    a.users = Some(2);
    a.quiet = true;
    let summary = run(&a).await.unwrap();
    let metrics = target.metrics().await;
    target.stop().await.unwrap();
    let reads: u64 = summary.transactions.values().map(|t| t.count).sum::<u64>()
        - summary.transactions["browse"].count;
    assert!(reads >= 8, "too few reads to see reconnects: {reads}");
    let failed: u64 = summary.transactions.values().map(|t| t.errors).sum();
    assert_eq!(
        failed, 0,
        "requests failed on connections the server had closed"
    );
    let served = sum_metric(&metrics, "http_requests_total", &["GET /api/v1/"]);
    assert!(
        served >= reads as f64,
        "server saw {served} reads of {reads}"
    );
}
