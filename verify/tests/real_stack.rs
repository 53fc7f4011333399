//! Checks 1, 2 and 6 against two reference-server instances sharing the real
//! stack (Redis, Kafka, PostgreSQL from `scripts/services.sh`), buyers
//! spread over both; and check 2 failing when the stores lack the sales.

mod common;

use common::options;
use verify::{run_against, CheckName, Options, Target};

/// The stack's addresses; missing under CI is a failure, elsewhere a skip.
fn stack() -> Option<[String; 3]> {
    let vars = ["REDIS_URL", "KAFKA_BROKERS", "POSTGRES_URL"].map(|v| std::env::var(v).ok());
    if let [Some(r), Some(k), Some(p)] = vars {
        return Some([r, k, p]);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the real stack is required under CI: scripts/services.sh start"
    );
    eprintln!("skipped: no real stack");
    None
}

async fn two_instances(namespace: &str) -> Option<(Target, Target, Target, [String; 3])> {
    let [redis, kafka, pg] = stack()?;
    let flags = [
        "--backend",
        "real",
        "--redis-url",
        &redis,
        "--kafka-brokers",
        &kafka,
        "--postgres-url",
        &pg,
        "--namespace",
        namespace,
        "--kafka-partitions",
        "2",
        "--admin-token",
        "T",
        "--token-secret",
        "S",
    ];
    let a = Target::embedded(&flags).await.unwrap();
    let b = Target::embedded(&flags).await.unwrap();
    let both = Target::external_many(&[a.base.clone(), b.base.clone()], Some("T")).unwrap();
    Some((a, b, both, [redis, kafka, pg]))
}

fn with_stores(mut o: Options, [redis, kafka, pg]: [String; 3], namespace: &str) -> Options {
    o.redis_url = Some(redis);
    o.kafka_brokers = Some(kafka);
    o.postgres_url = Some(pg);
    o.namespace = namespace.to_owned();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_pass_checks_1_and_2() {
    let ns = format!("v{:012x}", rand::random::<u64>() >> 16);
    let Some((a, b, both, stack)) = two_instances(&ns).await else {
        return;
    };
    // The instances' health says up before anything is asked of them.
    for t in [&a, &b] {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while reqwest::get(format!("{}/actuator/health", t.base))
            .await
            .ok()
            .map(|r| r.status())
            != Some(reqwest::StatusCode::OK)
        {
            assert!(std::time::Instant::now() < until);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let opts = with_stores(
        options(&[CheckName::Oversell, CheckName::Tokens]),
        stack,
        &ns,
    );
    let verdict = run_against(&both, &opts).await.unwrap().verdict;
    a.stop().await;
    b.stop().await;
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
    assert!(
        verdict.target.contains(", "),
        "both instances were targets: {}",
        verdict.target
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_2_fails_when_the_stores_lack_the_sales() {
    let ns = format!("v{:012x}", rand::random::<u64>() >> 16);
    let Some((a, b, both, stack)) = two_instances(&ns).await else {
        return;
    };
    // Judge the right sales against another (empty) namespace's stores.
    let mut opts = with_stores(
        options(&[CheckName::Oversell]),
        stack,
        "ticketbench_nothing_here",
    );
    opts.no_variants = true;
    opts.store_deadline = 1;
    let verdict = run_against(&both, &opts).await.unwrap().verdict;
    a.stop().await;
    b.stop().await;
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
    let ns = format!("v{:012x}", rand::random::<u64>() >> 16);
    let Some((a, b, both, _)) = two_instances(&ns).await else {
        return;
    };
    let verdict = run_against(&both, &options(&[CheckName::Seatmap]))
        .await
        .unwrap()
        .verdict;
    a.stop().await;
    b.stop().await;
    assert!(verdict.pass, "{}", verdict.human());
    let d = &verdict.checks[0].details;
    for key in ["paid", "lapsed", "seatTaken", "balancesExact"] {
        assert!(d[key].as_u64().unwrap() > 0, "{key} was 0: {d}");
    }
}
