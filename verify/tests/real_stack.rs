//! Checks 1, 2 and 6 against two reference-server instances sharing the real
//! stack (Redis, Kafka, PostgreSQL from `scripts/services.sh`), buyers
//! spread over both; and check 2 failing when the stores lack the sales.

mod common;

use common::{options, reference};
use testkit::{real_stack, Backend, RealStack};
use verify::{run_against, CheckName, Options, Target, Verdict};

/// One run of the options `opts` makes for the stack against two instances
/// on the real stack in a fresh namespace (their health up), buyers spread
/// over both, and each instance's `/metrics` read after it, before they
/// stop. `None`: no real stack (a skip, or a failure under CI).
async fn on_two_instances(
    opts: impl FnOnce(&RealStack) -> Options,
) -> Option<(Verdict, [String; 2])> {
    let stack = real_stack()?;
    let real = Backend::Real(stack.clone());
    let a = reference(&real, &[]).await;
    let b = reference(&real, &[]).await;
    let both =
        Target::external_many(&[a.base.clone(), b.base.clone()], Some(&a.admin_token)).unwrap();
    let verdict = run_against(&both, &opts(&stack)).await.unwrap().verdict;
    let metrics = [a.metrics().await, b.metrics().await];
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    Some((verdict, metrics))
}

/// The `ticket_reservation_total{result="ok"}` count in one instance's
/// metrics text; 0 when it has no such line (it never sold anything).
fn reservations_ok(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ticket_reservation_total{result=\"ok\"} "))
        .map_or(0, |n| {
            n.parse().unwrap_or_else(|_| panic!("not a count: {n:?}"))
        })
}

fn with_stores(mut o: Options, stack: &RealStack, namespace: &str) -> Options {
    o.redis_url = Some(stack.redis_url.clone());
    o.kafka_brokers = Some(stack.kafka_brokers.clone());
    o.postgres_url = Some(stack.postgres_url.clone());
    o.namespace = namespace.to_owned();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_pass_checks_1_and_2() {
    let checks = [CheckName::Oversell, CheckName::Tokens];
    let Some((verdict, metrics)) =
        on_two_instances(|stack| with_stores(options(&checks), stack, &stack.namespace)).await
    else {
        return;
    };
    assert!(verdict.pass, "{}", verdict.human());
    let stores: Vec<_> = verdict
        .checks
        .iter()
        .filter(|c| c.check == "stores")
        .collect();
    assert_eq!(stores.len(), 3, "one stores check per race");
    let main = &stores[0].details;
    assert_eq!(main["accepted"], 100, "{main}");
    assert_eq!(
        (main["postgres"].clone(), main["postgresRows"].clone()),
        (100.into(), 100.into()),
        "{main}"
    );
    assert_eq!(main["redis"], 100);
    assert!(
        main["kafka"].as_u64().unwrap() == 100,
        "each at least once on Kafka: {main}"
    );
    // Both instances sold: buyers really were spread over the two.
    for (instance, text) in ["a", "b"].iter().zip(&metrics) {
        assert!(
            reservations_ok(text) > 0,
            "instance {instance} sold nothing:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_2_fails_when_the_stores_lack_the_sales() {
    let Some((verdict, _)) = on_two_instances(|stack| {
        // Judge the right sales against another (empty) namespace's stores.
        let mut opts = with_stores(
            options(&[CheckName::Oversell]),
            stack,
            "ticketbench_nothing_here",
        );
        opts.no_variants = true;
        opts.store_deadline = 1;
        opts
    })
    .await
    else {
        return;
    };
    assert!(!verdict.pass);
    let stores = verdict.checks.iter().find(|c| c.check == "stores").unwrap();
    assert!(!stores.pass);
    assert_eq!(
        stores.details["lost"].as_array().unwrap().len(),
        100,
        "{}",
        stores.details
    );
    assert!(
        stores.witness.iter().any(|w| w.starts_with("lost: r")),
        "{:?}",
        stores.witness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_pass_the_seat_map_check() {
    let Some((verdict, _)) = on_two_instances(|_| options(&[CheckName::Seatmap])).await else {
        return;
    };
    assert!(verdict.pass, "{}", verdict.human());
    let d = &verdict.checks[0].details;
    for key in ["paid", "lapsed", "seatTaken", "balancesExact"] {
        assert!(d[key].as_u64().unwrap() > 0, "{key} was 0: {d}");
    }
}
