//! The embedded backend's hot paths: enter the queue, reserve, sign and
//! verify a token.
//!
//! The embedded backend's operations are async by the backend seam but
//! never wait, so set-up and `enter` complete on their first poll.
//!
//! Run with: `cargo bench -p ticketbench-benches --bench embedded`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use ticket_server::backend::memory::MemoryBackend;
use ticket_server::backend::{BackendOptions, Queue, Stock};
use ticket_server::model::EventSpec;
use ticket_server::token::{Claims, TokenSigner};

fn spec(id: &str, stock: u64) -> EventSpec {
    EventSpec {
        event_id: id.into(),
        name: None,
        stock,
        per_user_limit: 1,
        active_capacity: 1_000_000,
        active_ttl_seconds: 3600,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let mut group = c.benchmark_group("embedded");
    group.throughput(Throughput::Elements(1));

    let backend = MemoryBackend::start(BackendOptions::default());
    backend
        .create_event(spec("enter", 0))
        .now_or_never()
        .unwrap()
        .unwrap();
    let mut n = 0u64;
    group.bench_function("enter (new user)", |b| {
        b.iter(|| {
            n += 1;
            backend
                .enter("enter", &format!("u{n}"))
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("enter (again, idempotent)", |b| {
        b.iter(|| {
            backend
                .enter("enter", "u1")
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });

    // Each reserve needs a fresh ACTIVE entry; entering is set-up, not measured.
    let backend = MemoryBackend::start(BackendOptions::default());
    backend
        .create_event(spec("sale", 10_000_000))
        .now_or_never()
        .unwrap()
        .unwrap();
    let mut u = 0u64;
    group.bench_function("reserve (ok)", |b| {
        b.iter_batched(
            || {
                u += 1;
                let user = format!("u{u}");
                let e = backend
                    .enter("sale", &user)
                    .now_or_never()
                    .unwrap()
                    .unwrap();
                Claims {
                    event_id: "sale".into(),
                    user_id: user,
                    seq: e.seq,
                    issued_at: e.issued_at,
                }
            },
            |claims| rt.block_on(backend.reserve(&claims, 1)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let signer = TokenSigner::new(b"bench-secret", 86_400);
    let claims = Claims {
        event_id: "concert-2026".into(),
        user_id: "user-1234567".into(),
        seq: 123_456,
        issued_at: 1_800_000_000,
    };
    let token = signer.sign(&claims);
    group.bench_function("token sign", |b| b.iter(|| signer.sign(&claims)));
    group.bench_function("token verify", |b| {
        b.iter(|| signer.verify(&token, 1_800_000_001).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
