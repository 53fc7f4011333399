//! An event's waiting line on the shared stack, whose order is the broker's.
//!
//! Each event's line is a one-partition topic ([`Topics::line`]), so the
//! offset the broker acknowledges for an entry is its 0-based place:
//! `enter` answers as soon as the entry is acknowledged, and the position
//! `seq - head + 1` is exact from the first answer on. Redis keeps who holds
//! which place (written by the entering instance right after the ack, or by
//! the admission consumer if that instance never did). Admission walks the
//! places in offset order and never passes a place that is not confirmed:
//! held (so an uncontended entrant is admitted in its own `enter`), or
//! passed by the admission consumer, which reads the log in order and so
//! knows which places nobody will ever hold.
//!
//! One entry per (event, user), across instances: the entering instance
//! first claims the user's slot in Redis; a concurrent duplicate (another
//! request, another instance) waits for the claimer's place, woken by the
//! `PUBLISH` of [`PLACE`] rather than polling. A claim whose instance died
//! goes stale and is taken over. An offset produced twice for one user (a
//! retry after a lost answer) holds nobody: admission passes it.
//!
//! [`Topics::line`]: super::keys::Topics::line

use std::time::Duration;

use serde::Deserialize;
use tracing::{error, warn};

use super::keys::EventKeys;
use super::messages::QueueEntry;
use super::StackBackend;
use crate::error::{Error, Result};
use crate::model::now_unix;

/// How long `enter` waits for a place (its own or a duplicate's).
const PLACE_DEADLINE: Duration = Duration::from_secs(10);
/// A claim older than this is taken over: its instance died between the
/// claim and the place (a produce gives up after at most 5 s).
const STALE_CLAIM_MS: u64 = 7_000;
/// A waiting duplicate looks again at least this often, in case a wake-up
/// was missed (Redis pub/sub is at most once).
const WAIT_FALLBACK: Duration = Duration::from_millis(250);

/// ARGV: userId, claimer, issuedAt (s), staleMs. Claims the user's slot
/// unless it has a place (answered) or a live claim (PENDING). A claim is
/// `?claimer|sinceMs|issuedAt`; a place is `seq:issuedAt`. Answers
/// [`ClaimReply`].
pub const CLAIM: &str = r#"
if redis.call('EXISTS', meta) == 0 then return not_found end
local cur = redis.call('HGET', entries, ARGV[1])
if cur and string.sub(cur, 1, 1) ~= '?' then return reply({result = 'PLACED', entry = cur}) end
local now = now_ms()
local iat = ARGV[3]
if cur then
  local since, first_iat = string.match(cur, '|(%d+)|(%d+)$')
  if since and now - tonumber(since) < tonumber(ARGV[4]) then return reply({result = 'PENDING'}) end
  if first_iat then iat = first_iat end
end
local claim = '?' .. ARGV[2] .. '|' .. now .. '|' .. iat
redis.call('HSET', entries, ARGV[1], claim)
return reply({result = 'CLAIMED', claim = claim, issued_at = tonumber(iat)})
"#;

/// ARGV: userId, claim, seq (the acknowledged offset), issuedAt. Gives the
/// claimer its place, and wakes the waiting duplicates (channel: the
/// entries key). Answers [`PlaceReply`].
pub const PLACE: &str = r#"
if redis.call('EXISTS', meta) == 0 then return not_found end
local cur = redis.call('HGET', entries, ARGV[1])
if cur and string.sub(cur, 1, 1) ~= '?' then return reply({result = 'PLACED', entry = cur}) end
if cur ~= ARGV[2] then return reply({result = 'LOST_CLAIM'}) end
local owner = redis.call('HGET', seqs, ARGV[3])
if owner and owner ~= ARGV[1] then return reply({result = 'TAKEN', owner = owner}) end
local entry = ARGV[3] .. ':' .. ARGV[4]
redis.call('HSET', entries, ARGV[1], entry)
redis.call('HSET', seqs, ARGV[3], ARGV[1])
redis.call('PUBLISH', entries, ARGV[1])
confirm_prefix()
tick(now_ms())
return reply({result = 'PLACED', entry = entry})
"#;

/// ARGV: userId, claim. Gives a claim back (its produce failed).
pub const UNCLAIM: &str = r#"
if redis.call('HGET', entries, ARGV[1]) == ARGV[2] then redis.call('HDEL', entries, ARGV[1]) end
return reply({result = 'OK'})
"#;

/// Run by the admission consumer for each entry, in offset order. ARGV:
/// userId, issuedAt, seq (the offset). Confirms the place, adopts it when
/// the entering instance never wrote it, or leaves it to nobody (VOID: the
/// user holds another place; TAKEN: another user holds it, which only a
/// broker that lost the line's log can cause). Then the line has `seq + 1`
/// entries and admission moves on. Answers [`RegisterReply`].
pub const REGISTER: &str = r#"
if redis.call('EXISTS', meta) == 0 then return not_found end
local seq = ARGV[3]
local owner = redis.call('HGET', seqs, seq)
local result = 'PLACED'
if owner and owner ~= ARGV[1] then
  result = 'TAKEN'
elseif not owner then
  local cur = redis.call('HGET', entries, ARGV[1])
  if cur and string.sub(cur, 1, 1) ~= '?' then
    result = 'VOID'
  else
    redis.call('HSET', entries, ARGV[1], seq .. ':' .. ARGV[2])
    redis.call('HSET', seqs, seq, ARGV[1])
    redis.call('PUBLISH', entries, ARGV[1])
    result = 'ADOPTED'
  end
