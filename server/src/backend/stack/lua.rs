//! The Redis scripts of the shared stack: every decision about an event's
//! line and stock is one Lua script, atomic in Redis.
//!
//! Scripts are loaded once and called by SHA (`redis::Script` does EVALSHA,
//! loading on NOSCRIPT). Time is Redis' own (`TIME`), so every instance
//! sees one clock. Each script binds its keys to names in a shared prelude
//! (in [`EventKeys::for_script`] order) and answers one JSON object
//! (`cjson.encode`) that serde decodes into the reply type named beside it.

use redis::aio::ConnectionLike;
use redis::{ErrorKind, Script, ScriptInvocation, ServerErrorKind, ToRedisArgs};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::StackError;
use super::keys::EventKeys;
use super::line;
use crate::model::QueueStatus;

/// Names the keys, and the admission step every script shares: expire
/// ACTIVE entries whose time ran out, then admit from the head of the line
/// while there is room.
const PRELUDE: &str = r#"
local meta, state, entries, seqs, active, done, bought, reservations, pending, admissions =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The release rate's token bucket (state: bucket, bucket_at): admissions
-- it allows now, at most one second's releases (at least one); nil when
-- there is no rate.
local function release_allowance(now, rate)
  if rate <= 0 then return nil end
  local per_ms = rate / 60000
  local burst = math.max(1, rate / 60)
  local b = redis.call('HMGET', state, 'bucket', 'bucket_at')
  local filled = burst
  if b[1] and b[2] then filled = tonumber(b[1]) + (now - tonumber(b[2])) * per_ms end
  return math.min(burst, filled)
end
local function tick(now)
  local ctl = redis.call('HMGET', meta, 'cap', 'ttl', 'paused', 'qall', 'rate')
  local cap = tonumber(ctl[1])
  local ttl = tonumber(ctl[2])
  -- Paused or queue-everyone: nobody is admitted; places are kept.
  local holding = ctl[3] == '1' or ctl[4] == '1'
  local allowance = release_allowance(now, tonumber(ctl[5] or '0'))
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
  local n_active = redis.call('ZCARD', active)
  local head = tonumber(redis.call('HGET', state, 'head'))
  local n = tonumber(redis.call('HGET', state, 'n'))
  local moved = false
  while not holding and n_active < cap and head < n and (allowance == nil or allowance >= 1) do
    -- A place nobody holds (a duplicate's offset) is passed, not admitted;
    -- so is a used one (only a line rebuilt after Redis lost its data has
    -- used places past the head, see `rebuild`).
    if redis.call('HEXISTS', seqs, head) == 1 and redis.call('SISMEMBER', done, head) == 0 then
      redis.call('ZADD', active, now + ttl * 1000, head)
      redis.call('LPUSH', admissions, now)
      n_active = n_active + 1
      if allowance then allowance = allowance - 1 end
    end
    head = head + 1
    moved = true
  end
  if allowance then redis.call('HSET', state, 'bucket', tostring(allowance), 'bucket_at', now) end
  if moved then
    redis.call('HSET', state, 'head', head)
    redis.call('LTRIM', admissions, 0, 63)
    -- Wakes the SSE streams of every instance (channel: the state key).
    redis.call('PUBLISH', state, head)
  end
  return head, n_active
end
-- Moves the end of the line's confirmed prefix (`n`) over every place
-- that has its holder: admission never passes a place whose entry may
-- still be on its way (acknowledged, not yet written); the admission
-- consumer moves it over places nobody holds.
local function confirm_prefix()
  local n = tonumber(redis.call('HGET', state, 'n'))
  local start = n
  while redis.call('HEXISTS', seqs, n) == 1 do n = n + 1 end
  if n ~= start then redis.call('HSET', state, 'n', n) end
end
local function entry_status(seq, head)
  if seq >= head then return 'WAITING' end
  if redis.call('ZSCORE', active, seq) then return 'ACTIVE' end
  if redis.call('SISMEMBER', done, seq) == 1 then return 'DONE' end
  return 'EXPIRED'
end
local function reply(t) return cjson.encode(t) end
-- Redis' clock and the event's head after the admission step, or nothing
-- when the event does not exist.
local function open_event()
  if redis.call('EXISTS', meta) == 0 then return nil end
  local now = now_ms()
  return now, tick(now)
end
local not_found = reply({result = 'NOT_FOUND'})
-- Whether ARGV[1] (a seq) names ARGV[2]'s (a user's) entry.
local function token_names_entry()
  return redis.call('HGET', seqs, tonumber(ARGV[1])) == ARGV[2]
