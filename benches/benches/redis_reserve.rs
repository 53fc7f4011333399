//! The real stack's reserve decision: the Lua script against a live Redis
//! (one round trip, atomic). Measured only when `REDIS_URL` is set (e.g.
//! `eval "$(scripts/services.sh env)"`); otherwise it says so and measures
//! nothing.
//!
//! Run with: `cargo bench -p ticketbench-benches --bench redis_reserve`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ticket_server::backend::real::scripts::{event_keys, Scripts};

fn bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("redis_reserve: skipped, REDIS_URL is not set (scripts/services.sh start; eval \"$(scripts/services.sh env)\")");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let scripts = Scripts::new();
    let namespace = format!("bench{}", std::process::id());
    let keys = event_keys(&namespace, "lua");
    let created: i64 = rt
        .block_on(
            scripts
                .create
                .key(&keys[..])
                .arg(10_000_000u64)
                .arg(1u32)
                .arg(10_000_000u32)
                .arg(3600u32)
                .arg("bench")
                .invoke_async(&mut conn),
        )
        .unwrap();
    assert_eq!(created, 1, "bench event already exists");

    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    let mut register = |conn: &mut redis::aio::MultiplexedConnection| -> (u64, String) {
        n += 1;
        let user = format!("u{n}");
        let reply: Vec<String> = rt
            .block_on(
                scripts
                    .register
                    .key(&keys[..])
                    .arg(&user)
                    .arg(0u64)
                    .invoke_async(conn),
            )
            .unwrap();
        let seq = reply[1].split(':').next().unwrap().parse().unwrap();
        (seq, user)
    };
    let reserve_once = |conn: &mut redis::aio::MultiplexedConnection, seq: u64, user: &str| {
        let rid = format!("r{seq}");
        let reply: Vec<String> = rt
            .block_on(
                scripts
                    .reserve
                    .key(&keys[..])
                    .arg(seq)
                    .arg(user)
                    .arg(1u32)
                    .arg(&rid)
                    .arg("{}")
                    .invoke_async(conn),
            )
            .unwrap();
        assert_eq!(reply[0], "OK", "{reply:?}");
    };
    group.bench_function("Lua reserve (admitted buyer, one item)", |b| {
        b.iter_batched(
            || register(&mut conn.clone()),
            |(seq, user)| reserve_once(&mut conn.clone(), seq, &user),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    let _: () = rt
        .block_on(redis::cmd("DEL").arg(&keys[..]).query_async(&mut conn))
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
