//! The nemesis: faults injected while the buyers race, each recorded in
//! the history as a `nemesis` note of the verifier's process when it
//! starts and when it ends (as Jepsen records its nemesis).
//!
//! A schedule is `--nemesis KIND[@START][+DURATION],...`: START is the
//! offset from the race's release, DURATION how long the fault lasts before
//! it is undone (both `250ms`, `2s`, `1.5s`; defaults `@1s` and `+3s`).
//! Every fault of the schedule is injected in every race of the run.
//!
//! - [`actions`]: what each kind does: the reference stack's local
//!   processes, or the user's `--fault-cmd KIND='command'`.
//! - [`persist`]: how buyers behave under faults: paced over
//!   `--release-over-ms`, retrying answers that are not definitive.

pub mod actions;
pub mod persist;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The faults the nemesis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// SIGKILL one server instance; start it again at the fault's end.
    KillInstance,
    /// SIGSTOP one server instance; SIGCONT at the fault's end.
    PauseInstance,
    /// Crash Redis (SIGKILL) and start it on its data (AOF when enabled).
    RestartRedis,
    /// Crash Redis and start it with no data at all.
    LoseRedis,
    /// Kill the Redis primary so Sentinel promotes its replica.
    FailoverRedis,
    /// Stop PostgreSQL and start it again.
    RestartPostgres,
    /// Stop the Kafka broker and start it again.
    RestartBroker,
    /// SIGSTOP the Kafka broker; SIGCONT at the fault's end.
    PauseBroker,
}

pub const KINDS: [FaultKind; 8] = [
    FaultKind::KillInstance,
    FaultKind::PauseInstance,
    FaultKind::RestartRedis,
    FaultKind::LoseRedis,
    FaultKind::FailoverRedis,
    FaultKind::RestartPostgres,
    FaultKind::RestartBroker,
    FaultKind::PauseBroker,
];

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::KillInstance => "kill-instance",
            FaultKind::PauseInstance => "pause-instance",
            FaultKind::RestartRedis => "restart-redis",
            FaultKind::LoseRedis => "lose-redis",
            FaultKind::FailoverRedis => "failover-redis",
            FaultKind::RestartPostgres => "restart-postgres",
            FaultKind::RestartBroker => "restart-broker",
            FaultKind::PauseBroker => "pause-broker",
        }
    }

    /// Whether the fault acts on a server instance (`--instance-pid`).
    pub fn on_instance(self) -> bool {
        matches!(self, FaultKind::KillInstance | FaultKind::PauseInstance)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        KINDS.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
            format!("unknown fault '{s}' (one of: {})", known.join(", "))
        })
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// After the race's release.
    pub start: Duration,
    pub duration: Duration,
}

pub const DEFAULT_START: Duration = Duration::from_secs(1);
pub const DEFAULT_DURATION: Duration = Duration::from_secs(3);

impl FromStr for FaultSpec {
    type Err = String;

    /// `KIND[@START][+DURATION]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (head, duration) = match s.split_once('+') {
            Some((h, d)) => (h, parse_duration(d)?),
            None => (s, DEFAULT_DURATION),
        };
        let (kind, start) = match head.split_once('@') {
            Some((k, at)) => (k, parse_duration(at)?),
            None => (head, DEFAULT_START),
        };
        if duration.is_zero() {
            return Err(format!("fault '{s}': the duration must be above 0"));
        }
        Ok(FaultSpec {
            kind: kind.trim().parse()?,
            start,
            duration,
        })
    }
}

/// `--fault-cmd KIND='command'`: the command that injects (and undoes) a
/// fault of that kind on the user's deployment. It is run by `sh -c` with
/// the phase as its first argument (`$1`: `start` or `end`) and in
/// `NEMESIS_PHASE`, the fault's number in `NEMESIS_FAULT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultCmd {
    pub kind: FaultKind,
    pub command: String,
}

impl FromStr for FaultCmd {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, command) = s
            .split_once('=')
            .ok_or_else(|| format!("--fault-cmd '{s}': expected KIND='command'"))?;
        if command.trim().is_empty() {
            return Err(format!("--fault-cmd {kind}: the command is empty"));
        }
        Ok(FaultCmd {
            kind: kind.trim().parse()?,
            command: command.to_owned(),
        })
    }
}

/// `250ms`, `2s`, `1.5s`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("'{s}' is not a duration (like 250ms, 2s, 1.5s)");
    let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if s == "0" {
        ("0", 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 || value * unit > 3600.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_entry_reads_kind_start_and_duration() {
        let f: FaultSpec = "pause-instance@1.5s+4s".parse().unwrap();
        assert_eq!(f.kind, FaultKind::PauseInstance);
        assert_eq!(f.start, Duration::from_millis(1500));
        assert_eq!(f.duration, Duration::from_secs(4));
        let f: FaultSpec = "restart-broker+250ms".parse().unwrap();
        assert_eq!(
            (f.start, f.duration),
            (DEFAULT_START, Duration::from_millis(250))
        );
        let f: FaultSpec = "lose-redis".parse().unwrap();
        assert_eq!((f.start, f.duration), (DEFAULT_START, DEFAULT_DURATION));
    }

    #[test]
    fn unknown_kinds_and_bad_durations_are_refused_by_name() {
        let e = "kill-redis@1s".parse::<FaultSpec>().unwrap_err();
        assert!(
            e.contains("unknown fault 'kill-redis'") && e.contains("kill-instance"),
            "{e}"
        );
        assert!("kill-instance@soon".parse::<FaultSpec>().is_err());
        assert!("kill-instance+0s".parse::<FaultSpec>().is_err());
        assert!("kill-instance+-1s".parse::<FaultSpec>().is_err());
        assert!("kill-instance".parse::<FaultCmd>().is_err());
        assert!("nothing=true".parse::<FaultCmd>().is_err());
        let c: FaultCmd = "kill-instance=docker compose kill -s KILL app"
            .parse()
            .unwrap();
        assert_eq!(c.kind, FaultKind::KillInstance);
        assert_eq!(c.command, "docker compose kill -s KILL app");
    }
}
