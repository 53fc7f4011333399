//! Sharded load generation: one run split across processes (or machines,
//! or the pods of a Kubernetes Indexed Job), each `--shard I/N` offering
//! its share of the rate with users of its own, all beginning together at
//! `--start-at`; `loadgen merge` then adds their interval logs into the
//! run's, after checking that they are one run's shards, all of them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

use crate::merge::LogMeta;

/// One shard of a run: `index` of `count`, 0-based (a Kubernetes Indexed
/// Job's `JOB_COMPLETION_INDEX` is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (i, n) = s
            .split_once('/')
            .with_context(|| format!("--shard {s:?}: expected I/N, e.g. 0/3"))?;
        let index: u32 = i
            .trim()
            .parse()
            .with_context(|| format!("--shard {s:?}: {i:?} is not a shard index"))?;
        let count: u32 = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {s:?}: {n:?} is not a shard count"))?;
        ensure!(count >= 1, "--shard {s:?}: the count must be at least 1");
        ensure!(
            index < count,
            "--shard {s:?}: indexes run from 0 to {} (0-based, like JOB_COMPLETION_INDEX)",
            count - 1
        );
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's share of a rate.
    pub fn rate(&self, total: f64) -> f64 {
        total / self.count as f64
    }

    /// This shard's share of `total` users, at least one; the first
    /// `total % count` shards take one more, so the shares add up.
    pub fn users(&self, total: usize) -> usize {
        let (n, i) = (self.count as usize, self.index as usize);
        (total / n + usize::from(i < total % n)).max(1)
    }
}

/// The furthest ahead `--start-at` may be: a typo should not leave a job
/// waiting for days.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// `--start-at`: RFC 3339 (`2026-11-21T19:30:00Z`) or seconds since the
/// Unix epoch (`date +%s` plus a margin).
pub fn parse_start_at(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        ensure!(
            secs.is_finite() && secs > 0.0,
            "--start-at {s:?}: not a time"
        );
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .with_context(|| {
        format!("--start-at {s:?}: expected RFC 3339 (2026-11-21T19:30:00Z) or Unix seconds")
    })?;
    Ok(t.into())
}

/// Waits until `at`. A moment already past starts at once (the shards
/// then began apart, which the merged log shows); one more than an hour
/// ahead is refused.
pub async fn wait_until(at: SystemTime, progress: bool) -> anyhow::Result<()> {
    let now = SystemTime::now();
    match at.duration_since(now) {
        Ok(ahead) if ahead > MAX_WAIT => bail!(
            "--start-at is {} s ahead, more than the {} s loadgen waits",
            ahead.as_secs(),
            MAX_WAIT.as_secs()
        ),
        Ok(ahead) => {
            if progress {
                eprintln!(
                    "loadgen: starting at --start-at, in {:.1} s",
                    ahead.as_secs_f64()
                );
            }
            tokio::time::sleep(ahead).await;
        }
        Err(late) => {
            if progress {
                eprintln!(
                    "loadgen: --start-at passed {:.1} s ago: starting now",
                    late.duration().as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

/// Checks that logs to be merged are one run's shards, every one once:
/// the same run id, shard count and offered rate. Logs without shard
/// information (separate runs' processes) merge as before, but not with
/// shards.
pub fn check(metas: &[Option<&LogMeta>]) -> anyhow::Result<()> {
    let sharded: Vec<(usize, &LogMeta, Shard)> = metas
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.and_then(|m| Some((i, m, m.shard?))))
        .collect();
    let Some(&(_, first, shard)) = sharded.first() else {
        return Ok(());
    };
    if sharded.len() != metas.len() {
        bail!(
            "some logs are shards of run {} and some are not: merge one run's shards",
            first.run_id
        );
    }
    let mut seen = vec![false; shard.count as usize];
    for &(i, m, s) in &sharded {
        if m.run_id != first.run_id {
            bail!(
                "log {} is a shard of run {}, not of run {}: a foreign shard",
                i + 1,
                m.run_id,
                first.run_id
            );
        }
        if s.count != shard.count || m.offered_total != first.offered_total {
            bail!(
                "log {} (shard {s}, offered {:?}/s) does not match shard {shard} (offered {:?}/s) of the same run",
                i + 1,
                m.offered_total,
                first.offered_total
            );
        }
        if std::mem::replace(&mut seen[s.index as usize], true) {
            bail!("shard {s} of run {} is given twice", first.run_id);
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, &s)| !s)
        .map(|(i, _)| format!("{i}/{}", shard.count))
        .collect();
    if !missing.is_empty() {
        bail!(
            "run {} is missing shard(s) {}: its merged figures would be short",
            first.run_id,
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Model;

    fn meta(run: &str, shard: Option<&str>, offered: f64) -> LogMeta {
        LogMeta {
            run_id: run.into(),
            scenario: "flash_sale".into(),
            headline: "flash_sale".into(),
            model: Model::Open {
                rate: offered / 3.0,
            },
            users: 4,
            hosts: vec![],
            started_at: String::new(),
            shard: shard.map(|s| s.parse().unwrap()),
            offered_total: Some(offered),
        }
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        for bad in ["3/3", "1", "a/3", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn users_and_rate_shares_add_up() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        assert_eq!(shards.iter().map(|s| s.users(20)).sum::<usize>(), 20);
        let total: f64 = shards.iter().map(|s| s.rate(150.0)).sum();
        assert!((total - 150.0).abs() < 1e-9);
    }

    #[test]
    fn start_at_reads_both_forms() {
        let a = parse_start_at("2026-11-21T19:30:00Z").unwrap();
        let b = parse_start_at("1795289400").unwrap();
        assert_eq!(a, b);
        assert!(parse_start_at("half past seven").is_err());
    }

    #[test]
    fn merge_wants_every_shard_of_one_run_once() {
        let all = [
            meta("r", Some("0/3"), 150.0),
            meta("r", Some("1/3"), 150.0),
            meta("r", Some("2/3"), 150.0),
        ];
        let refs: Vec<Option<&LogMeta>> = all.iter().map(Some).collect();
        check(&refs).unwrap();
        let missing = check(&refs[..2]).unwrap_err().to_string();
        assert!(missing.contains("missing shard(s) 2/3"), "{missing}");
        let foreign = meta("other", Some("2/3"), 150.0);
        let err = check(&[refs[0], refs[1], Some(&foreign)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("foreign shard"), "{err}");
        let twice = check(&[refs[0], refs[1], refs[1]]).unwrap_err().to_string();
        assert!(twice.contains("given twice"), "{twice}");
        let other_rate = meta("r", Some("2/3"), 300.0);
        assert!(check(&[refs[0], refs[1], Some(&other_rate)]).is_err());
        let plain = meta("r", None, 150.0);
        assert!(check(&[refs[0], refs[1], refs[2], Some(&plain)]).is_err());
        // Separate runs' logs without shards merge as before.
        assert!(check(&[Some(&plain), Some(&meta("q", None, 1.0))]).is_ok());
    }
}