end
if tonumber(seq) + 1 > tonumber(redis.call('HGET', state, 'n')) then
  redis.call('HSET', state, 'n', tonumber(seq) + 1)
end
confirm_prefix()
tick(now_ms())
return reply({result = result})
"#;

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimReply {
    NotFound,
    Placed { entry: String },
    Pending,
    Claimed { claim: String, issued_at: u64 },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlaceReply {
    NotFound,
    Placed { entry: String },
    LostClaim,
    Taken { owner: String },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegisterReply {
    NotFound,
    Placed,
    Adopted,
    Void,
    Taken,
}

impl StackBackend {
    /// The user's place in the event's line, `(seq, issuedAt)`: the one it
    /// has, or a new one once the broker acknowledged its entry.
    pub(super) async fn take_place(&self, event_id: &str, user_id: &str) -> Result<(u64, u64)> {
        let keys = self.keys(event_id);
        let until = tokio::time::Instant::now() + PLACE_DEADLINE;
        let mut placements = self.stack().wakeups.placements();
        loop {
            placements.borrow_and_update();
            let claimed: ClaimReply = self
                .stack()
                .scripts
                .claim
                .on(&keys)
                .arg(user_id)
                .arg(&self.shared.claimer)
                .arg(now_unix())
                .arg(STALE_CLAIM_MS)
                .run(&mut self.redis())
                .await?;
            match claimed {
                ClaimReply::NotFound => {
                    return Err(Error::not_found(format!("event {event_id} not found")))
                }
                ClaimReply::Placed { entry } => return parse_place(&entry),
                ClaimReply::Claimed { claim, issued_at } => {
                    let entry = QueueEntry {
                        event_id: event_id.to_owned(),
                        user_id: user_id.to_owned(),
                        issued_at,
                    };
                    if let Some(place) = self.produce_entry(&keys, &entry, &claim).await? {
                        return Ok(place);
                    }
                }
                ClaimReply::Pending => {}
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                warn!(
                    event = event_id,
                    user = user_id,
                    "no place in time: another request's entry is still unacknowledged"
                );
                return Err(Error::Unavailable("Kafka"));
            }
            // Any placement wakes us; we then look again.
            let _ =
                tokio::time::timeout(WAIT_FALLBACK.min(until - now), placements.changed()).await;
        }
    }

    /// Produces a claimed entry and, once acknowledged, places it at its
    /// offset. `None` when the claim was taken over meanwhile (the caller
    /// then waits for the user's place like a duplicate).
    async fn produce_entry(
        &self,
        keys: &EventKeys,
        entry: &QueueEntry,
        claim: &str,
    ) -> Result<Option<(u64, u64)>> {
        let payload = serde_json::to_vec(entry).map_err(|e| Error::Internal(Box::new(e)))?;
        let topic = self.stack().topics.line(&entry.event_id);
        let sent = self
            .stack()
            .producer
            .send(&topic, &entry.user_id, &payload, Duration::from_secs(2))
            .await;
        let delivery = match sent {
            Ok(delivery) => delivery,
            Err(e) => {
                warn!(error = %e, %topic, "queue entry not produced");
                // If it was written after all, the admission consumer adopts it.
                let _: std::result::Result<serde_json::Value, _> = self
                    .stack()
                    .scripts
                    .unclaim
                    .on(keys)
                    .arg(&entry.user_id)
                    .arg(claim)
                    .run(&mut self.redis())
                    .await;
                return Err(Error::Unavailable("Kafka"));
            }
        };
        let placed: PlaceReply = self
            .stack()
            .scripts
            .place
            .on(keys)
            .arg(&entry.user_id)
            .arg(claim)
            .arg(delivery.offset)
            .arg(entry.issued_at)
            .run(&mut self.redis())
            .await?;
        match placed {
            PlaceReply::Placed { entry } => parse_place(&entry).map(Some),
            PlaceReply::LostClaim => Ok(None),
            PlaceReply::NotFound => Err(Error::not_found(format!(
                "event {} not found",
                entry.event_id
            ))),
            PlaceReply::Taken { owner } => {
                error!(
                    %topic,
                    offset = delivery.offset,
                    %owner,
                    "the broker gave a place that another user holds: the line's log was lost (a broker without durable storage restarted?)"
                );
                Err(Error::Unavailable("Kafka"))
            }
        }
    }
}

/// A place as the scripts store it: `seq:issuedAt`.
pub(super) fn parse_entry(v: &str) -> Option<(u64, u64)> {
    let (seq, iat) = v.split_once(':')?;
    Some((seq.parse().ok()?, iat.parse().ok()?))
}

fn parse_place(v: &str) -> Result<(u64, u64)> {
    parse_entry(v).ok_or_else(|| Error::Internal(format!("malformed place {v:?}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_parse_and_claims_do_not() {
        assert_eq!(parse_entry("41:1700000000"), Some((41, 1_700_000_000)));
        assert_eq!(parse_entry("?ab12|1700000000123|1700000000"), None);
        assert!(parse_place("x:1").is_err());
        let claimed: ClaimReply =
            serde_json::from_str(r#"{"result":"CLAIMED","claim":"?a|1|2","issued_at":2}"#).unwrap();
        assert!(matches!(claimed, ClaimReply::Claimed { issued_at: 2, .. }));
        let taken: PlaceReply =
            serde_json::from_str(r#"{"result":"TAKEN","owner":"bob"}"#).unwrap();
        assert!(matches!(taken, PlaceReply::Taken { owner } if owner == "bob"));
        let void: RegisterReply = serde_json::from_str(r#"{"result":"VOID"}"#).unwrap();
        assert!(matches!(void, RegisterReply::Void));
    }
}
