//! The Redis side of the real backend: key layout and Lua scripts.
//!
//! Every key of one event shares the hash tag `{ns:ev:ID}`, so each script
//! touches one slot and runs unchanged on Redis Cluster. Scripts are loaded
//! once and called by SHA (`redis::Script` does EVALSHA, loading on
//! NOSCRIPT). Time is Redis' own (`TIME`), so every instance sees one clock.
//!
//! Per event:
//! - `meta`    hash  stock, limit, cap, ttl, name
//! - `state`   hash  remaining, sold, n (entries so far), head (admitted so far)
//! - `entries` hash  userId -> "seq:issuedAt"
//! - `seqs`    hash  seq -> userId
//! - `active`  zset  seq scored by the end of its ACTIVE time (ms)
//! - `done`    set   seqs whose token bought
//! - `bought`  hash  userId -> items bought
//! - `res`     hash  reservationId -> reservation JSON
//! - `pending` set   reservationIds not yet known to be in PostgreSQL
//! - `adm`     list  the last 64 admission times (ms), newest first
//!
//! Entry `seq` is 0-based; entries `0..head` have been admitted, so a
//! WAITING entry's position is `seq - head + 1`, as in the embedded backend.

use redis::Script;

/// The keys of one event, in the order every script takes them.
pub fn event_keys(namespace: &str, event_id: &str) -> [String; 10] {
    let tag = format!("{{{namespace}:ev:{event_id}}}");
    [
        "meta", "state", "entries", "seqs", "active", "done", "bought", "res", "pending", "adm",
    ]
    .map(|k| format!("{tag}:{k}"))
}

/// The set of all event ids of a namespace (one key, outside any event's slot).
pub fn events_key(namespace: &str) -> String {
    format!("{namespace}:events")
}

/// reservationId -> eventId, so a ticket can be found by id alone.
pub fn reservation_index_key(namespace: &str, reservation_id: &str) -> String {
    format!("{namespace}:rid:{reservation_id}")
}

/// Shared by the scripts: Redis' clock, and the admission step (expire
/// ACTIVE entries whose time ran out, then admit from the head of the line
/// while there is room).
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function tick(now)
  local cap = tonumber(redis.call('HGET', KEYS[1], 'cap'))
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local active = redis.call('ZCARD', KEYS[5])
  local head = tonumber(redis.call('HGET', KEYS[2], 'head'))
  local n = tonumber(redis.call('HGET', KEYS[2], 'n'))
  local moved = false
  while active < cap and head < n do
    redis.call('ZADD', KEYS[5], now + ttl * 1000, head)
    redis.call('LPUSH', KEYS[10], now)
    head = head + 1
    active = active + 1
    moved = true
  end
  if moved then
    redis.call('HSET', KEYS[2], 'head', head)
    redis.call('LTRIM', KEYS[10], 0, 63)
  end
  return head, active
end
local function entry_status(seq, head)
  if seq >= head then return 'WAITING' end
  if redis.call('ZSCORE', KEYS[5], seq) then return 'ACTIVE' end
  if redis.call('SISMEMBER', KEYS[6], seq) == 1 then return 'DONE' end
  return 'EXPIRED'
end
"#;

/// ARGV: stock, limit, cap, ttl, name. Returns 1 when created, 0 when the
/// event exists.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'limit', ARGV[2], 'cap', ARGV[3], 'ttl', ARGV[4], 'name', ARGV[5])
redis.call('HSET', KEYS[2], 'remaining', ARGV[1], 'sold', 0, 'n', 0, 'head', 0)
return 1
"#;

/// Run by the admission consumer for each queue entry, in Kafka offset
/// order. ARGV: userId, issuedAt. Idempotent per user: a redelivered or
/// duplicate entry keeps its first place.
/// Returns {'NOT_FOUND'} | {'DUP', "seq:iat"} | {'NEW', "seq:iat"}.
const REGISTER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local e = redis.call('HGET', KEYS[3], ARGV[1])
if e then return {'DUP', e} end
local seq = redis.call('HINCRBY', KEYS[2], 'n', 1) - 1
local v = seq .. ':' .. ARGV[2]
redis.call('HSET', KEYS[3], ARGV[1], v)
redis.call('HSET', KEYS[4], seq, ARGV[1])
tick(now_ms())
return {'NEW', v}
"#;