end
"#;

/// ARGV: stock, limit, cap, ttl, name. Answers [`CreateReply`].
const CREATE: &str = r#"
if redis.call('EXISTS', meta) == 1 then return reply({created = false}) end
redis.call('HSET', meta, 'stock', ARGV[1], 'limit', ARGV[2], 'cap', ARGV[3], 'ttl', ARGV[4], 'name', ARGV[5])
redis.call('HSET', state, 'remaining', ARGV[1], 'sold', 0, 'n', 0, 'head', 0)
return reply({created = true})
"#;

/// The event's numbers and, when ARGV[1] is a seq, that entry's status.
/// ARGV: seq or '', userId or ''. Answers [`ViewReply`].
const VIEW: &str = r#"
local now, head, n_active = open_event()
if not now then return not_found end
local m = redis.call('HMGET', meta, 'stock', 'limit', 'cap', 'ttl', 'name', 'paused', 'qall', 'rate')
local s = redis.call('HMGET', state, 'remaining', 'sold', 'n')
local status = nil
local active_until = nil
if ARGV[1] ~= '' then
  if token_names_entry() then
    status = entry_status(tonumber(ARGV[1]), head)
    -- An ACTIVE entry's score is its deadline (ms).
    if status == 'ACTIVE' then active_until = tonumber(redis.call('ZSCORE', active, tonumber(ARGV[1]))) end
  else
    status = 'UNKNOWN'
  end
end
local recent = {}
for i, t in ipairs(redis.call('LRANGE', admissions, 0, 63)) do recent[i] = tonumber(t) end
return reply({result = 'OK', now = now, head = head, active = n_active,
  stock = tonumber(m[1]), limit = tonumber(m[2]), cap = tonumber(m[3]), ttl = tonumber(m[4]),
  name = m[5] or '', remaining = tonumber(s[1]), sold = tonumber(s[2]), entries = tonumber(s[3]),
  status = status, active_until = active_until, admissions = recent,
  paused = m[6] == '1', queue_all = m[7] == '1', rate = tonumber(m[8] or '0')})
"#;

/// The reserve decision, all or nothing. ARGV: seq, userId, quantity,
/// reservationId, reservation JSON. Answers [`ReserveReply`].
const RESERVE: &str = r#"
local now, head = open_event()
if not now then return not_found end
local seq = tonumber(ARGV[1])
local qty = tonumber(ARGV[3])
local limit = tonumber(redis.call('HGET', meta, 'limit'))
if qty < 1 or qty > limit then return reply({result = 'BAD_QUANTITY', limit = limit}) end
if not token_names_entry() then return reply({result = 'UNKNOWN_ENTRY'}) end
local st = entry_status(seq, head)
if st ~= 'ACTIVE' then return reply({result = 'NOT_ACTIVE', status = st}) end
local had = tonumber(redis.call('HGET', bought, ARGV[2]) or '0')
if had + qty > limit then
  return reply({result = 'LIMIT_EXCEEDED', limit = limit, bought = had})
end
local remaining = tonumber(redis.call('HGET', state, 'remaining'))
if remaining < qty then return reply({result = 'SOLD_OUT', remaining = remaining}) end
redis.call('HINCRBY', state, 'remaining', -qty)
redis.call('HINCRBY', state, 'sold', qty)
redis.call('HINCRBY', bought, ARGV[2], qty)
redis.call('ZREM', active, seq)
redis.call('SADD', done, seq)
redis.call('HSET', reservations, ARGV[4], ARGV[5])
redis.call('SADD', pending, ARGV[4])
tick(now)
return reply({result = 'OK', remaining = remaining - qty})
"#;

/// A token used by a completed payment: ACTIVE -> DONE, and its slot goes
/// to the next in line. ARGV: seq, userId. Answers [`CompleteReply`].
const COMPLETE: &str = r#"
local now, head = open_event()
if not now then return not_found end
if not token_names_entry() then return reply({result = 'UNKNOWN_ENTRY'}) end
local seq = tonumber(ARGV[1])
local st = entry_status(seq, head)
if st == 'ACTIVE' then
  redis.call('ZREM', active, seq)
  redis.call('SADD', done, seq)
  tick(now)
end
return reply({result = 'OK', before = st})
"#;

