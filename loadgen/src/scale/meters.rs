//! Cumulative counters of what each part of the system used, sampled
//! during a step: each instance's CPU (from /proc) and throttling (from
//! its cgroup's cpu.stat), the shared stack's processes (Redis,
//! PostgreSQL and the broker, found by the ports the run's URLs name) and
//! the whole machine (/proc/stat, and /proc/pressure/cpu for the time some
//! task waited for a CPU). A fleet of stand-ins supplies its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// Counters at one moment: busy seconds and, under a quota, the CFS
/// periods elapsed and throttled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub busy_secs: f64,
    pub periods: Option<(u64, u64)>,
}

pub type ReadFn = Arc<dyn Fn() -> Option<Reading> + Send + Sync>;

/// One thing to sample.
#[derive(Clone)]
pub struct Meter {
    pub name: String,
    /// CPUs it may use (an instance's quota, one core for Redis), when
    /// that is its limit.
    pub capacity: Option<f64>,
    pub read: ReadFn,
}

/// What a deployment can be sampled by.
#[derive(Clone, Default)]
pub struct Meters {
    pub instances: Vec<Meter>,
    pub shared: Vec<Meter>,
}

/// Every meter's reading at one wall-clock time.
type Sample = (SystemTime, Vec<Option<Reading>>);

/// Samples taken while a step runs.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

const EVERY: Duration = Duration::from_millis(200);

impl Sampler {
    pub fn start(meters: Vec<ReadFn>) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let into = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            loop {
                let now = SystemTime::now();
                let readings: Vec<_> = meters.iter().map(|m| m()).collect();
                into.lock().unwrap().push((now, readings));
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Sampler {
            samples,
            stop,
            task,
        }
    }

    /// Stops sampling; returns each meter's increase over `[from, to]`
    /// (from the samples nearest to both ends) and the seconds between
    /// those samples.
    pub async fn finish(
        self,
        from: SystemTime,
        to: SystemTime,
    ) -> Option<(f64, Vec<Option<Reading>>)> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let samples = std::mem::take(&mut *self.samples.lock().unwrap());
        let nearest = |t: SystemTime| {
            samples
                .iter()
                .min_by_key(|(at, _)| match at.duration_since(t) {
                    Ok(d) => d,
                    Err(e) => e.duration(),
                })
        };
        let (a, first) = nearest(from)?;
        let (b, last) = nearest(to)?;
        let secs = b.duration_since(*a).ok()?.as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let deltas = first
            .iter()
            .zip(last)
            .map(|(x, y)| {
                let (x, y) = ((*x)?, (*y)?);
                Some(Reading {
                    busy_secs: y.busy_secs - x.busy_secs,
                    periods: x
                        .periods
                        .zip(y.periods)
                        .map(|(p, q)| (q.0.saturating_sub(p.0), q.1.saturating_sub(p.1))),
                })
            })
            .collect();
        Some((secs, deltas))
    }
}

/// Clock ticks a second in /proc (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime of `pid`, in seconds.
pub fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / TICKS)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Busy CPU seconds of the whole machine (every core).
pub fn machine_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are
    // not busy.
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    Some(busy / TICKS)
}

/// Seconds during which some runnable task of the machine waited for a
/// CPU (the kernel's pressure stall information, `some total=` in
/// microseconds); `None` where the kernel does not keep it.
pub fn cpu_waiting() -> Option<f64> {
    waiting_secs(&std::fs::read_to_string("/proc/pressure/cpu").ok()?)
}

/// The `some` line's cumulative total of a /proc/pressure file, in seconds.
fn waiting_secs(pressure: &str) -> Option<f64> {
    let some = pressure.lines().find(|l| l.starts_with("some "))?;
    let total = some
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    Some(total.parse::<u64>().ok()? as f64 / 1e6)
}

/// An instance's meter: its process's CPU and its cgroup's throttling.
pub fn instance(
    name: String,
    pid: u32,
    quota: Option<f64>,
    cgroup: Option<std::path::PathBuf>,
) -> Meter {
    Meter {
        name,
        capacity: quota,
        read: Arc::new(move || {
            Some(Reading {
                busy_secs: process_cpu(pid)?,
                periods: cgroup.as_ref().and_then(|dir| throttling(dir)),
            })
        }),
    }
}

/// `(nr_periods, nr_throttled)` from a cgroup's cpu.stat.
fn throttling(dir: &std::path::Path) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some((field("nr_periods ")?, field("nr_throttled ")?))
}

/// The ports of a URL or a comma-separated list of addresses:
/// `redis://h:6379`, `redis+cluster://h:7000,h:7001`, `h:9092,h:9093`,
/// `postgres://u:pw@[::1]:5432/db?x=a:b`. An address without a port gives
/// none (the meters then find no process for it, rather than a wrong one).
fn ports(urls: &str) -> Vec<String> {
    urls.split(',')
        .filter_map(|u| {
            let rest = u.trim().split_once("://").map_or(u.trim(), |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next()?;
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let port = match host_port.strip_prefix('[') {
                Some(v6) => v6.split_once("]:")?.1,
                None => host_port.rsplit_once(':')?.1,
            };
            (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit())).then(|| port.to_owned())
        })
        .collect()
}

