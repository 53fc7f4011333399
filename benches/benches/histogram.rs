//! loadgen's latency recording: one request into the shared recorder (raw
//! and corrected histograms behind one lock), merging an interval's
//! histograms into the totals, and reading back an interval log.
//!
//! Run with: `cargo bench -p ticketbench-benches --bench histogram`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use loadgen::record::{Recorder, Triple};

fn populated(n: u64) -> Triple {
    let mut t = Triple::default();
    for i in 0..n {
        let raw = Duration::from_micros(100 + (i * 7919) % 50_000);
        t.record(raw, raw + Duration::from_micros(i % 1000), i % 100 != 0);
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    group.throughput(Throughput::Elements(1));

    let recorder = Recorder::new();
    let mut i = 0u64;
    group.bench_function("record one request (raw + corrected)", |b| {
        b.iter(|| {
            i += 1;
            let raw = Duration::from_micros(100 + (i * 7919) % 50_000);
            recorder.record("bench", raw, raw + Duration::from_micros(i % 1000), true);
        })
    });

    let interval = populated(5_000);
    group.bench_function("merge one interval into the totals", |b| {
        b.iter_batched_ref(
            || populated(5_000),
            |total| total.add(&interval),
            BatchSize::SmallInput,
        )
    });

    // A 60-interval log (one minute) of one transaction, 5,000 samples a
    // second, then parsing it back.
    let dir = std::env::temp_dir().join(format!("bench-hlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latency.hlog");
    let log = loadgen::merge::ParsedLog {
        meta: None,
        intervals: (0..60u64)
            .map(|second| {
                let mut txs = std::collections::BTreeMap::new();
                txs.insert("browse".to_owned(), populated(5_000));
                (1_800_000_000 + second, txs)
            })
            .collect(),
        span: (1_800_000_000.0, 1_800_000_060.0),
        window: None,
    };
    log.write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse an interval log", |b| {
        b.iter(|| loadgen::merge::parse_log(&bytes).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