/// The operator's admission controls. ARGV: paused, queueAll ('1', '0'
/// or '' for unchanged), rate per minute, capacity ('' for unchanged).
/// Then an admission step (a resume or more room admits at once), and a
/// wake-up of every instance's SSE streams (channel: the state key,
/// payload `admission`). Answers [`TickReply`].
const ADMISSION: &str = r#"
local now = now_ms()
if redis.call('EXISTS', meta) == 0 then return not_found end
local names = {'paused', 'qall', 'rate', 'cap'}
for i, name in ipairs(names) do
  if ARGV[i] ~= '' then redis.call('HSET', meta, name, ARGV[i]) end
end
local head = tick(now)
redis.call('PUBLISH', state, 'admission')
return reply({result = 'OK', head = head})
"#;

/// Expiry and admission for an event nobody is touching. Answers
/// [`TickReply`].
const TICK: &str = r#"
local now, head = open_event()
if not now then return not_found end
return reply({result = 'OK', head = head})
"#;

/// An entry's status as the scripts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScriptStatus {
    Waiting,
    Active,
    Done,
    Expired,
    /// The seq names no entry of this user.
    Unknown,
}

impl ScriptStatus {
    /// The queue status, unless the token named no entry.
    pub fn queue_status(self) -> Option<QueueStatus> {
        match self {
            ScriptStatus::Waiting => Some(QueueStatus::Waiting),
            ScriptStatus::Active => Some(QueueStatus::Active),
            ScriptStatus::Done => Some(QueueStatus::Done),
            ScriptStatus::Expired => Some(QueueStatus::Expired),
            ScriptStatus::Unknown => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateReply {
    pub created: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewReply {
    NotFound,
    Ok(EventNumbers),
}

/// An event's numbers as the view script reads them.
#[derive(Debug, Deserialize)]
pub struct EventNumbers {
    /// Redis' clock (ms) when it read them.
    pub now: i64,
    pub head: u64,
    pub active: u64,
    pub stock: u64,
    pub limit: u32,
    pub cap: u32,
    pub ttl: u32,
    pub name: String,
    pub remaining: u64,
    pub sold: u64,
    pub entries: u64,
    /// The asked entry's status (absent when no entry was asked for).
    pub status: Option<ScriptStatus>,
    /// When the asked entry's active time runs out (Redis' clock, ms),
    /// while it is ACTIVE.
    #[serde(default)]
    pub active_until: Option<i64>,
    /// Recent admission times (ms), newest first.
    #[serde(deserialize_with = "list_or_empty_table")]
    pub admissions: Vec<i64>,
    /// The operator's controls (absent from replies of older scripts).
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub queue_all: bool,
    /// Release rate per minute, 0 without one.
    #[serde(default)]
    pub rate: u32,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReserveReply {
    Ok { remaining: u64 },
    NotFound,
    BadQuantity { limit: u32 },
    UnknownEntry,
    NotActive { status: ScriptStatus },
    LimitExceeded { limit: u32, bought: u32 },
    SoldOut { remaining: u64 },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompleteReply {
    NotFound,
    UnknownEntry,
    Ok { before: ScriptStatus },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TickReply {
    NotFound,
    Ok { head: u64 },
}

/// Lua has one table type, and cjson encodes an empty one as `{}`.
fn list_or_empty_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Table {
        List(Vec<i64>),
        Empty {},
    }
    Ok(match Table::deserialize(d)? {
        Table::List(v) => v,
        Table::Empty {} => Vec::new(),
    })
}

/// One script, with the name its errors carry.
pub struct LuaScript {
    name: &'static str,
    script: Script,
}

/// A call being prepared: the event's keys bound, arguments to add.
pub struct Call<'a> {
    name: &'static str,
    invocation: ScriptInvocation<'a>,
}

impl LuaScript {
    fn new(name: &'static str, body: &str) -> Self {
        LuaScript {
            name,
            script: Script::new(&format!("{PRELUDE}\n{body}")),
        }
    }

    /// A call on one event's keys.
    pub fn on(&self, keys: &EventKeys) -> Call<'_> {
        let mut invocation = self.script.prepare_invoke();
        for key in keys.for_script() {
            invocation.key(key);
        }
        Call {
            name: self.name,
            invocation,
        }
    }
}

impl Call<'_> {
    pub fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.invocation.arg(arg);
        self
    }

    /// Runs the script and decodes its JSON reply.
    pub async fn run<R: DeserializeOwned>(
        &self,
        redis: &mut impl ConnectionLike,
    ) -> Result<R, StackError> {
        let reply: String = self.invocation.invoke_async(redis).await?;
        decode(self.name, reply)
    }
}

/// Runs `calls` in one round trip (a pipeline, in order), decoding each
/// reply: one write and one read per batch, not per record. The calls
/// bind one event's keys (one Cluster node). Scripts Redis lost (a
/// restart) are loaded and the batch resent: a call may run twice, as a
/// consumer's record may be delivered twice anyway.
pub async fn run_pipelined<R: DeserializeOwned>(
    calls: &[Call<'_>],
    redis: &mut impl ConnectionLike,
) -> Result<Vec<R>, StackError> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for call in calls {
        pipe.invoke_script(&call.invocation);
    }
    let replies: Vec<String> = match pipe.query_async(redis).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            let mut loaded = std::collections::HashSet::new(); // each script once
            for call in calls.iter().filter(|c| loaded.insert(c.name)) {
                call.invocation.load_async(redis).await?;
            }
            pipe.query_async(redis).await?
        }
        other => other?,
    };
    calls
        .iter()
        .zip(replies)
        .map(|(call, reply)| decode(call.name, reply))
        .collect()
}