/// The event's numbers and, when ARGV[1] is a seq, that entry's status.
/// ARGV: seq or '', userId or ''.
/// Returns {'NOT_FOUND'} or {'OK', now, head, active, stock, limit, cap,
/// ttl, name, remaining, sold, n, status, adm...}.
const VIEW: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local now = now_ms()
local head, active = tick(now)
local m = redis.call('HMGET', KEYS[1], 'stock', 'limit', 'cap', 'ttl', 'name')
local s = redis.call('HMGET', KEYS[2], 'remaining', 'sold', 'n')
local status = ''
if ARGV[1] ~= '' then
  local seq = tonumber(ARGV[1])
  if redis.call('HGET', KEYS[4], seq) == ARGV[2] then
    status = entry_status(seq, head)
  else
    status = 'UNKNOWN'
  end
end
local out = {'OK', tostring(now), tostring(head), tostring(active), m[1], m[2], m[3], m[4], m[5] or '',
             s[1], s[2], s[3], status}
for _, t in ipairs(redis.call('LRANGE', KEYS[10], 0, 63)) do out[#out + 1] = t end
return out
"#;

/// The reserve decision, all or nothing. ARGV: seq, userId, quantity,
/// reservationId, reservation JSON.
/// Returns {'OK', remaining} or {code, detail...} with code one of
/// NOT_FOUND, BAD_QUANTITY, UNKNOWN_ENTRY, NOT_ACTIVE, LIMIT_EXCEEDED, SOLD_OUT.
const RESERVE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local now = now_ms()
local head = tick(now)
local seq = tonumber(ARGV[1])
local qty = tonumber(ARGV[3])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit'))
if qty < 1 or qty > limit then return {'BAD_QUANTITY', tostring(limit)} end
if redis.call('HGET', KEYS[4], seq) ~= ARGV[2] then return {'UNKNOWN_ENTRY'} end
local st = entry_status(seq, head)
if st ~= 'ACTIVE' then return {'NOT_ACTIVE', st} end
local bought = tonumber(redis.call('HGET', KEYS[7], ARGV[2]) or '0')
if bought + qty > limit then return {'LIMIT_EXCEEDED', tostring(limit), tostring(bought)} end
local remaining = tonumber(redis.call('HGET', KEYS[2], 'remaining'))
if remaining < qty then return {'SOLD_OUT', tostring(remaining)} end
redis.call('HINCRBY', KEYS[2], 'remaining', -qty)
redis.call('HINCRBY', KEYS[2], 'sold', qty)
redis.call('HINCRBY', KEYS[7], ARGV[2], qty)
redis.call('ZREM', KEYS[5], seq)
redis.call('SADD', KEYS[6], seq)
redis.call('HSET', KEYS[8], ARGV[4], ARGV[5])
redis.call('SADD', KEYS[9], ARGV[4])
tick(now)
return {'OK', tostring(remaining - qty)}
"#;

/// A token used by a completed payment: ACTIVE -> DONE, and its slot goes
/// to the next in line. ARGV: seq, userId. Returns {status before}.
const COMPLETE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local now = now_ms()
local head = tick(now)
local seq = tonumber(ARGV[1])
if redis.call('HGET', KEYS[4], seq) ~= ARGV[2] then return {'UNKNOWN_ENTRY'} end
local st = entry_status(seq, head)
if st == 'ACTIVE' then
  redis.call('ZREM', KEYS[5], seq)
  redis.call('SADD', KEYS[6], seq)
  tick(now)
end
return {st}
"#;

/// Expiry and admission for an event nobody is touching. Returns the head,
/// or -1 for an unknown event.
const TICK: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local head = tick(now_ms())
return head
"#;

pub struct Scripts {
    pub create: Script,
    pub register: Script,
    pub view: Script,
    pub reserve: Script,
    pub complete: Script,
    pub tick: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            create: Script::new(CREATE),
            register: with_prelude(REGISTER),
            view: with_prelude(VIEW),
            reserve: with_prelude(RESERVE),
            complete: with_prelude(COMPLETE),
            tick: with_prelude(TICK),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
