//! The scaling run against fleets of stand-in servers whose capacity is
//! known exactly: each serves at most R purchases a second (a purchase
//! over that waits its turn, so latency grows), optionally behind one
//! store they all share. The run must find the truth inside its
//! intervals, and name the shared store when it is what stops scaling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadgen::cgroup::Flavour;
use loadgen::scale::deploy::Deployment;
use loadgen::scale::limits::Part;
use loadgen::scale::meters::{Meter, Meters, Reading};
use loadgen::scale::stats::Verdict;
use loadgen::scale::{run_with, ScaleArgs, ScaleReport};
use testkit::fake::{self, StatusCode};
use testkit::TempDir;

/// One purchase at a time, `gap` apart: a server at its capacity. Keeps
/// the service time it has handed out, as a CPU counter would.
struct Turns {
    next: Mutex<Instant>,
    gap: Duration,
    busy_ns: AtomicU64,
}

impl Turns {
    fn new(per_sec: f64) -> Arc<Self> {
        Arc::new(Turns {
            next: Mutex::new(Instant::now()),
            gap: Duration::from_secs_f64(1.0 / per_sec),
            busy_ns: AtomicU64::new(0),
        })
    }

    async fn take(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap();
            let turn = (*next).max(Instant::now());
            *next = turn + self.gap;
            turn
        };
        self.busy_ns
            .fetch_add(self.gap.as_nanos() as u64, Ordering::Relaxed);
        tokio::time::sleep_until(turn.into()).await;
    }

    fn meter(self: &Arc<Self>, name: &str) -> Meter {
        let me = Arc::clone(self);
        Meter {
            name: name.into(),
            capacity: Some(1.0),
            read: Arc::new(move || {
                Some(Reading {
                    busy_secs: me.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    periods: None,
                })
            }),
        }
    }
}

/// Stand-ins answering the flash-sale scenario: every call at once except
/// a reservation, which waits for the server's turn (and the shared
/// store's, when there is one).
struct FakeFleet {
    servers: Vec<(String, Arc<Turns>)>,
    shared: Option<Arc<Turns>>,
}

impl FakeFleet {
    async fn start(count: usize, per_sec: f64, shared: Option<f64>) -> Self {
        let shared = shared.map(Turns::new);
        let mut servers = Vec::new();
        for _ in 0..count {
            let own = Turns::new(per_sec);
            let (mine, store) = (Arc::clone(&own), shared.clone());
            let base = fake::serve(move |req| {
                let (mine, store) = (Arc::clone(&mine), store.clone());
                async move {
                    let path = req.uri().path().to_owned();
                    if path == "/api/v1/tickets/reserve" {
                        mine.take().await;
                        if let Some(store) = &store {
                            store.take().await;
                        }
                    }
                    let status = if path == "/api/v1/admin/events" {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    };
                    fake::json(
                        status,
                        r#"{"token":"t","status":"ACTIVE","reservationId":"r1","eventId":"e","stock":1}"#,
                    )
                }
            })
            .await;
            servers.push((base, own));
        }
        FakeFleet { servers, shared }
    }
}

impl Deployment for FakeFleet {
    type Fleet = usize;

    fn describe(&self) -> String {
        "stand-in servers of known capacity".into()
    }

    fn quota(&self) -> Flavour {
        Flavour::None
    }

    /// A fresh fleet: the first `n` servers, their queues emptied.
    async fn up(&self, n: usize, _label: &str, _cpus: Option<f64>) -> anyhow::Result<usize> {
        for turns in self.servers[..n].iter().map(|s| &s.1).chain(&self.shared) {
            *turns.next.lock().unwrap() = Instant::now();
        }
        Ok(n)
    }

    fn hosts(&self, n: &usize) -> Vec<String> {
        self.servers[..*n].iter().map(|s| s.0.clone()).collect()
    }

    fn meters(&self, n: &usize) -> Meters {
        Meters {
            instances: self.servers[..*n]
                .iter()
                .map(|(_, t)| t.meter("instance"))
                .collect(),
            shared: self
                .shared
                .iter()
                .map(|t| t.meter("shared store"))
                .collect(),
        }
    }

    async fn down(&self, _n: usize) {}
}

/// Purchases a second each stand-in serves.
const R: f64 = 40.0;

fn args(instances: Vec<usize>, out: &TempDir) -> ScaleArgs {
    let mut a = ScaleArgs::defaults();
    a.instances = Some(instances);
    a.quick = true;
    a.step_secs = Some(1.0);
    a.warmup_secs = Some(0.0);
    a.no_verify = true;
    a.admin_token = "x".into();
    a.out = out.path().to_owned();
    a.quiet = true;
    a
}

async fn scale(fleet: &FakeFleet, instances: Vec<usize>, name: &str) -> ScaleReport {
    let out = TempDir::new(name);
    Box::pin(run_with(&args(instances, &out), fleet, &|_| {}))
        .await
        .unwrap()
}

fn describe(r: &ScaleReport) -> String {
    r.points
        .iter()
        .map(|p| {
            format!(
                "N={} tps {:?} {:?} eff {:?} {:?} {:?} limit {:?}",
                p.instances,
                p.tps,
                p.tps_interval,
                p.efficiency,
                p.efficiency_interval,
                p.verdict,
                p.limit
                    .as_ref()
                    .map(|l| (&l.name, l.utilisation, &l.detail))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// One test drives both fleets: goose keeps process-wide state, so two
// runs may not overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_capacities_are_found_and_a_shared_bottleneck_is_named() {
    // Independent stand-ins: efficiency is 1 at every size.
    let fleet = FakeFleet::start(4, R, None).await;
    let r = scale(&fleet, vec![1, 2, 4], "scale-fake-linear").await;
    let text = describe(&r);
    for p in &r.points {
        assert_eq!(p.repeats.len(), 3, "{text}");
        let tps = p.tps_interval.unwrap();
        let truth = R * p.instances as f64;
        // The bound is met a little above capacity (a short queue stays
        // under it); a 10% bracket and a busy machine's repeats reach a
        // little below it.
        assert!(tps.lo > 0.7 * truth && tps.hi < 1.15 * truth, "{text}");
        let e = p.efficiency_interval.unwrap();
        assert!(e.contains(1.0), "{text}");
        assert_ne!(p.verdict, Some(Verdict::Fail), "{text}");
        assert!(!p.efficiency_flagged, "{text}");
    }

    // Behind one store serving 2.5 R: four instances reach 2.5 R, not 4 R.
    let fleet = FakeFleet::start(4, R, Some(2.5 * R)).await;
    let r = scale(&fleet, vec![1, 4], "scale-fake-shared").await;
    let text = describe(&r);
    let four = &r.points[1];
    assert_eq!(four.verdict, Some(Verdict::Fail), "{text}");
    let limit = four.limit.as_ref().unwrap();
    assert_eq!(
        (limit.part, limit.name.as_str()),
        (Part::Shared, "shared store"),
        "{text}"
    );
    // One instance was its own limit.
    let one = r.points[0].limit.as_ref().unwrap();
    assert_eq!(one.part, Part::Instances, "{text}");
}
