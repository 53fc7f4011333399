//! One race raced by several verify processes (`--shard I/N`), perhaps on
//! several machines, for one event's stock: each runs the buyers `buyer-i`
//! with `i % N == I` and records its own history; `verify judge` merges
//! the histories ([`crate::history::merge`]) and judges them as one.
//!
//! The shards agree without talking to each other: the event id derives
//! from the common `--run-id`, shard 0 creates the event and the others
//! wait for it to exist, and `--start-at` releases every shard's buyers at
//! the same wall-clock moment.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::client::{Client, Reply};
use crate::RunError;

/// One shard of a race: `index` of `count`, 0-based (a Kubernetes Indexed
/// Job's `JOB_COMPLETION_INDEX` is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected I/N, e.g. 0/3"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {i:?} is not a shard index"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {n:?} is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s:?}: needs 0 <= I < N (0-based, like JOB_COMPLETION_INDEX)"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether buyer `i` of the whole race is this shard's.
    pub fn runs(&self, i: usize) -> bool {
        i % self.count as usize == self.index as usize
    }
}

/// What a shard runs of the race: its buyers, released at `start_at` if
/// given.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub shard: Shard,
    pub start_at: Option<SystemTime>,
}

/// The race's event: the same for every shard of run `run_id`.
pub fn event_id(run_id: &str) -> String {
    format!("verify-{run_id}-race")
}

/// A run id goes into the event id, which goes into URL paths.
pub fn check_run_id(run_id: &str) -> Result<(), String> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--run-id {run_id:?}: 1 to 64 letters, digits, '-' or '_'"
        ))
    }
}

/// Why the options cannot run as a shard, if they cannot.
pub fn validate(options: &crate::Options, shard: Shard) -> Result<(), String> {
    use crate::CheckName;
    let others: Vec<&str> = options
        .checks
        .iter()
        .filter(|c| **c != CheckName::Oversell)
        .map(|c| c.as_str())
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "--shard runs only the over-selling race (check oversell): {} cannot be judged \
             from shards of one race",
            others.join(", ")
        ));
    }
    if options.repeat != 1 {
        return Err("--shard races once: --repeat must be 1".into());
    }
    if options.buyers < shard.count as usize {
        return Err(format!(
            "--shard {shard}: fewer buyers ({}) than shards",
            options.buyers
        ));
    }
    check_run_id(options.run_id.as_deref().unwrap_or(""))?;
    if let Some(at) = options.start_at {
        if at
            .duration_since(SystemTime::now())
            .is_ok_and(|d| d > MAX_WAIT)
        {
            return Err(format!(
                "--start-at is more than the {} s a shard waits ahead",
                MAX_WAIT.as_secs()
            ));
        }
    }
    Ok(())
}

/// The furthest ahead `--start-at` may be: a typo should not leave a shard
/// waiting for days.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// `--start-at`: RFC 3339 (`2026-11-21T19:30:00Z`, an offset or fraction
/// allowed) or seconds since the Unix epoch (`date +%s` plus a margin).
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("--start-at {s:?}: not a time"));
        }
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    rfc3339(s).ok_or_else(|| {
        format!("--start-at {s:?}: expected RFC 3339 (2026-11-21T19:30:00Z) or Unix seconds")
    })
}

fn rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (num_of(&rest[1..3])? * 3600 + num_of(&rest[4..6])? * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

fn num_of(s: &str) -> Option<i64> {
    s.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| s.parse().ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Sleeps until `at` on the wall clock; a moment already past returns at
/// once (the shards then began apart, which the merged history shows).
pub async fn wait_until(at: SystemTime) {
    if let Ok(ahead) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(ahead).await;
    }
}

/// Waits, as the `checker`, until the event shard 0 creates can be read.
pub async fn wait_for_event(
    client: &Client,
    event_id: &str,
    deadline: Duration,
) -> Result<(), RunError> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let call = client.event("checker", event_id).await;
        match &call.reply {
            Reply::Http { status: 200, .. } => return Ok(()),
            Reply::Http { status: 404, .. } | Reply::Transport(_) => {}
            other => {
                return Err(RunError::SetupRefused(format!(
                    "reading event {event_id} answered {}",
                    other.short()
                )))
            }
        }
        if tokio::time::Instant::now() >= until {
            return Err(RunError::SetupRefused(format!(
                "event {event_id} did not appear within {} s: is shard 0 of this --run-id running?",
                deadline.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_the_buyers() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        let mine: Vec<usize> = (0..8).filter(|&i| s.runs(i)).collect();
        assert_eq!(mine, [1, 4, 7]);
        for bad in ["3/3", "1/0", "x/2", "1"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn start_at_reads_rfc_3339_and_unix_seconds() {
        let at = |s: &str| {
            parse_start_at(s)
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        };
        // date -d 2026-11-21T19:30:00Z +%s
        assert_eq!(at("2026-11-21T19:30:00Z"), 1_795_289_400_000_000_000);
        assert_eq!(at("1795289400"), 1_795_289_400_000_000_000);
        assert_eq!(at("2026-11-21T20:30:00.5+01:00"), 1_795_289_400_500_000_000);
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        for bad in [
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-11-21T19:30:00",
            "-5",
        ] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }
}
