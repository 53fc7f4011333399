//! The real stack's reserve decision: the Lua script against a live Redis
//! (one round trip, atomic). Measured only when `REDIS_URL` is set (e.g.
//! `eval "$(scripts/services.sh env)"`); otherwise it says so and measures
//! nothing.
//!
//! Run with: `cargo bench -p ticketbench-benches --bench redis_reserve`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ticket_server::backend::stack::keys::EventKeys;
use ticket_server::backend::stack::line::RegisterReply;
use ticket_server::backend::stack::lua::{CreateReply, RedisScripts, ReserveReply};

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
    let scripts = RedisScripts::new();
    let namespace = format!("bench{}", std::process::id());
    let keys = EventKeys::new(&namespace, "lua");
    let created: CreateReply = rt
        .block_on(
            scripts
                .create
                .on(&keys)
                .arg(10_000_000u64)
                .arg(1u32)
                .arg(10_000_000u32)
                .arg(3600u32)
                .arg("bench")
                .run(&mut conn),
        )
        .unwrap();
    assert!(created.created, "bench event already exists");

    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    let mut register = |conn: &mut redis::aio::MultiplexedConnection| -> (u64, String) {
        // The line's places are the offsets 0, 1, 2, ... as the admission
        // consumer reads them; an entry nobody placed yet is adopted.
        let seq = n;
        n += 1;
        let user = format!("u{seq}");
        let reply: RegisterReply = rt
            .block_on(
                scripts
                    .register
                    .on(&keys)
                    .arg(&user)
                    .arg(0u64)
                    .arg(seq)
                    .run(conn),
            )
            .unwrap();
        assert!(
            matches!(reply, RegisterReply::Adopted),
            "not placed: {reply:?}"
        );
        (seq, user)
    };
    let reserve_once = |conn: &mut redis::aio::MultiplexedConnection, seq: u64, user: &str| {
        let rid = format!("r{seq}");
        let reply: ReserveReply = rt
            .block_on(
                scripts
                    .reserve
                    .on(&keys)
                    .arg(seq)
                    .arg(user)
                    .arg(1u32)
                    .arg(&rid)
                    .arg("{}")
                    .run(conn),
            )
            .unwrap();
        assert!(matches!(reply, ReserveReply::Ok { .. }), "{reply:?}");
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
        .block_on(
            redis::cmd("DEL")
                .arg(&keys.for_script()[..])
                .query_async(&mut conn),
        )
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