fn decode<R: DeserializeOwned>(script: &'static str, reply: String) -> Result<R, StackError> {
    serde_json::from_str(&reply).map_err(|source| StackError::Reply {
        script,
        reply,
        source,
    })
}

/// The stack's Redis scripts, loaded once per backend.
pub struct RedisScripts {
    pub create: LuaScript,
    pub claim: LuaScript,
    pub place: LuaScript,
    pub unclaim: LuaScript,
    pub register: LuaScript,
    pub view: LuaScript,
    pub reserve: LuaScript,
    pub complete: LuaScript,
    pub tick: LuaScript,
    pub admission: LuaScript,
    pub restore: LuaScript,
}

impl RedisScripts {
    pub fn new() -> Self {
        RedisScripts {
            create: LuaScript::new("create", CREATE),
            claim: LuaScript::new("claim", line::CLAIM),
            place: LuaScript::new("place", line::PLACE),
            unclaim: LuaScript::new("unclaim", line::UNCLAIM),
            register: LuaScript::new("register", line::REGISTER),
            view: LuaScript::new("view", VIEW),
            reserve: LuaScript::new("reserve", RESERVE),
            complete: LuaScript::new("complete", COMPLETE),
            tick: LuaScript::new("tick", TICK),
            admission: LuaScript::new("admission", ADMISSION),
            restore: LuaScript::new("restore", super::rebuild::RESTORE),
        }
    }
}

impl Default for RedisScripts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_into_their_types() {
        let view: ViewReply = serde_json::from_str(
            r#"{"result":"OK","now":1700000000123,"head":3,"active":2,"stock":10,"limit":1,
                "cap":2,"ttl":60,"name":"","remaining":7,"sold":3,"entries":9,
                "status":"WAITING","admissions":{}}"#,
        )
        .unwrap();
        let ViewReply::Ok(n) = view else {
            panic!("not OK")
        };
        assert_eq!((n.head, n.entries, n.remaining), (3, 9, 7));
        assert_eq!(n.status, Some(ScriptStatus::Waiting));
        assert!(
            n.admissions.is_empty(),
            "an empty Lua table is no admission"
        );
        let with: EventNumbers = serde_json::from_str(
            r#"{"now":5,"head":0,"active":0,"stock":1,"limit":1,"cap":1,"ttl":1,"name":"x",
                "remaining":1,"sold":0,"entries":0,"admissions":[4,2]}"#,
        )
        .unwrap();
        assert_eq!((with.admissions, with.status), (vec![4, 2], None));
        assert_eq!(with.active_until, None);
        let active: EventNumbers = serde_json::from_str(
            r#"{"now":5,"head":1,"active":1,"stock":1,"limit":1,"cap":1,"ttl":1,"name":"x",
                "remaining":1,"sold":0,"entries":1,"admissions":[4],"status":"ACTIVE",
                "active_until":1700000060123}"#,
        )
        .unwrap();
        assert_eq!(active.active_until, Some(1_700_000_060_123));
        let refused: ReserveReply =
            serde_json::from_str(r#"{"result":"LIMIT_EXCEEDED","limit":2,"bought":2}"#).unwrap();
        assert!(matches!(
            refused,
            ReserveReply::LimitExceeded {
                limit: 2,
                bought: 2
            }
        ));
        assert!(serde_json::from_str::<ReserveReply>(r#"{"result":"MAYBE"}"#).is_err());
    }
}