/// Whether a command line names `port` as a whole number: 7000 is not
/// found in 17000 (a Redis Cluster node's bus port) or 70001.
fn names_port(args: &str, port: &str) -> bool {
    args.match_indices(port).any(|(at, _)| {
        let before = args[..at].chars().next_back();
        let after = args[at + port.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The shared stack's processes, found by the ports of the run's
/// `REDIS_URL`, `POSTGRES_URL` and `KAFKA_BROKERS` (the machine may run
/// other copies): Redis (one core per server: it executes commands on one
/// thread; the cluster nodes named in `REDIS_URL` are metered together,
/// so a hot node shows only as its share of them all), the PostgreSQL postmaster with its
/// children, and the brokers.
pub fn shared_stack() -> Vec<Meter> {
    let procs = processes();
    let ports_of = |var: &str| std::env::var(var).map_or_else(|_| Vec::new(), |u| ports(&u));
    let mut meters = Vec::new();
    let mut add = |name: &str, capacity: Option<f64>, pids: Vec<u32>| {
        if !pids.is_empty() {
            meters.push(Meter {
                name: name.into(),
                capacity,
                read: Arc::new(move || {
                    pids.iter()
                        .map(|&p| process_cpu(p))
                        .sum::<Option<f64>>()
                        .map(|busy_secs| Reading {
                            busy_secs,
                            periods: None,
                        })
                }),
            });
        }
    };
    let with_ports = |comm: &str, ports: &[String]| -> Vec<u32> {
        procs
            .iter()
            .filter(|(_, c, args)| c == comm && ports.iter().any(|p| names_port(args, p)))
            .map(|(pid, ..)| *pid)
            .collect()
    };
    let redis = with_ports("redis-server", &ports_of("REDIS_URL"));
    let redis_cores = redis.len() as f64;
    add("Redis", Some(redis_cores), redis);
    let postmaster = with_ports("postgres", &ports_of("POSTGRES_URL"));
    let mut pg = postmaster.clone();
    pg.extend(
        procs
            .iter()
            .filter(|(pid, ..)| parent_of(*pid).is_some_and(|pp| postmaster.contains(&pp)))
            .map(|(pid, ..)| *pid),
    );
    add("PostgreSQL", None, pg);
    let broker = ports_of("KAFKA_BROKERS");
    let brokers: Vec<u32> = procs
        .iter()
        .filter(|(_, c, args)| {
            c != "redis-server"
                && c != "postgres"
                && broker.iter().any(|p| names_port(args, p))
                && !args.contains("loadgen")
        })
        .map(|(pid, ..)| *pid)
        .collect();
    add("broker", None, brokers);
    meters
}

/// `(pid, comm, command line)` of every process.
fn processes() -> Vec<(u32, String, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let args = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args = String::from_utf8_lossy(&args).replace('\0', " ");
        Some((pid, comm.trim().to_owned(), args))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_are_busy() {
        let before = (
            process_cpu(std::process::id()).unwrap(),
            machine_cpu().unwrap(),
        );
        let until = std::time::Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = (
            process_cpu(std::process::id()).unwrap(),
            machine_cpu().unwrap(),
        );
        assert!(after.0 - before.0 >= 0.1, "{before:?} {after:?}");
        assert!(after.1 - before.1 >= 0.1, "{before:?} {after:?}");
    }

    #[test]
    fn every_port_of_a_url_list_is_found_as_a_whole_number() {
        assert_eq!(ports("redis://127.0.0.1:6379"), ["6379"]);
        assert_eq!(
            ports("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"),
            ["7000", "7001"]
        );
        assert_eq!(ports("h:9092,h:9093"), ["9092", "9093"]);
        assert_eq!(ports("postgres://u@h:5432/db?sslmode=disable"), ["5432"]);
        assert!(ports("redis://localhost").is_empty());
        assert_eq!(ports("redis://[::1]:6380"), ["6380"]);
        assert_eq!(ports("postgres://u:pw@h:5433/db?opt=a:b"), ["5433"]);
        // No port: none, not a digit from the address or the password.
        assert!(ports("redis://[::1]").is_empty());
        assert!(ports("redis://:123abc@h").is_empty());
        assert!(names_port("redis-server 127.0.0.1:7000 [cluster]", "7000"));
        assert!(names_port("postgres -D /d -p 35432", "35432"));
        // A cluster node's bus port, and longer numbers, are not the port.
        assert!(!names_port(
            "redis-server 127.0.0.1:17000 [cluster]",
            "7000"
        ));
        assert!(!names_port("tansu --listener tcp://h:90921", "9092"));
    }

    #[test]
    fn cpu_waiting_is_the_some_lines_total_in_seconds() {
        let text = "some avg10=9.28 avg60=12.58 avg300=6.58 total=30102770\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(waiting_secs(text), Some(30.10277));
        assert_eq!(waiting_secs("full avg10=0.00 total=5\n"), None);
        assert_eq!(waiting_secs("some avg10=0.00 total=x\n"), None);
    }

    #[tokio::test]
    async fn the_sampler_gives_each_meters_increase_over_the_window() {
        let counter = Arc::new(Mutex::new(0.0));
        let c = Arc::clone(&counter);
        let sampler = Sampler::start(vec![Arc::new(move || {
            Some(Reading {
                busy_secs: *c.lock().unwrap(),
                periods: Some((0, 0)),
            })
        })]);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let from = SystemTime::now();
        // Well after the sample nearest `from`, well before the one
        // nearest `to`.
        tokio::time::sleep(Duration::from_millis(300)).await;
        *counter.lock().unwrap() = 2.0;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let to = SystemTime::now();
        let (secs, deltas) = sampler.finish(from, to).await.unwrap();
        assert!((0.3..=1.2).contains(&secs), "{secs}");
        assert_eq!(deltas[0].unwrap().busy_secs, 2.0);
    }
}
